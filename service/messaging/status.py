"""Message status changes, in one place: each written with its `message_status_updated`
event, and provider reports only ever moving a message forward."""

from __future__ import annotations

import dataclasses
from typing import Any

from service.store import STATUS_RANK, MessageRecord, NewEvent, Store


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
    return NewEvent("message_status_updated", data)


async def change_status(
    store: Store, message: MessageRecord, changes: dict[str, Any]
) -> MessageRecord:
    """Apply `changes` to a message and write the event of its new status, atomically."""
    final = dataclasses.replace(message, **changes)
    await store.update_message(message.id, changes, [status_event(final)])
    return final


def moves_forward(current: str, new: str) -> bool:
    """Whether a provider's report may move a message from `current` to `new`.

    Statuses only climb (queued, sending, sent, delivered, read, played); `failed` is final
    and only a message that left the queue can fail. Duplicate and late reports are ignored.
    """
    if current == "failed":
        return False
    if new == "failed":
        return current in ("sending", "sent")
    return STATUS_RANK.get(new, -1) > STATUS_RANK.get(current, -1)


async def apply_status(
    store: Store, message: MessageRecord, status: str, error: str | None = None
) -> MessageRecord | None:
    """A provider's report on an outbound message, applied when it moves it forward."""
    if message.direction != "out" or not moves_forward(message.status, status):
        return None
    changes: dict[str, Any] = {"status": status}
    if status == "failed":
        changes["error"] = (error or "failed")[:500]
    return await change_status(store, message, changes)
