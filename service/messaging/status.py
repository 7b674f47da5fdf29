"""Message status changes, in one place: each written with its `message_status_updated`
event, and provider reports only ever moving a message forward."""

from __future__ import annotations

import dataclasses
from typing import Any

from service.models.events import MessageStatusUpdated
from service.store import STATUS_RANK, MessageRecord, NewEvent, StaleMessage, Store


def status_event(message: MessageRecord) -> NewEvent:
    """`message_status_updated` as the webhook contract words it."""
    data: dict[str, Any] = {
        "message_id": message.id,
        "provider_message_id": message.provider_message_id,
        "status": message.status,
        "provider": message.provider,
    }
    if message.error:
        data["error"] = message.error
    return MessageStatusUpdated.model_validate(data).new_event()


async def change_status(
    store: Store, message: MessageRecord, changes: dict[str, Any], *, guarded: bool = False
) -> MessageRecord:
    """Apply `changes` to a message and write the event of its new status, atomically.
    `guarded`: only if its status is still `message.status` (else StaleMessage)."""
    final = dataclasses.replace(message, **changes)
    await store.update_message(
        message.id,
        changes,
        [status_event(final)],
        expect_status=message.status if guarded else None,
    )
    return final


def moves_forward(current: str, new: str) -> bool:
    """Whether a provider's report may move a message from `current` to `new`.

    Statuses only climb (scheduled or queued, sending, sent, delivered, read, played);
    `failed` and `cancelled` are final and only a message that left the queue can fail.
    Duplicate and late reports are ignored.
    """
    if current in ("failed", "cancelled"):
        return False
    if new == "failed":
        return current in ("sending", "sent")
    return STATUS_RANK.get(new, -1) > STATUS_RANK.get(current, -1)


def rank(status: str) -> int:
    """How far along a status is, `failed` last: the most telling of two reports."""
    return 99 if status == "failed" else STATUS_RANK.get(status, -1)


async def apply_status(
    store: Store,
    message: MessageRecord,
    status: str,
    error: str | None = None,
    *,
    unsure: bool = False,
) -> MessageRecord | None:
    """A provider's report on an outbound message, applied when it moves it forward.

    Compare-and-set on the status it was decided on, so two reports handled at once can
    never move a message back. `unsure` reports (the provider cannot tell what happened)
    only settle a message still `sending`.
    """
    for _ in range(5):
        if message.direction != "out" or not moves_forward(message.status, status):
            return None
        if unsure and message.status != "sending":
            return None
        changes: dict[str, Any] = {"status": status}
        if status == "failed":
            changes["error"] = (error or "failed")[:500]
        try:
            return await change_status(store, message, changes, guarded=True)
        except StaleMessage as stale:
            message = stale.current
    return None
