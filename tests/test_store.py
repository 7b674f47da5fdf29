"""The store: one conformance suite run on SQLite and on a real MariaDB.

Every behaviour test takes `stores` (parametrized over both engines); each MariaDB test gets
a database of its own. Below them: what only one engine has (the SQLite file, adopting a
pre-Alembic file; MySQL retries, reconnection, races between two processes' stores).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pymysql
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from service.errors import ConfigError, Conflict, SessionNotFound
from service.store import (
    NO_WEBHOOK_URL,
    RETRY_WINDOW,
    AppendedEvent,
    DeadFilter,
    Lease,
    LeaseLost,
    MessageRecord,
    NewEvent,
    NodeRecord,
    SessionRecord,
    SQLiteStore,
    SqlStore,
    StaleMessage,
    StaleStatus,
    open_store,
)
from service.store.campaigns import CampaignRecord, CampaignStore, NewRecipient
from service.store.migrations import head_revision
from service.store.migrations.legacy import LEGACY_MIGRATIONS
from service.store.schema import tables
from tests.support.mariadb import PrivateMariaDB
from tests.support.stores import Opener, database_name, opened_stores


@pytest.fixture
def mariadb_url(request: pytest.FixtureRequest, mariadb_server: PrivateMariaDB) -> str:
    return mariadb_server.fresh_database(database_name(request))


@pytest.fixture
async def stores(db_url: str) -> AsyncIterator[Opener]:
    """Open stores on this test's database (closed at the end)."""
    async for opener in opened_stores(db_url):
        yield opener


@pytest.fixture
async def mysql_stores(mariadb_url: str) -> AsyncIterator[Opener]:
    async for opener in opened_stores(mariadb_url):
        yield opener


def message(message_id: str, **changes: Any) -> MessageRecord:
    base = MessageRecord(
        id=message_id, session_id="s", workspace_id="w", direction="out", chat_id="1@c.us",
        type="text", content='{"text":"hi"}', status="queued",
    )  # fmt: skip
    return MessageRecord(**(base.__dict__ | changes))


# --- conformance: both engines ---------------------------------------------------------


async def test_opening_again_migrates_nothing_and_keeps_rows(stores: Opener) -> None:
    store = await stores()
    await store.create_session(SessionRecord(session_id="a", workspace_id="w"))
    await store.close()
    again = await stores()
    assert (await again.get_session("a")) is not None
    assert await again.schema_status() == (head_revision(), head_revision())


async def test_status_without_migrating_then_migrate(db_url: str) -> None:
    store = SqlStore(db_url)
    await store.open(migrate=False)
    try:
        assert await store.schema_status() == (None, head_revision())
        await store.migrate()
        assert await store.schema_status() == (head_revision(), head_revision())
        await store.migrate()  # nothing left to do
        await store.create_session(SessionRecord(session_id="a", workspace_id="w"))
        assert await store.count_sessions() == 1
    finally:
        await store.close()


async def test_the_migrated_schema_is_the_declared_one(stores: Opener) -> None:
    store = await stores()

    def compare(conn: Any) -> list[Any]:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "version_table": "wa_alembic_version"}
        )
        return compare_metadata(context, tables("wa_", collation=store.collation).metadata)

    with store.engine.connect() as conn:
        assert compare(conn) == []


async def test_update_writes_events_in_the_same_transaction(stores: Opener) -> None:
    store = await stores()
    heard: list[list[AppendedEvent]] = []
    store.subscribe(heard.append)
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
    assert (event.status, event.attempts, event.seq) == ("pending", 0, 1)
    assert event.give_up_at == pytest.approx(event.created_at + 86400)
    # Listeners hear of it after the commit, with what was appended.
    assert [[(e.id, e.session_id, e.event.event) for e in batch] for batch in heard] == [
        [(event.id, "a", "session_status_changed")]
    ]


async def test_each_event_carries_the_metadata_of_its_moment_and_only_listed_events_are_written(
    stores: Opener,
) -> None:
    store = await stores()
    heard: list[AppendedEvent] = []
    store.subscribe(heard.extend)
    await store.create_session(
        SessionRecord(
            session_id="a",
            workspace_id="w",
            metadata='{"account":{"id":7,"name":"Zoë"}}',
            webhook_events='["session_status_changed"]',
        )
    )
    status = NewEvent("session_status_changed", {"status": "qr_required", "previous": "stopped"})
    qr = NewEvent("qr_code_generated", {"qr": "x"})
    await store.update_session("a", {"status": "qr_required"}, [status, qr])
    await store.update_session("a", {"metadata": '{"account":{"id":8}}', "webhook_events": None})
    await store.update_session("a", {"qr": "y"}, [qr])
    await store.update_session("a", {"metadata": None}, [status])
    events = await store.list_events(session_id="a")
    assert [e.event for e in events] == [
        "session_status_changed",
        "qr_code_generated",
        "session_status_changed",
    ]
    bodies = [json.loads(e.body) for e in events]
    # The body was frozen when the event was written: a later change does not reach it.
    assert [b["metadata"] for b in bodies] == [
        {"account": {"id": 7, "name": "Zoë"}},
        {"account": {"id": 8}},
        None,
    ]
    assert list(bodies[0]) == [
        "id", "event", "timestamp", "workspace_id", "session_id", "metadata", "data"
    ]  # fmt: skip
    # The filtered QR never reached the outbox, yet listeners (metrics, broadcasts) heard it.
    assert [(e.event.event, e.written) for e in heard] == [
        ("session_status_changed", True),
        ("qr_code_generated", False),
        ("qr_code_generated", True),
        ("session_status_changed", True),
    ]
    assert await store.get_event(heard[1].id) is None


async def test_failed_update_leaves_no_event_and_tells_no_listener(stores: Opener) -> None:
    store = await stores()
    heard: list[list[AppendedEvent]] = []
    store.subscribe(heard.append)
    with pytest.raises(SessionNotFound):
        await store.update_session("ghost", {"status": "connected"}, [NewEvent("x", {})])
    assert await store.list_events() == []
    with pytest.raises(ValueError):
        await store.update_session("ghost", {"no_such_column": 1})
    assert heard == []


async def test_a_failing_listener_does_not_undo_or_stop_the_others(stores: Opener) -> None:
    store = await stores()
    heard: list[int] = []

    def broken(events: list[AppendedEvent]) -> None:
        raise RuntimeError("listener bug")

    store.subscribe(broken)
    store.subscribe(lambda events: heard.append(len(events)))
    await store.create_session(SessionRecord(session_id="a", workspace_id="w"))
    await store.update_session("a", {}, [NewEvent("x", {}), NewEvent("y", {})])
    assert heard == [2]
    assert len(await store.list_events()) == 2


async def test_duplicate_create_conflicts(stores: Opener) -> None:
    store = await stores()
    await store.create_session(SessionRecord(session_id="a", workspace_id="w"))
    with pytest.raises(Conflict):
        await store.create_session(SessionRecord(session_id="a", workspace_id="w"))
    assert await store.count_sessions() == 1


async def test_filters_and_delete(stores: Opener) -> None:
    store = await stores()
    for sid, ws, desired in (
        ("a", "w1", "running"),
        ("b", "w1", "stopped"),
        ("c", "w2", "running"),
    ):
        await store.create_session(
            SessionRecord(session_id=sid, workspace_id=ws, desired_state=desired)
        )
    await store.update_session("c", {"meta_phone_number_id": "1098"})
    assert [s.session_id for s in await store.list_sessions(workspace_id="w1")] == ["a", "b"]
    assert [s.session_id for s in await store.list_sessions(desired_state="running")] == ["a", "c"]
    assert [s.session_id for s in await store.list_sessions(meta_phone_number_id="1098")] == ["c"]
    assert [s.session_id for s in await store.list_sessions("w1", "stopped", "running")] == ["a"]
    await store.enqueue_message(message("m1", session_id="a"))
    assert await store.delete_session("a")
    assert not await store.delete_session("a")
    assert await store.get_message("m1") is None
    assert await store.count_sessions() == 2
    assert await store.ping()


async def test_a_compare_and_set_that_writes_the_same_values_still_matches(
    stores: Opener,
) -> None:
    # MySQL counts changed rows unless the connection asks for found rows; a CAS that
    # changes nothing must not read as "someone moved it first".
    store = await stores()
    await store.create_session(SessionRecord(session_id="s", workspace_id="w"))
    before = await store.get_session("s")
    assert before is not None
    same = await store.update_session(
        "s", {"status": "stopped", "desired_state": "stopped"}, expect_status="stopped"
    )
    assert same.status == "stopped"
    await store.enqueue_message(message("m1"))
    moved = await store.update_message("m1", {"status": "queued"}, expect_status="queued")
    assert moved.status == "queued"
    with pytest.raises(StaleMessage) as stale:
        await store.update_message("m1", {"status": "sent"}, expect_status="sending")
    assert stale.value.current.status == "queued"
    with pytest.raises(LookupError):
        await store.update_message("nope", {"status": "sent"})
    # Underneath: an UPDATE whose values are all already there counts its row as matched.
    stmt = store._update_stmt(store.tables.sessions, "session_id", ("status",), True)
    values = {"v_status": "stopped", "k_key": "s", "k_status": "stopped"}
    assert await store._transaction(lambda tx: tx.run(stmt, values)) == 1


async def test_a_status_write_on_a_stale_record_never_overwrites_a_newer_stop(
    stores: Opener,
) -> None:
    from service.sessions.state import StatusWriter

    store = await stores()
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


async def test_a_refused_move_writes_nothing_that_came_with_it(stores: Opener) -> None:
    from service.sessions.state import StatusWriter

    store = await stores()
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


async def test_provider_reports_never_move_a_message_back_even_on_a_stale_copy(
    stores: Opener,
) -> None:
    from service.messaging.status import apply_status

    store = await stores()
    await store.create_session(SessionRecord(session_id="s", workspace_id="w"))
    await store.enqueue_message(message("m1", status="sent", provider="webjs", provider_ref="R1"))
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


async def test_queue_order_idempotency_lookups_and_interruption(stores: Opener) -> None:
    store = await stores()
    await store.create_session(SessionRecord(session_id="s", workspace_id="w"))
    await store.enqueue_message(message("m1", priority="bulk"))
    await store.enqueue_message(message("m2", idempotency_key="K"))
    await store.enqueue_message(message("m3", priority="bulk"))
    first = await store.next_queued("s")
    assert first is not None and first.id == "m2"  # normal before bulk, then oldest first
    again, created = await store.enqueue_message(message("m9", idempotency_key="K"))
    assert (again.id, created) == ("m2", False)
    assert await store.get_message("m9") is None
    found = await store.find_idempotent("w", "K")
    assert found is not None and found.id == "m2"
    assert await store.find_idempotent("other", "K") is None
    assert await store.count_messages("s", "queued") == 3

    await store.update_message(
        "m2", {"status": "sending", "provider_message_id": "true_1@c.us_ABC", "provider_ref": "ABC"}
    )
    by_ref = await store.find_message("s", "ABC")
    by_id = await store.find_message("s", provider_message_id="true_1@c.us_ABC")
    assert by_ref is not None and by_id is not None and by_ref.id == by_id.id == "m2"
    assert await store.find_message("other", "ABC") is None
    nxt = await store.next_queued("s")
    assert nxt is not None and nxt.id == "m1"

    heard: list[list[AppendedEvent]] = []
    store.subscribe(heard.append)
    failed = await store.interrupt_sending(
        lambda record: NewEvent("message_status_updated", {"id": record.id, "status": "failed"})
    )
    assert [(m.id, m.status, m.error) for m in failed] == [("m2", "failed", "interrupted")]
    assert [e.event.data["id"] for batch in heard for e in batch] == ["m2"]
    assert await store.interrupt_sending(lambda r: NewEvent("x", {})) == []


async def test_recent_messages_are_a_sessions_newest_first_in_and_out(stores: Opener) -> None:
    store = await stores()
    for sid in ("s", "t"):
        await store.create_session(SessionRecord(session_id=sid, workspace_id="w"))
    for n in range(4):
        await store.enqueue_message(message(f"m{n}"))
    await store.enqueue_message(message("x1", session_id="t"))
    inbound = message("in1", direction="in", status="received", provider_ref="R1")
    await store.record_inbound(inbound, NewEvent("message_received", {"id": "in1"}))
    recent = await store.recent_messages("s", 3)
    assert [(m.id, m.direction) for m in recent] == [("in1", "in"), ("m3", "out"), ("m2", "out")]
    assert [m.id for m in await store.recent_messages("t", 10)] == ["x1"]
    assert await store.recent_messages("nobody", 10) == []


async def test_a_scheduled_message_is_not_taken_before_its_time_and_survives_a_reopen(
    stores: Opener,
) -> None:
    store = await stores()
    await store.create_session(SessionRecord(session_id="s", workspace_id="w"))
    now = 1_900_000_000.25
    await store.enqueue_message(message("later", status="scheduled", send_at=now + 60))
    await store.enqueue_message(
        message("soon", status="scheduled", send_at=now + 10, priority="bulk")
    )
    assert await store.next_queued("s", now) is None
    assert await store.next_send_at("s") == now + 10
    assert await store.next_send_at("other") is None
    await store.enqueue_message(message("now"))
    await store.close()

    store = await stores()  # durable: a restart finds them as they were
    stored = await store.get_message("later")
    assert stored is not None and (stored.status, stored.send_at) == ("scheduled", now + 60)
    taken = await store.next_queued("s", now + 10)
    assert taken is not None and taken.id == "now"  # normal before bulk, even once due
    await store.update_message("now", {"status": "sending"}, expect_status="queued")
    taken = await store.next_queued("s", now + 10)
    assert taken is not None and taken.id == "soon"
    taken = await store.next_queued("s", now + 60)
    assert taken is not None and taken.id == "later"  # due: in its place by seq
    # The claim and a cancel are compare-and-sets on `scheduled`: one wins.
    await store.update_message("later", {"status": "sending"}, expect_status="scheduled")
    with pytest.raises(StaleMessage) as stale:
        await store.update_message("later", {"status": "cancelled"}, expect_status="scheduled")
    assert stale.value.current.status == "sending"
    await store.update_message("soon", {"status": "cancelled"}, expect_status="scheduled")
    assert await store.next_queued("s", now + 3600) is None
    assert await store.next_send_at("s") is None


async def test_inbound_messages_are_recorded_once(stores: Opener) -> None:
    store = await stores()
    await store.create_session(SessionRecord(session_id="s", workspace_id="w"))
    inbound = message("in1", direction="in", status="received", provider_ref="R9")
    stored = await store.record_inbound(inbound, NewEvent("message_received", {"id": "in1"}))
    assert stored is not None and stored.seq > 0
    repeat = await store.record_inbound(
        message("in2", direction="in", status="received", provider_ref="R9"),
        NewEvent("message_received", {"id": "in2"}),
    )
    assert repeat is None
    assert [json.loads(e.body)["data"] for e in await store.list_events("s")] == [{"id": "in1"}]
    # A message for a session that is gone is kept, but announces nothing.
    orphan = await store.record_inbound(
        message("in3", session_id="gone", direction="in", status="received", provider_ref="R1"),
        NewEvent("message_received", {"id": "in3"}),
    )
    assert orphan is not None and await store.list_events("gone") == []


async def test_stored_media_is_listed_oldest_first_and_forgotten_once(stores: Opener) -> None:
    store = await stores()
    await store.create_session(SessionRecord(session_id="s", workspace_id="w"))
    for i, stored_at in enumerate((300.0, 100.0, None, 200.0)):
        inbound = message(
            f"in{i}", direction="in", status="received", provider_ref=f"R{i}",
            media_stored_at=stored_at,
        )  # fmt: skip
        await store.record_inbound(inbound, NewEvent("message_received", {}))
    due = await store.stored_media_before(250.0, 10)
    assert [(m.id, m.media_stored_at) for m in due] == [("in1", 100.0), ("in3", 200.0)]
    assert [m.id for m in await store.stored_media_before(250.0, 1)] == ["in1"]
    gone = '{"media": {"file": null, "reason": "expired"}}'
    # A compare-and-set on the time it was stored: a second pass (or another process)
    # holding the same row writes nothing.
    assert await store.forget_media("in1", 100.0, gone) is True
    assert await store.forget_media("in1", 100.0, '{"other": 1}') is False
    assert await store.forget_media("in3", 999.0, '{"other": 1}') is False
    record = await store.get_message("in1")
    assert record is not None and (record.content, record.media_stored_at) == (gone, None)
    assert [m.id for m in await store.stored_media_before(1e12, 10)] == ["in3", "in0"]
    assert await store.forget_media("nope", 1.0, gone) is False


async def test_outbox_lines_heads_attempts_and_replay(stores: Opener) -> None:
    store = await stores()
    for sid in ("a", "b"):
        await store.create_session(SessionRecord(session_id=sid, workspace_id="w"))
        await store.update_session(sid, {}, [NewEvent("e", {"n": i}) for i in range(3)])
    now = time.time() + 1
    heads = await store.due_events(now, set(), 10)
    assert sorted((e.session_id, json.loads(e.body)["data"]["n"]) for e in heads) == [
        ("a", 0),
        ("b", 0),
    ]
    assert [e.session_id for e in await store.due_events(now, {"a"}, 10)] == ["b"]
    assert len(await store.due_events(now, set(), 1)) == 1
    head_a = next(e for e in heads if e.session_id == "a")
    # A head waiting for a retry holds its whole line back.
    await store.finish_attempt(head_a.id, {"next_attempt_at": now + 100, "last_error": "HTTP 500"})
    assert [e.session_id for e in await store.due_events(now, set(), 10)] == ["b"]
    retried = await store.get_event(head_a.id)
    assert retried is not None and (retried.attempts, retried.last_error) == (1, "HTTP 500")
    await store.finish_attempt(head_a.id, {"status": "delivered", "delivered_at": now})
    nxt = await store.next_pending("a")
    assert nxt is not None and json.loads(nxt.body)["data"]["n"] == 1
    await store.finish_attempt(nxt.id, {"status": "dead", "last_status_code": 410})
    stats = await store.outbox_stats()
    assert (stats["pending"], stats["dead"]) == (4, 1)
    assert stats["oldest_pending_at"] == min(
        e.created_at for e in await store.list_events(status="pending")
    )
    assert [e.id for e in await store.list_events(status="dead")] == [nxt.id]
    assert len(await store.list_events(limit=2)) == 2
    assert [e.seq for e in await store.list_events("b")] == sorted(
        e.seq for e in await store.list_events("b")
    )

    heard: list[list[AppendedEvent]] = []
    store.subscribe(heard.append)
    replayed = await store.replay_event(nxt.id, now)
    assert replayed is not None and (replayed.status, replayed.last_error) == ("pending", None)
    assert replayed.give_up_at == pytest.approx(now + 86400)
    assert heard == [[]]  # the line moved, nothing new was appended
    await store.finish_attempt(nxt.id, {"status": "delivered"})
    delivered = await store.replay_event(nxt.id, now)  # only a dead event goes back in line
    assert delivered is not None and delivered.status == "delivered"
    assert heard == [[]]
    assert await store.replay_event("evt_nope", now) is None
    assert await store.get_event("evt_nope") is None
    with pytest.raises(ValueError):
        await store.finish_attempt(nxt.id, {"bogus": 1})


async def test_replay_dead_takes_exactly_the_matching_dead_events(stores: Opener) -> None:
    store = await stores()
    # Two workspaces, three sessions, two event names; a moment between two batches.
    layout = {"a": "w1", "b": "w1", "c": "w2"}
    for sid, ws in layout.items():
        await store.create_session(SessionRecord(session_id=sid, workspace_id=ws))
        await store.update_session(sid, {}, [NewEvent("e1", {}), NewEvent("e2", {})])
    middle = time.time()
    while time.time() <= middle:
        await asyncio.sleep(0.001)
    await store.update_session("a", {}, [NewEvent("e1", {"late": True})])
    events = await store.list_events()
    late = {e.id for e in events if e.created_at > middle}
    delivered = events[0]  # delivered stays delivered, whatever matches
    await store.finish_attempt(delivered.id, {"status": "delivered"})
    dead = {e.id: e for e in events[1:]}

    def ids(pick: Callable[[Any], bool]) -> set[str]:
        return {i for i, e in dead.items() if pick(e)}

    cases: list[tuple[DeadFilter, set[str]]] = [
        (DeadFilter(), set(dead)),
        (DeadFilter(session_id="a"), ids(lambda e: e.session_id == "a")),
        (DeadFilter(workspace_id="w1"), ids(lambda e: layout[e.session_id] == "w1")),
        (DeadFilter(event="e2"), ids(lambda e: e.event == "e2")),
        (DeadFilter(since=middle), late),
        (DeadFilter(until=middle), set(dead) - late),
        (
            DeadFilter(workspace_id="w1", event="e1", until=middle),
            ids(lambda e: layout[e.session_id] == "w1" and e.event == "e1" and e.id not in late),
        ),
        (DeadFilter(session_id="c", workspace_id="w1"), set()),
    ]
    heard: list[list[AppendedEvent]] = []
    store.subscribe(heard.append)
    now = time.time()
    for match, expected in cases:
        for event_id in dead:
            await store.finish_attempt(event_id, {"status": "dead", "last_error": "HTTP 410"})
        heard.clear()
        assert await store.replay_dead(match, now) == len(expected), match
        after = {e.id: e for e in await store.list_events()}
        assert {i for i, e in after.items() if e.status == "pending"} == expected, match
        assert after[delivered.id].status == "delivered"
        for event_id in expected:
            replayed = after[event_id]
            assert (replayed.last_error, replayed.next_attempt_at) == (None, now)
            assert replayed.give_up_at == pytest.approx(now + RETRY_WINDOW)
        assert heard == ([[]] if expected else [])  # the lines moved; nothing was appended


async def test_a_webhook_url_set_later_takes_the_events_that_had_none(stores: Opener) -> None:
    store = await stores()
    for sid in ("a", "b"):
        await store.create_session(SessionRecord(session_id=sid, workspace_id="w"))
        await store.update_session(sid, {}, [NewEvent("e", {"n": i}) for i in range(2)])
    later = time.time() + 3600
    for event in await store.list_events():
        await store.finish_attempt(
            event.id, {"next_attempt_at": later, "last_error": NO_WEBHOOK_URL}, attempted=False
        )
    assert (await store.outbox_stats())["pending_without_url"] == 4
    assert await store.due_lines(time.time(), 10) == []
    heard: list[list[AppendedEvent]] = []
    store.subscribe(heard.append)

    await store.update_session("a", {"webhook_url": "https://app.example/hook"})
    assert heard == [[]]
    events = await store.list_events()
    assert {(e.session_id, e.url, e.last_error) for e in events} == {
        ("a", "https://app.example/hook", None),
        ("b", None, NO_WEBHOOK_URL),
    }
    assert await store.due_lines(time.time() + 1, 10) == ["a"]
    assert (await store.outbox_stats())["pending_without_url"] == 2
    # Clearing the URL or changing something else moves nothing.
    await store.update_session("b", {"webhook_url": None, "provider_mode": "webjs"})
    assert heard == [[]]
    # A dispatcher that starts with a default URL wakes every line waiting for one.
    assert await store.wake_waiting(time.time()) == 2
    assert sorted(await store.due_lines(time.time() + 1, 10)) == ["a", "b"]
    assert await store.wake_waiting(time.time()) == 0


async def test_signatures_are_remembered_for_the_window(stores: Opener) -> None:
    store = await stores()
    assert await store.first_sighting("a" * 64, now=100, ttl=10)
    assert not await store.first_sighting("a" * 64, now=105, ttl=10)
    assert await store.first_sighting("a" * 64, now=111, ttl=10)  # expired: new again
    assert not await store.first_sighting("a" * 64, now=115, ttl=10)
    for i in range(120):
        await store.first_sighting(f"{i:064x}", now=200, ttl=1)
    table = store.tables.seen_signatures.name
    assert await store._read(lambda tx: _count(tx, table)) == 120  # "a" expired and went
    # Expired rows are swept as new ones come in, fifty at a time.
    await store.first_sighting("b" * 64, now=500, ttl=1)
    await store.first_sighting("c" * 64, now=500, ttl=1)
    assert await store._read(lambda tx: _count(tx, table)) == 120 + 2 - 2 * 50


def _count(tx: Any, table: str) -> int:
    tx.cur.execute(f"SELECT COUNT(*) FROM {table}")  # noqa: S608 (a name from code)
    return int(tx.cur.fetchone()[0])


async def test_emoji_and_long_bodies_round_trip(stores: Opener) -> None:
    store = await stores()
    await store.create_session(SessionRecord(session_id="s", workspace_id="w"))
    await store.update_session("s", {"last_error": "página caída 💥 — 🇧🇷"})
    session = await store.get_session("s")
    assert session is not None and session.last_error == "página caída 💥 — 🇧🇷"
    text = "olá 😀👍🏽 " + "x" * 100_000  # past MySQL TEXT's 64 KiB
    content = json.dumps({"text": text}, ensure_ascii=False)
    stored, _ = await store.enqueue_message(message("m1", content=content, idempotency_key="🔑"))
    got = await store.get_message("m1")
    assert got is not None and got.content == content and got == stored
    assert (await store.find_idempotent("w", "🔑")) == stored
    await store.update_session("s", {}, [NewEvent("message", {"text": text})])
    (event,) = await store.list_events("s")
    assert json.loads(event.body)["data"]["text"] == text


async def test_keys_compare_exactly_as_on_sqlite(stores: Opener) -> None:
    # A case- or accent-insensitive collation would merge these; none of them is a repeat.
    store = await stores()
    for sid in ("a", "A"):
        await store.create_session(SessionRecord(session_id=sid, workspace_id="w"))
    assert await store.count_sessions() == 2
    keys = ["key", "KEY", "kéy", "key "]
    for i, key in enumerate(keys):
        _, created = await store.enqueue_message(message(f"m{i}", idempotency_key=key))
        assert created, key
    found = await store.find_idempotent("w", "kéy")
    assert found is not None and found.id == "m2"


async def test_two_prefixes_in_one_database_do_not_see_each_other(stores: Opener) -> None:
    first = await stores("wa_")
    second = await stores("other_")
    await first.create_session(SessionRecord(session_id="a", workspace_id="w"))
    await second.create_session(SessionRecord(session_id="b", workspace_id="w"))
    await first.update_session("a", {}, [NewEvent("e", {})])
    assert [s.session_id for s in await first.list_sessions()] == ["a"]
    assert [s.session_id for s in await second.list_sessions()] == ["b"]
    assert await second.list_events() == []
    assert await first.schema_status() == await second.schema_status()
    with second.engine.connect() as conn:
        names = set(sa_inspect(conn).get_table_names())
    assert {"wa_sessions", "other_sessions", "wa_alembic_version", "other_alembic_version"} <= names


def sa_inspect(conn: Any) -> Any:
    from sqlalchemy import inspect

    return inspect(conn)


async def test_another_process_commits_reach_listeners_through_watch(stores: Opener) -> None:
    writer = await stores()
    watcher = await stores()
    heard: list[list[AppendedEvent]] = []
    watcher.subscribe(heard.append)
    task = asyncio.create_task(watcher.watch(interval=0.02))
    try:
        await asyncio.sleep(0.1)
        assert heard == []
        await writer.create_session(SessionRecord(session_id="a", workspace_id="w"))
        await writer.update_session("a", {}, [NewEvent("e", {})])
        for _ in range(200):
            if heard:
                break
            await asyncio.sleep(0.01)
        assert heard == [[]]
        assert await watcher.outbox_mark() == 1
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_rows_copy_to_another_store_keeping_seq(stores: Opener, tmp_path: Path) -> None:
    source = await stores()
    await source.create_session(SessionRecord(session_id="s", workspace_id="w"))
    for i in range(7):
        await source.enqueue_message(message(f"m{i}", idempotency_key=f"k{i}"))
    await source.delete_session("s")  # leaves a gap in the messages' seq
    await source.create_session(SessionRecord(session_id="t", workspace_id="w"))
    await source.enqueue_message(message("m7", session_id="t"))
    await source.update_session("t", {}, [NewEvent("e", {"n": n}) for n in range(5)])
    await source.first_sighting("sig", time.time(), 300)
    await source.heartbeat(NodeRecord("n1", "worker", "http://n1:9000", 10, draining=True), 5.0)
    for session_id in ("t", "u"):
        await source.acquire_lease(session_id, "n1", time.time(), 60)
    await source.acquire_lease("t", "n2", time.time() + 120, 60)  # token 2
    campaign = CampaignRecord(
        id="cmp_1", session_id="t", workspace_id="w", name="n", status="paused", message="{}",
        options="{}", start_at=None, reason=None, total=3,
    )  # fmt: skip
    await CampaignStore(source).create(
        campaign, [NewRecipient(f"{i}@c.us", None, None) for i in range(3)]
    )
    target = SqlStore(tmp_path / "copy.sqlite3")
    await target.open()
    try:
        copied = await source.copy_to(target, batch=2)
        assert copied == {
            "sessions": 1,
            "messages": 1,
            "outbox": 5,
            "seen_signatures": 1,
            "nodes": 1,
            "leases": 2,
            "campaigns": 1,
            "campaign_recipients": 3,
        }
        for table in copied:
            assert [r async for r in source.iter_rows(table)] == [
                r async for r in target.iter_rows(table)
            ]
        assert (await target.get_message("m7")) == (await source.get_message("m7"))
        new, _ = await target.enqueue_message(message("m8", session_id="t"))
        assert new.seq == 9  # after the copied ones
        assert not await target.first_sighting("sig", time.time(), 300)
        assert await target.list_nodes() == await source.list_nodes()
        assert await target.leases() == await source.leases()
        # Tokens carry on from the copied ones.
        taken = await target.acquire_lease("t", "n3", time.time() + 1000, 60)
        assert taken is not None and taken.token == 3
    finally:
        await target.close()


async def test_a_sqlite_store_moves_to_mariadb(tmp_path: Path, mysql_stores: Opener) -> None:
    source = SQLiteStore(tmp_path / "s.sqlite3")
    await source.open()
    try:
        await source.create_session(SessionRecord(session_id="s", workspace_id="w", qr="😀"))
        for i in range(5):
            await source.enqueue_message(message(f"m{i}", idempotency_key=f"k{i}"))
            await source.update_session("s", {}, [NewEvent("e", {"i": i, "t": "ü😀"})])
        target = await mysql_stores()
        assert await source.copy_to(target, batch=3) == {
            "sessions": 1,
            "messages": 5,
            "outbox": 5,
            "seen_signatures": 0,
            "nodes": 0,
            "leases": 0,
            "campaigns": 0,
            "campaign_recipients": 0,
        }
        assert await target.list_events(limit=10) == await source.list_events(limit=10)
        assert await target.get_session("s") == await source.get_session("s")
        _, created = await target.enqueue_message(message("again", idempotency_key="k3"))
        assert not created
        new, _ = await target.enqueue_message(message("m5"))
        await target.update_session("s", {}, [NewEvent("e", {})])
        assert new.seq == 6 and (await target.list_events(limit=10))[-1].seq == 6
    finally:
        await source.close()


async def test_server_info_names_the_engine(stores: Opener) -> None:
    store = await stores()
    info = await store.server_info()
    assert info["engine"] in ("sqlite", "mariadb")
    assert info["prefix"] == "wa_"
    if info["engine"] == "mariadb":
        assert info["charset"] == "utf8mb4" and info["connection_charset"] == "utf8mb4"
        assert info["table_collation"] == "utf8mb4_nopad_bin"
        assert info["skip_locked"] is True and info["isolation"] == "READ-COMMITTED"
        assert "STRICT_TRANS_TABLES" in info["sql_mode"]
    else:
        assert info["journal_mode"] == "wal"


# --- cluster: nodes and leases (both engines) ---------------------------------------------


async def test_heartbeats_upsert_nodes(stores: Opener) -> None:
    store = await stores()
    address = "http://10.0.0.2:9000"
    await store.heartbeat(NodeRecord("n2", "worker", address, capacity=50), 100.0)
    await store.heartbeat(NodeRecord("n1", "gateway", started_at=90.0), 100.0)
    beat = NodeRecord("n2", "worker", address, capacity=40, sessions=7, draining=True)
    await store.heartbeat(beat, 105.0)
    assert await store.list_nodes() == [
        NodeRecord("n1", "gateway", None, 0, 0, 90.0, 100.0, False),
        # started_at 0: the first heartbeat's time, kept by the later ones.
        NodeRecord("n2", "worker", address, 40, 7, 100.0, 105.0, True),
    ]
    await store.heartbeat(NodeRecord("n1", "gateway", started_at=200.0), 201.0)
    assert (await store.list_nodes())[0].started_at == 200.0  # a restart
    assert await store.remove_node("n1")
    assert not await store.remove_node("n1")
    assert [n.node_id for n in await store.list_nodes()] == ["n2"]


async def test_a_requested_drain_holds_for_the_process_and_a_restart_clears_it(
    stores: Opener,
) -> None:
    store, other = await stores(), await stores()
    assert not await other.request_drain("n1")  # no such node
    beat = NodeRecord("n1", "worker", capacity=10, started_at=90.0)
    assert await store.heartbeat(beat, 100.0) is False
    assert await other.request_drain("n1")  # another process (the drain command) asks
    assert (await store.list_nodes())[0].draining
    # The same process beats on with draining=False: the request stays, and it is told.
    assert await store.heartbeat(beat, 105.0) is True
    assert await store.heartbeat(NodeRecord("n1", "worker", started_at=0.0), 106.0) is True
    assert await store.heartbeat(beat, 110.0) is True
    (row,) = await store.list_nodes()
    assert (row.draining, row.heartbeat_at, row.started_at) == (True, 110.0, 90.0)
    # Restarted under the same id (another started_at): it starts fresh.
    restarted = NodeRecord("n1", "worker", capacity=10, started_at=200.0)
    assert await store.heartbeat(restarted, 201.0) is False
    assert not (await store.list_nodes())[0].draining
    # A node that drains of its own accord says so; a new row can start draining.
    assert await store.heartbeat(NodeRecord("n2", "worker", draining=True), 202.0) is True
    assert [n.draining for n in await store.list_nodes()] == [False, True]
    assert await store.request_drain("n2")  # already draining: still a known node


async def test_leases_renew_expire_release_and_tokens_only_grow(stores: Opener) -> None:
    store = await stores()
    t = 1000.0
    assert await store.acquire_lease("s", "A", t, 10) == Lease("s", "A", 1, t + 10)
    assert await store.acquire_lease("s", "B", t + 5, 10) is None  # A's and live
    # A again while live: a renewal, same token.
    assert await store.acquire_lease("s", "A", t + 5, 10) == Lease("s", "A", 1, t + 15)
    assert await store.check_lease("s", "A", 1, t + 14.9)
    assert not await store.check_lease("s", "A", 1, t + 15)  # expiry is exclusive
    assert not await store.check_lease("s", "B", 1, t + 6)
    assert not await store.check_lease("s", "A", 2, t + 6)
    assert not await store.check_lease("nobody", "A", 1, t)
    # Expired: taken over, with the next token.
    assert await store.acquire_lease("s", "B", t + 15, 10) == Lease("s", "B", 2, t + 25)
    assert not await store.check_lease("s", "A", 1, t + 16)
    assert await store.check_lease("s", "B", 2, t + 16)
    # Release: only the holder's token releases; the row stays, so the token keeps growing.
    assert not await store.release_lease("s", "A", 1)
    assert not await store.release_lease("s", "B", 1)
    assert await store.release_lease("s", "B", 2)
    assert not await store.check_lease("s", "B", 2, t + 16)
    assert await store.leases() == [Lease("s", "B", 2, 0.0)]
    assert await store.acquire_lease("s", "B", t + 16, 10) == Lease("s", "B", 3, t + 26)
    # Its own lease, expired and taken back: a new token too (it may have been given up).
    assert await store.acquire_lease("s", "B", t + 100, 10) == Lease("s", "B", 4, t + 110)
    assert await store.acquire_lease("u", "A", t, 10) == Lease("u", "A", 1, t + 10)
    assert await store.leases("A") == [Lease("u", "A", 1, t + 10)]
    assert [(x.session_id, x.token) for x in await store.leases()] == [("s", 4), ("u", 1)]
    assert await store.leases("C") == []


async def test_renewing_extends_live_leases_and_never_resurrects_an_expired_one(
    stores: Opener,
) -> None:
    store = await stores()
    t = 1000.0
    await store.acquire_lease("a", "A", t, 10)
    await store.acquire_lease("b", "A", t, 30)
    await store.acquire_lease("c", "B", t, 10)
    # At t+20, a has expired (it may have been taken): only b renews; c is B's.
    assert await store.renew_leases("A", t + 20, 10) == [Lease("b", "A", 1, t + 30)]
    assert not await store.check_lease("a", "A", 1, t + 21)
    assert (await store.leases("A"))[0] == Lease("a", "A", 1, t + 10)
    assert await store.acquire_lease("a", "B", t + 21, 10) == Lease("a", "B", 2, t + 31)
    assert await store.renew_leases("A", t + 25, 10) == [Lease("b", "A", 1, t + 35)]
    # B's c expired at t+10: only the a it took renews.
    assert await store.renew_leases("B", t + 25, 10) == [Lease("a", "B", 2, t + 35)]
    assert await store.renew_leases("Z", t, 10) == []


async def test_a_paused_node_can_write_nothing_for_a_session_it_lost(stores: Opener) -> None:
    store = await stores()
    await store.create_session(SessionRecord(session_id="s", workspace_id="w"))
    queued, _ = await store.enqueue_message(message("m1"))
    now = time.time()
    # A held the lease, paused past its expiry; B took it over.
    a = await store.acquire_lease("s", "A", now - 60, 30)
    assert a is not None and a.token == 1
    # Expired, not yet taken: A's fenced writes are refused already.
    with pytest.raises(LeaseLost):
        await store.update_session("s", {"status": "connected"}, fence=("A", 1))
    b = await store.acquire_lease("s", "B", now, 30)
    assert b is not None and b.token == 2
    heard: list[list[AppendedEvent]] = []
    store.subscribe(heard.append)
    with pytest.raises(LeaseLost) as lost:
        await store.update_session(
            "s", {"status": "connected"}, [NewEvent("session_status_changed", {})], fence=("A", 1)
        )
    assert (lost.value.session_id, lost.value.token) == ("s", 1)
    with pytest.raises(LeaseLost):
        await store.update_message(
            "m1",
            {"status": "sending"},
            [NewEvent("message_status_changed", {})],
            expect_status="queued",
            fence=("A", 1),
        )
    # B's node with A's old token, or A's node with B's token: refused as well.
    with pytest.raises(LeaseLost):
        await store.update_session("s", {"status": "connected"}, fence=("B", 1))
    with pytest.raises(LeaseLost):
        await store.update_message("m1", {"status": "sending"}, fence=("A", 2))
    # Nothing was written, nothing was announced.
    session = await store.get_session("s")
    assert session is not None and session.status == "stopped"
    assert await store.get_message("m1") == queued
    assert await store.list_events() == [] and heard == []
    # The holder's fenced writes land, events and all.
    await store.update_session(
        "s", {"status": "connected"}, [NewEvent("session_status_changed", {})], fence=("B", 2)
    )
    sent = await store.update_message(
        "m1", {"status": "sending"}, expect_status="queued", fence=("B", 2)
    )
    assert sent.status == "sending" and len(await store.list_events()) == 1
    # A session with no lease row fences everyone out; a missing message is still a miss.
    await store.create_session(SessionRecord(session_id="free", workspace_id="w"))
    with pytest.raises(LeaseLost):
        await store.update_session("free", {"status": "connected"}, fence=("B", 2))
    with pytest.raises(LookupError):
        await store.update_message("nope", {"status": "sent"}, fence=("B", 2))
    # Released: fenced out too.
    assert await store.release_lease("s", "B", 2)
    with pytest.raises(LeaseLost):
        await store.update_session("s", {"status": "stopped"}, fence=("B", 2))


async def test_two_nodes_racing_for_leases_get_one_owner_each(db_url: str) -> None:
    first = SqlStore(db_url)
    await first.open()  # migrated once, before the race
    await first.close()
    sessions = [f"s{i}" for i in range(20)]
    barrier = threading.Barrier(2)
    now = time.time()

    def node(name: str) -> list[list[Lease | None]]:
        async def run() -> list[list[Lease | None]]:
            store = SqlStore(db_url)
            await store.open()
            rounds: list[list[Lease | None]] = []
            try:
                # Round one: free leases; round two: all expired, taken over.
                for at in (now, now + 120):
                    await asyncio.to_thread(barrier.wait, 30)
                    rounds.append(
                        list(
                            await asyncio.gather(
                                *(store.acquire_lease(s, name, at, 60) for s in sessions)
                            )
                        )
                    )
            finally:
                await store.close()
            return rounds

        return asyncio.run(run())

    a, b = await asyncio.gather(asyncio.to_thread(node, "A"), asyncio.to_thread(node, "B"))
    check = SqlStore(db_url)
    await check.open()
    try:
        stored = {lease.session_id: lease for lease in await check.leases()}
    finally:
        await check.close()
    for round_, token in ((0, 1), (1, 2)):
        for i, session_id in enumerate(sessions):
            won = [x for x in (a[round_][i], b[round_][i]) if x is not None]
            assert len(won) == 1, (round_, session_id, won)
            assert won[0].token == token
            if round_ == 1:
                assert stored[session_id] == won[0]
    assert len(stored) == 20


async def _upgrade_to(store: SqlStore, revision: str) -> None:
    from alembic import command

    from service.store.migrations import _config

    def run() -> None:
        with store.engine.connect() as conn:
            if store.is_sqlite:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            command.upgrade(_config(conn, store.prefix, store.collation), revision)
            conn.commit()

    await store._call(run)


async def _write_old_session(store: SqlStore, session_id: str, **values: Any) -> None:
    """A session row as an older revision wrote it: only the columns it had (the store's own
    writes name every column of the head)."""
    row = {"session_id": session_id, "workspace_id": "w", "created_at": 1.0, "updated_at": 1.0}
    await _write_old_row(store, "sessions", row | values)


async def _write_old_message(store: SqlStore, message_id: str, **values: Any) -> None:
    """A message row as revisions before 0006 wrote it (no `media_stored_at`)."""
    row = {
        "id": message_id, "session_id": "s", "workspace_id": "w", "direction": "out",
        "chat_id": "1@c.us", "type": "text", "content": '{"text": "hi"}', "status": "queued",
        "created_at": 1.0, "updated_at": 1.0,
    }  # fmt: skip
    await _write_old_row(store, "messages", row | values)


async def _write_old_row(store: SqlStore, table: str, row: dict[str, Any]) -> None:
    from sqlalchemy import insert

    def run() -> None:
        with store.engine.begin() as conn:
            conn.execute(insert(store.tables.by_name(table)).values(row))

    await store._call(run)


async def test_a_0004_database_gets_metadata_and_webhook_events_keeping_its_sessions(
    db_url: str,
) -> None:
    store = SqlStore(db_url)
    await store.open(migrate=False)
    try:
        await _upgrade_to(store, "0004")
        await _write_old_session(store, "s", webhook_url="http://x.test/h")
        await store.migrate()
        session = await store.get_session("s")
        assert session is not None and session.webhook_url == "http://x.test/h"
        assert (session.metadata, session.webhook_events) == (None, None)
        # An existing session sends every event, with `metadata: null`.
        await store.update_session("s", {"status": "qr_required"}, [NewEvent("e", {})])
        (event,) = await store.list_events()
        assert json.loads(event.body)["metadata"] is None
    finally:
        await store.close()


async def test_a_0005_database_dates_the_inbound_files_it_kept_for_the_retention(
    db_url: str,
) -> None:
    store = SqlStore(db_url)
    await store.open(migrate=False)
    try:
        await _upgrade_to(store, "0005")
        await _write_old_session(store, "s")
        kept = json.dumps({"media": {"mimetype": "image/png", "file": "media/in/i1.png"}})
        refused = json.dumps({"media": {"mimetype": "image/png", "file": None}})
        sent = json.dumps({"media": {"mimetype": "image/png", "file": "media/out/o1.png"}})
        common = {"direction": "in", "status": "received"}
        await _write_old_message(store, "i1", content=kept, created_at=100.0, **common)
        await _write_old_message(store, "i2", content=refused, created_at=200.0, **common)
        await _write_old_message(store, "o1", content=sent, created_at=300.0)
        await store.migrate()
        assert [(m.id, m.media_stored_at) for m in await store.stored_media_before(1e12, 10)] == [
            ("i1", 100.0)
        ]
    finally:
        await store.close()


async def test_a_0006_database_gets_the_proxy_columns_keeping_its_sessions(db_url: str) -> None:
    store = SqlStore(db_url)
    await store.open(migrate=False)
    try:
        await _upgrade_to(store, "0006")
        await _write_old_session(store, "s", metadata='{"a":1}')
        await store.migrate()
        session = await store.get_session("s")
        assert session is not None and session.metadata == '{"a":1}'
        # An existing session keeps connecting directly.
        assert (session.proxy_url, session.proxy_sealed) == (None, None)
        proxy = {"proxy_url": "http://10.0.0.5:3128", "proxy_sealed": "AQ" + "x" * 500}
        await store.update_session("s", proxy)
        session = await store.get_session("s")
        assert session is not None
        assert (session.proxy_url, session.proxy_sealed) == tuple(proxy.values())
    finally:
        await store.close()


async def test_a_0007_database_gets_the_call_policy_column_keeping_its_sessions(
    db_url: str,
) -> None:
    store = SqlStore(db_url)
    await store.open(migrate=False)
    try:
        await _upgrade_to(store, "0007")
        await _write_old_session(store, "s", proxy_url="http://10.0.0.5:3128")
        await store.migrate()
        session = await store.get_session("s")
        assert session is not None and session.proxy_url == "http://10.0.0.5:3128"
        # An existing session lets calls ring, as before.
        assert session.call_policy is None
        policy = '{"reject": true, "message": "' + "é" * 1024 + '"}'
        await store.update_session("s", {"call_policy": policy})
        session = await store.get_session("s")
        assert session is not None and session.call_policy == policy
    finally:
        await store.close()


async def test_a_0001_database_migrates_to_nodes_and_leases_keeping_its_rows(
    db_url: str,
) -> None:
    store = SqlStore(db_url)
    await store.open(migrate=False)
    try:
        await _upgrade_to(store, "0001")
        assert await store.schema_status() == ("0001", head_revision())
        await _write_old_session(store, "s", status="connected")
        await _write_old_message(store, "m1", idempotency_key="k")
        await store.migrate()
        assert await store.schema_status() == (head_revision(), head_revision())
        session = await store.get_session("s")
        assert session is not None and session.status == "connected"
        assert (await store.get_message("m1")) is not None
        await store.update_session("s", {"status": "connected"}, [NewEvent("e", {})])
        assert len(await store.list_events()) == 1
        lease = await store.acquire_lease("s", "A", time.time(), 30)
        assert lease is not None and lease.token == 1
        await store.update_session("s", {"status": "stopped"}, fence=("A", 1))
    finally:
        await store.close()


# --- configuration -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u:p@h/db",
        "mysql+mysqldb://u:p@h/db",
        "sqlite://relative-without-third-slash",
        "mysql+pymysql://u:p@h:3306/",
        "mysql+pymysql://u:p@h:3306/db?charset=latin1",
        "",
    ],
)
def test_urls_the_store_cannot_use_are_one_line_config_errors(url: str) -> None:
    with pytest.raises(ConfigError) as error:
        open_store(url, "wa_")
    assert "\n" not in str(error.value)
    assert "p@" not in str(error.value)


@pytest.mark.parametrize("prefix", ["wa-", "a b", "x" * 33, "wa_;DROP"])
def test_a_prefix_must_be_an_identifier(prefix: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="SIDECAR_DB_PREFIX"):
        open_store(tmp_path / "s.sqlite3", prefix)


def test_urls_the_store_takes() -> None:
    assert open_store("/var/lib/x.sqlite3", "").is_sqlite
    assert open_store("sqlite:////var/lib/x.sqlite3", "").path == Path("/var/lib/x.sqlite3")
    for scheme in ("mysql+pymysql", "mariadb+pymysql", "mysql", "mariadb"):
        mysql = open_store(f"{scheme}://u:secret@db:3307/app", "wa_")
        assert not mysql.is_sqlite
        assert mysql.url.drivername == "mysql+pymysql" and mysql.url.query["charset"] == "utf8mb4"
        assert (mysql.url.host, mysql.url.port, mysql.url.database) == ("db", 3307, "app")
        assert "secret" not in mysql.display_url and "secret" not in repr(mysql)


async def test_an_unreachable_database_is_a_one_line_config_error() -> None:
    from tests.support.server import free_port

    store = open_store(f"mysql+pymysql://u:hunter2@127.0.0.1:{free_port()}/db", "wa_")
    with pytest.raises(ConfigError) as error:
        await store.open()
    await store.close()
    message = str(error.value)
    assert message.startswith("cannot connect to the database mysql+pymysql://u:***@127.0.0.1")
    assert "(2003)" in message and "\n" not in message and "hunter2" not in message
    assert error.value.__cause__ is None and error.value.__suppress_context__


async def test_wrong_credentials_are_a_config_error(mariadb_server: PrivateMariaDB) -> None:
    url = mariadb_server.url.replace(mariadb_server.password, "wrong")
    store = open_store(url, "wa_")
    with pytest.raises(ConfigError, match=r"\(1045\) Access denied"):
        await store.open()
    await store.close()


# --- SQLite only --------------------------------------------------------------------------


async def test_the_sqlite_file_is_private_and_in_wal_mode(tmp_path: Path) -> None:
    db = tmp_path / "fresh" / "s.sqlite3"
    store = SQLiteStore(db)
    await store.open()
    await store.close()
    assert db.stat().st_mode & 0o777 == 0o600
    assert db.parent.stat().st_mode & 0o777 == 0o700
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"wa_sessions", "wa_messages", "wa_outbox", "wa_seen_signatures"} <= names
    assert conn.execute("SELECT version_num FROM wa_alembic_version").fetchall() == [
        (head_revision(),)
    ]
    conn.close()


async def test_a_file_that_is_not_a_database_is_a_config_error(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite3"
    db.write_bytes(b"this is not a database" * 20)
    store = SQLiteStore(db)
    with pytest.raises(ConfigError, match=r"cannot open the SQLite database .*not a database"):
        await store.open()
    await store.close()


def _legacy_file(db: Path, versions: int) -> sqlite3.Connection:
    """A file as the hand-migrated store left it at `versions`."""
    conn = sqlite3.connect(db)
    conn.execute(
        "CREATE TABLE schema_migrations (version INTEGER NOT NULL PRIMARY KEY,"
        " name TEXT NOT NULL, applied_at REAL NOT NULL)"
    )
    for version, name, statements in LEGACY_MIGRATIONS[:versions]:
        for statement in statements:
            conn.execute(statement)
        conn.execute("INSERT INTO schema_migrations VALUES (?, ?, 0)", (version, name))
    return conn


async def test_a_version_4_file_is_adopted_with_everything_in_it(tmp_path: Path) -> None:
    db = tmp_path / "sidecar.sqlite3"
    conn = _legacy_file(db, 4)
    conn.execute(
        "INSERT INTO sessions (session_id, workspace_id, status, created_at, updated_at,"
        " last_error) VALUES ('s', 'w', 'connected', 1, 2, 'ok 😀')"
    )
    for seq in (1, 2, 3):
        conn.execute(
            "INSERT INTO messages (id, session_id, workspace_id, direction, chat_id, type,"
            " content, status, idempotency_key, provider_ref, created_at, updated_at)"
            " VALUES (?, 's', 'w', 'out', 'c', 'text', '{}', 'sent', ?, ?, ?, ?)",
            (f"m{seq}", f"k{seq}", f"R{seq}", seq, seq),
        )
    conn.execute("DELETE FROM messages WHERE id = 'm3'")  # the sequence is past the rows
    conn.execute(
        "INSERT INTO outbox (id, event, workspace_id, session_id, body, status, attempts,"
        " next_attempt_at, created_at, give_up_at)"
        " VALUES ('evt_1', 'e', 'w', 's', '{}', 'pending', 2, 5, 4, 86404)"
    )
    conn.execute("INSERT INTO seen_signatures VALUES ('sig', 9e12)")
    conn.commit()
    conn.close()

    store = SQLiteStore(db)
    assert await _status_without_migrating(db) == ("legacy:4", head_revision())
    await store.open()
    try:
        session = await store.get_session("s")
        assert session is not None
        assert (session.status, session.last_error, session.created_at) == ("connected", "ok 😀", 1)
        m1 = await store.get_message("m1")
        assert m1 is not None and (m1.seq, m1.idempotency_key) == (1, "k1")
        assert (await store.find_message("s", "R2")) is not None
        (event,) = await store.list_events()
        assert (event.id, event.seq, event.attempts, event.give_up_at) == ("evt_1", 1, 2, 86404)
        assert not await store.first_sighting("sig", 0, 1)
        # Unique keys and sequences came along.
        again, created = await store.enqueue_message(message("m9", idempotency_key="k1"))
        assert (again.id, created) == ("m1", False)
        new, _ = await store.enqueue_message(message("m4"))
        assert new.seq == 4
        assert await store.schema_status() == (head_revision(), head_revision())
    finally:
        await store.close()
    conn = sqlite3.connect(db)
    tables_now = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    conn.close()
    assert "schema_migrations" not in tables_now and "sessions" not in tables_now
    assert {"wa_sessions", "wa_messages", "wa_outbox", "wa_seen_signatures"} <= tables_now
    assert {"wa_nodes", "wa_leases"} <= tables_now  # 0002 ran after the adoption
    assert {"wa_leases_node", "wa_leases_expiry"} <= indexes
    assert {"wa_messages_idempotency", "wa_outbox_pending", "wa_sessions_workspace"} <= indexes
    assert not {i for i in indexes if re.fullmatch(r"(sessions|messages|outbox|seen)_\w+", i)}


async def _status_without_migrating(db: Path) -> tuple[str | None, str]:
    store = SQLiteStore(db)
    await store.open(migrate=False)
    try:
        return await store.schema_status()
    finally:
        await store.close()


async def test_an_older_file_gets_the_legacy_versions_it_missed(tmp_path: Path) -> None:
    db = tmp_path / "old.sqlite3"
    conn = _legacy_file(db, 2)
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
    store = SQLiteStore(db)
    await store.open()
    try:
        refs = {}
        for m in ("m1", "m2", "m3"):
            record = await store.get_message(m)
            assert record is not None
            refs[m] = record.provider_ref
        assert refs == {"m1": "3EB0AA11", "m2": "3EB0BB22", "m3": "wamid.HBgL_x"}
        found = await store.find_message("s", "3EB0BB22")
        assert found is not None and found.id == "m2"
        assert await store.first_sighting("x", 0, 1)  # version 4's table is there too
    finally:
        await store.close()


async def test_an_empty_prefix_adopts_a_legacy_file_in_place(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite3"
    conn = _legacy_file(db, 4)
    conn.execute(
        "INSERT INTO sessions (session_id, workspace_id, created_at, updated_at)"
        " VALUES ('s', 'w', 1, 1)"
    )
    conn.commit()
    conn.close()
    store = SQLiteStore(db, prefix="")
    await store.open()
    try:
        assert (await store.get_session("s")) is not None
        assert await store.schema_status() == (head_revision(), head_revision())
    finally:
        await store.close()


# --- MySQL/MariaDB only -----------------------------------------------------------------


async def test_two_processes_enqueueing_one_key_make_one_message(mysql_stores: Opener) -> None:
    first, second = await mysql_stores(), await mysql_stores()
    await first.create_session(SessionRecord(session_id="s", workspace_id="w"))
    results = await asyncio.gather(
        *(
            store.enqueue_message(message(f"m{n}-{i}", idempotency_key=f"key-{i}"))
            for i in range(12)
            for n, store in enumerate((first, second, first, second))
        )
    )
    for i in range(12):
        mine = results[i * 4 : i * 4 + 4]
        assert sum(created for _, created in mine) == 1
        assert len({record.id for record, _ in mine}) == 1
        assert {record.seq for record, _ in mine} == {mine[0][0].seq}
    assert await first.count_messages("s", "queued") == 12


async def test_two_processes_seeing_one_signature_accept_it_once(mysql_stores: Opener) -> None:
    first, second = await mysql_stores(), await mysql_stores()
    now = time.time()
    for i in range(10):
        answers = await asyncio.gather(
            *(s.first_sighting(f"sig-{i}", now, 60) for s in (first, second, first, second))
        )
        assert sorted(answers) == [False, False, False, True]


async def _kill_connections(server: PrivateMariaDB, database: str) -> int:
    with server.admin() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = %s AND DB = %s",
            (server.user, database),
        )
        ids = [row[0] for row in cur.fetchall()]
        for connection_id in ids:
            cur.execute(f"KILL {int(connection_id)}")
    return len(ids)


@pytest.mark.parametrize("pre_ping", [True, False])
async def test_a_connection_killed_by_the_server_is_survived(
    mysql_stores: Opener,
    mariadb_url: str,
    mariadb_server: PrivateMariaDB,
    pre_ping: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    database = _database_of(mariadb_url)
    store = await mysql_stores(pool_size=1, pre_ping=pre_ping)
    await store.create_session(SessionRecord(session_id="s", workspace_id="w"))
    assert await _kill_connections(mariadb_server, database) == 1
    assert (await store.get_session("s")) is not None  # a read
    assert await _kill_connections(mariadb_server, database) == 1
    updated = await store.update_session("s", {"status": "connected"}, [NewEvent("e", {})])
    assert updated.status == "connected"  # a whole transaction
    assert len(await store.list_events("s")) == 1
    assert await store.ping()
    retried = [r.getMessage() for r in caplog.records if "retrying once" in r.getMessage()]
    if pre_ping:
        assert retried == []  # the pool's ping found the dead connection first
    else:
        assert retried == [
            "database connection lost during a read; retrying once",
            "database connection lost before commit; retrying once",
        ]


def _database_of(url: str) -> str:
    return url.rsplit("/", 1)[1].split("?")[0]


async def test_a_key_inserted_by_another_process_mid_transaction_wins(
    mysql_stores: Opener, mariadb_url: str, mariadb_server: PrivateMariaDB
) -> None:
    # The other process has inserted the key but not committed: our check sees nothing,
    # our insert waits on the unique key, then collides once the other commits.
    store = await mysql_stores()
    await store.create_session(SessionRecord(session_id="s", workspace_id="w"))
    other = mariadb_server.connect(_database_of(mariadb_url), autocommit=False)
    try:
        with other.cursor() as cur:
            cur.execute(
                "INSERT INTO wa_messages (id, session_id, workspace_id, direction, chat_id, type,"
                " content, status, idempotency_key, created_at, updated_at)"
                " VALUES ('theirs', 's', 'w', 'out', 'c', 'text', '{}', 'queued', 'K', 1, 1)"
            )
        threading.Timer(0.5, other.commit).start()
        record, created = await store.enqueue_message(message("mine", idempotency_key="K"))
        assert (record.id, created) == ("theirs", False)
        assert await store.get_message("mine") is None
        # And a signature the other process is recording is not ours to accept.
        with other.cursor() as cur:
            cur.execute("INSERT INTO wa_seen_signatures VALUES ('sig', %s)", (time.time() + 60,))
        threading.Timer(0.5, other.commit).start()
        assert not await store.first_sighting("sig", time.time(), 60)
    finally:
        other.close()


async def test_a_lock_wait_timeout_is_retried(
    mysql_stores: Opener,
    mariadb_url: str,
    mariadb_server: PrivateMariaDB,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "service.store")
    database = _database_of(mariadb_url)
    store = await mysql_stores(lock_wait_timeout=1)
    await store.create_session(SessionRecord(session_id="s", workspace_id="w"))
    holder = mariadb_server.connect(database, autocommit=False)
    try:
        with holder.cursor() as cur:
            cur.execute("SELECT * FROM wa_sessions WHERE session_id = 's' FOR UPDATE")
        releaser = threading.Timer(1.5, holder.rollback)
        releaser.start()
        started = time.monotonic()
        updated = await store.update_session("s", {"status": "connected"})
        assert updated.status == "connected"
        assert time.monotonic() - started >= 1.0  # it did wait for the lock, then retried
        releaser.join()
        assert any("(1205" in r.getMessage() for r in caplog.records)
    finally:
        holder.close()


async def test_deadlocks_are_retried_a_bounded_number_of_times(mysql_stores: Opener) -> None:
    store = await mysql_stores(lock_retries=2)
    await store.create_session(SessionRecord(session_id="s", workspace_id="w"))
    calls: list[int] = []

    def flaky(fails: int) -> Callable[[Any], str]:
        def work(tx: Any) -> str:
            calls.append(1)
            if len(calls) <= fails:
                tx.run(store.q.session_delete, {"session_id": "s"})  # undone by the rollback
                raise pymysql.err.OperationalError(1213, "Deadlock found when trying to get lock")
            return "done"

        return work

    assert await store._transaction(flaky(2)) == "done"
    assert len(calls) == 3
    calls.clear()
    with pytest.raises(pymysql.err.OperationalError) as error:
        await store._transaction(flaky(5))
    assert error.value.args[0] == 1213 and len(calls) == 3
    calls.clear()

    def broken(tx: Any) -> None:
        calls.append(1)
        raise pymysql.err.OperationalError(1054, "Unknown column")

    with pytest.raises(pymysql.err.OperationalError):
        await store._transaction(broken)
    assert len(calls) == 1  # not a lock problem: not retried
    assert await store.get_session("s") is not None  # every attempt was rolled back


async def test_interrupting_skips_rows_another_transaction_holds(
    mysql_stores: Opener, mariadb_url: str, mariadb_server: PrivateMariaDB
) -> None:
    database = _database_of(mariadb_url)
    store = await mysql_stores(lock_wait_timeout=10)
    await store.create_session(SessionRecord(session_id="s", workspace_id="w"))
    for i in range(3):
        await store.enqueue_message(message(f"m{i}", status="sending"))
    holder = mariadb_server.connect(database, autocommit=False)
    try:
        with holder.cursor() as cur:
            cur.execute("SELECT id FROM wa_messages WHERE id = 'm1' FOR UPDATE")
        started = time.monotonic()
        failed = await store.interrupt_sending(lambda record: NewEvent("x", {}))
        assert time.monotonic() - started < 5  # did not wait for the lock
        assert [m.id for m in failed] == ["m0", "m2"]
    finally:
        holder.rollback()
        holder.close()


async def test_statements_and_lock_waits_are_bounded(mysql_stores: Opener) -> None:
    from sqlalchemy import func, select

    from service.store.sql import Stmt

    store = await mysql_stores(statement_timeout=0.3, lock_wait_timeout=2)
    sleep = Stmt(select(func.sleep(5)), store.engine.dialect)
    started = time.monotonic()
    with pytest.raises(pymysql.err.OperationalError) as error:
        await store._read(lambda tx: tx.one(sleep))
    assert error.value.args[0] == 1969  # max_statement_time exceeded
    assert time.monotonic() - started < 3
    info = await store.server_info()
    assert info["lock_wait_timeout"] == 2


async def test_concurrent_writers_on_one_session_all_land(mysql_stores: Opener) -> None:
    first, second = await mysql_stores(), await mysql_stores()
    await first.create_session(SessionRecord(session_id="s", workspace_id="w"))
    await asyncio.gather(
        *(
            store.update_session("s", {"phone_number": str(i)}, [NewEvent("e", {"i": i})])
            for i in range(20)
            for store in (first, second)
        )
    )
    events = await first.list_events("s", limit=1000)
    assert len(events) == 40 and len({e.seq for e in events}) == 40


async def test_a_sessions_events_commit_in_seq_order_on_mariadb(
    mariadb_server: PrivateMariaDB,
) -> None:
    """InnoDB numbers an outbox row at insert: a later transaction of the same session must
    not commit its event while an earlier one still holds a lower seq open."""
    import threading

    store = SqlStore(mariadb_server.fresh_database("outbox_order"), prefix="ord_")
    await store.open()
    try:
        await store.create_session(SessionRecord("S", "w"))
        for i in (1, 2):
            await store.enqueue_message(
                MessageRecord(f"msg_{i}", "S", "w", "out", "1@c.us", "text", "{}", "queued")
            )
        append = store._append_event
        gate = threading.Event()

        def held(tx: Any, session: SessionRecord, new: NewEvent) -> Any:
            appended = append(tx, session, new)
            if new.event == "first":
                gate.wait(10)  # the row is inserted, its transaction still open
            return appended

        store._append_event = held  # type: ignore[method-assign]
        first = asyncio.create_task(
            store.update_message("msg_1", {"status": "sent"}, [NewEvent("first", {})])
        )
        await asyncio.sleep(0.3)
        threading.Timer(1.0, gate.set).start()
        await store.update_message("msg_2", {"status": "sent"}, [NewEvent("second", {})])
        # The second write could only commit after the first: the head is the first event.
        heads = await store.due_events(time.time() + 1, set(), 10)
        assert [e.event for e in heads] == ["first"]
        await first
    finally:
        gate.set()
        await store.close()


async def test_a_takeover_in_flight_holds_back_acquires_and_fenced_writes(
    mysql_stores: Opener, mariadb_url: str, mariadb_server: PrivateMariaDB
) -> None:
    """The lease row is read under its lock: an uncommitted insert or takeover by another
    process is waited for and then obeyed (a plain read at READ COMMITTED would see the old
    row and let a stale holder through)."""
    store = await mysql_stores(lock_wait_timeout=10)
    await store.create_session(SessionRecord(session_id="s", workspace_id="w"))
    now = time.time()
    other = mariadb_server.connect(_database_of(mariadb_url), autocommit=False)
    try:
        with other.cursor() as cur:
            cur.execute("INSERT INTO wa_leases VALUES ('t', 'B', 1, %s, %s)", (now, now + 60))
        threading.Timer(0.5, other.commit).start()
        started = time.monotonic()
        assert await store.acquire_lease("t", "A", now, 30) is None
        assert time.monotonic() - started >= 0.4
        assert await store.acquire_lease("s", "A", now, 30) == Lease("s", "A", 1, now + 30)
        with other.cursor() as cur:
            cur.execute(
                "UPDATE wa_leases SET node_id = 'B', token = 2, expires_at = %s"
                " WHERE session_id = 's'",
                (now + 60,),
            )
        threading.Timer(0.5, other.commit).start()
        started = time.monotonic()
        with pytest.raises(LeaseLost):
            await store.update_session("s", {"status": "connected"}, fence=("A", 1))
        assert time.monotonic() - started >= 0.4
        session = await store.get_session("s")
        assert session is not None and session.status == "stopped"
    finally:
        other.close()
