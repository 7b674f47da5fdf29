"""The send request of DESIGN.md §2, parsed and validated into an `OutgoingMessage`."""

from __future__ import annotations

import base64
import binascii
import math
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from service.errors import ValidationFailed
from service.validation import opt_choice, opt_object, opt_str, reject_unknown

MESSAGE_TYPES = ("text", "image", "document", "audio", "video", "location", "template")
MEDIA_TYPES = ("image", "document", "audio", "video")
PRIORITIES = ("normal", "bulk")
# WhatsApp's own ceiling for one text message.
MAX_TEXT = 65_536
MAX_CAPTION = 4_096

_FIELDS = {
    "to",
    "type",
    "text",
    "media",
    "location",
    "template",
    "reply_to",
    "priority",
    "idempotency_key",
}
_PHONE = re.compile(r"\+?([1-9][0-9]{6,14})")
_CONTACT = re.compile(r"([1-9][0-9]{6,14})@c\.us")
_GROUP = re.compile(r"([0-9]{6,20}(?:-[0-9]{6,20})?)@g\.us")
# A linked id: current WhatsApp names many chats by one instead of a phone number.
_LID = re.compile(r"[1-9][0-9]{5,24}@lid")
_MIMETYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}")
_FILENAME_UNSAFE = re.compile(r"[\x00-\x1f/\\]")


@dataclass(frozen=True)
class MediaInput:
    """Media to send: a URL to fetch at accept time, or inline bytes."""

    mimetype: str | None
    filename: str | None
    url: str | None = None
    data: bytes | None = None


@dataclass(frozen=True)
class Location:
    latitude: float
    longitude: float
    name: str | None = None


@dataclass(frozen=True)
class OutgoingMessage:
    """A validated send request."""

    to: str  # a chat id: <digits>@c.us, <id>@g.us or <digits>@lid
    type: str
    text: str | None
    media: MediaInput | None
    location: Location | None
    reply_to: str | None
    priority: str
    idempotency_key: str | None
    template: dict[str, Any] | None = None


def normalize_phone(value: str) -> str | None:
    """`+55 11 99999-0001` -> `5511999990001`; None when it is not an E.164 number."""
    match = _PHONE.fullmatch(value.strip().replace(" ", "").replace("-", ""))
    return match.group(1) if match else None


def normalize_recipient(value: object) -> str:
    """`+5511...`, `5511...`, `5511...@c.us`, `<group>@g.us` or `<lid>@lid` -> a chat id."""
    if not isinstance(value, str) or not value.strip():
        raise ValidationFailed(
            "to", "is required: a phone number, <digits>@c.us, <id>@g.us or <digits>@lid"
        )
    raw = value.strip()
    if "@" not in raw and (phone := normalize_phone(raw)):
        return f"{phone}@c.us"
    if _CONTACT.fullmatch(raw) or _GROUP.fullmatch(raw) or _LID.fullmatch(raw):
        return raw
    raise ValidationFailed(
        "to",
        "is not a valid recipient: use an international phone number (7-15 digits, optional +), "
        "<digits>@c.us, <id>@g.us or <digits>@lid",
    )


def parse_send_request(data: dict[str, Any], header_key: str | None) -> OutgoingMessage:
    reject_unknown(data, _FIELDS)
    to = normalize_recipient(data.get("to"))
    kind = opt_choice(data, "type", MESSAGE_TYPES)
    if kind is None:
        raise ValidationFailed("type", f"is required: one of {', '.join(MESSAGE_TYPES)}")
    text = opt_str(data, "text", max_len=MAX_TEXT)
    media = location = template = None
    if kind == "text":
        if text is None or not text.strip():
            raise ValidationFailed("text", "is required and must not be empty for a text message")
        for other in ("media", "location"):
            if data.get(other) is not None:
                raise ValidationFailed(other, "is not allowed on a text message")
    elif kind == "template":
        template = _template(data)
    elif kind == "location":
        location = _location(data)
        if text:
            raise ValidationFailed("text", "is not allowed on a location message")
    else:
        media = _media(data)
        if text is not None and len(text) > MAX_CAPTION:
            raise ValidationFailed("text", f"a caption must be at most {MAX_CAPTION} characters")
        if kind == "audio" and text:
            raise ValidationFailed("text", "audio messages carry no caption")
    key = data.get("idempotency_key")
    if key is not None and (not isinstance(key, str) or not 1 <= len(key) <= 190):
        raise ValidationFailed("idempotency_key", "must be a string of 1-190 characters")
    if header_key is not None:
        if not 1 <= len(header_key) <= 190:
            raise ValidationFailed("Idempotency-Key", "must be 1-190 characters")
        if key is not None and key != header_key:
            raise ValidationFailed(
                "idempotency_key", "differs from the Idempotency-Key header; send one of them"
            )
        key = header_key
    return OutgoingMessage(
        to=to,
        type=kind,
        text=text if text else None,
        media=media,
        location=location,
        reply_to=opt_str(data, "reply_to", max_len=190),
        priority=opt_choice(data, "priority", PRIORITIES) or "normal",
        idempotency_key=key,
        template=template,
    )


def _media(data: dict[str, Any]) -> MediaInput:
    media = opt_object(data, "media")
    if media is None:
        raise ValidationFailed("media", "is required for image, document, audio and video")
    reject_unknown(media, {"url", "base64", "mimetype", "filename"}, prefix="media.")
    mimetype = _mimetype(opt_str(media, "mimetype", max_len=191, prefix="media."), "media.mimetype")
    filename = opt_str(media, "filename", max_len=255, prefix="media.")
    if filename is not None and (_FILENAME_UNSAFE.search(filename) or filename in (".", "..")):
        raise ValidationFailed("media.filename", "must be a plain file name")
    url = opt_str(media, "url", max_len=2048, prefix="media.")
    encoded = opt_str(media, "base64", max_len=32 * 1024 * 1024, prefix="media.")
    if (url is None) == (encoded is None):
        raise ValidationFailed("media", "needs exactly one of url or base64")
    if url is not None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValidationFailed("media.url", "must be an absolute http or https URL")
        return MediaInput(mimetype=mimetype, filename=filename, url=url)
    assert encoded is not None
    if encoded.startswith("data:") and "," in encoded:
        header, encoded = encoded.split(",", 1)
        mimetype = mimetype or _mimetype(header[5:].split(";")[0] or None, "media.base64")
    try:
        payload = base64.b64decode("".join(encoded.split()), validate=True)
    except (binascii.Error, ValueError):
        raise ValidationFailed("media.base64", "is not valid base64") from None
    if not payload:
        raise ValidationFailed("media.base64", "is empty")
    if mimetype is None:
        raise ValidationFailed("media.mimetype", "is required with base64 media")
    return MediaInput(mimetype=mimetype, filename=filename, data=payload)


def _template(data: dict[str, Any]) -> dict[str, Any]:
    """A Cloud API template: `{name, language: "en_US" | {code}, components?}`."""
    template = opt_object(data, "template")
    if template is None:
        raise ValidationFailed("template", "is required for a template message")
    reject_unknown(template, {"name", "language", "components"}, prefix="template.")
    name = opt_str(template, "name", max_len=512, prefix="template.")
    if not name or not re.fullmatch(r"[a-z0-9_]+", name):
        raise ValidationFailed("template.name", "must be a template name (a-z, 0-9, _)")
    language = template.get("language")
    if isinstance(language, dict):
        language = language.get("code")
    if not isinstance(language, str) or not re.fullmatch(r"[a-z]{2,3}(_[A-Z]{2})?", language):
        raise ValidationFailed("template.language", "must be a language code such as en_US")
    components = template.get("components")
    if components is not None and not isinstance(components, list):
        raise ValidationFailed("template.components", "must be a list")
    result: dict[str, Any] = {"name": name, "language": {"code": language}}
    if components:
        result["components"] = components
    return result


def _mimetype(value: str | None, field: str) -> str | None:
    """A normalized MIME type, or None; anything else (header injection included) is 422."""
    if value is None:
        return None
    value = value.strip().lower()
    if not _MIMETYPE.fullmatch(value):
        raise ValidationFailed(field, "is not a MIME type such as image/jpeg")
    return value


def _location(data: dict[str, Any]) -> Location:
    location = opt_object(data, "location")
    if location is None:
        raise ValidationFailed("location", "is required for a location message")
    reject_unknown(location, {"latitude", "longitude", "name"}, prefix="location.")
    values = []
    for field, bound in (("latitude", 90.0), ("longitude", 180.0)):
        value = location.get(field)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValidationFailed(f"location.{field}", "must be a number")
        # Compared before any float conversion: a 400-digit integer overflows a float.
        if not -bound <= value <= bound or not math.isfinite(value):
            raise ValidationFailed(f"location.{field}", f"must be between -{bound:g} and {bound:g}")
        values.append(float(value))
    name = opt_str(location, "name", max_len=256, prefix="location.")
    return Location(latitude=values[0], longitude=values[1], name=name)
