"""SQLite implementation of the Store: one WAL file, one connection, one worker thread.

All statements run on a single dedicated thread, so writes are serialised without locks and
the event loop never blocks on disk.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, TypeVar

from service.errors import Conflict, SessionNotFound
from service.store.base import (
    RETRY_WINDOW,
    AppendedEvent,
    EventListener,
    MessageRecord,
    NewEvent,
    OutboxEvent,
    SessionRecord,
    StaleMessage,
    StaleStatus,
    Store,
)
from service.store.migrations import MIGRATIONS

T = TypeVar("T")

log = logging.getLogger("service.store")

_SESSION_COLUMNS = tuple(f.name for f in fields(SessionRecord))
_MESSAGE_COLUMNS = tuple(f.name for f in fields(MessageRecord))
_MESSAGE_INSERT = tuple(c for c in _MESSAGE_COLUMNS if c != "seq")
_OUTBOX_COLUMNS = tuple(f.name for f in fields(OutboxEvent))


def new_event_id() -> str:
    return "evt_" + secrets.token_hex(12)


class SQLiteStore(Store):
    """The default store: `storage/sidecar.sqlite3` in WAL mode."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        self._listeners: list[EventListener] = []
        # Filled by the transaction running on the worker thread, read after its commit.
        self._appended: list[AppendedEvent] = []

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, *args)

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("store is not open")
        return self._conn

    async def open(self) -> None:
        await self._run(self._open)

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL survives a killed process (the WAL is in the OS cache); only a power
        # loss can drop the last commits.
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=5000")
        conn.execute("PRAGMA foreign_keys=ON")
        os.chmod(self.path, 0o600)
        self._conn = conn
        self._migrate()

    def _migrate(self) -> None:
        conn = self.conn
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            "version INTEGER NOT NULL PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
        )
        applied = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
        for version, name, statements in MIGRATIONS:
            if version in applied:
                continue
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in statements:
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    (version, name, time.time()),
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    async def close(self) -> None:
        if self._conn is not None:
            await self._run(self._conn.close)
            self._conn = None
        self._executor.shutdown(wait=True)

    async def ping(self) -> bool:
        try:
            return bool(await self._run(lambda: self.conn.execute("SELECT 1").fetchone()))
        except Exception:
            return False

    async def first_sighting(self, signature: str, now: float, ttl: float) -> bool:
        def record(conn: sqlite3.Connection) -> bool:
            row = conn.execute(
                "SELECT expires_at FROM seen_signatures WHERE signature = ?", (signature,)
            ).fetchone()
            if row is not None and row[0] > now:
                return False
            conn.execute(
                "INSERT INTO seen_signatures (signature, expires_at) VALUES (?, ?)"
                " ON CONFLICT (signature) DO UPDATE SET expires_at = excluded.expires_at",
                (signature, now + ttl),
            )
            # Keep the table to the window: a few expired rows go with every insert.
            conn.execute(
                "DELETE FROM seen_signatures WHERE signature IN (SELECT signature FROM"
                " seen_signatures WHERE expires_at <= ? ORDER BY expires_at LIMIT 50)",
                (now,),
            )
            return True

        return await self._transaction(record)

    def _write(self, fn: Callable[[sqlite3.Connection], T]) -> tuple[T, list[AppendedEvent]]:
        """Run `fn` in one IMMEDIATE transaction; also return the outbox events it appended."""
        conn = self.conn
        self._appended = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = fn(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            self._appended = []
            raise
        conn.execute("COMMIT")
        appended, self._appended = self._appended, []
        return result, appended

    async def _transaction(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        result, appended = await self._run(lambda: self._write(fn))
        if appended:
            for listener in self._listeners:
                try:
                    listener(appended)
                except Exception:
                    log.exception("outbox listener failed")
        return result

    def subscribe(self, listener: EventListener) -> None:
        self._listeners.append(listener)

    # sessions

    async def create_session(self, record: SessionRecord) -> SessionRecord:
        def insert(conn: sqlite3.Connection) -> SessionRecord:
            now = time.time()
            row = asdict(record) | {"created_at": now, "updated_at": now}
            try:
                conn.execute(
                    f"INSERT INTO sessions ({', '.join(_SESSION_COLUMNS)}) "
                    f"VALUES ({', '.join('?' for _ in _SESSION_COLUMNS)})",
                    [row[c] for c in _SESSION_COLUMNS],
                )
            except sqlite3.IntegrityError:
                raise Conflict(
                    f"session {record.session_id!r} already exists",
                    code="session_exists",
                    details={"session_id": record.session_id},
                ) from None
            return SessionRecord(**row)

        return await self._transaction(insert)

    async def get_session(self, session_id: str) -> SessionRecord | None:
        def get() -> SessionRecord | None:
            row = self.conn.execute(
                "SELECT * FROM sessions WHERE session_id = ?", (session_id,)
            ).fetchone()
            return _session(row) if row else None

        return await self._run(get)

    async def list_sessions(
        self,
        workspace_id: str | None = None,
        status: str | None = None,
        desired_state: str | None = None,
        meta_phone_number_id: str | None = None,
    ) -> list[SessionRecord]:
        where, params = _where(
            workspace_id=workspace_id,
            status=status,
            desired_state=desired_state,
            meta_phone_number_id=meta_phone_number_id,
        )

        def query() -> list[SessionRecord]:
            rows = self.conn.execute(
                f"SELECT * FROM sessions{where} ORDER BY created_at, session_id", params
            )
            return [_session(r) for r in rows]

        return await self._run(query)

    async def count_sessions(self) -> int:
        def count() -> int:
            return int(self.conn.execute("SELECT COUNT(*) FROM sessions").fetchone()[0])

        return await self._run(count)

    async def update_session(
        self,
        session_id: str,
        changes: dict[str, Any],
        events: list[NewEvent] | None = None,
        *,
        expect_status: str | None = None,
    ) -> SessionRecord:
        unknown = set(changes) - set(_SESSION_COLUMNS)
        if unknown:
            raise ValueError(f"unknown session columns: {sorted(unknown)}")

        def update(conn: sqlite3.Connection) -> SessionRecord:
            values = changes | {"updated_at": time.time()}
            assignments = ", ".join(f"{c} = ?" for c in values)
            guard, params = "", [*values.values(), session_id]
            if expect_status is not None:
                guard, params = " AND status = ?", [*params, expect_status]
            cursor = conn.execute(
                f"UPDATE sessions SET {assignments} WHERE session_id = ?{guard}", params
            )
            if cursor.rowcount == 0:
                current = conn.execute(
                    "SELECT * FROM sessions WHERE session_id = ?", (session_id,)
                ).fetchone()
                if current is None:
                    raise SessionNotFound(session_id)
                raise StaleStatus(_session(current))
            row = conn.execute(
                "SELECT * FROM sessions WHERE session_id = ?", (session_id,)
            ).fetchone()
            record = _session(row)
            for event in events or ():
                self._appended.append(_append_event(conn, record, event))
            return record

        return await self._transaction(update)

    async def delete_session(self, session_id: str) -> bool:
        def delete(conn: sqlite3.Connection) -> bool:
            conn.execute("DELETE FROM messages WHERE session_id = ?", (session_id,))
            cursor = conn.execute("DELETE FROM sessions WHERE session_id = ?", (session_id,))
            return cursor.rowcount > 0

        return await self._transaction(delete)

    # messages

    async def enqueue_message(self, message: MessageRecord) -> tuple[MessageRecord, bool]:
        def enqueue(conn: sqlite3.Connection) -> tuple[MessageRecord, bool]:
            if message.idempotency_key is not None:
                existing = _idempotent(conn, message.workspace_id, message.idempotency_key)
                if existing is not None:
                    return existing, False
            return _insert_message(conn, message), True

        return await self._transaction(enqueue)

    async def get_message(self, message_id: str) -> MessageRecord | None:
        def get() -> MessageRecord | None:
            row = self.conn.execute("SELECT * FROM messages WHERE id = ?", (message_id,)).fetchone()
            return _message(row) if row else None

        return await self._run(get)

    async def find_idempotent(self, workspace_id: str, key: str) -> MessageRecord | None:
        return await self._run(lambda: _idempotent(self.conn, workspace_id, key))

    async def next_queued(self, session_id: str) -> MessageRecord | None:
        def next_one() -> MessageRecord | None:
            row = self.conn.execute(
                "SELECT * FROM messages WHERE session_id = ? AND status = 'queued' "
                "ORDER BY CASE priority WHEN 'normal' THEN 0 ELSE 1 END, seq LIMIT 1",
                (session_id,),
            ).fetchone()
            return _message(row) if row else None

        return await self._run(next_one)

    async def update_message(
        self,
        message_id: str,
        changes: dict[str, Any],
        events: list[NewEvent] | None = None,
        *,
        expect_status: str | None = None,
    ) -> MessageRecord:
        unknown = set(changes) - set(_MESSAGE_COLUMNS)
        if unknown:
            raise ValueError(f"unknown message columns: {sorted(unknown)}")

        def update(conn: sqlite3.Connection) -> MessageRecord:
            values = changes | {"updated_at": time.time()}
            assignments = ", ".join(f"{c} = ?" for c in values)
            guard, params = "", [*values.values(), message_id]
            if expect_status is not None:
                guard, params = " AND status = ?", [*params, expect_status]
            cursor = conn.execute(f"UPDATE messages SET {assignments} WHERE id = ?{guard}", params)
            if cursor.rowcount == 0:
                current = conn.execute(
                    "SELECT * FROM messages WHERE id = ?", (message_id,)
                ).fetchone()
                if current is None:
                    raise LookupError(message_id)
                raise StaleMessage(_message(current))
            row = conn.execute("SELECT * FROM messages WHERE id = ?", (message_id,)).fetchone()
            record = _message(row)
            self._appended += _append_session_events(conn, record.session_id, events or [])
            return record

        return await self._transaction(update)

    async def find_message(
        self,
        session_id: str,
        provider_ref: str | None = None,
        *,
        provider_message_id: str | None = None,
    ) -> MessageRecord | None:
        column, value = (
            ("provider_ref", provider_ref)
            if provider_ref is not None
            else ("provider_message_id", provider_message_id)
        )

        def find() -> MessageRecord | None:
            row = self.conn.execute(
                f"SELECT * FROM messages WHERE session_id = ? AND {column} = ?",
                (session_id, value),
            ).fetchone()
            return _message(row) if row else None

        return await self._run(find)

    async def record_inbound(self, message: MessageRecord, event: NewEvent) -> MessageRecord | None:
        def record(conn: sqlite3.Connection) -> MessageRecord | None:
            known = conn.execute(
                "SELECT 1 FROM messages WHERE session_id = ? AND provider_ref = ?",
                (message.session_id, message.provider_ref),
            ).fetchone()
            if known:
                return None
            stored = _insert_message(conn, message)
            self._appended += _append_session_events(conn, message.session_id, [event])
            return stored

        return await self._transaction(record)

    async def interrupt_sending(
        self, event_for: Callable[[MessageRecord], NewEvent]
    ) -> list[MessageRecord]:
        def interrupt(conn: sqlite3.Connection) -> list[MessageRecord]:
            rows = conn.execute("SELECT id FROM messages WHERE status = 'sending'").fetchall()
            now = time.time()
            failed = []
            for (message_id,) in rows:
                conn.execute(
                    "UPDATE messages SET status = 'failed', error = 'interrupted', updated_at = ?"
                    " WHERE id = ?",
                    (now, message_id),
                )
                row = conn.execute("SELECT * FROM messages WHERE id = ?", (message_id,)).fetchone()
                record = _message(row)
                self._appended += _append_session_events(
                    conn, record.session_id, [event_for(record)]
                )
                failed.append(record)
            return failed

        return await self._transaction(interrupt)

    async def count_messages(self, session_id: str, status: str) -> int:
        def count() -> int:
            return int(
                self.conn.execute(
                    "SELECT COUNT(*) FROM messages WHERE session_id = ? AND status = ?",
                    (session_id, status),
                ).fetchone()[0]
            )

        return await self._run(count)

    # outbox

    async def list_events(
        self, session_id: str | None = None, status: str | None = None, limit: int = 100
    ) -> list[OutboxEvent]:
        where, params = _where(session_id=session_id, status=status)

        def query() -> list[OutboxEvent]:
            rows = self.conn.execute(
                f"SELECT * FROM outbox{where} ORDER BY seq LIMIT ?", [*params, limit]
            )
            return [_event(r) for r in rows]

        return await self._run(query)

    async def due_events(self, now: float, busy: set[str], limit: int) -> list[OutboxEvent]:
        def query() -> list[OutboxEvent]:
            # The head of each session's line; only heads are ever delivered, which is what
            # keeps each session's events in order.
            rows = self.conn.execute(
                "SELECT o.* FROM outbox o JOIN ("
                " SELECT session_id, MIN(seq) AS head FROM outbox WHERE status = 'pending'"
                " GROUP BY session_id) h ON o.seq = h.head"
                " WHERE o.next_attempt_at <= ? ORDER BY o.next_attempt_at LIMIT ?",
                (now, limit + len(busy)),
            ).fetchall()
            return [_event(r) for r in rows if r["session_id"] not in busy][:limit]

        return await self._run(query)

    async def next_pending(self, session_id: str) -> OutboxEvent | None:
        def head() -> OutboxEvent | None:
            row = self.conn.execute(
                "SELECT * FROM outbox WHERE status = 'pending' AND session_id = ?"
                " ORDER BY seq LIMIT 1",
                (session_id,),
            ).fetchone()
            return _event(row) if row else None

        return await self._run(head)

    async def get_event(self, event_id: str) -> OutboxEvent | None:
        def get() -> OutboxEvent | None:
            row = self.conn.execute("SELECT * FROM outbox WHERE id = ?", (event_id,)).fetchone()
            return _event(row) if row else None

        return await self._run(get)

    async def finish_attempt(self, event_id: str, changes: dict[str, Any]) -> None:
        unknown = set(changes) - set(_OUTBOX_COLUMNS)
        if unknown:
            raise ValueError(f"unknown outbox columns: {sorted(unknown)}")

        def update(conn: sqlite3.Connection) -> None:
            assignments = ", ".join(f"{c} = ?" for c in changes)
            conn.execute(
                f"UPDATE outbox SET {assignments}, attempts = attempts + 1 WHERE id = ?",
                [*changes.values(), event_id],
            )

        await self._transaction(update)

    async def replay_event(self, event_id: str, now: float) -> OutboxEvent | None:
        def replay(conn: sqlite3.Connection) -> OutboxEvent | None:
            conn.execute(
                "UPDATE outbox SET status = 'pending', next_attempt_at = ?, give_up_at = ?,"
                " last_error = NULL WHERE id = ? AND status = 'dead'",
                (now, now + RETRY_WINDOW, event_id),
            )
            row = conn.execute("SELECT * FROM outbox WHERE id = ?", (event_id,)).fetchone()
            return _event(row) if row else None

        event = await self._transaction(replay)
        if event is not None and event.status == "pending":
            # Nothing new was appended, but the line moved: an empty list says just that.
            for listener in self._listeners:
                listener([])
        return event

    async def outbox_stats(self) -> dict[str, Any]:
        def stats() -> dict[str, Any]:
            row = self.conn.execute(
                "SELECT COUNT(*), MIN(created_at) FROM outbox WHERE status = 'pending'"
            ).fetchone()
            dead = self.conn.execute("SELECT COUNT(*) FROM outbox WHERE status = 'dead'").fetchone()
            return {"pending": row[0], "oldest_pending_at": row[1], "dead": dead[0]}

        return await self._run(stats)


def _where(**filters: str | None) -> tuple[str, list[Any]]:
    """A WHERE clause over the given columns; column names come from code, values are bound."""
    clauses = [f"{column} = ?" for column, value in filters.items() if value is not None]
    params = [value for value in filters.values() if value is not None]
    return (f" WHERE {' AND '.join(clauses)}" if clauses else ""), params


def _session(row: sqlite3.Row) -> SessionRecord:
    return SessionRecord(**{c: row[c] for c in _SESSION_COLUMNS})


def _event(row: sqlite3.Row) -> OutboxEvent:
    return OutboxEvent(**{c: row[c] for c in _OUTBOX_COLUMNS})


def _message(row: sqlite3.Row) -> MessageRecord:
    return MessageRecord(**{c: row[c] for c in _MESSAGE_COLUMNS})


def _idempotent(conn: sqlite3.Connection, workspace_id: str, key: str) -> MessageRecord | None:
    row = conn.execute(
        "SELECT * FROM messages WHERE workspace_id = ? AND idempotency_key = ?",
        (workspace_id, key),
    ).fetchone()
    return _message(row) if row else None


def _insert_message(conn: sqlite3.Connection, message: MessageRecord) -> MessageRecord:
    now = time.time()
    row = asdict(message) | {"created_at": message.created_at or now, "updated_at": now}
    cursor = conn.execute(
        f"INSERT INTO messages ({', '.join(_MESSAGE_INSERT)}) "
        f"VALUES ({', '.join('?' for _ in _MESSAGE_INSERT)})",
        [row[c] for c in _MESSAGE_INSERT],
    )
    return MessageRecord(**(row | {"seq": cursor.lastrowid}))


def _append_session_events(
    conn: sqlite3.Connection, session_id: str, events: list[NewEvent]
) -> list[AppendedEvent]:
    """Append events for a session read inside this transaction (a deleted one gets none)."""
    if not events:
        return []
    row = conn.execute("SELECT * FROM sessions WHERE session_id = ?", (session_id,)).fetchone()
    if row is None:
        return []
    session = _session(row)
    return [_append_event(conn, session, event) for event in events]


def _append_event(
    conn: sqlite3.Connection, session: SessionRecord, event: NewEvent
) -> AppendedEvent:
    """Write one webhook event; its body is frozen now, so retries send the same bytes."""
    event_id = new_event_id()
    now = time.time()
    body = json.dumps(
        {
            "id": event_id,
            "event": event.event,
            "timestamp": int(now),
            "workspace_id": session.workspace_id,
            "session_id": session.session_id,
            "data": event.data,
        },
        separators=(",", ":"),
        ensure_ascii=False,
    )
    conn.execute(
        "INSERT INTO outbox (id, event, workspace_id, session_id, url, body, status, attempts,"
        " next_attempt_at, give_up_at, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?)",
        (
            event_id,
            event.event,
            session.workspace_id,
            session.session_id,
            session.webhook_url,
            body,
            now,
            now + RETRY_WINDOW,
            now,
        ),
    )
    return AppendedEvent(event_id, session.workspace_id, session.session_id, event)
