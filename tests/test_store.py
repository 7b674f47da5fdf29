"""The SQLite store: migrations, WAL, atomic writes with their outbox events."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from service.errors import Conflict, SessionNotFound
from service.store import NewEvent, SessionRecord, SQLiteStore
from service.store.migrations import MIGRATIONS


async def open_store(path: Path) -> SQLiteStore:
    store = SQLiteStore(path)
    await store.open()
    return store


async def test_migrations_apply_once_and_are_recorded(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite3"
    store = await open_store(db)
    await store.create_session(SessionRecord(session_id="a", workspace_id="w"))
    await store.close()
    # Opening again must neither fail nor lose rows.
    store = await open_store(db)
    assert (await store.get_session("a")) is not None
    await store.close()
    conn = sqlite3.connect(db)
    versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations")]
    assert versions == [v for v, _, _ in MIGRATIONS]
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


async def test_update_writes_events_in_the_same_transaction(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "s.sqlite3")
    await store.create_session(
        SessionRecord(session_id="a", workspace_id="w", webhook_url="http://x.test/h")
    )
    record = await store.update_session(
        "a",
        {"status": "qr_required"},
        [NewEvent("session_status_changed", {"status": "qr_required", "previous": "stopped"})],
    )
    assert record.status == "qr_required"
    (event,) = await store.list_events(session_id="a")
    body = json.loads(event.body)
    assert body["id"] == event.id and event.id.startswith("evt_")
    assert body["event"] == "session_status_changed"
    assert body["workspace_id"] == "w" and body["session_id"] == "a"
    assert body["data"] == {"status": "qr_required", "previous": "stopped"}
    assert isinstance(body["timestamp"], int)
    assert event.url == "http://x.test/h"
    assert event.status == "pending"
    await store.close()


async def test_failed_update_leaves_no_event(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "s.sqlite3")
    with pytest.raises(SessionNotFound):
        await store.update_session("ghost", {"status": "connected"}, [NewEvent("x", {})])
    assert await store.list_events() == []
    with pytest.raises(ValueError):
        await store.update_session("ghost", {"no_such_column": 1})
    await store.close()


async def test_duplicate_create_conflicts(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "s.sqlite3")
    await store.create_session(SessionRecord(session_id="a", workspace_id="w"))
    with pytest.raises(Conflict):
        await store.create_session(SessionRecord(session_id="a", workspace_id="w"))
    assert await store.count_sessions() == 1
    await store.close()


async def test_filters_and_delete(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "s.sqlite3")
    for sid, ws, desired in (
        ("a", "w1", "running"),
        ("b", "w1", "stopped"),
        ("c", "w2", "running"),
    ):
        await store.create_session(
            SessionRecord(session_id=sid, workspace_id=ws, desired_state=desired)
        )
    assert [s.session_id for s in await store.list_sessions(workspace_id="w1")] == ["a", "b"]
    assert [s.session_id for s in await store.list_sessions(desired_state="running")] == ["a", "c"]
    assert await store.delete_session("a")
    assert not await store.delete_session("a")
    assert await store.count_sessions() == 2
    assert await store.ping()
    await store.close()


async def test_a_status_write_on_a_stale_record_never_overwrites_a_newer_stop(
    tmp_path: Path,
) -> None:
    from service.sessions.state import StatusWriter
    from service.store import StaleStatus

    store = await open_store(tmp_path / "s.sqlite3")
    await store.create_session(
        SessionRecord(session_id="a", workspace_id="w", status="authenticating")
    )
    seen = await store.get_session("a")
    assert seen is not None
    # The operator stops the session while a page event about it is being handled.
    await store.update_session("a", {"status": "stopped"})
    with pytest.raises(StaleStatus) as stale:
        await store.update_session("a", {"status": "connected"}, expect_status="authenticating")
    assert stale.value.current.status == "stopped"

    writer = StatusWriter(store)
    after = await writer.move(seen, "connected", changes={"phone_number": "5511999990001"})
    assert after.status == "stopped"
    events = [e.event for e in await store.list_events("a")]
    assert "session_status_changed" not in events
    # A move the current status allows still goes through on the fresh record.
    restarted = await writer.move(seen, "initializing")
    assert restarted.status == "initializing"
    await store.close()


async def test_migration_3_gives_old_messages_their_provider_ref(tmp_path: Path) -> None:
    db = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(db)
    conn.execute(
        "CREATE TABLE schema_migrations (version INTEGER NOT NULL PRIMARY KEY,"
        " name TEXT NOT NULL, applied_at REAL NOT NULL)"
    )
    for version, name, statements in MIGRATIONS[:2]:
        for statement in statements:
            conn.execute(statement)
        conn.execute("INSERT INTO schema_migrations VALUES (?, ?, 0)", (version, name))
    rows = [
        ("m1", "webjs", "true_5511988880002@c.us_3EB0AA11"),
        ("m2", "webjs", "false_120363000000000001@g.us_3EB0BB22_5511977770003@c.us"),
        ("m3", "meta", "wamid.HBgL_x"),
    ]
    for message_id, provider, provider_id in rows:
        conn.execute(
            "INSERT INTO messages (id, session_id, workspace_id, direction, chat_id, type,"
            " content, status, provider, provider_message_id, created_at, updated_at)"
            " VALUES (?, 's', 'w', 'out', 'c', 'text', '{}', 'sent', ?, ?, 0, 0)",
            (message_id, provider, provider_id),
        )
    conn.commit()
    conn.close()
    store = await open_store(db)
    refs = {m: (await store.get_message(m)).provider_ref for m in ("m1", "m2", "m3")}  # type: ignore[union-attr]
    assert refs == {"m1": "3EB0AA11", "m2": "3EB0BB22", "m3": "wamid.HBgL_x"}
    found = await store.find_message("s", "3EB0BB22")
    assert found is not None and found.id == "m2"
    await store.close()


async def test_a_refused_move_writes_nothing_that_came_with_it(tmp_path: Path) -> None:
    from service.sessions.state import StatusWriter

    store = await open_store(tmp_path / "s.sqlite3")
    await store.create_session(SessionRecord(session_id="a", workspace_id="w", status="stopped"))
    stopped = await store.get_session("a")
    assert stopped is not None
    writer = StatusWriter(store)
    after = await writer.move(
        stopped,
        "qr_required",
        changes={"qr": "2@ref,keys", "qr_expires_at": 1.0},
        events=[NewEvent("qr_code_generated", {"qr": "2@ref,keys"})],
    )
    assert (after.status, after.qr) == ("stopped", None)
    assert await store.list_events("a") == []
    await store.close()


async def test_provider_reports_never_move_a_message_back_even_on_a_stale_copy(
    tmp_path: Path,
) -> None:
    from service.messaging.status import apply_status
    from service.store import MessageRecord

    store = await open_store(tmp_path / "s.sqlite3")
    await store.create_session(SessionRecord(session_id="s", workspace_id="w"))
    base = MessageRecord(
        id="m1", session_id="s", workspace_id="w", direction="out", chat_id="1@c.us",
        type="text", content="{}", status="sent", provider="webjs", provider_ref="R1",
    )  # fmt: skip
    await store.enqueue_message(base)
    stale = await store.get_message("m1")
    assert stale is not None
    # A "read" lands first; a "delivered" decided on the older copy must not undo it.
    assert await apply_status(store, stale, "read") is not None
    assert await apply_status(store, stale, "delivered") is None
    current = await store.get_message("m1")
    assert current is not None and current.status == "read"
    # A provider that cannot tell what happened settles only a message still in flight.
    assert await apply_status(store, current, "failed", "interrupted", unsure=True) is None
    statuses = [json.loads(e.body)["data"]["status"] for e in await store.list_events("s")]
    assert statuses == ["read"]
    await store.close()
