"""Message status changes: each one written with its `message_status_updated` event."""

from __future__ import annotations

import dataclasses
from typing import Any

from service.store import MessageRecord, NewEvent, Store


def status_event(message: MessageRecord) -> NewEvent:
    """`message_status_updated` as DESIGN.md §3 words it."""
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
