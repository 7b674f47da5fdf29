"""SQLite implementation of the Store: one WAL file, one connection, one worker thread.

All statements run on a single dedicated thread, so writes are serialised without locks and
the event loop never blocks on disk.
"""

from __future__ import annotations

import asyncio
import json
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
from service.store.base import NewEvent, OutboxEvent, SessionRecord, Store
from service.store.migrations import MIGRATIONS

T = TypeVar("T")

_SESSION_COLUMNS = tuple(f.name for f in fields(SessionRecord))
_OUTBOX_COLUMNS = tuple(f.name for f in fields(OutboxEvent))


def new_event_id() -> str:
    return "evt_" + secrets.token_hex(12)


class SQLiteStore(Store):
    """The default store: `storage/sidecar.sqlite3` in WAL mode."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")

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

    def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = fn(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result

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

        return await self._run(self._write, insert)

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
    ) -> list[SessionRecord]:
        where, params = _where(
            workspace_id=workspace_id, status=status, desired_state=desired_state
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
        self, session_id: str, changes: dict[str, Any], events: list[NewEvent] | None = None
    ) -> SessionRecord:
        unknown = set(changes) - set(_SESSION_COLUMNS)
        if unknown:
            raise ValueError(f"unknown session columns: {sorted(unknown)}")

        def update(conn: sqlite3.Connection) -> SessionRecord:
            values = changes | {"updated_at": time.time()}
            assignments = ", ".join(f"{c} = ?" for c in values)
            cursor = conn.execute(
                f"UPDATE sessions SET {assignments} WHERE session_id = ?",
                [*values.values(), session_id],
            )
            if cursor.rowcount == 0:
                raise SessionNotFound(session_id)
            row = conn.execute(
                "SELECT * FROM sessions WHERE session_id = ?", (session_id,)
            ).fetchone()
            record = _session(row)
            for event in events or ():
                _append_event(conn, record, event)
            return record

        return await self._run(self._write, update)

    async def delete_session(self, session_id: str) -> bool:
        def delete(conn: sqlite3.Connection) -> bool:
            conn.execute("DELETE FROM messages WHERE session_id = ?", (session_id,))
            cursor = conn.execute("DELETE FROM sessions WHERE session_id = ?", (session_id,))
            return cursor.rowcount > 0

        return await self._run(self._write, delete)

    # outbox

    async def list_events(
        self, session_id: str | None = None, status: str | None = None, limit: int = 100
    ) -> list[OutboxEvent]:
        where, params = _where(session_id=session_id, status=status)

        def query() -> list[OutboxEvent]:
            rows = self.conn.execute(
                f"SELECT * FROM outbox{where} ORDER BY seq LIMIT ?", [*params, limit]
            )
            return [OutboxEvent(**{c: r[c] for c in _OUTBOX_COLUMNS}) for r in rows]

        return await self._run(query)


def _where(**filters: str | None) -> tuple[str, list[Any]]:
    """A WHERE clause over the given columns; column names come from code, values are bound."""
    clauses = [f"{column} = ?" for column, value in filters.items() if value is not None]
    params = [value for value in filters.values() if value is not None]
    return (f" WHERE {' AND '.join(clauses)}" if clauses else ""), params


def _session(row: sqlite3.Row) -> SessionRecord:
    return SessionRecord(**{c: row[c] for c in _SESSION_COLUMNS})


def _append_event(conn: sqlite3.Connection, session: SessionRecord, event: NewEvent) -> str:
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
        " next_attempt_at, created_at) VALUES (?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?)",
        (
            event_id,
            event.event,
            session.workspace_id,
            session.session_id,
            session.webhook_url,
            body,
            now,
            now,
        ),
    )
    return event_id
