"""Input validation at the API edge: ids that become paths, and JSON bodies.

Every failure is a `ValidationFailed` naming the field, or `MalformedJson` for bytes that do
not parse: never a 500.
"""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.requests import Request

from service.errors import MalformedJson, ValidationFailed
from service.models.base import ID_PATTERN, ID_RULE

_ID = re.compile(ID_PATTERN)


def is_valid_id(value: object) -> bool:
    """True for ids that are safe as one directory name: the rule the models check."""
    return isinstance(value, str) and len(value) <= 64 and bool(_ID.fullmatch(value))


def check_id(value: object, field: str) -> str:
    if not isinstance(value, str):
        raise ValidationFailed(field, "must be a string")
    if not is_valid_id(value):
        raise ValidationFailed(field, ID_RULE)
    return value


async def json_object(request: Request, *, allow_empty: bool = False) -> dict[str, Any]:
    """The request body as a JSON object; an empty body is `{}` when `allow_empty`."""
    return parse_object(await request.body(), allow_empty=allow_empty)


def parse_object(raw: bytes, *, allow_empty: bool = False) -> dict[str, Any]:
    """`json_object` on bytes already read (for a large body parsed off the event loop)."""
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
