"""Incoming calls on a WhatsApp Web session: the `call_received` event, and the session's
`call_policy` (reject every call, and answer the caller with a text).

The session's worker runs this when its page reports wa-js's `call.incoming_call`, so in a
cluster it is the worker that holds the session, reading the policy from the stored record.
The reply is queued like any API send (the durable queue, pacing, its webhook statuses),
with an idempotency key per call, so a call reported twice is answered once.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from service.clock import iso
from service.errors import ApiError
from service.messaging.request import OutgoingMessage
from service.models.events import CallReceived
from service.store import MessageRecord, SessionRecord, Store

log = logging.getLogger("service.sessions")

# wa-js's call ids are 32 hex digits; anything else from the page is not a call to report.
_MAX_CALL_ID = 64
# A caller id as the page names it: `<digits>@c.us` or `<id>@lid`.
_MAX_CALLER = 64


@dataclass(frozen=True)
class CallPolicy:
    """What the session does with an incoming call: reject it, then send `message`."""

    reject: bool
    message: str | None = None

    def column(self) -> str:
        """The stored form (the session's `call_policy` column, JSON)."""
        return json.dumps({"reject": self.reject, "message": self.message}, ensure_ascii=False)

    def view(self) -> dict[str, Any]:
        return {"reject": self.reject, "message": self.message}


def stored_policy(record: SessionRecord) -> CallPolicy | None:
    """The session's call policy; None when it has none (calls only ring)."""
    if not record.call_policy:
        return None
    try:
        data = json.loads(record.call_policy)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    message = data.get("message")
    return CallPolicy(
        reject=data.get("reject") is True, message=message if isinstance(message, str) else None
    )


class Replier(Protocol):
    """Who queues the reply (the Messenger: the same path as POST .../messages)."""

    async def accept(
        self, session_id: str, request: OutgoingMessage
    ) -> tuple[MessageRecord, bool]: ...


def _offered_at(value: object) -> str | None:
    # CallModel.offerTime is Unix seconds; a millisecond value is recognised by its size.
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return None
    return iso(value / 1000 if value > 10**11 else float(value))


async def on_incoming_call(
    record: SessionRecord,
    payload: dict[str, Any],
    *,
    store: Store,
    reject: Callable[[str], Awaitable[bool]],
    replier: Replier | None,
) -> None:
    """Apply the session's policy to the call the page reported, then record
    `call_received` (saying whether it was rejected) and queue the reply, if any."""
    call_id, caller = payload.get("id"), payload.get("from")
    if not isinstance(call_id, str) or not 0 < len(call_id) <= _MAX_CALL_ID:
        log.warning("session %s: a call without a usable id", record.session_id)
        return
    if not isinstance(caller, str) or not 0 < len(caller) <= _MAX_CALLER:
        log.warning("session %s: call %s without a caller", record.session_id, call_id)
        return
    policy = stored_policy(record)
    rejected = False
    if policy is not None and policy.reject:
        try:
            rejected = await reject(call_id)
        except Exception as exc:
            # Hung up already, or answered on the phone: the event says it was not rejected.
            log.info("session %s: rejecting call %s failed: %s", record.session_id, call_id, exc)
    event = CallReceived.model_validate(
        {
            "call_id": call_id,
            "from": caller,
            "is_video": payload.get("is_video") is True,
            "is_group": payload.get("is_group") is True,
            "offered_at": _offered_at(payload.get("offer_time")),
            "rejected": rejected,
        }
    )
    await store.update_session(record.session_id, {}, [event.new_event()])
    if not rejected or policy is None or not policy.message or replier is None:
        return
    reply = OutgoingMessage(
        to=caller,
        type="text",
        text=policy.message,
        media=None,
        location=None,
        reply_to=None,
        priority="normal",
        # One reply per call, however often the call is reported.
        idempotency_key=f"call:{record.session_id}:{call_id}",
    )
    try:
        await replier.accept(record.session_id, reply)
    except ApiError as exc:
        log.warning(
            "session %s: the reply to call %s was not queued: %s",
            record.session_id,
            call_id,
            exc.code,
        )
