"""Campaigns in the SQL store: the campaign rows, their recipients, and the one transaction
that turns a recipient into a queued message.

A recipient is `pending` until the runner takes it: its message is inserted into the
message queue and the recipient marked `enqueued` with that message's id in ONE
transaction, so a crash leaves either both or neither, and a recipient is never taken
twice. From then on the message's own status is the recipient's.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

from sqlalchemy import bindparam, case, delete, func, insert, select, update
from sqlalchemy.sql import ClauseElement

from service.store.base import MessageRecord, NewEvent
from service.store.sql import SqlStore, Stmt, Tx

CampaignStatus = str
# Where a campaign can be; `completed` and `cancelled` are final. `creating` is a campaign
# whose recipients are still being written: nothing but `create` sees it.
CAMPAIGN_STATUSES = ("scheduled", "running", "paused", "completed", "cancelled")
CREATING = "creating"
# A `creating` campaign this old was left by a process that died mid-create (writing
# 100,000 recipients takes seconds): the runner removes it.
ABANDONED_AFTER = 3600.0
ACTIVE = ("scheduled", "running")
FINAL = ("completed", "cancelled")
# A recipient's own states; once `enqueued`, its message's status is what it shows.
RECIPIENT_STATES = ("pending", "enqueued", "cancelled")
# Recipients are written this many to a transaction, so a 100,000-recipient campaign does
# not hold the (SQLite) write lock against the API's own writes for the whole insert.
INSERT_BATCH = 1000


@dataclass(frozen=True)
class CampaignRecord:
    """One campaign. `message` and `options` are JSON text."""

    id: str
    session_id: str
    workspace_id: str
    name: str
    status: str
    message: str
    options: str
    start_at: float | None
    reason: str | None
    total: int
    enqueued: int = 0
    last_message_id: str | None = None
    settled: int = 0
    failed: int = 0
    # `settled` and `failed` when it last resumed: the stop rule judges the sends since.
    base_settled: int = 0
    base_failed: int = 0
    next_send_at: float | None = None
    progress_at: float | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None


@dataclass(frozen=True)
class RecipientRecord:
    """One recipient as listed: its own row and, once enqueued, its message's state."""

    seq: int
    chat_id: str
    variables: str | None
    key: str | None
    state: str
    message_id: str | None
    message_status: str | None
    provider_message_id: str | None
    error: str | None

    @property
    def status(self) -> str:
        """`pending` or `cancelled`, else the status of the message it became."""
        if self.state != "enqueued":
            return self.state
        # A message deleted with its session reads as failed, never as pending again.
        return self.message_status or "failed"


@dataclass(frozen=True)
class NewRecipient:
    chat_id: str
    variables: str | None
    key: str | None


CAMPAIGN_COLUMNS = tuple(f.name for f in fields(CampaignRecord))


class CampaignStore:
    """Campaign reads and writes over a `SqlStore` (SQLite or MySQL/MariaDB)."""

    def __init__(self, store: SqlStore) -> None:
        self.store = store

    # -- statements -----------------------------------------------------------------------

    def _stmt(self, name: str, build: Callable[[], ClauseElement]) -> Stmt:
        return self.store._dynamic_stmt(("campaigns", name), build)

    @property
    def _c(self) -> Any:
        return self.store.tables.campaigns

    @property
    def _r(self) -> Any:
        return self.store.tables.campaign_recipients

    def _get(self) -> Stmt:
        c = self._c
        return self._stmt(
            "get",
            lambda: select(*(c.c[n] for n in CAMPAIGN_COLUMNS)).where(c.c.id == bindparam("id")),
        )

    def _read_one(self, tx: Tx, campaign_id: str) -> CampaignRecord | None:
        row = tx.one(self._get(), {"id": campaign_id})
        return CampaignRecord(*row) if row else None

    # -- create and read ------------------------------------------------------------------

    async def create(
        self, campaign: CampaignRecord, recipients: Sequence[NewRecipient]
    ) -> CampaignRecord:
        """Write the campaign row as `creating`, its recipients (in batches), then its real
        status: until that last write nothing else sees the campaign, so the runner never
        starts one half written. A create that fails removes what it wrote."""
        r, c = self._r, self._c
        add = self._stmt(
            "recipient_insert",
            lambda: insert(r).values(
                campaign_id=bindparam("campaign_id"),
                chat_id=bindparam("chat_id"),
                variables=bindparam("variables"),
                key=bindparam("key"),
                status="pending",
            ),
        )
        put = self._stmt(
            "insert", lambda: insert(c).values({n: bindparam(n) for n in CAMPAIGN_COLUMNS})
        )
        now = time.time()
        record = CampaignRecord(**(asdict(campaign) | {"created_at": now, "updated_at": now}))
        row = asdict(record) | {"status": CREATING}
        await self.store._transaction(lambda tx: tx.run(put, row))
        try:
            for start in range(0, len(recipients), INSERT_BATCH):
                rows = [
                    {"campaign_id": campaign.id} | asdict(one)
                    for one in recipients[start : start + INSERT_BATCH]
                ]
                await self.store._transaction(lambda tx, rows=rows: tx.many(add, rows))  # type: ignore[misc]
            done = self._stmt(
                "created",
                lambda: (
                    update(c)
                    .where(c.c.id == bindparam("k_id"), c.c.status == CREATING)
                    .values(status=bindparam("v_status"))
                ),
            )
            await self.store._transaction(
                lambda tx: tx.run(done, {"k_id": campaign.id, "v_status": campaign.status})
            )
        except BaseException:
            # Shielded: a cancelled request still removes its rows.
            await asyncio.shield(self._remove([campaign.id]))
            raise
        return record

    async def _remove(self, campaign_ids: Sequence[str]) -> None:
        """Delete campaigns and their recipients."""
        c, r = self._c, self._r
        drop_r = self._stmt("delete_r", lambda: delete(r).where(r.c.campaign_id == bindparam("id")))
        drop_c = self._stmt("delete_c", lambda: delete(c).where(c.c.id == bindparam("id")))

        def remove(tx: Tx) -> None:
            for campaign_id in campaign_ids:
                tx.run(drop_r, {"id": campaign_id})
                tx.run(drop_c, {"id": campaign_id})

        await self.store._transaction(remove)

    async def drop_abandoned(self, now: float) -> None:
        """Remove campaigns left `creating` by a process that died mid-create."""
        c = self._c
        stmt = self._stmt(
            "abandoned",
            lambda: select(c.c.id).where(
                c.c.status == CREATING, c.c.created_at < bindparam("before")
            ),
        )
        rows = await self.store._read(lambda tx: tx.all(stmt, {"before": now - ABANDONED_AFTER}))
        if rows:
            await self._remove([str(row[0]) for row in rows])

    async def get(self, campaign_id: str) -> CampaignRecord | None:
        """The campaign, once created (not while its recipients are being written)."""
        record = await self.store._read(lambda tx: self._read_one(tx, campaign_id))
        return None if record is None or record.status == CREATING else record

    async def find(
        self, session_id: str | None = None, statuses: Sequence[str] | None = None
    ) -> list[CampaignRecord]:
        """Campaigns of a session (or of every session), oldest first, maybe by status."""
        c = self._c
        cols = [c.c[n] for n in CAMPAIGN_COLUMNS]
        where: list[Any] = []
        values: dict[str, Any] = {}
        if session_id is not None:
            where.append(c.c.session_id == bindparam("session_id"))
            values["session_id"] = session_id
        for i, status in enumerate(statuses or ()):
            values[f"s{i}"] = status
        if statuses:
            where.append(c.c.status.in_([bindparam(f"s{i}") for i in range(len(statuses))]))
        else:
            where.append(c.c.status != CREATING)
        key = ("list", session_id is not None, len(statuses or ()))
        stmt = self.store._dynamic_stmt(
            ("campaigns", *key),
            lambda: select(*cols).where(*where).order_by(c.c.created_at, c.c.id),
        )
        rows = await self.store._read(lambda tx: tx.all(stmt, values))
        return [CampaignRecord(*row) for row in rows]

    async def counts(self, campaign_id: str) -> dict[str, int]:
        """Recipients by status: `pending`, `cancelled`, or their message's status."""
        r, m = self._r, self.store.tables.messages
        shown = _shown(r, m)
        stmt = self._stmt(
            "counts",
            lambda: (
                select(shown.label("shown"), func.count())
                .select_from(r.outerjoin(m, m.c.id == r.c.message_id))
                .where(r.c.campaign_id == bindparam("campaign_id"))
                .group_by(shown)
            ),
        )
        rows = await self.store._read(lambda tx: tx.all(stmt, {"campaign_id": campaign_id}))
        return {str(status): int(count) for status, count in rows}

    async def recipients(
        self, campaign_id: str, *, status: str | None, after: int, limit: int
    ) -> list[RecipientRecord]:
        """One page of recipients in campaign order, after position `after` (a seq)."""
        r, m = self._r, self.store.tables.messages
        cols = (
            r.c.seq,
            r.c.chat_id,
            r.c.variables,
            r.c.key,
            r.c.status,
            r.c.message_id,
            m.c.status,
            m.c.provider_message_id,
            m.c.error,
        )

        def build() -> ClauseElement:
            where = [r.c.campaign_id == bindparam("campaign_id"), r.c.seq > bindparam("after")]
            if status is not None:
                # The status as shown (and counted): a recipient cancelled with its campaign
                # and one whose queued message was cancelled are both `cancelled`.
                where.append(_shown(r, m) == bindparam("status"))
            return (
                select(*cols)
                .select_from(r.outerjoin(m, m.c.id == r.c.message_id))
                .where(*where)
                .order_by(r.c.seq)
                .limit(bindparam("limit"))
            )

        stmt = self.store._dynamic_stmt(("campaigns", "recipients", status is not None), build)
        values: dict[str, Any] = {"campaign_id": campaign_id, "after": after, "limit": limit}
        if status is not None:
            values["status"] = status
        rows = await self.store._read(lambda tx: tx.all(stmt, values))
        return [RecipientRecord(*row) for row in rows]

    # -- changes --------------------------------------------------------------------------

    async def update(
        self,
        campaign: CampaignRecord,
        changes: dict[str, Any],
        events: Callable[[CampaignRecord], list[NewEvent]] | None = None,
        *,
        expect: Sequence[str] | None = None,
        fence: tuple[str, int] | None = None,
    ) -> CampaignRecord | None:
        """Apply `changes` (and the events `events` builds from the result) in one
        transaction; only while the campaign's status is one of `expect`, when given.
        None when that guard failed (someone moved it first) or the campaign is gone."""
        unknown = set(changes) - set(CAMPAIGN_COLUMNS)
        if unknown:
            raise ValueError(f"unknown campaign columns: {sorted(unknown)}")
        c = self._c
        columns = tuple(sorted({*changes, "updated_at"}))
        stmt = self._stmt(
            f"update:{','.join(columns)}",
            lambda: (
                update(c)
                .where(c.c.id == bindparam("k_id"))
                .values({n: bindparam(f"v_{n}") for n in columns})
            ),
        )
        values = {f"v_{k}": v for k, v in changes.items()}
        values |= {"k_id": campaign.id, "v_updated_at": time.time()}

        def change(tx: Tx) -> CampaignRecord | None:
            if fence is not None:
                self.store._check_fence(tx, campaign.session_id, fence)
            current = self._read_one(tx, campaign.id)
            if current is None or (expect is not None and current.status not in expect):
                return None
            tx.run(stmt, values)
            record = self._read_one(tx, campaign.id)
            assert record is not None
            if events is not None:
                tx.appended += self.store._append_session_events(
                    tx, record.session_id, events(record)
                )
            return record

        return await self.store._transaction(change)

    async def resume(self, campaign: CampaignRecord, status: str) -> CampaignRecord | None:
        """Move a paused campaign to `status`, its stop rule starting over from the sends
        settled so far (read in the same statement, so a send settling meanwhile is not
        lost). None when it was not paused."""
        c = self._c
        stmt = self._stmt(
            "resume",
            lambda: (
                update(c)
                .where(c.c.id == bindparam("k_id"), c.c.status == "paused")
                .values(
                    status=bindparam("v_status"),
                    reason=None,
                    base_settled=c.c.settled,
                    base_failed=c.c.failed,
                    updated_at=bindparam("v_now"),
                )
            ),
        )
        values = {"k_id": campaign.id, "v_status": status, "v_now": time.time()}

        def change(tx: Tx) -> CampaignRecord | None:
            if tx.run(stmt, values) != 1:
                return None
            return self._read_one(tx, campaign.id)

        return await self.store._transaction(change)

    async def settle(
        self, campaign: CampaignRecord, message_id: str, failed: bool
    ) -> CampaignRecord | None:
        """Count the in-flight message's outcome once: only while it is still the
        campaign's `last_message_id`, which this clears."""
        c = self._c
        stmt = self._stmt(
            "settle",
            lambda: (
                update(c)
                .where(c.c.id == bindparam("k_id"), c.c.last_message_id == bindparam("k_message"))
                .values(
                    settled=c.c.settled + 1,
                    failed=c.c.failed + bindparam("v_failed"),
                    last_message_id=None,
                    updated_at=bindparam("v_now"),
                )
            ),
        )
        values = {
            "k_id": campaign.id,
            "k_message": message_id,
            "v_failed": 1 if failed else 0,
            "v_now": time.time(),
        }

        def change(tx: Tx) -> CampaignRecord | None:
            tx.run(stmt, values)
            return self._read_one(tx, campaign.id)

        return await self.store._transaction(change)

    async def enqueue_next(
        self,
        campaign: CampaignRecord,
        build: Callable[[tuple[int, str, str | None]], MessageRecord],
        next_send_at: float,
        *,
        fence: tuple[str, int] | None = None,
    ) -> MessageRecord | None:
        """Take the campaign's next pending recipient: insert the message `build` makes
        for it (from `(seq, chat_id, variables)`) and mark the recipient `enqueued` with
        that message, in one transaction. None when the campaign is no longer running,
        still has a message in flight, or has no pending recipient left."""
        r, c = self._r, self._c
        head = self._stmt(
            "head",
            lambda: (
                select(r.c.seq, r.c.chat_id, r.c.variables)
                .where(r.c.campaign_id == bindparam("campaign_id"), r.c.status == "pending")
                .order_by(r.c.seq)
                .limit(1)
            ),
        )
        take = self._stmt(
            "take",
            lambda: (
                update(r)
                .where(r.c.seq == bindparam("k_seq"), r.c.status == "pending")
                .values(status="enqueued", message_id=bindparam("v_message"))
            ),
        )
        advance = self._stmt(
            "advance",
            lambda: (
                update(c)
                .where(c.c.id == bindparam("k_id"))
                .values(
                    enqueued=c.c.enqueued + 1,
                    last_message_id=bindparam("v_message"),
                    next_send_at=bindparam("v_next"),
                    updated_at=bindparam("v_now"),
                )
            ),
        )
        lock = self._stmt(
            "lock",
            lambda: (
                select(c.c.status, c.c.last_message_id)
                .where(c.c.id == bindparam("id"))
                .with_for_update()
            ),
        )

        def enqueue(tx: Tx) -> MessageRecord | None:
            if fence is not None:
                self.store._check_fence(tx, campaign.session_id, fence)
            # The campaign row's lock (MySQL) makes a pause, cancel or a second runner wait.
            state = tx.one(lock, {"id": campaign.id})
            if state is None or state[0] != "running" or state[1] is not None:
                return None
            row = tx.one(head, {"campaign_id": campaign.id})
            if row is None:
                return None
            message = build((int(row[0]), str(row[1]), row[2]))
            stored = self.store._insert_message(tx, message)
            if tx.run(take, {"k_seq": row[0], "v_message": message.id}) != 1:
                raise RuntimeError(f"campaign {campaign.id}: recipient {row[0]} was taken")
            tx.run(
                advance,
                {
                    "k_id": campaign.id,
                    "v_message": message.id,
                    "v_next": next_send_at,
                    "v_now": time.time(),
                },
            )
            return stored

        return await self.store._transaction(enqueue)

    async def cancel(
        self, campaign: CampaignRecord, events: Callable[[CampaignRecord], list[NewEvent]]
    ) -> CampaignRecord | None:
        """Cancel a campaign that is not final yet: its pending recipients become
        `cancelled` in the same transaction. None when it was final already."""
        r, c = self._r, self._c
        drop = self._stmt(
            "cancel_recipients",
            lambda: (
                update(r)
                .where(r.c.campaign_id == bindparam("k_id"), r.c.status == "pending")
                .values(status="cancelled")
            ),
        )
        mark = self._stmt(
            "cancel",
            lambda: (
                update(c)
                .where(c.c.id == bindparam("k_id"))
                .values(
                    status="cancelled",
                    finished_at=bindparam("v_now"),
                    updated_at=bindparam("v_now"),
                )
            ),
        )

        def change(tx: Tx) -> CampaignRecord | None:
            current = self._read_one(tx, campaign.id)
            if current is None or current.status in FINAL:
                return None
            now = time.time()
            tx.run(drop, {"k_id": campaign.id})
            tx.run(mark, {"k_id": campaign.id, "v_now": now})
            record = self._read_one(tx, campaign.id)
            assert record is not None
            tx.appended += self.store._append_session_events(tx, record.session_id, events(record))
            return record

        return await self.store._transaction(change)

    async def delete_session(self, session_id: str) -> None:
        """Remove a deleted session's campaigns and their recipients."""
        c, r = self._c, self._r
        ids_stmt = self._stmt(
            "ids_of", lambda: select(c.c.id).where(c.c.session_id == bindparam("session_id"))
        )
        drop_r = self._stmt("delete_r", lambda: delete(r).where(r.c.campaign_id == bindparam("id")))
        drop_c = self._stmt("delete_c", lambda: delete(c).where(c.c.id == bindparam("id")))

        def remove(tx: Tx) -> None:
            for (campaign_id,) in tx.all(ids_stmt, {"session_id": session_id}):
                tx.run(drop_r, {"id": campaign_id})
                tx.run(drop_c, {"id": campaign_id})

        await self.store._transaction(remove)


def _shown(r: Any, m: Any) -> Any:
    """A recipient's status as the API shows it: its own, or once enqueued its message's (a
    message deleted with its session reads as failed)."""
    return case((r.c.status == "enqueued", func.coalesce(m.c.status, "failed")), else_=r.c.status)
