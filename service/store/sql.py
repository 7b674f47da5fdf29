"""The Store on SQLAlchemy: SQLite (the embedded default) or MySQL 8 / MariaDB 10.6+.

SQLAlchemy Core describes the tables (`schema.py`), Alembic migrates them, the engine and its
pool hand out connections, and every statement is built as a Core construct. Each construct
is compiled once per store (and per shape, for updates of a given set of columns) into SQL
for its dialect, then run on the driver's cursor: SQLAlchemy's per-execution machinery costs
about ten times what SQLite itself needs for a small write, and the accept path is made of
small writes.

SQLite keeps the character of the original store: one connection on one worker thread (so
writes are serialised without locks and the event loop never blocks), WAL,
synchronous=NORMAL, busy_timeout, `BEGIN IMMEDIATE` for every write, the file 0600 in a 0700
directory.

MySQL/MariaDB: a QueuePool of `pool_size` connections and a thread pool of the same size.
Connections run in autocommit, so a read is one statement with no transaction left open;
a write is BEGIN ... COMMIT at READ COMMITTED. Each connection gets
innodb_lock_wait_timeout (a few seconds) and a statement time limit (MariaDB
max_statement_time; MySQL max_execution_time, SELECTs only). UPDATE's row count is "rows
matched" (the CLIENT_FOUND_ROWS flag on every connection), as on SQLite, so a
compare-and-set that writes the values already there still counts as done. A write that hits
a deadlock (1213) or a lock-wait timeout (1205) is rolled back and run again (bounded, with
jittered backoff); one that loses its connection before COMMIT was sent is run again once on
a fresh connection, a read likewise; a connection lost during COMMIT is an error (the outcome
is unknown). The pool pings a connection before handing it out.

Races across processes rest on unique keys and row locks, never on read-then-write:
enqueue_message inserts and, on a duplicate idempotency key, returns the row that won;
first_sighting takes over an expired row with a guarded UPDATE and otherwise inserts (a
duplicate means someone else holds a live one); record_inbound locks the session row first;
interrupt_sending picks `sending` rows FOR UPDATE SKIP LOCKED (where the server has it).
next_queued and due_events stay plain SELECTs: they are not claims. The claims are the
compare-and-set updates that follow them (update_message with expect_status), which InnoDB
serialises on the row; a lock taken in next_queued would be released when its call returns.

Leases (cluster mode) rest on the lease row's lock. acquire_lease reads the row FOR UPDATE
(a locking read also waits for another transaction's uncommitted insert of it), inserts when
there is none, and on a duplicate key judges the row that won; so of any number of nodes
racing for a session, one gets it. A fenced write (`fence=(node, token)` on update_session
and update_message) locks the session's lease row before it writes anything, and holds it to
its commit: a takeover commits wholly before the check (the write is refused with LeaseLost)
or waits until the write has committed. The lease row is always the first lock such a
transaction takes, before the message and session rows.

Listeners run in the event loop after the commit, with the events the transaction appended.
Another process's commits reach them through `watch()` (see `Store.watch`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import secrets
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, TypeVar, cast

from pymysql.constants.CLIENT import FOUND_ROWS
from sqlalchemy import (
    URL,
    Connection,
    Double,
    Engine,
    Table,
    and_,
    bindparam,
    case,
    create_engine,
    delete,
    event,
    func,
    insert,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import NullPool, QueuePool
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

from service.errors import ConfigError, Conflict, SessionNotFound
from service.store import migrations
from service.store.base import (
    NO_WEBHOOK_URL,
    RETRY_WINDOW,
    AppendedEvent,
    ClaimLost,
    DeadFilter,
    EventListener,
    Lease,
    LeaseLost,
    MessageRecord,
    NewEvent,
    NodeRecord,
    OutboxEvent,
    SessionRecord,
    StaleMessage,
    StaleStatus,
    Store,
)
from service.store.schema import (
    DEFAULT_PREFIX,
    FALLBACK_COLLATION,
    NOPAD_COLLATIONS,
    TABLE_NAMES,
    Tables,
    check_prefix,
    tables,
)

T = TypeVar("T")

log = logging.getLogger("service.store")

SESSION_COLUMNS = tuple(f.name for f in fields(SessionRecord))
MESSAGE_COLUMNS = tuple(f.name for f in fields(MessageRecord))
OUTBOX_COLUMNS = tuple(f.name for f in fields(OutboxEvent))
NODE_COLUMNS = tuple(f.name for f in fields(NodeRecord))
LEASE_COLUMNS = tuple(f.name for f in fields(Lease))
_MESSAGE_INSERT = tuple(c for c in MESSAGE_COLUMNS if c != "seq")
_OUTBOX_INSERT = (
    "id",
    "event",
    "workspace_id",
    "session_id",
    "url",
    "body",
    "status",
    "attempts",
    "next_attempt_at",
    "give_up_at",
    "created_at",
)
# The key each table is copied in order of (seq keeps its values, so the order survives).
COPY_KEYS = {
    "sessions": "session_id",
    "messages": "seq",
    "outbox": "seq",
    "seen_signatures": "signature",
    "nodes": "node_id",
    "leases": "session_id",
    "campaigns": "id",
    "campaign_recipients": "seq",
}
# `mysql://` and `mariadb://`, as Laravel's DATABASE_URL writes them, mean the same driver.
MYSQL_SCHEMES = ("mysql+pymysql", "mariadb+pymysql", "mysql", "mariadb")
_URL_HELP = "a SQLite path (or sqlite:///path) or mysql+pymysql://user:pass@host:3306/db"
# MySQL/MariaDB error codes a write is retried on, and those that end a statement by time.
DEADLOCK, LOCK_WAIT_TIMEOUT = 1213, 1205
_LOCK_ERRORS = (DEADLOCK, LOCK_WAIT_TIMEOUT)


def new_event_id() -> str:
    return "evt_" + secrets.token_hex(12)


# --- compiled statements ------------------------------------------------------------------


class Stmt:
    """A Core construct compiled once for one dialect: SQL and the order of its parameters.

    Parameters given a value in the construct (`status == "queued"`) keep it; the others
    come from the dict passed at execution, by bind name.
    """

    __slots__ = ("defaults", "names", "sql")

    def __init__(self, construct: ClauseElement, dialect: Any) -> None:
        compiled = cast(SQLCompiler, construct.compile(dialect=dialect))
        if not dialect.positional or "POSTCOMPILE" in compiled.string:
            raise AssertionError(f"not a plain positional statement: {compiled.string}")
        self.sql: str = compiled.string
        self.names: tuple[str, ...] = tuple(compiled.positiontup or ())
        self.defaults = {
            name: compiled.binds[name].effective_value
            for name in self.names
            if not compiled.binds[name].required
        }

    def params(self, values: dict[str, Any]) -> list[Any]:
        defaults = self.defaults
        return [values[n] if n in values else defaults[n] for n in self.names]


class Tx:
    """One unit of work on one driver cursor. `appended` gathers the outbox events a write
    added, for the listeners called after its commit."""

    __slots__ = ("appended", "cur")

    def __init__(self, cur: Any) -> None:
        self.cur = cur
        self.appended: list[AppendedEvent] = []

    def run(self, stmt: Stmt, values: dict[str, Any] | None = None) -> int:
        """Execute; the row count (for UPDATE: rows matched, on both engines)."""
        self.cur.execute(stmt.sql, stmt.params(values or {}))
        return int(self.cur.rowcount)

    def insert(self, stmt: Stmt, values: dict[str, Any]) -> int:
        """Execute an INSERT; the new row's autoincrement key."""
        self.cur.execute(stmt.sql, stmt.params(values))
        return int(self.cur.lastrowid)

    def one(self, stmt: Stmt, values: dict[str, Any] | None = None) -> Any:
        self.cur.execute(stmt.sql, stmt.params(values or {}))
        return self.cur.fetchone()

    def all(self, stmt: Stmt, values: dict[str, Any] | None = None) -> list[Any]:
        self.cur.execute(stmt.sql, stmt.params(values or {}))
        return list(self.cur.fetchall())

    def many(self, stmt: Stmt, rows: Sequence[dict[str, Any]]) -> None:
        self.cur.executemany(stmt.sql, [stmt.params(row) for row in rows])


class _Queries:
    """Every fixed statement of the store, compiled for its dialect and prefix."""

    def __init__(self, t: Tables, dialect: Any, *, skip_locked: bool) -> None:
        s, m, o, seen = t.sessions, t.messages, t.outbox, t.seen_signatures
        mysql = dialect.name in ("mysql", "mariadb")

        def c(construct: ClauseElement) -> Stmt:
            return Stmt(construct, dialect)

        session_cols = [s.c[n] for n in SESSION_COLUMNS]
        message_cols = [m.c[n] for n in MESSAGE_COLUMNS]
        outbox_cols = [o.c[n] for n in OUTBOX_COLUMNS]
        self.session_cols, self.message_cols, self.outbox_cols = (
            session_cols,
            message_cols,
            outbox_cols,
        )
        self.ping = c(select(literal_column("1")))
        # sessions
        self.session_insert = c(insert(s).values({n: bindparam(n) for n in SESSION_COLUMNS}))
        by_session = s.c.session_id == bindparam("session_id")
        self.session_get = c(select(*session_cols).where(by_session))
        self.session_lock = c(select(s.c.session_id).where(by_session).with_for_update())
        self.session_count = c(select(func.count()).select_from(s))
        self.session_delete = c(delete(s).where(by_session))
        # messages
        self.message_insert = c(insert(m).values({n: bindparam(n) for n in _MESSAGE_INSERT}))
        self.message_get = c(select(*message_cols).where(m.c.id == bindparam("id")))
        self.message_idempotent = c(
            select(*message_cols).where(
                m.c.workspace_id == bindparam("workspace_id"),
                m.c.idempotency_key == bindparam("key"),
            )
        )
        # A scheduled message joins the queue at its place (its seq) once its time has come.
        self.message_next = c(
            select(*message_cols)
            .where(
                m.c.session_id == bindparam("session_id"),
                or_(
                    m.c.status == "queued",
                    and_(m.c.status == "scheduled", m.c.send_at <= bindparam("now")),
                ),
            )
            .order_by(case((m.c.priority == "normal", 0), else_=1), m.c.seq)
            .limit(1)
        )
        self.message_next_send_at = c(
            select(func.min(m.c.send_at)).where(
                m.c.session_id == bindparam("session_id"), m.c.status == "scheduled"
            )
        )
        self.message_by_ref = c(
            select(*message_cols).where(
                m.c.session_id == bindparam("session_id"), m.c.provider_ref == bindparam("value")
            )
        )
        self.message_by_provider_id = c(
            select(*message_cols).where(
                m.c.session_id == bindparam("session_id"),
                m.c.provider_message_id == bindparam("value"),
            )
        )
        # The chat's newest inbound message from one provider: inbound lines are all
        # `received`/`normal`, so the queue index walks them newest first.
        self.newest_inbound = c(
            select(*message_cols)
            .where(
                m.c.session_id == bindparam("session_id"),
                m.c.status == "received",
                m.c.priority == "normal",
                m.c.chat_id == bindparam("chat_id"),
                m.c.provider == bindparam("provider"),
                m.c.direction == "in",
            )
            .order_by(m.c.seq.desc())
            .limit(1)
        )
        self.message_known = c(
            select(m.c.seq).where(
                m.c.session_id == bindparam("session_id"), m.c.provider_ref == bindparam("ref")
            )
        )
        sending = select(m.c.id).where(m.c.status == "sending").order_by(m.c.seq)
        if mysql:
            sending = sending.with_for_update(skip_locked=skip_locked)
        self.message_sending = c(sending)
        # One session's sends, for the worker taking it over: waits for (never skips) a row
        # another transaction holds, so no message of the session is left out.
        of_session = (
            select(m.c.id)
            .where(m.c.session_id == bindparam("session_id"), m.c.status == "sending")
            .order_by(m.c.seq)
        )
        self.message_sending_of = c(of_session.with_for_update() if mysql else of_session)
        self.message_interrupt = c(
            update(m)
            .where(m.c.id == bindparam("k_id"))
            .values(status="failed", error="interrupted", updated_at=bindparam("now"))
        )
        self.message_count = c(
            select(func.count()).where(
                m.c.session_id == bindparam("session_id"), m.c.status == bindparam("status")
            )
        )
        self.message_recent = c(
            select(*message_cols)
            .where(m.c.session_id == bindparam("session_id"))
            .order_by(m.c.seq.desc())
            .limit(bindparam("limit"))
        )
        self.message_delete_session = c(delete(m).where(m.c.session_id == bindparam("session_id")))
        self.message_media_before = c(
            select(*message_cols)
            .where(m.c.media_stored_at < bindparam("before"))
            .order_by(m.c.media_stored_at, m.c.seq)
            .limit(bindparam("limit"))
        )
        self.message_forget_media = c(
            update(m)
            .where(m.c.id == bindparam("k_id"), m.c.media_stored_at == bindparam("k_stored"))
            .values(content=bindparam("content"), media_stored_at=None, updated_at=bindparam("now"))
        )
        # outbox
        self.outbox_insert = c(insert(o).values({n: bindparam(n) for n in _OUTBOX_INSERT}))
        self.outbox_get = c(select(*outbox_cols).where(o.c.id == bindparam("id")))
        heads = (
            select(o.c.session_id, func.min(o.c.seq).label("head"))
            .where(o.c.status == "pending")
            .group_by(o.c.session_id)
            .subquery("h")
        )
        self.outbox_due = c(
            select(*outbox_cols)
            .select_from(o.join(heads, o.c.seq == heads.c.head))
            .where(o.c.next_attempt_at <= bindparam("now"))
            .order_by(o.c.next_attempt_at)
            .limit(bindparam("limit"))
        )
        self.outbox_head = c(
            select(*outbox_cols)
            .where(o.c.status == "pending", o.c.session_id == bindparam("session_id"))
            .order_by(o.c.seq)
            .limit(1)
        )
        # Claims. Free: nobody's, expired, or the asking owner's own.
        free = or_(
            o.c.claimed_until.is_(None),
            o.c.claimed_until <= bindparam("now"),
            o.c.claimed_by == bindparam("owner"),
        )
        self.outbox_due_lines = c(
            select(o.c.session_id)
            .select_from(o.join(heads, o.c.seq == heads.c.head))
            .where(o.c.next_attempt_at <= bindparam("now"), free)
            .order_by(o.c.next_attempt_at)
            .limit(bindparam("limit"))
        )
        # The head with its claim; on MySQL its row stays locked to the commit, so two
        # claims of one line take turns (plain FOR UPDATE: SKIP LOCKED would pass over a
        # locked head to the event behind it).
        head_lock = (
            select(*outbox_cols, o.c.claimed_by, o.c.claimed_until)
            .where(o.c.status == "pending", o.c.session_id == bindparam("session_id"))
            .order_by(o.c.seq)
            .limit(1)
        )
        if mysql:
            head_lock = head_lock.with_for_update()
        self.outbox_head_lock = c(head_lock)
        # A live claim of another owner on any pending event of the line (a replay can put
        # an older event ahead of a claimed head).
        self.outbox_line_held = c(
            select(o.c.seq)
            .where(
                o.c.status == "pending",
                o.c.session_id == bindparam("session_id"),
                o.c.claimed_until > bindparam("now"),
                o.c.claimed_by != bindparam("owner"),
            )
            .limit(1)
        )
        self.outbox_claim = c(
            update(o)
            .where(o.c.id == bindparam("k_id"))
            .values(claimed_by=bindparam("v_owner"), claimed_until=bindparam("v_until"))
        )
        self.outbox_replay = c(
            update(o)
            .where(o.c.id == bindparam("k_id"), o.c.status == "dead")
            .values(
                status="pending",
                next_attempt_at=bindparam("now"),
                give_up_at=bindparam("give_up_at"),
                last_error=None,
            )
        )
        # A session that got a webhook_url takes over the events that had none (those
        # waiting for a URL, first of all) and makes them due now; only its own: a deleted
        # session of the same id (written before this one was created) keeps its events.
        self.outbox_adopt_url = c(
            update(o)
            .where(
                o.c.session_id == bindparam("k_session_id"),
                o.c.status == "pending",
                o.c.url.is_(None),
                o.c.created_at >= bindparam("k_since"),
            )
            .values(
                url=bindparam("v_url"),
                next_attempt_at=bindparam("now"),
                last_error=case((o.c.last_error == NO_WEBHOOK_URL, None), else_=o.c.last_error),
            )
        )
        self.outbox_wake_waiting = c(
            update(o)
            .where(
                o.c.status == "pending",
                o.c.url.is_(None),
                o.c.last_error == NO_WEBHOOK_URL,
                o.c.next_attempt_at > bindparam("now"),
            )
            .values(next_attempt_at=bindparam("now"))
        )
        # A deleted session's waiting events are due now: the dispatcher makes them dead
        # rather than let them hold the line of a session created later with the same id.
        self.outbox_wake_session = c(
            update(o)
            .where(
                o.c.session_id == bindparam("session_id"),
                o.c.status == "pending",
                o.c.url.is_(None),
                o.c.last_error == NO_WEBHOOK_URL,
                o.c.next_attempt_at > bindparam("now"),
            )
            .values(next_attempt_at=bindparam("now"))
        )
        self.outbox_pending_stats = c(
            select(func.count(), func.min(o.c.created_at)).where(o.c.status == "pending")
        )
        self.outbox_without_url_count = c(
            select(func.count()).where(o.c.status == "pending", o.c.url.is_(None))
        )
        self.outbox_dead_count = c(select(func.count()).where(o.c.status == "dead"))
        self.outbox_mark = c(select(func.max(o.c.seq)))
        # request signatures
        self.seen_take_expired = c(
            update(seen)
            .where(
                seen.c.signature == bindparam("signature"), seen.c.expires_at <= bindparam("now")
            )
            .values(expires_at=bindparam("expires_at"))
        )
        self.seen_insert = c(
            insert(seen).values(
                signature=bindparam("signature"), expires_at=bindparam("expires_at")
            )
        )
        if mysql:
            sweep = delete(seen).where(seen.c.expires_at <= bindparam("now"))
            self.seen_sweep = c(sweep.with_dialect_options(mysql_limit=50))
        else:
            oldest = (
                select(seen.c.signature)
                .where(seen.c.expires_at <= bindparam("now"))
                .order_by(seen.c.expires_at)
                .limit(50)
            )
            self.seen_sweep = c(delete(seen).where(seen.c.signature.in_(oldest)))
        # nodes
        n, le = t.nodes, t.leases
        self.node_cols = [n.c[name] for name in NODE_COLUMNS]
        self.node_insert = c(insert(n).values({name: bindparam(name) for name in NODE_COLUMNS}))
        started: Any = bindparam("v_started", type_=Double())
        self.node_beat = c(
            update(n)
            .where(n.c.node_id == bindparam("k_node"))
            .values(
                role=bindparam("v_role"),
                address=bindparam("v_address"),
                capacity=bindparam("v_capacity"),
                sessions=bindparam("v_sessions"),
                draining=bindparam("v_draining"),
                host=bindparam("v_host"),
                heartbeat_at=bindparam("v_now"),
                started_at=case((started > 0, started), else_=n.c.started_at),
            )
        )
        by_node = n.c.node_id == bindparam("k_node")
        self.node_lock = c(select(n.c.started_at, n.c.draining).where(by_node).with_for_update())
        self.node_drain = c(update(n).where(by_node).values(draining=1))
        self.node_list = c(select(*self.node_cols).order_by(n.c.node_id))
        self.node_delete = c(delete(n).where(n.c.node_id == bindparam("node_id")))
        # leases
        lease_cols = [le.c[name] for name in LEASE_COLUMNS]
        lease = select(*lease_cols).where(le.c.session_id == bindparam("session_id"))
        # The lease row's lock serialises takeovers, renewals and fenced writes of a session.
        self.lease_lock = c(lease.with_for_update() if mysql else lease)
        self.lease_get = c(lease)
        self.lease_insert = c(
            insert(le).values(
                session_id=bindparam("session_id"),
                node_id=bindparam("node_id"),
                token=bindparam("token"),
                acquired_at=bindparam("now"),
                expires_at=bindparam("expires_at"),
            )
        )
        by_lease = le.c.session_id == bindparam("k_session")
        self.lease_take = c(
            update(le)
            .where(by_lease)
            .values(
                node_id=bindparam("v_node"),
                token=bindparam("v_token"),
                acquired_at=bindparam("v_now"),
                expires_at=bindparam("v_expires"),
            )
        )
        self.lease_extend = c(update(le).where(by_lease).values(expires_at=bindparam("v_expires")))
        live = (le.c.node_id == bindparam("k_node"), le.c.expires_at > bindparam("k_now"))
        self.lease_renew = c(update(le).where(*live).values(expires_at=bindparam("v_expires")))
        self.lease_live = c(select(*lease_cols).where(*live).order_by(le.c.session_id))
        self.lease_release = c(
            update(le)
            .where(
                by_lease,
                le.c.node_id == bindparam("k_node"),
                le.c.token == bindparam("k_token"),
            )
            .values(expires_at=0.0)
        )
        self.lease_list = c(select(*lease_cols).order_by(le.c.session_id))
        self.lease_list_of = c(
            select(*lease_cols)
            .where(le.c.node_id == bindparam("node_id"))
            .order_by(le.c.session_id)
        )
        self.message_session = c(select(m.c.session_id).where(m.c.id == bindparam("id")))


# --- URLs ---------------------------------------------------------------------------------


def parse_database_url(url_or_path: str | Path) -> URL:
    """A SQLAlchemy URL for a SQLite path, `sqlite:///path` or `mysql+pymysql://...`.

    Anything else is a ConfigError of one line, as is a MySQL URL without a database.
    """
    if isinstance(url_or_path, Path) or "://" not in url_or_path:
        path = str(url_or_path).strip()
        if not path:
            raise ConfigError(f"SIDECAR_DATABASE_URL is empty: use {_URL_HELP}")
        return URL.create("sqlite+pysqlite", database=path)
    if url_or_path.startswith("sqlite:///"):
        return URL.create("sqlite+pysqlite", database=url_or_path[len("sqlite:///") :])
    scheme = url_or_path.split("://", 1)[0]
    if scheme.lower() == "sqlite":
        raise ConfigError("SIDECAR_DATABASE_URL: write SQLite as sqlite:///<path> (three slashes)")
    if scheme.lower() not in MYSQL_SCHEMES:
        raise ConfigError(f"SIDECAR_DATABASE_URL: unsupported scheme {scheme!r}; use {_URL_HELP}")
    try:
        url = make_url(url_or_path)
    except (ArgumentError, ValueError) as exc:
        raise ConfigError(f"SIDECAR_DATABASE_URL does not parse ({exc}); use {_URL_HELP}") from None
    if not url.database:
        raise ConfigError(f"SIDECAR_DATABASE_URL names no database; use {_URL_HELP}")
    query = dict(url.query)
    query.setdefault("charset", "utf8mb4")
    if query["charset"] != "utf8mb4":
        raise ConfigError("SIDECAR_DATABASE_URL: charset must be utf8mb4 (emoji need 4 bytes)")
    return url.set(drivername="mysql+pymysql", query=query)


def open_store(url_or_path: str | Path, prefix: str = DEFAULT_PREFIX, **options: Any) -> SqlStore:
    """The store for SIDECAR_DATABASE_URL (a SQLite path by default); `await store.open()`
    connects and migrates. A URL of another kind is a ConfigError."""
    return SqlStore(url_or_path, prefix, **options)


# --- the store ----------------------------------------------------------------------------


class SqlStore(Store):
    """One store over SQLite or MySQL/MariaDB; see the module docstring."""

    def __init__(
        self,
        url: str | Path,
        prefix: str = DEFAULT_PREFIX,
        *,
        pool_size: int = 8,
        lock_wait_timeout: int = 5,
        statement_timeout: float = 30.0,
        connect_timeout: int = 10,
        lock_retries: int = 5,
        # Off: a connection found dead is replaced by the retry before COMMIT, and a ping
        # would add a round trip to every call.
        pre_ping: bool = False,
    ) -> None:
        self.url = parse_database_url(url)
        self.prefix = check_prefix(prefix)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        self.path: Path | None = Path(self.url.database or "") if self.is_sqlite else None
        self.pool_size = 1 if self.is_sqlite else max(1, pool_size)
        self.lock_wait_timeout = lock_wait_timeout
        self.statement_timeout = statement_timeout
        self.connect_timeout = connect_timeout
        self.lock_retries = lock_retries
        self.pre_ping = pre_ping
        self.tables = tables(self.prefix)
        self.mariadb = False
        self.skip_locked = False
        self.collation = FALLBACK_COLLATION
        self._engine: Engine | None = None
        self._executor = ThreadPoolExecutor(
            max_workers=self.pool_size, thread_name_prefix="sqlite" if self.is_sqlite else "mysql"
        )
        self._listeners: list[EventListener] = []
        self._q: _Queries | None = None
        self._dynamic: dict[tuple[Any, ...], Stmt] = {}
        # SQLite: the one connection (a pool checkout kept for the store's life) and cursor.
        self._fairy: Any = None
        # MySQL: the connection that holds the single-service lock (see hold_single_service).
        self._holder: Any = None
        self._db: sqlite3.Connection | None = None
        self._cur: sqlite3.Cursor | None = None
        self._read_sync: Callable[[Callable[[Tx], Any]], Any] = self._mysql_read
        self._write_sync: Callable[[Callable[[Tx], Any]], tuple[Any, list[AppendedEvent]]] = (
            self._mysql_write
        )
        if self.is_sqlite:
            self._read_sync, self._write_sync = self._sqlite_read, self._sqlite_write

    def __repr__(self) -> str:
        return f"SqlStore({self.display_url!r}, prefix={self.prefix!r})"

    @property
    def display_url(self) -> str:
        """The URL with its password hidden, for messages and logs."""
        return str(self.path) if self.is_sqlite else self.url.render_as_string(hide_password=True)

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise RuntimeError("store is not open")
        return self._engine

    @property
    def q(self) -> _Queries:
        if self._q is None:
            raise RuntimeError("store is not open")
        return self._q

    # -- threads -----------------------------------------------------------------------

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, *args)

    async def _read(self, fn: Callable[[Tx], T]) -> T:
        result: T = await self._call(self._read_sync, fn)
        return result

    async def _transaction(self, fn: Callable[[Tx], T]) -> T:
        result, appended = await self._call(self._write_sync, fn)
        if appended:
            self.notify(appended)
        return cast(T, result)

    def notify(self, appended: list[AppendedEvent]) -> None:
        for listener in self._listeners:
            try:
                listener(appended)
            except Exception:
                log.exception("outbox listener failed")

    def subscribe(self, listener: EventListener) -> None:
        self._listeners.append(listener)

    # -- SQLite: one connection, one thread ----------------------------------------------

    def _sqlite_read(self, fn: Callable[[Tx], T]) -> T:
        if self._cur is None:
            raise RuntimeError("store is not open")
        return fn(Tx(self._cur))

    def _sqlite_write(self, fn: Callable[[Tx], T]) -> tuple[T, list[AppendedEvent]]:
        db, cur = self._db, self._cur
        if db is None or cur is None:
            raise RuntimeError("store is not open")
        db.execute("BEGIN IMMEDIATE")
        tx = Tx(cur)
        try:
            result = fn(tx)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return result, tx.appended

    # -- MySQL: a pool, a thread per connection, retries ---------------------------------

    def classify(self, exc: BaseException) -> str | None:
        """ "lock" for a deadlock or lock-wait timeout, "gone" for a lost connection."""
        dbapi = self.engine.dialect.loaded_dbapi
        if not isinstance(exc, dbapi.Error):
            return None
        code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
        if code in _LOCK_ERRORS:
            return "lock"
        if self.engine.dialect.is_disconnect(exc, None, None):
            return "gone"
        return None

    def _mysql_read(self, fn: Callable[[Tx], T]) -> T:
        """A read in autocommit; run once more on a fresh connection if the first was lost."""
        for attempt in range(2):
            fairy = self.engine.raw_connection()
            try:
                cur = _driver(fairy).cursor()
                try:
                    return fn(Tx(cur))
                finally:
                    _close_cursor(cur)
            except BaseException as exc:
                if self.classify(exc) != "gone":
                    raise
                fairy.invalidate()
                if attempt:
                    raise
                log.warning("database connection lost during a read; retrying once")
            finally:
                fairy.close()
        raise AssertionError("unreachable")

    def _mysql_write(self, fn: Callable[[Tx], T]) -> tuple[T, list[AppendedEvent]]:
        """BEGIN, `fn`, COMMIT; again after a deadlock or lock-wait timeout (up to
        lock_retries times), or once after a connection lost before COMMIT was sent."""
        lock_retries = lost_retries = 0
        while True:
            fairy = self.engine.raw_connection()
            committing = False
            try:
                db = _driver(fairy)
                db.begin()
                tx = Tx(db.cursor())
                try:
                    result = fn(tx)
                    committing = True
                    db.commit()
                finally:
                    _close_cursor(tx.cur)
                return result, tx.appended
            except BaseException as exc:
                kind = self.classify(exc)
                if kind == "gone":
                    fairy.invalidate()
                else:
                    try:
                        _driver(fairy).rollback()
                    except Exception:
                        fairy.invalidate()
                if kind == "lock" and lock_retries < self.lock_retries:
                    lock_retries += 1
                    delay = min(0.5, 0.02 * 2**lock_retries) * (0.5 + random.random())  # noqa: S311
                    log.info("%s; retrying the transaction in %.0f ms", exc, delay * 1000)
                    time.sleep(delay)
                    continue
                if kind == "gone" and not committing and lost_retries < 1:
                    lost_retries += 1
                    log.warning("database connection lost before commit; retrying once")
                    continue
                raise
            finally:
                fairy.close()

    # -- open and close ------------------------------------------------------------------

    async def open(self, *, migrate: bool = True) -> None:
        """Connect and (unless `migrate=False`, for `db status`) apply pending migrations.

        A database that cannot be reached, opened or migrated is a ConfigError of one line,
        and leaves nothing open behind it.
        """
        try:
            await self._call(self._open, migrate)
        except BaseException as exc:
            await self._call(self._close)
            if isinstance(exc, ConfigError) or not isinstance(exc, Exception):
                raise
            raise ConfigError(
                f"cannot open the store {self.display_url}: {_one_line(exc)}"
            ) from None

    def _open(self, migrate: bool) -> None:
        if self.is_sqlite:
            self._open_sqlite(migrate)
        else:
            self._open_mysql(migrate)
        self._q = _Queries(self.tables, self.engine.dialect, skip_locked=self.skip_locked)

    def _open_sqlite(self, migrate: bool) -> None:
        assert self.path is not None
        path = self.path
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise ConfigError(
                f"cannot create the database directory {path.parent}: {exc}"
            ) from None
        engine = create_engine(
            self.url,
            poolclass=NullPool,
            connect_args={"check_same_thread": False, "isolation_level": None},
        )

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
            dbapi_conn.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL survives a killed process (the WAL is in the OS cache); only a
            # power loss can drop the last commits.
            dbapi_conn.execute("PRAGMA synchronous=NORMAL")
            dbapi_conn.execute("PRAGMA busy_timeout=5000")
            dbapi_conn.execute("PRAGMA foreign_keys=ON")

        self._engine = engine
        try:
            fairy = engine.raw_connection()
            os.chmod(path, 0o600)
        except Exception as exc:
            raise ConfigError(f"cannot open the SQLite database {path}: {_one_line(exc)}") from None
        self._fairy = fairy
        self._db = _driver(fairy)
        self._cur = self._db.cursor()
        if migrate:
            with engine.connect() as conn:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
                try:
                    if migrations.current_revision(conn, self.prefix) != migrations.head_revision():
                        migrations.upgrade(conn, self.prefix)
                except BaseException:
                    conn.rollback()
                    raise
                conn.commit()

    def _open_mysql(self, migrate: bool) -> None:
        lock_wait = int(self.lock_wait_timeout)
        limit = float(self.statement_timeout)
        engine = create_engine(
            self.url,
            poolclass=QueuePool,
            pool_size=self.pool_size,
            max_overflow=2,
            pool_timeout=30,
            pool_pre_ping=self.pre_ping,
            pool_recycle=3600,
            # Connections are in autocommit and every write ends in COMMIT or ROLLBACK, so
            # nothing is left to roll back on return (that would be a round trip per call).
            pool_reset_on_return=None,
            # Positional `%s` parameters: statements run with a list, as on SQLite.
            paramstyle="format",
            # UPDATE's row count is rows matched, not rows changed, as on SQLite (SQLAlchemy
            # sets the flag too; a compare-and-set must not depend on that staying so).
            # A server or network path that stops answering must not hold a thread for ever:
            # the socket gives up a little after the server's own statement limit.
            connect_args={
                "connect_timeout": self.connect_timeout,
                "client_flag": FOUND_ROWS,
                "read_timeout": int(limit) + 5,
                "write_timeout": int(limit) + 5,
            },
        )

        @event.listens_for(engine, "connect")
        def _session(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.autocommit(True)
            mariadb = "mariadb" in dbapi_conn.get_server_info().lower()
            timeout = (
                f"max_statement_time = {limit:g}"
                if mariadb
                else f"max_execution_time = {int(limit * 1000)}"
            )
            with dbapi_conn.cursor() as cur:
                cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
                cur.execute(f"SET SESSION innodb_lock_wait_timeout = {lock_wait}, {timeout}")

        self._engine = engine
        try:
            conn = engine.connect()
        except Exception as exc:
            raise ConfigError(
                f"cannot connect to the database {self.display_url}: {_one_line(exc)}"
            ) from None
        with conn:
            dialect = engine.dialect
            version = tuple(dialect.server_version_info or ())
            self.mariadb = bool(getattr(dialect, "is_mariadb", False))
            least = (10, 6) if self.mariadb else (8, 0, 1)
            if version < least:
                raise ConfigError(
                    f"{self.display_url} runs {'MariaDB' if self.mariadb else 'MySQL'} "
                    f"{'.'.join(map(str, version[:3]))}: MariaDB 10.6 or MySQL 8.0.1 or newer "
                    "is needed (SKIP LOCKED, a no-pad binary collation)"
                )
            self.skip_locked = True
            available = {
                row[0]
                for row in conn.exec_driver_sql(
                    "SELECT COLLATION_NAME FROM information_schema.COLLATIONS"
                    " WHERE COLLATION_NAME IN ('utf8mb4_nopad_bin', 'utf8mb4_0900_bin')"
                )
            }
            self.collation = next(
                (c for c in NOPAD_COLLATIONS if c in available), FALLBACK_COLLATION
            )
            if migrate:
                self._migrate_mysql(conn)

    def _migrate_mysql(self, conn: Connection) -> None:
        """Upgrade under a named lock, so that processes starting together migrate once."""
        if migrations.current_revision(conn, self.prefix) == migrations.head_revision():
            return
        # DDL on a large table may take longer than a statement is otherwise allowed.
        timeout = "max_statement_time" if self.mariadb else "max_execution_time"
        conn.exec_driver_sql(f"SET SESSION {timeout} = 0")
        name = f"wa-sidecar-migrate:{self.url.database}:{self.prefix}"[:64]
        got = conn.exec_driver_sql("SELECT GET_LOCK(%s, 120)", (name,)).scalar()
        if got != 1:
            conn.invalidate()
            raise ConfigError(f"another process holds the migration lock {name!r}; try again")
        try:
            migrations.upgrade(conn, self.prefix, self.collation)
        finally:
            conn.exec_driver_sql("SELECT RELEASE_LOCK(%s)", (name,))
            # Its session settings changed: let it go rather than back to the pool.
            conn.invalidate()

    async def hold_single_service(self) -> None:
        """On MySQL, take the store's service lock for as long as the store is open, or a
        ConfigError when another service holds it.

        Until cluster mode (leases per session, claimed outbox lines), one service runs on a
        store: two would deliver the same webhooks and fail each other's sends at start.
        SQLite needs none: its file lives on one host, served by one process.
        """
        if self.is_sqlite or self._holder is not None:
            return

        def take() -> None:
            name = self._service_lock
            holder = self.engine.raw_connection()
            cur = holder.cursor()
            try:
                cur.execute("SELECT GET_LOCK(%s, 0)", (name,))
                row = cur.fetchone()
                got = row[0] if row else None
            finally:
                cur.close()
            if got != 1:
                holder.invalidate()
                raise ConfigError(
                    f"another wa-sidecar already serves {self.display_url} with the prefix "
                    f"{self.prefix!r}: run one service per store (or give this one its own "
                    "SIDECAR_DB_PREFIX)"
                )
            self._holder = holder

        await self._call(take)

    @property
    def _service_lock(self) -> str:
        return f"wa-sidecar-service:{self.url.database}:{self.prefix}"[:64]

    async def single_service_running(self) -> bool:
        """On MySQL: whether a single-host service (`hold_single_service`) runs on this
        store now; a cluster's processes must not start beside it."""
        if self.is_sqlite:
            return False

        def used() -> bool:
            conn = self.engine.raw_connection()
            try:
                cur = conn.cursor()
                cur.execute("SELECT IS_USED_LOCK(%s)", (self._service_lock,))
                row = cur.fetchone()
                cur.close()
                return bool(row and row[0] is not None)
            finally:
                conn.close()

        return await self._call(used)

    async def close(self) -> None:
        if self._engine is not None:
            await self._call(self._close)
        self._executor.shutdown(wait=True)

    def _close(self) -> None:
        if self._holder is not None:
            # Closing the connection ends its session, which releases the lock.
            self._holder.invalidate()
            self._holder = None
        if self._fairy is not None:
            self._fairy.close()
            self._fairy = self._db = self._cur = None
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    # -- helpers for `db migrate|status|copy` and the doctor -----------------------------

    async def migrate(self) -> None:
        """Apply pending migrations (for a store opened with `migrate=False`)."""

        def run() -> None:
            if self.is_sqlite:
                with self.engine.connect() as conn:
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
                    try:
                        migrations.upgrade(conn, self.prefix)
                    except BaseException:
                        conn.rollback()
                        raise
                    conn.commit()
            else:
                with self.engine.connect() as conn:
                    self._migrate_mysql(conn)

        await self._call(run)

    async def schema_status(self) -> tuple[str | None, str]:
        """(current revision, head revision). The current one is None for an empty database
        and `legacy:N` for a SQLite file from before Alembic (at hand-written version N)."""

        def status() -> tuple[str | None, str]:
            with self.engine.connect() as conn:
                current = migrations.current_revision(conn, self.prefix)
                if current is None:
                    legacy = migrations.legacy_version(conn)
                    if legacy is not None:
                        current = f"legacy:{legacy}"
                conn.rollback()
            return current, migrations.head_revision()

        return await self._call(status)

    async def server_info(self) -> dict[str, Any]:
        """Engine, server version, charset/collation, sql_mode, SKIP LOCKED support."""

        def info() -> dict[str, Any]:
            with self.engine.connect() as conn:
                if self.is_sqlite:
                    encoding = conn.exec_driver_sql("PRAGMA encoding").scalar()
                    journal = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
                    conn.rollback()
                    return {
                        "engine": "sqlite",
                        "server_version": sqlite3.sqlite_version,
                        "charset": encoding,
                        "collation": "binary",
                        "sql_mode": None,
                        "skip_locked": False,
                        "journal_mode": journal,
                        "database": str(self.path),
                        "prefix": self.prefix,
                    }
                isolation = "@@tx_isolation" if self.mariadb else "@@transaction_isolation"
                row = conn.exec_driver_sql(
                    "SELECT VERSION(), @@character_set_database, @@collation_database,"
                    f" @@character_set_connection, @@sql_mode, {isolation},"
                    " @@innodb_lock_wait_timeout"
                ).one()
                table_collation = conn.exec_driver_sql(
                    "SELECT TABLE_COLLATION FROM information_schema.TABLES"
                    " WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s",
                    (self.tables.sessions.name,),
                ).scalar()
            return {
                "engine": "mariadb" if self.mariadb else "mysql",
                "server_version": row[0],
                "charset": row[1],
                "collation": row[2],
                "connection_charset": row[3],
                "table_collation": table_collation,
                "sql_mode": row[4],
                "isolation": row[5],
                "lock_wait_timeout": int(row[6]),
                "skip_locked": self.skip_locked,
                "database": self.url.database,
                "prefix": self.prefix,
            }

        return await self._call(info)

    async def iter_rows(self, table: str, batch: int = 500) -> AsyncIterator[list[dict[str, Any]]]:
        """Every row of one table (`sessions`, `messages`, `outbox`, `seen_signatures`), in
        batches, in order of its key (seq for messages and outbox): for copying a store."""
        source = self.tables.by_name(table)
        key = source.c[COPY_KEYS[table]]
        names = [column.name for column in source.columns]
        after = self._dynamic_stmt(
            ("iter", table, True),
            lambda: (
                select(*source.columns)
                .where(key > bindparam("after"))
                .order_by(key)
                .limit(bindparam("limit"))
            ),
        )
        first = self._dynamic_stmt(
            ("iter", table, False),
            lambda: select(*source.columns).order_by(key).limit(bindparam("limit")),
        )
        position: Any = None
        while True:
            if position is None:
                rows = await self._read(_fetch_all(first, {"limit": batch}))
            else:
                rows = await self._read(_fetch_all(after, {"after": position, "limit": batch}))
            if not rows:
                return
            yield [dict(zip(names, row, strict=True)) for row in rows]
            position = rows[-1][names.index(key.name)]
            if len(rows) < batch:
                return

    async def insert_rows(self, table: str, rows: Sequence[dict[str, Any]]) -> int:
        """Insert rows as they are (seq values kept) in one transaction; how many."""
        if not rows:
            return 0
        target = self.tables.by_name(table)
        names = [column.name for column in target.columns]
        stmt = self._dynamic_stmt(
            ("copy", table),
            lambda: insert(target).values({n: bindparam(n) for n in names}),
        )
        await self._transaction(lambda tx: tx.many(stmt, rows))
        return len(rows)

    async def copy_to(self, target: SqlStore, batch: int = 500) -> dict[str, int]:
        """Copy every row into an empty `target` store, table by table; rows per table."""
        copied: dict[str, int] = {}
        for table in TABLE_NAMES:
            copied[table] = 0
            async for rows in self.iter_rows(table, batch):
                copied[table] += await target.insert_rows(table, rows)
        return copied

    # -- statements built on demand ------------------------------------------------------

    def _dynamic_stmt(self, key: tuple[Any, ...], build: Callable[[], ClauseElement]) -> Stmt:
        stmt = self._dynamic.get(key)
        if stmt is None:
            stmt = self._dynamic[key] = Stmt(build(), self.engine.dialect)
        return stmt

    def _update_stmt(self, table: Table, key: str, columns: tuple[str, ...], guard: bool) -> Stmt:
        def build() -> ClauseElement:
            where = [table.c[key] == bindparam("k_key")]
            if guard:
                where.append(table.c.status == bindparam("k_status"))
            return update(table).where(*where).values({c: bindparam(f"v_{c}") for c in columns})

        return self._dynamic_stmt(("update", table.name, columns, guard), build)

    def _filtered(self, table: Table, columns: Sequence[Any], filters: tuple[str, ...]) -> Stmt:
        def build() -> ClauseElement:
            query = select(*columns).where(*(table.c[f] == bindparam(f"f_{f}") for f in filters))
            if table is self.tables.sessions:
                return query.order_by(table.c.created_at, table.c.session_id)
            return query.order_by(table.c.seq).limit(bindparam("limit"))

        return self._dynamic_stmt(("list", table.name, filters), build)

    # -- the Store -----------------------------------------------------------------------

    async def ping(self) -> bool:
        try:
            return bool(await self._read(lambda tx: tx.one(self.q.ping)))
        except Exception:
            return False

    async def outbox_mark(self) -> int:
        row = await self._read(lambda tx: tx.one(self.q.outbox_mark))
        return int(row[0] or 0)

    async def first_sighting(self, signature: str, now: float, ttl: float) -> bool:
        q = self.q
        values = {"signature": signature, "now": now, "expires_at": now + ttl}
        integrity = self.engine.dialect.loaded_dbapi.IntegrityError

        def record(tx: Tx) -> bool:
            # An expired row is taken over; a live one (a replay) makes the insert collide.
            if not tx.run(q.seen_take_expired, values):
                try:
                    tx.run(q.seen_insert, values)
                except integrity:
                    return False
            # Keep the table to the window: a few expired rows go with every new signature.
            tx.run(q.seen_sweep, values)
            return True

        return await self._transaction(record)

    # sessions

    async def create_session(self, record: SessionRecord) -> SessionRecord:
        integrity = self.engine.dialect.loaded_dbapi.IntegrityError

        def insert_session(tx: Tx) -> SessionRecord:
            now = time.time()
            row = asdict(record) | {"created_at": now, "updated_at": now}
            try:
                tx.run(self.q.session_insert, row)
            except integrity:
                raise Conflict(
                    f"session {record.session_id!r} already exists",
                    code="session_exists",
                    details={"session_id": record.session_id},
                ) from None
            return SessionRecord(**row)

        return await self._transaction(insert_session)

    async def get_session(self, session_id: str) -> SessionRecord | None:
        def get(tx: Tx) -> SessionRecord | None:
            row = tx.one(self.q.session_get, {"session_id": session_id})
            return SessionRecord(*row) if row else None

        return await self._read(get)

    async def list_sessions(
        self,
        workspace_id: str | None = None,
        status: str | None = None,
        desired_state: str | None = None,
        meta_phone_number_id: str | None = None,
    ) -> list[SessionRecord]:
        given = {
            "workspace_id": workspace_id,
            "status": status,
            "desired_state": desired_state,
            "meta_phone_number_id": meta_phone_number_id,
        }
        filters = tuple(k for k, v in given.items() if v is not None)
        stmt = self._filtered(self.tables.sessions, self.q.session_cols, filters)
        values = {f"f_{k}": given[k] for k in filters}
        return await self._read(lambda tx: [SessionRecord(*r) for r in tx.all(stmt, values)])

    async def count_sessions(self) -> int:
        return await self._read(lambda tx: int(tx.one(self.q.session_count)[0]))

    async def update_session(
        self,
        session_id: str,
        changes: dict[str, Any],
        events: list[NewEvent] | None = None,
        *,
        expect_status: str | None = None,
        fence: tuple[str, int] | None = None,
    ) -> SessionRecord:
        unknown = set(changes) - set(SESSION_COLUMNS)
        if unknown:
            raise ValueError(f"unknown session columns: {sorted(unknown)}")
        columns = tuple(sorted({*changes, "updated_at"}))
        stmt = self._update_stmt(
            self.tables.sessions, "session_id", columns, expect_status is not None
        )
        q = self.q
        # Outbox rows that took a new webhook_url (a retried transaction: its last run).
        woken: list[int] = []

        def change(tx: Tx) -> SessionRecord:
            if fence is not None:
                self._check_fence(tx, session_id, fence)
            values = {f"v_{c}": v for c, v in changes.items()}
            values |= {"v_updated_at": time.time(), "k_key": session_id, "k_status": expect_status}
            if tx.run(stmt, values) == 0:
                current = tx.one(q.session_get, {"session_id": session_id})
                if current is None:
                    raise SessionNotFound(session_id)
                raise StaleStatus(SessionRecord(*current))
            record = SessionRecord(*tx.one(q.session_get, {"session_id": session_id}))
            if changes.get("webhook_url"):
                adopted = {
                    "k_session_id": session_id,
                    "k_since": record.created_at,
                    "v_url": record.webhook_url,
                }
                woken.append(tx.run(q.outbox_adopt_url, adopted | {"now": time.time()}))
            for new in events or ():
                tx.appended.append(self._append_event(tx, record, new))
            return record

        record = await self._transaction(change)
        if woken and woken[-1]:
            # Nothing new was appended, but lines became due: an empty list says just that.
            self.notify([])
        return record

    async def delete_session(self, session_id: str) -> bool:
        q = self.q

        woken: list[int] = []

        def remove(tx: Tx) -> bool:
            tx.run(q.message_delete_session, {"session_id": session_id})
            woken.append(
                tx.run(q.outbox_wake_session, {"session_id": session_id, "now": time.time()})
            )
            return tx.run(q.session_delete, {"session_id": session_id}) > 0

        removed = await self._transaction(remove)
        if woken and woken[-1]:
            self.notify([])
        return removed

    # messages

    async def enqueue_message(self, message: MessageRecord) -> tuple[MessageRecord, bool]:
        q = self.q
        integrity = self.engine.dialect.loaded_dbapi.IntegrityError
        key = {"workspace_id": message.workspace_id, "key": message.idempotency_key}

        def enqueue(tx: Tx) -> tuple[MessageRecord, bool]:
            if message.idempotency_key is not None:
                row = tx.one(q.message_idempotent, key)
                if row is not None:
                    return MessageRecord(*row), False
            try:
                return self._insert_message(tx, message), True
            except integrity:
                if message.idempotency_key is None:
                    raise
                # Another process inserted the key since the check: the unique key decided,
                # and at READ COMMITTED this statement sees the row that won.
                row = tx.one(q.message_idempotent, key)
                if row is None:
                    raise
                return MessageRecord(*row), False

        return await self._transaction(enqueue)

    async def get_message(self, message_id: str) -> MessageRecord | None:
        def get(tx: Tx) -> MessageRecord | None:
            row = tx.one(self.q.message_get, {"id": message_id})
            return MessageRecord(*row) if row else None

        return await self._read(get)

    async def find_idempotent(self, workspace_id: str, key: str) -> MessageRecord | None:
        def find(tx: Tx) -> MessageRecord | None:
            row = tx.one(self.q.message_idempotent, {"workspace_id": workspace_id, "key": key})
            return MessageRecord(*row) if row else None

        return await self._read(find)

    async def next_queued(self, session_id: str, now: float | None = None) -> MessageRecord | None:
        values = {"session_id": session_id, "now": time.time() if now is None else now}

        def next_one(tx: Tx) -> MessageRecord | None:
            row = tx.one(self.q.message_next, values)
            return MessageRecord(*row) if row else None

        return await self._read(next_one)

    async def next_send_at(self, session_id: str) -> float | None:
        def earliest(tx: Tx) -> float | None:
            row = tx.one(self.q.message_next_send_at, {"session_id": session_id})
            return None if row is None or row[0] is None else float(row[0])

        return await self._read(earliest)

    async def update_message(
        self,
        message_id: str,
        changes: dict[str, Any],
        events: list[NewEvent] | None = None,
        *,
        expect_status: str | None = None,
        fence: tuple[str, int] | None = None,
    ) -> MessageRecord:
        unknown = set(changes) - set(MESSAGE_COLUMNS)
        if unknown:
            raise ValueError(f"unknown message columns: {sorted(unknown)}")
        columns = tuple(sorted({*changes, "updated_at"}))
        stmt = self._update_stmt(self.tables.messages, "id", columns, expect_status is not None)
        q = self.q

        def change(tx: Tx) -> MessageRecord:
            if fence is not None:
                owner = tx.one(q.message_session, {"id": message_id})
                if owner is None:
                    raise LookupError(message_id)
                self._check_fence(tx, owner[0], fence)
            values = {f"v_{c}": v for c, v in changes.items()}
            values |= {"v_updated_at": time.time(), "k_key": message_id, "k_status": expect_status}
            if tx.run(stmt, values) == 0:
                current = tx.one(q.message_get, {"id": message_id})
                if current is None:
                    raise LookupError(message_id)
                raise StaleMessage(MessageRecord(*current))
            record = MessageRecord(*tx.one(q.message_get, {"id": message_id}))
            tx.appended += self._append_session_events(tx, record.session_id, events or [])
            return record

        return await self._transaction(change)

    async def find_message(
        self,
        session_id: str,
        provider_ref: str | None = None,
        *,
        provider_message_id: str | None = None,
    ) -> MessageRecord | None:
        stmt, value = (
            (self.q.message_by_ref, provider_ref)
            if provider_ref is not None
            else (self.q.message_by_provider_id, provider_message_id)
        )

        def find(tx: Tx) -> MessageRecord | None:
            row = tx.one(stmt, {"session_id": session_id, "value": value})
            return MessageRecord(*row) if row else None

        return await self._read(find)

    async def newest_inbound(
        self, session_id: str, chat_id: str, provider: str
    ) -> MessageRecord | None:
        args = {"session_id": session_id, "chat_id": chat_id, "provider": provider}

        def find(tx: Tx) -> MessageRecord | None:
            row = tx.one(self.q.newest_inbound, args)
            return MessageRecord(*row) if row else None

        return await self._read(find)

    async def record_inbound(
        self,
        message: MessageRecord,
        event: NewEvent,
        *,
        fence: tuple[str, int] | None = None,
    ) -> MessageRecord | None:
        q = self.q

        def record(tx: Tx) -> MessageRecord | None:
            if fence is not None:
                self._check_fence(tx, message.session_id, fence)
            # The session's row lock serialises deliveries of one session's inbound messages
            # across processes (a no-op on SQLite, whose writes are serial anyway).
            if not self.is_sqlite:
                tx.one(q.session_lock, {"session_id": message.session_id})
            known = tx.one(
                q.message_known, {"session_id": message.session_id, "ref": message.provider_ref}
            )
            if known:
                return None
            stored = self._insert_message(tx, message)
            tx.appended += self._append_session_events(tx, message.session_id, [event])
            return stored

        return await self._transaction(record)

    async def interrupt_sending(
        self,
        event_for: Callable[[MessageRecord], NewEvent],
        session_id: str | None = None,
        *,
        fence: tuple[str, int] | None = None,
    ) -> list[MessageRecord]:
        q = self.q

        def interrupt(tx: Tx) -> list[MessageRecord]:
            if session_id is None:
                ids = [row[0] for row in tx.all(q.message_sending)]
            else:
                if fence is not None:
                    self._check_fence(tx, session_id, fence)
                ids = [row[0] for row in tx.all(q.message_sending_of, {"session_id": session_id})]
            now = time.time()
            failed = []
            for message_id in ids:
                tx.run(q.message_interrupt, {"k_id": message_id, "now": now})
                record = MessageRecord(*tx.one(q.message_get, {"id": message_id}))
                tx.appended += self._append_session_events(
                    tx, record.session_id, [event_for(record)]
                )
                failed.append(record)
            return failed

        return await self._transaction(interrupt)

    async def count_messages(self, session_id: str, status: str) -> int:
        values = {"session_id": session_id, "status": status}
        return await self._read(lambda tx: int(tx.one(self.q.message_count, values)[0]))

    async def recent_messages(self, session_id: str, limit: int) -> list[MessageRecord]:
        values = {"session_id": session_id, "limit": limit}
        rows = await self._read(_fetch_all(self.q.message_recent, values))
        return [MessageRecord(*row) for row in rows]

    # outbox

    async def list_events(
        self, session_id: str | None = None, status: str | None = None, limit: int = 100
    ) -> list[OutboxEvent]:
        given = {"session_id": session_id, "status": status}
        filters = tuple(k for k, v in given.items() if v is not None)
        stmt = self._filtered(self.tables.outbox, self.q.outbox_cols, filters)
        values: dict[str, Any] = {f"f_{k}": given[k] for k in filters} | {"limit": limit}
        return await self._read(lambda tx: [OutboxEvent(*r) for r in tx.all(stmt, values)])

    async def due_events(self, now: float, busy: set[str], limit: int) -> list[OutboxEvent]:
        values = {"now": now, "limit": limit + len(busy)}

        def query(tx: Tx) -> list[OutboxEvent]:
            # The head of each session's line; only heads are ever delivered, which is what
            # keeps each session's events in order.
            events = [OutboxEvent(*r) for r in tx.all(self.q.outbox_due, values)]
            return [e for e in events if e.session_id not in busy][:limit]

        return await self._read(query)

    async def next_pending(self, session_id: str) -> OutboxEvent | None:
        def head(tx: Tx) -> OutboxEvent | None:
            row = tx.one(self.q.outbox_head, {"session_id": session_id})
            return OutboxEvent(*row) if row else None

        return await self._read(head)

    async def get_event(self, event_id: str) -> OutboxEvent | None:
        def get(tx: Tx) -> OutboxEvent | None:
            row = tx.one(self.q.outbox_get, {"id": event_id})
            return OutboxEvent(*row) if row else None

        return await self._read(get)

    async def due_lines(self, now: float, limit: int, *, owner: str | None = None) -> list[str]:
        values = {"now": now, "limit": limit, "owner": owner}
        rows = await self._read(lambda tx: tx.all(self.q.outbox_due_lines, values))
        return [row[0] for row in rows]

    async def claim_line(
        self, session_id: str, owner: str, now: float, ttl: float
    ) -> OutboxEvent | None:
        q = self.q
        width = len(OUTBOX_COLUMNS)
        key = {"session_id": session_id, "now": now, "owner": owner}

        def claim(tx: Tx) -> OutboxEvent | None:
            row = tx.one(q.outbox_head_lock, {"session_id": session_id})
            if row is None:
                return None
            event = OutboxEvent(*row[:width])
            claimed_by, claimed_until = row[width:]
            if event.next_attempt_at > now:
                return None
            if claimed_by not in (None, owner) and claimed_until is not None:
                if claimed_until > now:
                    return None
            if tx.one(q.outbox_line_held, key) is not None:
                return None
            tx.run(q.outbox_claim, {"k_id": event.id, "v_owner": owner, "v_until": now + ttl})
            return event

        return await self._transaction(claim)

    async def finish_attempt(
        self,
        event_id: str,
        changes: dict[str, Any],
        *,
        owner: str | None = None,
        attempted: bool = True,
    ) -> None:
        unknown = set(changes) - set(OUTBOX_COLUMNS)
        if unknown:
            raise ValueError(f"unknown outbox columns: {sorted(unknown)}")
        outbox = self.tables.outbox
        columns = tuple(sorted(set(changes) - {"attempts"}))
        fenced = owner is not None

        def build() -> ClauseElement:
            assignments: dict[str, Any] = {c: bindparam(f"v_{c}") for c in columns}
            if attempted:
                assignments["attempts"] = outbox.c.attempts + 1
            else:
                # A decision about an event with no URL: a webhook_url the session got since
                # the claim (update_session made the row due with it) wins over it.
                assignments = {
                    c: case((outbox.c.url.is_(None), value), else_=outbox.c[c])
                    for c, value in assignments.items()
                }
            where = [outbox.c.id == bindparam("k_key")]
            if fenced:
                # Only the claim's holder writes, and the write releases the claim.
                where.append(outbox.c.claimed_by == bindparam("k_owner"))
                assignments["claimed_by"] = None
                assignments["claimed_until"] = None
            return update(outbox).where(*where).values(assignments)

        stmt = self._dynamic_stmt(("finish", columns, fenced, attempted), build)
        values = {f"v_{c}": changes[c] for c in columns} | {"k_key": event_id}
        if owner is not None:
            values["k_owner"] = owner
        updated = await self._transaction(lambda tx: tx.run(stmt, values))
        if owner is not None and not updated:
            raise ClaimLost(event_id, owner)

    async def replay_event(self, event_id: str, now: float) -> OutboxEvent | None:
        q = self.q
        values = {"k_id": event_id, "now": now, "give_up_at": now + RETRY_WINDOW}

        def replay(tx: Tx) -> OutboxEvent | None:
            tx.run(q.outbox_replay, values)
            row = tx.one(q.outbox_get, {"id": event_id})
            return OutboxEvent(*row) if row else None

        event = await self._transaction(replay)
        if event is not None and event.status == "pending":
            # Nothing new was appended, but the line moved: an empty list says just that.
            self.notify([])
        return event

    async def replay_dead(self, match: DeadFilter, now: float) -> int:
        outbox = self.tables.outbox
        given = {k: v for k, v in asdict(match).items() if v is not None}
        keys = tuple(sorted(given))

        def build() -> ClauseElement:
            where = [outbox.c.status == "dead"]
            for key in keys:
                if key == "since":
                    where.append(outbox.c.created_at >= bindparam("f_since"))
                elif key == "until":
                    where.append(outbox.c.created_at < bindparam("f_until"))
                else:
                    where.append(outbox.c[key] == bindparam(f"f_{key}"))
            return (
                update(outbox)
                .where(*where)
                .values(
                    status="pending",
                    next_attempt_at=bindparam("now"),
                    give_up_at=bindparam("give_up_at"),
                    last_error=None,
                )
            )

        stmt = self._dynamic_stmt(("replay_dead", keys), build)
        values = {f"f_{k}": v for k, v in given.items()}
        values |= {"now": now, "give_up_at": now + RETRY_WINDOW}
        replayed = await self._transaction(lambda tx: tx.run(stmt, values))
        if replayed:
            self.notify([])
        return replayed

    async def wake_waiting(self, now: float) -> int:
        woken = await self._transaction(lambda tx: tx.run(self.q.outbox_wake_waiting, {"now": now}))
        if woken:
            self.notify([])
        return woken

    async def outbox_stats(self) -> dict[str, Any]:
        def stats(tx: Tx) -> dict[str, Any]:
            pending, oldest = tx.one(self.q.outbox_pending_stats)
            (dead,) = tx.one(self.q.outbox_dead_count)
            (without_url,) = tx.one(self.q.outbox_without_url_count)
            return {
                "pending": int(pending),
                "oldest_pending_at": oldest,
                "dead": int(dead),
                "pending_without_url": int(without_url),
            }

        return await self._read(stats)

    # cluster: nodes and leases

    async def heartbeat(self, node: NodeRecord, now: float) -> bool:
        q = self.q
        integrity = self.engine.dialect.loaded_dbapi.IntegrityError
        key = {"k_node": node.node_id}
        beat = key | {
            "v_role": node.role,
            "v_address": node.address,
            "v_capacity": node.capacity,
            "v_sessions": node.sessions,
            "v_now": now,
            "v_started": node.started_at,
            "v_host": node.host,
        }
        row = asdict(node) | {
            "started_at": node.started_at or now,
            "heartbeat_at": now,
            "draining": int(node.draining),
        }

        def upsert(tx: Tx) -> bool:
            # The row's lock orders this against a request_drain from another process.
            stored = tx.one(q.node_lock, key)
            if stored is None:
                try:
                    tx.run(q.node_insert, row)
                    return node.draining
                except integrity:
                    # Inserted by another process since the read: judge that row.
                    stored = tx.one(q.node_lock, key)
                    if stored is None:
                        raise
            started_at, requested = float(stored[0]), bool(stored[1])
            same_process = not node.started_at or started_at == node.started_at
            draining = node.draining or (requested and same_process)
            tx.run(q.node_beat, beat | {"v_draining": int(draining)})
            return draining

        return await self._transaction(upsert)

    async def request_drain(self, node_id: str) -> bool:
        values = {"k_node": node_id}
        return await self._transaction(lambda tx: tx.run(self.q.node_drain, values) > 0)

    async def list_nodes(self) -> list[NodeRecord]:
        rows = await self._read(lambda tx: tx.all(self.q.node_list))
        return [_node(row) for row in rows]

    async def remove_node(self, node_id: str) -> bool:
        values = {"node_id": node_id}
        return await self._transaction(lambda tx: tx.run(self.q.node_delete, values) > 0)

    async def acquire_lease(
        self, session_id: str, node_id: str, now: float, ttl: float
    ) -> Lease | None:
        q = self.q
        integrity = self.engine.dialect.loaded_dbapi.IntegrityError
        expires = now + ttl
        key = {"session_id": session_id}

        def acquire(tx: Tx) -> Lease | None:
            row = tx.one(q.lease_lock, key)
            if row is None:
                try:
                    tx.run(
                        q.lease_insert,
                        key | {"node_id": node_id, "token": 1, "now": now, "expires_at": expires},
                    )
                    return Lease(session_id, node_id, 1, expires)
                except integrity:
                    # Another process inserted the row since the lock found none: its insert
                    # decided, and at READ COMMITTED the lock now sees (and waits for) it.
                    row = tx.one(q.lease_lock, key)
                    if row is None:
                        raise
            held = _lease(row)
            if held.expires_at > now:
                if held.node_id != node_id:
                    return None
                tx.run(q.lease_extend, {"k_session": session_id, "v_expires": expires})
                return Lease(session_id, node_id, held.token, expires)
            token = held.token + 1
            tx.run(
                q.lease_take,
                {
                    "k_session": session_id,
                    "v_node": node_id,
                    "v_token": token,
                    "v_now": now,
                    "v_expires": expires,
                },
            )
            return Lease(session_id, node_id, token, expires)

        return await self._transaction(acquire)

    async def renew_leases(self, node_id: str, now: float, ttl: float) -> list[Lease]:
        q = self.q
        live = {"k_node": node_id, "k_now": now}

        def renew(tx: Tx) -> list[Lease]:
            tx.run(q.lease_renew, live | {"v_expires": now + ttl})
            # The renewed rows are locked until the commit: what is live now is what renewed.
            return [_lease(row) for row in tx.all(q.lease_live, live)]

        return await self._transaction(renew)

    async def release_lease(self, session_id: str, node_id: str, token: int) -> bool:
        values = {"k_session": session_id, "k_node": node_id, "k_token": token}
        return await self._transaction(lambda tx: tx.run(self.q.lease_release, values) > 0)

    async def check_lease(self, session_id: str, node_id: str, token: int, now: float) -> bool:
        row = await self._read(lambda tx: tx.one(self.q.lease_get, {"session_id": session_id}))
        if row is None:
            return False
        lease = _lease(row)
        return lease.node_id == node_id and lease.token == token and lease.expires_at > now

    async def lease(self, session_id: str) -> Lease | None:
        row = await self._read(lambda tx: tx.one(self.q.lease_get, {"session_id": session_id}))
        return None if row is None else _lease(row)

    async def leases(self, node_id: str | None = None) -> list[Lease]:
        q = self.q
        if node_id is None:
            rows = await self._read(lambda tx: tx.all(q.lease_list))
        else:
            rows = await self._read(lambda tx: tx.all(q.lease_list_of, {"node_id": node_id}))
        return [_lease(row) for row in rows]

    # dashboard

    async def events_after(self, seq: int, limit: int) -> list[OutboxEvent]:
        outbox = self.tables.outbox

        def build() -> ClauseElement:
            return (
                select(*self.q.outbox_cols)
                .where(outbox.c.seq > bindparam("after"))
                .order_by(outbox.c.seq)
                .limit(bindparam("limit"))
            )

        stmt = self._dynamic_stmt(("events_after",), build)
        rows = await self._read(_fetch_all(stmt, {"after": seq, "limit": limit}))
        return [OutboxEvent(*row) for row in rows]

    async def find_events(
        self, status: str, match: DeadFilter, limit: int
    ) -> tuple[list[OutboxEvent], int]:
        outbox = self.tables.outbox
        given = {k: v for k, v in asdict(match).items() if v is not None}
        keys = tuple(sorted(given))

        def where() -> list[Any]:
            # The same conditions as replay_dead's, so what is listed is what it replays.
            conditions = [outbox.c.status == bindparam("f_status")]
            for key in keys:
                if key == "since":
                    conditions.append(outbox.c.created_at >= bindparam("f_since"))
                elif key == "until":
                    conditions.append(outbox.c.created_at < bindparam("f_until"))
                else:
                    conditions.append(outbox.c[key] == bindparam(f"f_{key}"))
            return conditions

        rows_stmt = self._dynamic_stmt(
            ("find_events", keys),
            lambda: (
                select(*self.q.outbox_cols)
                .where(*where())
                .order_by(outbox.c.seq)
                .limit(bindparam("limit"))
            ),
        )
        count_stmt = self._dynamic_stmt(
            ("count_events", keys), lambda: select(func.count()).where(*where())
        )
        values = {f"f_{k}": v for k, v in given.items()} | {"f_status": status}

        def find(tx: Tx) -> tuple[list[OutboxEvent], int]:
            rows = tx.all(rows_stmt, values | {"limit": limit})
            (total,) = tx.one(count_stmt, values)
            return [OutboxEvent(*row) for row in rows], int(total)

        return await self._read(find)

    async def message_mark(self) -> int:
        messages = self.tables.messages
        stmt = self._dynamic_stmt(("message_mark",), lambda: select(func.max(messages.c.seq)))
        row = await self._read(lambda tx: tx.one(stmt))
        return int(row[0] or 0)

    # -- inside transactions -------------------------------------------------------------

    async def stored_media_before(self, before: float, limit: int) -> list[MessageRecord]:
        values = {"before": before, "limit": limit}
        rows = await self._read(_fetch_all(self.q.message_media_before, values))
        return [MessageRecord(*row) for row in rows]

    async def forget_media(self, message_id: str, stored_at: float, content: str) -> bool:
        values = {"k_id": message_id, "k_stored": stored_at, "content": content}

        def forget(tx: Tx) -> bool:
            return tx.run(self.q.message_forget_media, values | {"now": time.time()}) > 0

        return await self._transaction(forget)

    def _check_fence(self, tx: Tx, session_id: str, fence: tuple[str, int]) -> None:
        """Raise LeaseLost unless the session's lease is `fence`'s node and token and has not
        expired; on MySQL the lease row stays locked to the commit, so no takeover can
        slip in between this check and the write."""
        node_id, token = fence
        row = tx.one(self.q.lease_lock, {"session_id": session_id})
        if row is None:
            raise LeaseLost(session_id, token)
        lease = _lease(row)
        if lease.node_id != node_id or lease.token != token or lease.expires_at <= time.time():
            raise LeaseLost(session_id, token)

    def _insert_message(self, tx: Tx, message: MessageRecord) -> MessageRecord:
        now = time.time()
        row = asdict(message) | {"created_at": message.created_at or now, "updated_at": now}
        seq = tx.insert(self.q.message_insert, row)
        return MessageRecord(**(row | {"seq": seq}))

    def _append_session_events(
        self, tx: Tx, session_id: str, events: list[NewEvent]
    ) -> list[AppendedEvent]:
        """Append events for a session read inside this transaction (a deleted one gets none)."""
        if not events:
            return []
        if not self.is_sqlite:
            # InnoDB numbers a row when it is inserted, not when it commits: without the
            # session's row lock, two transactions of one session could commit their events
            # out of seq order, and the dispatcher would deliver the later one first.
            tx.one(self.q.session_lock, {"session_id": session_id})
        row = tx.one(self.q.session_get, {"session_id": session_id})
        if row is None:
            return []
        session = SessionRecord(*row)
        return [self._append_event(tx, session, new) for new in events]

    def _append_event(self, tx: Tx, session: SessionRecord, new: NewEvent) -> AppendedEvent:
        """Write one webhook event; its body is frozen now (the session's metadata as it is
        at this moment), so retries send the same bytes. An event the session's
        `webhook_events` leaves out is not written: nothing else reads the outbox."""
        event_id = new_event_id()
        if not session.sends(new.event):
            return AppendedEvent(event_id, session.workspace_id, session.session_id, new, False)
        now = time.time()
        body = json.dumps(
            {
                "id": event_id,
                "event": new.event,
                "timestamp": int(now),
                "workspace_id": session.workspace_id,
                "session_id": session.session_id,
                "metadata": session.metadata_object(),
                "data": new.data,
            },
            separators=(",", ":"),
            ensure_ascii=False,
        )
        tx.run(
            self.q.outbox_insert,
            {
                "id": event_id,
                "event": new.event,
                "workspace_id": session.workspace_id,
                "session_id": session.session_id,
                "url": session.webhook_url,
                "body": body,
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": now,
                "give_up_at": now + RETRY_WINDOW,
                "created_at": now,
            },
        )
        return AppendedEvent(event_id, session.workspace_id, session.session_id, new)


def _node(row: Sequence[Any]) -> NodeRecord:
    node = NodeRecord(*row)
    return NodeRecord(**(asdict(node) | {"draining": bool(node.draining)}))


def _lease(row: Sequence[Any]) -> Lease:
    session_id, node_id, token, expires_at = row
    return Lease(session_id, node_id, int(token), float(expires_at))


def _one_line(exc: BaseException) -> str:
    """A driver error as one short line: `(2003) Can't connect ...` without the traceback."""
    orig = getattr(exc, "orig", None) or exc
    args = orig.args
    if len(args) >= 2 and isinstance(args[0], int):
        text = f"({args[0]}) {args[1]}"
    else:
        text = str(orig) or type(orig).__name__
    return " ".join(text.split())


def _driver(fairy: Any) -> Any:
    """The driver's own connection (sqlite3 or pymysql) under a pool checkout."""
    connection = fairy.driver_connection
    if connection is None:
        raise RuntimeError("the connection was closed")
    return connection


def _fetch_all(stmt: Stmt, values: dict[str, Any]) -> Callable[[Tx], list[Any]]:
    return lambda tx: tx.all(stmt, values)


def _close_cursor(cur: Any) -> None:
    """Close a driver cursor; on a lost connection that may fail, and nothing is lost."""
    try:
        cur.close()
    except Exception:
        log.debug("closing a cursor failed", exc_info=True)
