"""What every wire model shares: the id type, strict inputs, and one translation of a
pydantic `ValidationError` into our 422 `validation_failed`.

Why pydantic v2: its models validate a request and also produce the JSON Schema (2020-12,
which OpenAPI 3.1 uses as is) that `/openapi.json` serves, so the document cannot drift from
what the handlers accept. Its strict mode refuses `"1"` for a number and `1` for a string
without hand-written checks, and its errors carry the location of every bad field.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError

from service.errors import ValidationFailed

# A character class and a dot never followed by another dot: ids become directory names, so
# `..` is out. No look-ahead, so the same pattern holds in Python, Rust and ECMA regex (the
# dialects of the validator, pydantic-core and JSON Schema); the length is minLength/maxLength.
ID_PATTERN = r"^[A-Za-z0-9](?:[A-Za-z0-9_-]|\.[A-Za-z0-9_-])*\.?$"
ID_RULE = (
    "must be 1-64 characters of letters, digits, '_', '.', '-', start with a letter or digit, "
    "and not contain '..'"
)
Id = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=ID_PATTERN)]
NOT_BLANK = r"\S"
EVENT_ID_PATTERN = r"^evt_[0-9A-Za-z]{1,36}$"
# What a pattern means, said the way a person reads it (models add theirs).
PATTERN_RULES = {
    ID_PATTERN: ID_RULE,
    NOT_BLANK: "must not be blank",
    EVENT_ID_PATTERN: "must be an evt_... id",
}
# At most this many problems are listed in `details.errors`, with names this long.
MAX_LISTED = 20
MAX_FIELD = 64

M = TypeVar("M", bound=BaseModel)


class Input(BaseModel):
    """A request body or query: strict types, unknown fields refused, input never echoed."""

    model_config = ConfigDict(strict=True, extra="forbid", hide_input_in_errors=True)


class Output(BaseModel):
    """A response body or webhook payload. A bug that builds a wrong one is logged without
    the values (they can be message text and phone numbers)."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    def json_dict(self) -> dict[str, Any]:
        # Fields a producer did not set are left out: `reason` on a status change, `error` on
        # a message status. Fields set to None stay, as null.
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)


def _field(loc: tuple[int | str, ...], prefix: str) -> str:
    """`media.url`; cut short, because an unknown field's name is the caller's own text."""
    name = prefix + ".".join(str(part) for part in loc) if loc else prefix.rstrip(".")
    return name[:MAX_FIELD] or "body"


def _rule(error: Any) -> str:
    """One pydantic error as the end of a sentence that starts with the field name."""
    kind: str = error["type"]
    ctx: dict[str, Any] = error.get("ctx") or {}
    match kind:
        case "missing":
            return "is required"
        case "extra_forbidden":
            return "is not a known field"
        case "string_type":
            return "must be a string"
        case "bool_type":
            return "must be true or false"
        case "int_type" | "int_parsing" | "int_from_float":
            return "must be a whole number"
        case "float_type" | "float_parsing":
            return "must be a number"
        case "finite_number":
            return "must be a finite number"
        case "greater_than_equal":
            return f"must be at least {ctx.get('ge')}"
        case "less_than_equal":
            return f"must be at most {ctx.get('le')}"
        case "too_long":
            return f"must have at most {ctx.get('max_length')} items"
        case "model_type" | "dict_type" | "model_attributes_type":
            return "must be an object"
        case "list_type":
            return "must be a list"
        case "string_too_long":
            return f"must be at most {ctx['max_length']} characters"
        case "string_too_short":
            return (
                "must not be empty"
                if ctx.get("min_length") == 1
                else (f"must be at least {ctx['min_length']} characters")
            )
        case "string_pattern_mismatch":
            return PATTERN_RULES.get(ctx.get("pattern", ""), f"must match {ctx.get('pattern')}")
        case "literal_error" | "enum":
            return f"must be one of {ctx.get('expected')}"
        case "value_error" | "assertion_error":
            return str(ctx.get("error", error["msg"]))
    message: str = error["msg"]
    return message.replace("Input should be", "must be", 1)


def failure(exc: ValidationError, prefix: str = "") -> ValidationFailed:
    """422 naming the first bad field, with every problem listed in `details.errors`."""
    errors = exc.errors(include_url=False, include_input=False)
    listed = [{"field": _field(e["loc"], prefix), "message": _rule(e)} for e in errors]
    first = listed[0]
    return ValidationFailed(first["field"], first["message"], errors=listed[:MAX_LISTED])


def validate(model: type[M], data: Any, *, prefix: str = "") -> M:
    """`data` (already parsed JSON) as `model`, or ValidationFailed."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise failure(exc, prefix) from None
