"""The send request, validated by its model and then turned into an `OutgoingMessage`."""

from __future__ import annotations

import base64
import binascii
import re
import time
from dataclasses import dataclass
from typing import Any

from service.errors import ValidationFailed
from service.models import requests as rq
from service.models.base import validate

_PHONE = re.compile(r"\+?([1-9][0-9]{6,14})")
_CONTACT = re.compile(r"([1-9][0-9]{6,14})@c\.us")
_GROUP = re.compile(r"([0-9]{6,20}(?:-[0-9]{6,20})?)@g\.us")
# A linked id: current WhatsApp names many chats by one instead of a phone number.
_LID = re.compile(r"[1-9][0-9]{5,24}@lid")
_MIMETYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}")
_FILENAME_UNSAFE = re.compile(r"[\x00-\x1f/\\]")
# How far ahead a message may be scheduled: far enough for reminders, near enough that a
# mistyped year is refused instead of sitting in the queue.
SEND_AT_HORIZON = 30 * 86_400.0
# A send_at this far in the past means now: the caller's clock and ours may differ a little.
SEND_AT_GRACE = 60.0


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
    # {name, options, selectable_count} for a poll.
    poll: dict[str, Any] | None = None
    # Users a text mentions, as chat ids (<digits>@c.us or <digits>@lid).
    mentions: tuple[str, ...] | None = None
    # A text's link preview: None leaves it to the provider's default.
    link_preview: bool | None = None
    # When to send it (Unix seconds); None sends it in queue order now.
    send_at: float | None = None


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


def parse_send_request(
    data: dict[str, Any], header_key: str | None, *, now: float | None = None
) -> OutgoingMessage:
    """The request as an OutgoingMessage, or ValidationFailed naming the field; `now` (the
    clock by default) is what `send_at` is judged against."""
    request = validate(rq.SendMessage, data)
    to = normalize_recipient(request.to)
    kind = request.type
    text = request.text
    media = location = template = poll = None
    if kind == "text":
        if text is None or not text.strip():
            raise ValidationFailed("text", "is required and must not be empty for a text message")
    elif kind == "template":
        template = _template(request.template)
        if text:
            raise ValidationFailed("text", "is not allowed on a template message")
    elif kind == "poll":
        poll = _poll(request.poll)
        if text:
            raise ValidationFailed("text", "is not allowed on a poll; the question is poll.name")
    elif kind == "location":
        location = _location(request.location)
        if text:
            raise ValidationFailed("text", "is not allowed on a location message")
    else:
        media = _media(request.media)
        if text is not None and len(text) > rq.MAX_CAPTION:
            raise ValidationFailed("text", f"a caption must be at most {rq.MAX_CAPTION} characters")
        if kind in ("audio", "voice", "sticker") and text:
            raise ValidationFailed("text", f"{kind} messages carry no caption")
    # What belongs to another type is a mistake on the caller's side, not something to drop.
    for other in ("media", "location", "template", "poll"):
        if getattr(request, other) is not None and other != _PART.get(kind):
            raise ValidationFailed(other, f"is not allowed on a {kind} message")
    mentions = None
    if request.mentions is not None:
        if kind not in _MENTIONING:
            raise ValidationFailed("mentions", "is allowed on a text or a media caption only")
        if not text:
            # WhatsApp shows a mention where the text says @<digits>: none without one.
            raise ValidationFailed("mentions", "needs the text (or caption) that shows them")
        mentions = tuple(dict.fromkeys(_user(value) for value in request.mentions))
    if request.link_preview is not None and kind != "text":
        raise ValidationFailed("link_preview", "is allowed on a text message only")
    key = request.idempotency_key
    if header_key is not None:
        if key is not None and key != header_key:
            raise ValidationFailed(
                "idempotency_key", "differs from the Idempotency-Key header; send one of them"
            )
        key = header_key
    send_at = _send_at(request.send_at, time.time() if now is None else now)
    return OutgoingMessage(
        to=to,
        type=kind,
        text=text if text else None,
        media=media,
        location=location,
        reply_to=request.reply_to,
        priority=request.priority or "normal",
        idempotency_key=key,
        template=template,
        poll=poll,
        mentions=mentions,
        link_preview=request.link_preview,
        send_at=send_at,
    )


def _send_at(send_at: float | None, now: float) -> float | None:
    """A time to send at within the horizon; None for none, or for one that has just passed."""
    if send_at is None:
        return None
    if send_at < now - SEND_AT_GRACE:
        raise ValidationFailed(
            "send_at",
            f"is more than {SEND_AT_GRACE:g} seconds in the past: leave it out to send now",
        )
    if send_at > now + SEND_AT_HORIZON:
        raise ValidationFailed(
            "send_at", f"is more than {SEND_AT_HORIZON / 86_400:g} days ahead, the furthest allowed"
        )
    return send_at if send_at > now else None


# The types wa-js's prepareRawMessage reads mentions for: a text, or a file's caption.
_MENTIONING = frozenset({"text", "image", "video", "document"})


def _user(value: str) -> str:
    """A mentioned user (already matched by the model's pattern) as a chat id."""
    phone = normalize_phone(value) if "@" not in value else None
    return f"{phone}@c.us" if phone else value


# The part of the request each type carries besides `text`.
_PART = {
    "image": "media",
    "document": "media",
    "audio": "media",
    "voice": "media",
    "sticker": "media",
    "video": "media",
    "location": "location",
    "template": "template",
    "poll": "poll",
}


def _media(media: rq.MediaInput | None) -> MediaInput:
    if media is None:
        raise ValidationFailed(
            "media", "is required for image, document, audio, voice, sticker and video"
        )
    mimetype = _mimetype(media.mimetype, "media.mimetype")
    filename = media.filename
    if filename is not None and (_FILENAME_UNSAFE.search(filename) or filename in (".", "..")):
        raise ValidationFailed("media.filename", "must be a plain file name")
    url, encoded = media.url, media.base64
    if (url is None) == (encoded is None):
        raise ValidationFailed("media", "needs exactly one of url or base64")
    if url is not None:
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


def _template(template: rq.TemplateInput | None) -> dict[str, Any]:
    """A Cloud API template: `{name, language: {code}, components?}`."""
    if template is None:
        raise ValidationFailed("template", "is required for a template message")
    result: dict[str, Any] = {"name": template.name, "language": {"code": template.language}}
    if template.components:
        result["components"] = template.components
    return result


def _mimetype(value: str | None, field: str) -> str | None:
    """A normalized MIME type, or None; anything else (header injection included) is 422."""
    if value is None:
        return None
    value = value.strip().lower()
    if not _MIMETYPE.fullmatch(value):
        raise ValidationFailed(field, "is not a MIME type such as image/jpeg")
    return value


def _poll(poll: rq.PollInput | None) -> dict[str, Any]:
    if poll is None:
        raise ValidationFailed("poll", "is required for a poll message")
    # Votes name options by position: two equal options could not be told apart.
    if len({option.strip() for option in poll.options}) != len(poll.options):
        raise ValidationFailed("poll.options", "must be distinct")
    count = poll.selectable_count or 0
    if count > len(poll.options):
        raise ValidationFailed("poll.selectable_count", "is more than the options there are")
    return {"name": poll.name, "options": list(poll.options), "selectable_count": count}


def _location(location: rq.LocationInput | None) -> Location:
    if location is None:
        raise ValidationFailed("location", "is required for a location message")
    return Location(latitude=location.latitude, longitude=location.longitude, name=location.name)
