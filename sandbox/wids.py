"""WhatsApp-style identifiers: phones, chat ids (wids), message ids, QR refs, pairing codes."""

from __future__ import annotations

import base64
import re
import secrets

from sandbox.errors import Invalid

_PHONE = re.compile(r"^[0-9]{6,15}$")
_USER_CHAT = re.compile(r"^[0-9]{6,15}@c\.us$")
_GROUP_CHAT = re.compile(r"^[0-9]{6,20}(-[0-9]{1,20})?@g\.us$")
# A LID ("linked id") carries no phone number; WhatsApp's are 14-15 digits in practice.
_LID_CHAT = re.compile(r"^[0-9]{1,20}@lid$")
_MSG_ID = re.compile(r"^[0-9A-Za-z]{4,64}$")
_DEVICE_ID = re.compile(r"^dev_[0-9a-f]{16,32}$")
# WhatsApp leaves out look-alike characters (0/O, 1/I, U) from linking codes.
_CODE_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTVWXYZ"


def normalize_phone(value: object, field: str = "phone") -> str:
    """Return the phone as bare digits; accepts `+`, spaces, dashes and an `@c.us` suffix."""
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise Invalid("validation_error", f"{field} must be a phone number", field=field)
    text = str(value).strip()
    if text.endswith("@c.us"):
        text = text[: -len("@c.us")]
    digits = re.sub(r"[\s\-().+]", "", text)
    if not _PHONE.match(digits):
        raise Invalid("validation_error", f"{field} must be 6 to 15 digits", field=field)
    return digits


def chat_id(value: object, field: str = "to") -> str:
    """Validate a chat id: `<digits>@c.us`, `<digits>@lid` or `<id>@g.us`."""
    if not isinstance(value, str) or not (
        _USER_CHAT.match(value) or _GROUP_CHAT.match(value) or _LID_CHAT.match(value)
    ):
        raise Invalid(
            "invalid_chat_id",
            f"{field} must look like <digits>@c.us, <digits>@lid or <id>@g.us",
            field=field,
        )
    return value


def new_lid() -> str:
    """A LID user part: 15 digits, random, not starting with 0."""
    return secrets.choice("123456789") + "".join(secrets.choice("0123456789") for _ in range(14))


def new_message_id() -> str:
    """A message id as WhatsApp Web makes them: `3EB0` and 16 uppercase hex digits."""
    return "3EB0" + secrets.token_hex(8).upper()


def message_id_part(value: object, field: str = "message_id") -> str:
    """The bare id out of `true_<chat>_<ID>`, `false_<chat>_<ID>[_<author>]` or `<ID>`."""
    if not isinstance(value, str) or not value:
        raise Invalid("validation_error", f"{field} must be a string", field=field)
    parts = value.split("_")
    if len(parts) >= 3 and parts[0] in ("true", "false"):
        candidate = parts[2]
    elif len(parts) == 1:
        candidate = value
    else:
        raise Invalid("validation_error", f"{field} is not a message id", field=field)
    if not _MSG_ID.match(candidate):
        raise Invalid("validation_error", f"{field} is not a message id", field=field)
    return candidate


def is_device_id(value: object) -> bool:
    """Whether `value` has the shape of a device id this sandbox issues."""
    return isinstance(value, str) and bool(_DEVICE_ID.match(value))


def new_device_id() -> str:
    """A fresh device id; the `dev_` prefix keeps it apart from phone numbers in URLs."""
    return "dev_" + secrets.token_hex(10)


def new_ref() -> str:
    """A QR ref shaped like the real multidevice one (`2@` + base64, no commas)."""
    return "2@" + base64.b64encode(secrets.token_bytes(45)).decode()


def new_token() -> str:
    """The secret a linked device presents to resume its session."""
    return secrets.token_urlsafe(24)


def new_pairing_code() -> str:
    """An 8-character linking code, shown as `XXXX-XXXX`."""
    raw = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(8))
    return f"{raw[:4]}-{raw[4:]}"


def normalize_pairing_code(value: object) -> str:
    """Accept `abcd-1234`, `ABCD1234` or `ABCD 1234`; return `ABCD-1234`."""
    if not isinstance(value, str):
        raise Invalid("validation_error", "code must be a string", field="code")
    raw = re.sub(r"[\s\-]", "", value).upper()
    if not re.fullmatch(r"[0-9A-Z]{8}", raw):
        raise Invalid("validation_error", "code must be 8 letters or digits", field="code")
    return f"{raw[:4]}-{raw[4:]}"
