"""Input validation at the API edge: ids that become paths, JSON bodies, typed fields.

Every failure is a `ValidationFailed` naming the field, or `MalformedJson` for bytes that do
not parse: never a 500.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request

from service.errors import MalformedJson, ValidationFailed

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def is_valid_id(value: object) -> bool:
    """True for ids that are safe as one directory name (DESIGN.md §2)."""
    return isinstance(value, str) and bool(_ID.fullmatch(value)) and ".." not in value


def check_id(value: object, field: str) -> str:
    if not isinstance(value, str):
        raise ValidationFailed(field, "must be a string")
    if not is_valid_id(value):
        raise ValidationFailed(
            field,
            "must be 1-64 characters of letters, digits, '_', '.', '-', start with a letter "
            "or digit, and not contain '..'",
        )
    return value


async def json_object(request: Request, *, allow_empty: bool = False) -> dict[str, Any]:
    """The request body as a JSON object; an empty body is `{}` when `allow_empty`."""
    raw = await request.body()
    if not raw.strip():
        if allow_empty:
            return {}
        raise MalformedJson("request body must be a JSON object")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedJson(f"request body is not valid JSON: {exc}") from None
    except RecursionError:
        raise MalformedJson("request body is nested too deeply") from None
    if not isinstance(data, dict):
        raise ValidationFailed("body", "must be a JSON object")
    try:
        # JSON may escape lone UTF-16 surrogates (\ud800) that no UTF-8 store or response
        # can hold: refuse them here rather than fail later.
        json.dumps(data, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        raise MalformedJson("request body contains an unpaired UTF-16 surrogate") from None
    except RecursionError:
        raise MalformedJson("request body is nested too deeply") from None
    return data


def reject_unknown(data: dict[str, Any], allowed: set[str], prefix: str = "") -> None:
    """Unknown fields are a typo on the caller's side: say so instead of ignoring them."""
    for key in data:
        if key not in allowed:
            raise ValidationFailed(f"{prefix}{key}", "is not a known field")


def opt_str(
    data: dict[str, Any], field: str, *, max_len: int = 1000, prefix: str = ""
) -> str | None:
    value = data.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationFailed(prefix + field, "must be a string")
    if len(value) > max_len:
        raise ValidationFailed(prefix + field, f"must be at most {max_len} characters")
    return value


def req_str(data: dict[str, Any], field: str, *, max_len: int = 1000, prefix: str = "") -> str:
    value = opt_str(data, field, max_len=max_len, prefix=prefix)
    if value is None or not value.strip():
        raise ValidationFailed(prefix + field, "is required")
    return value


def opt_bool(data: dict[str, Any], field: str) -> bool | None:
    value = data.get(field)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise ValidationFailed(field, "must be true or false")
    return value


def opt_choice(data: dict[str, Any], field: str, choices: tuple[str, ...]) -> str | None:
    value = data.get(field)
    if value is None:
        return None
    if value not in choices:
        raise ValidationFailed(field, f"must be one of {', '.join(choices)}")
    return str(value)


def opt_url(data: dict[str, Any], field: str) -> str | None:
    """An absolute http(s) URL, or None; an empty string clears it."""
    value = opt_str(data, field, max_len=2048)
    if value is None or value == "":
        return value
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValidationFailed(field, "must be an absolute http or https URL")
    return value


def opt_object(data: dict[str, Any], field: str) -> dict[str, Any] | None:
    value = data.get(field)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValidationFailed(field, "must be an object")
    return value


def query_choice(request: Request, name: str, choices: tuple[str, ...]) -> str | None:
    """An optional query filter among `choices`; present but empty is an error, not "all"."""
    value = request.query_params.get(name)
    if value is None:
        return None
    if value not in choices:
        raise ValidationFailed(name, f"must be one of {', '.join(choices)}")
    return value


def query_id(request: Request, name: str) -> str | None:
    """An optional id filter. `?workspace_id=` must never widen a query to every tenant's
    rows, so present but empty is 422."""
    value = request.query_params.get(name)
    if value is None:
        return None
    return check_id(value, name)
