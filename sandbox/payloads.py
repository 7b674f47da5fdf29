"""Reading and checking JSON request bodies, so handlers never see malformed input."""

from __future__ import annotations

import base64
import binascii
import json
import math
from typing import Any

from starlette.requests import Request

from sandbox.errors import BadRequest, Invalid, TooLarge

# Media travels base64-encoded inside JSON; WhatsApp's own ceiling is 100 MB of file
# (documents), which is about 134 MB once encoded.
MAX_BODY_BYTES = 150 * 1024 * 1024


async def read_json(
    request: Request, max_bytes: int = MAX_BODY_BYTES, *, empty_ok: bool = False
) -> dict[str, Any]:
    """Read the body as a JSON object, refusing oversized, malformed or non-object bodies
    (an empty body is `{}` when `empty_ok`)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise TooLarge("payload_too_large", f"body is larger than {max_bytes} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise TooLarge("payload_too_large", f"body is larger than {max_bytes} bytes")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip() and empty_ok:
        return {}
    if not raw.strip():
        raise BadRequest("invalid_json", "body must be a JSON object")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest("invalid_json", f"body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadRequest("invalid_json", "body must be a JSON object")
    return data


def required(data: dict[str, Any], field: str) -> Any:
    """The value of a field that must be present and not null."""
    value = data.get(field)
    if value is None:
        raise Invalid("validation_error", f"{field} is required", field=field)
    return value


def optional_str(data: dict[str, Any], field: str, max_len: int = 65536) -> str | None:
    """A string field that may be missing or null."""
    value = data.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        raise Invalid("validation_error", f"{field} must be a string", field=field)
    if len(value) > max_len:
        raise Invalid("validation_error", f"{field} is longer than {max_len}", field=field)
    return value


def required_str(data: dict[str, Any], field: str, max_len: int = 65536) -> str:
    """A string field that must be present and non-empty."""
    value = optional_str(data, field, max_len)
    if not value:
        raise Invalid("validation_error", f"{field} is required", field=field)
    return value


def optional_bool(data: dict[str, Any], field: str) -> bool:
    """A boolean flag that may be missing or null (false then)."""
    value = data.get(field)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise Invalid("validation_error", f"{field} must be true or false", field=field)
    return value


def optional_int(data: dict[str, Any], field: str, default: int, low: int, high: int) -> int:
    """An integer field within [low, high], `default` when missing or null."""
    value = data.get(field)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise Invalid("validation_error", f"{field} must be an integer {low}..{high}", field=field)
    return value


def optional_dict(data: dict[str, Any], field: str) -> dict[str, Any] | None:
    """A nested object that may be missing or null."""
    value = data.get(field)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise Invalid("validation_error", f"{field} must be an object", field=field)
    return value


def coordinate(data: dict[str, Any], field: str, limit: float) -> float:
    """A latitude or longitude, as a number or a numeric string, within +-limit."""
    value = required(data, field)
    if isinstance(value, bool):
        raise Invalid("validation_error", f"{field} must be a number", field=field)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise Invalid("validation_error", f"{field} must be a number", field=field) from None
    if not math.isfinite(number) or abs(number) > limit:
        raise Invalid("validation_error", f"{field} must be within +-{limit}", field=field)
    return number


def base64_bytes(value: object, field: str = "data") -> bytes:
    """Decode strict base64 (a `data:` URL prefix is tolerated)."""
    if not isinstance(value, str) or not value:
        raise Invalid("validation_error", f"{field} must be base64", field=field)
    if value.startswith("data:") and "," in value:
        value = value.split(",", 1)[1]
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise Invalid("validation_error", f"{field} is not valid base64", field=field) from None


def mimetype(value: object, field: str = "mimetype") -> str:
    """A `type/subtype` media type."""
    if not isinstance(value, str) or "/" not in value or len(value) > 255 or " " in value:
        raise Invalid("validation_error", f"{field} must be a media type", field=field)
    return value.lower()


def media_kind(mime: str) -> str:
    """The WhatsApp message type a media type travels as."""
    major = mime.split("/", 1)[0]
    if major in ("image", "video", "audio"):
        return major
    return "document"
