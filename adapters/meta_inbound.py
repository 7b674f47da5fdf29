"""Inbound Meta Cloud API webhooks: signature verification and the payload, parsed.

Meta signs each POST with `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body,
keyed with the app secret>`. The payload names the receiving number
(`entry[].changes[].value.metadata.phone_number_id`), which is how the session, and so the
app secret to verify with, is found.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from adapters.base import InboundMedia
from service.digits import ascii_int
from service.signing import hmac_matches

_KIND = re.compile(r"[a-z_]{1,16}")


def verify_signature(body: bytes, header: str | None, secrets: Iterable[str]) -> bool:
    """True when `header` is `sha256=<hex>` of `body` under one of `secrets` (constant time,
    every secret tried)."""
    if not header or not header.startswith("sha256="):
        return False
    return hmac_matches(secrets, body, header[len("sha256=") :])


@dataclass(frozen=True)
class MetaMessage:
    """One inbound message, already in the API's vocabulary."""

    phone_number_id: str
    wamid: str
    sender: str  # wa_id, digits
    kind: str
    timestamp: int | None
    text: str | None
    notify_name: str | None
    reply_to: str | None
    media_id: str | None = None
    media: InboundMedia | None = None
    location: dict[str, Any] | None = None
    # A `reaction`: the wamid of the message it is on (`text` is the emoji, None when the
    # reaction was taken back).
    reacted_to: str | None = None


@dataclass(frozen=True)
class MetaStatus:
    phone_number_id: str
    wamid: str
    status: str
    error: str | None = None


@dataclass
class MetaBatch:
    messages: list[MetaMessage] = field(default_factory=list)
    statuses: list[MetaStatus] = field(default_factory=list)


MEDIA_KINDS = ("image", "document", "audio", "video", "sticker")
STATUS_MAP = {"sent": "sent", "delivered": "delivered", "read": "read", "failed": "failed"}


def phone_number_ids(payload: Any) -> set[str]:
    return {value["metadata"]["phone_number_id"] for value in _values(payload)}


def parse(payload: Any) -> MetaBatch:
    """The messages and statuses of a `whatsapp_business_account` payload; others are empty."""
    batch = MetaBatch()
    for value in _values(payload):
        pnid = value["metadata"]["phone_number_id"]
        names = {
            c.get("wa_id"): (c.get("profile") or {}).get("name")
            for c in value.get("contacts") or []
            if isinstance(c, dict)
        }
        for msg in value.get("messages") or []:
            if isinstance(msg, dict) and isinstance(msg.get("id"), str):
                batch.messages.append(_message(pnid, msg, names))
        for st in value.get("statuses") or []:
            if isinstance(st, dict) and isinstance(st.get("id"), str):
                status = STATUS_MAP.get(str(st.get("status")))
                if status is not None:
                    batch.statuses.append(MetaStatus(pnid, st["id"], status, _status_error(st)))
    return batch


def _values(payload: Any) -> Iterator[dict[str, Any]]:
    if not isinstance(payload, dict) or payload.get("object") != "whatsapp_business_account":
        return
    for entry in payload.get("entry") or []:
        for change in (entry or {}).get("changes") or []:
            value = (change or {}).get("value")
            if not isinstance(value, dict):
                continue
            metadata = value.get("metadata")
            if isinstance(metadata, dict) and isinstance(metadata.get("phone_number_id"), str):
                yield value


def _message(pnid: str, msg: dict[str, Any], names: dict[Any, Any]) -> MetaMessage:
    # What Meta sends is stored as is: keep it within the columns every store has (a value
    # too long is an error on MySQL, and Meta would redeliver the batch for ever).
    kind = str(msg.get("type") or "unknown")
    if not _KIND.fullmatch(kind):
        kind = "unknown"
    found = msg.get(kind)
    body: dict[str, Any] = found if isinstance(found, dict) else {}
    sender = str(msg.get("from") or "")[:128]
    text = None
    if kind == "text":
        text = body.get("body")
    elif kind in MEDIA_KINDS:
        text = body.get("caption")
    elif kind == "reaction":
        text = body.get("emoji") or None  # absent or empty: the reaction was taken back
    elif kind in ("button", "interactive"):
        text = body.get("text") or str(body)[:1000]
    media = None
    if kind in MEDIA_KINDS:
        media = InboundMedia(
            mimetype=str(body.get("mime_type") or "application/octet-stream"),
            filename=body.get("filename"),
        )
    location = None
    if kind == "location":
        location = {
            "latitude": body.get("latitude"),
            "longitude": body.get("longitude"),
            "name": body.get("name"),
        }
    timestamp = msg.get("timestamp")
    found_context = msg.get("context")
    context: dict[str, Any] = found_context if isinstance(found_context, dict) else {}
    return MetaMessage(
        phone_number_id=pnid,
        wamid=str(msg["id"])[:190],
        sender=sender,
        kind=kind,
        timestamp=ascii_int(timestamp) if isinstance(timestamp, str) else None,
        text=text if isinstance(text, str) else None,
        notify_name=names.get(sender),
        reply_to=context.get("id") if isinstance(context.get("id"), str) else None,
        media_id=body.get("id") if kind in MEDIA_KINDS else None,
        media=media,
        location=location,
        reacted_to=_reacted_to(kind, body),
    )


def _reacted_to(kind: str, body: dict[str, Any]) -> str | None:
    target = body.get("message_id") if kind == "reaction" else None
    return target[:190] if isinstance(target, str) and target else None


def _status_error(status: dict[str, Any]) -> str | None:
    errors = status.get("errors")
    if not isinstance(errors, list) or not errors or not isinstance(errors[0], dict):
        return None
    first = errors[0]
    title = first.get("title") or first.get("message") or "failed"
    return f"{first.get('code')}: {title}"[:500]
