"""The store as a worker sees it: every write for a session carries the session's lease.

A worker writes a session's status, its messages and its inbound only while it holds the
session's lease. `FencedStore` adds `fence=(node_id, token)` to each such write, with the
token of the lease the node holds now (`owned`, kept by `ClusterNode`), so the store refuses
it with `LeaseLost` once the lease has moved on: a worker that was paused past its lease and
wakes up can neither write nor claim a message to send for a session it lost. A session the
node does not own at all is refused before the store is asked. The check is made in the
write's own transaction, under the lease row's lock.

Reads, and whatever is not a session's (outbox marks, replay signatures), pass through.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, cast

from service.store.base import Lease, LeaseLost, MessageRecord, NewEvent, SessionRecord, Store


class FencedStore:
    """Wraps `store` for node `node_id`, whose leases are `owned` (session id -> Lease)."""

    def __init__(
        self,
        store: Store,
        node_id: str,
        owned: Mapping[str, Lease],
    ) -> None:
        self._store = store
        self.node_id = node_id
        self._owned = owned

    @classmethod
    def wrap(cls, store: Store, node_id: str, owned: Mapping[str, Lease]) -> Store:
        """The fenced store, typed as the Store it stands in for."""
        return cast(Store, cls(store, node_id, owned))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def fence(self, session_id: str) -> tuple[str, int]:
        """(node, token) of the lease this node holds on the session, or LeaseLost."""
        lease = self._owned.get(session_id)
        if lease is None:
            raise LeaseLost(session_id, 0)
        return self.node_id, lease.token

    async def update_session(
        self,
        session_id: str,
        changes: dict[str, Any],
        events: list[NewEvent] | None = None,
        *,
        expect_status: str | None = None,
        fence: tuple[str, int] | None = None,
    ) -> SessionRecord:
        return await self._store.update_session(
            session_id,
            changes,
            events,
            expect_status=expect_status,
            fence=fence or self.fence(session_id),
        )

    async def update_message(
        self,
        message_id: str,
        changes: dict[str, Any],
        events: list[NewEvent] | None = None,
        *,
        expect_status: str | None = None,
        fence: tuple[str, int] | None = None,
    ) -> MessageRecord:
        if fence is None:
            message = await self._store.get_message(message_id)
            if message is not None:
                fence = self.fence(message.session_id)
            # (A message that is gone is the store's to report.)
        return await self._store.update_message(
            message_id, changes, events, expect_status=expect_status, fence=fence
        )

    async def record_inbound(
        self,
        message: MessageRecord,
        event: NewEvent,
        *,
        fence: tuple[str, int] | None = None,
    ) -> MessageRecord | None:
        return await self._store.record_inbound(
            message, event, fence=fence or self.fence(message.session_id)
        )

    async def interrupt_sending(
        self,
        event_for: Callable[[MessageRecord], NewEvent],
        session_id: str | None = None,
        *,
        fence: tuple[str, int] | None = None,
    ) -> list[MessageRecord]:
        if session_id is None:
            raise ValueError("a worker settles the sends of the sessions it takes, one by one")
        return await self._store.interrupt_sending(
            event_for, session_id, fence=fence or self.fence(session_id)
        )
