"""The session state machine: named states, the allowed moves, and the one place that moves.

Every status change is written together with its `session_status_changed` outbox event in a
single transaction, so Laravel hears of each change exactly as the store records it. Writes
are compare-and-set on the status the caller saw: a move decided on a stale record (an event
that arrives after an operator's stop) is decided again on the current one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from service.models.events import SessionStatusChanged
from service.store import NewEvent, SessionRecord, StaleStatus, Store

log = logging.getLogger("service.sessions")

StatusListener = Callable[[SessionRecord], None]

# Observed status -> statuses it may move to. `stopped`, `failed` and `initializing` are
# reachable from anywhere (operator stop, supervision giving up, a (re)launch).
ALLOWED: dict[str, frozenset[str]] = {
    "stopped": frozenset(),
    "initializing": frozenset({"qr_required", "authenticating", "connected", "disconnected"}),
    "qr_required": frozenset({"qr_required", "authenticating", "connected"}),
    "authenticating": frozenset({"connected", "qr_required", "disconnected"}),
    "connected": frozenset({"disconnected", "qr_required"}),
    "disconnected": frozenset({"connected", "qr_required"}),
    "failed": frozenset(),
}
ANYWHERE = frozenset({"stopped", "failed", "initializing"})
# Disconnect reasons (wa-js `StreamMode`) that mean WhatsApp has blocked the account. Kept
# as the session's `last_error` until it connects again, so what must not send while it is
# blocked (campaigns) can read it, after a restart too.
BLOCKED_REASONS = frozenset({"tos_block", "smb_tos_block"})


def can_move(current: str, new: str) -> bool:
    return new in ANYWHERE or new in ALLOWED.get(current, frozenset())


class StatusWriter:
    """Moves sessions between states and records each move with its webhook event."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._listeners: list[StatusListener] = []

    def subscribe(self, listener: StatusListener) -> None:
        """Call `listener(record)` after every committed status change (senders, broadcast)."""
        self._listeners.append(listener)

    async def move(
        self,
        record: SessionRecord,
        status: str,
        *,
        reason: str | None = None,
        changes: dict[str, Any] | None = None,
        events: list[NewEvent] | None = None,
    ) -> SessionRecord:
        """Set `status` (plus `changes`) and append the status event, atomically.

        A move the machine does not allow is skipped (logged) with the `changes` and `events`
        that come with it; a move to the same status writes them, without a status event.
        """
        for _ in range(5):
            try:
                return await self._move(record, status, reason, changes, events)
            except StaleStatus as stale:
                record = stale.current
        return await self._move(record, status, reason, changes, events)

    async def move_once(
        self,
        record: SessionRecord,
        status: str,
        *,
        reason: str | None = None,
        changes: dict[str, Any] | None = None,
    ) -> SessionRecord:
        """`move`, only if the session is still as `record` says: `StaleStatus` otherwise.
        For a process that does not run the session (the api role), so a worker's newer
        status is never overwritten."""
        return await self._move(record, status, reason, changes, None)

    async def _move(
        self,
        record: SessionRecord,
        status: str,
        reason: str | None,
        changes: dict[str, Any] | None,
        events: list[NewEvent] | None,
    ) -> SessionRecord:
        changes = dict(changes or {})
        events = list(events or [])
        if status == "disconnected" and reason in BLOCKED_REASONS and record.last_error != reason:
            # On the record, not only in the event: a block seen while already disconnected
            # writes no status event at all.
            changes.setdefault("last_error", reason)
        if status != record.status:
            if can_move(record.status, status):
                changes["status"] = status
                data: dict[str, Any] = {"status": status, "previous": record.status}
                if reason:
                    data["reason"] = reason
                phone = changes.get("phone_number", record.phone_number)
                if phone:
                    data["phone_number"] = phone
                events.insert(0, SessionStatusChanged.model_validate(data).new_event())
            else:
                # What came with a refused move belongs to it: a QR, a phone number or an
                # event for a session that is now stopped or failed would be a lie.
                log.debug("ignoring move %s -> %s", record.status, status)
                return record
        if not changes and not events:
            return record
        updated = await self.store.update_session(
            record.session_id, changes, events, expect_status=record.status
        )
        if updated.status != record.status:
            for listener in self._listeners:
                try:
                    listener(updated)
                except Exception:
                    log.exception("status listener failed")
        return updated
