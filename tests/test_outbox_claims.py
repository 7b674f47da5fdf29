"""Outbox claims: any number of dispatchers share one store, each event delivered once, in
per-session order, a line delivered by whoever holds the claim on its head."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.store import NO_WEBHOOK_URL, ClaimLost, NewEvent, SessionRecord, SqlStore
from tests.conftest import ENGINES, WEBHOOK_SECRET
from tests.support.receivers import python_receiver
from tests.support.stores import opened_stores
from tests.test_webhooks import FAST_RETRY, until
from webhooks.dispatcher import Dispatcher

Stores = Callable[[], Any]


@pytest.fixture
async def stores(
    tmp_path: Path, database: Callable[[str], dict[str, str]]
) -> AsyncIterator[Callable[[], Any]]:
    """`await stores()`: another open SqlStore over the same one database (SQLite file or
    MariaDB database), as a separate process would have."""
    url = database("claims").get("SIDECAR_DATABASE_URL") or str(tmp_path / "claims.sqlite3")
    async for opener in opened_stores(url):
        yield opener


async def emit(store: SqlStore, session_id: str, n: int, start: int = 0) -> None:
    if await store.get_session(session_id) is None:
        await store.create_session(SessionRecord(session_id=session_id, workspace_id="w"))
    for i in range(start, start + n):
        await store.update_session(session_id, {}, [NewEvent("test_event", {"n": i})])


async def claims(store: SqlStore) -> dict[str, tuple[str | None, float | None]]:
    """Event id -> (claimed_by, claimed_until), read straight from the table."""
    found: dict[str, tuple[str | None, float | None]] = {}
    async for rows in store.iter_rows("outbox"):
        for row in rows:
            found[row["id"]] = (row["claimed_by"], row["claimed_until"])
    return found


def dispatcher(store: SqlStore, client: httpx.AsyncClient, url: str, **options: Any) -> Dispatcher:
    made = Dispatcher(
        store,
        client,
        secret=WEBHOOK_SECRET,
        default_url=url,
        retry=FAST_RETRY,
        idle_poll=0.05,
        **options,
    )
    store.subscribe(made.on_events)
    return made


@pytest.mark.parametrize("engine", ENGINES)
async def test_claim_line_gives_the_head_to_one_owner_at_a_time(stores: Stores) -> None:
    a, b = await stores(), await stores()
    await emit(a, "s", 3)
    now = time.time()
    assert await a.due_lines(now, 10) == ["s"]
    head = await a.claim_line("s", "A", now, 30)
    assert head is not None and json.loads(head.body)["data"]["n"] == 0
    # The line is A's: B gets nothing of it, and it is not due for anyone but A.
    assert await b.claim_line("s", "B", now, 30) is None
    assert await b.due_lines(now, 10) == []
    assert await b.due_lines(now, 10, owner="A") == ["s"]
    # A may claim again what it holds (a restart that kept its owner id).
    again = await a.claim_line("s", "A", now + 1, 30)
    assert again is not None and again.id == head.id
    # Finished by A: released, and the next head is B's for the taking.
    await a.finish_attempt(head.id, {"status": "delivered", "delivered_at": now}, owner="A")
    assert (await claims(a))[head.id] == (None, None)
    second = await b.claim_line("s", "B", now, 30)
    assert second is not None and json.loads(second.body)["data"]["n"] == 1
    # A head waiting for a retry is not claimed, by anyone.
    await b.finish_attempt(second.id, {"next_attempt_at": now + 100}, owner="B")
    assert await a.claim_line("s", "A", now, 30) is None
    assert await a.due_lines(now, 10) == []
    assert await a.claim_line("s", "A", now + 101, 30) is not None
    assert await a.claim_line("nobody", "A", now, 30) is None


@pytest.mark.parametrize("engine", ENGINES)
async def test_a_replayed_event_ahead_of_a_claimed_head_waits_for_the_claim(
    stores: Stores,
) -> None:
    store = await stores()
    await emit(store, "s", 2)
    now = time.time()
    first = await store.claim_line("s", "A", now, 30)
    assert first is not None
    await store.finish_attempt(first.id, {"status": "dead"}, owner="A")
    second = await store.claim_line("s", "A", now, 30)
    assert second is not None and second.id != first.id
    # Replayed while A delivers the next one: the older event is the head again, but the
    # line stays A's until A finishes.
    await store.replay_event(first.id, now)
    assert await store.claim_line("s", "B", now, 30) is None
    await store.finish_attempt(second.id, {"status": "delivered"}, owner="A")
    replayed = await store.claim_line("s", "B", now, 30)
    assert replayed is not None and replayed.id == first.id


@pytest.mark.parametrize("engine", ENGINES)
async def test_finishing_with_a_stale_owner_writes_nothing(stores: Stores) -> None:
    a, b = await stores(), await stores()
    await emit(a, "s", 1)
    now = time.time()
    head = await a.claim_line("s", "A", now, 1.0)
    assert head is not None
    # A's claim expires; B takes the line over.
    taken = await b.claim_line("s", "B", now + 2, 30)
    assert taken is not None and taken.id == head.id
    with pytest.raises(ClaimLost):
        await a.finish_attempt(head.id, {"status": "delivered", "delivered_at": now}, owner="A")
    (event,) = await a.list_events()
    assert (event.status, event.attempts, event.delivered_at) == ("pending", 0, None)
    assert (await claims(a))[head.id] == ("B", now + 32)
    await b.finish_attempt(head.id, {"status": "delivered", "delivered_at": now}, owner="B")
    # Finished once: the claim is gone, so a second finish (a repeat) is refused as well.
    with pytest.raises(ClaimLost):
        await b.finish_attempt(head.id, {"status": "dead"}, owner="B")
    (event,) = await a.list_events()
    assert (event.status, event.attempts) == ("delivered", 1)


@pytest.mark.parametrize("engine", ENGINES)
async def test_concurrent_claims_of_one_line_have_one_winner(stores: Stores) -> None:
    pool = [await stores() for _ in range(2)]
    await emit(pool[0], "s", 1)
    now = time.time()
    results = await asyncio.gather(
        *(pool[i % 2].claim_line("s", f"owner-{i}", now, 30) for i in range(16))
    )
    assert sum(r is not None for r in results) == 1


@pytest.mark.parametrize("engine", ENGINES)
async def test_a_dead_dispatchers_claim_blocks_its_line_until_it_expires(
    stores: Stores,
) -> None:
    store = await stores()
    await emit(store, "s", 3)
    await emit(store, "other", 1)
    ttl = 1.5
    # A dispatcher claimed the head and died (kill -9): no finish, ever.
    claimed = await store.claim_line("s", "dead", time.time(), ttl)
    assert claimed is not None
    with python_receiver() as receiver:
        async with httpx.AsyncClient() as client:
            live = dispatcher(store, client, receiver.url, owner="live")
            await live.start()
            try:
                # Other lines deliver; the claimed one waits for its claim to expire...
                await until(lambda: len(receiver.requests) >= 1)
                await asyncio.sleep(0.5)
                assert [e["session_id"] for e in receiver.events()] == ["other"]
                # ...then the live dispatcher takes it and delivers it all, in order.
                await until(lambda: len(receiver.requests) >= 4, timeout=15)
            finally:
                await live.stop()
    seen = [e["data"]["n"] for e in receiver.events() if e["session_id"] == "s"]
    assert seen == [0, 1, 2]
    assert {e.status for e in await store.list_events()} == {"delivered"}
    assert set((await claims(store)).values()) == {(None, None)}


async def all_delivered(store: SqlStore) -> bool:
    """Every line settled: a duplicate could only come from an attempt still in flight,
    and stopping the dispatchers lets those finish before the receiver is read."""
    return {e.status for e in await store.list_events(limit=1000)} == {"delivered"}


@pytest.mark.parametrize("engine", ENGINES)
async def test_two_dispatchers_on_one_database_deliver_each_event_once_in_order(
    stores: Stores,
) -> None:
    first, second = await stores(), await stores()
    sessions = [f"s{i}" for i in range(10)]
    for sid in sessions:
        await emit(first, sid, 10)
    with python_receiver() as receiver:
        receiver.delay = 0.002
        async with httpx.AsyncClient() as c1, httpx.AsyncClient() as c2:
            one = dispatcher(first, c1, receiver.url, concurrency=5)
            two = dispatcher(second, c2, receiver.url, concurrency=5)
            await one.start()
            await two.start()
            try:
                # Half the events are written while both deliver, through either store.
                for i, sid in enumerate(sessions):
                    await emit(first if i % 2 else second, sid, 10, start=10)
                await until(lambda: len(receiver.requests) >= 200, timeout=60)
                await until(lambda: all_delivered(first), timeout=30)
            finally:
                await one.stop()
                await two.stop()
    ids = [r["json"]["id"] for r in receiver.requests]
    assert len(ids) == 200 and len(set(ids)) == 200, "an event was delivered twice"
    assert set(ids) == {e.id for e in await first.list_events(limit=1000)}
    for sid in sessions:
        seen = [e["data"]["n"] for e in receiver.events() if e["session_id"] == sid]
        assert seen == list(range(20)), sid
    assert one.delivered > 0 and two.delivered > 0, "one dispatcher did all the work"
    assert one.delivered + two.delivered == 200
    assert {e.status for e in await second.list_events(limit=1000)} == {"delivered"}


@pytest.mark.parametrize("engine", ENGINES)
async def test_waiting_lines_go_out_once_when_another_process_sets_the_url(
    stores: Stores,
) -> None:
    first, second, api = await stores(), await stores(), await stores()
    sessions = [f"s{i}" for i in range(4)]
    for sid in sessions:
        await emit(first, sid, 5)

    async def parked() -> bool:
        events = await api.list_events(limit=1000)
        heads = {e.session_id: e for e in reversed(events)}
        return all(e.last_error == NO_WEBHOOK_URL for e in heads.values()) and len(heads) == 4

    with python_receiver() as receiver:
        async with httpx.AsyncClient() as c1, httpx.AsyncClient() as c2:
            # Cluster dispatchers with no SIDECAR_WEBHOOK_URL: the lines wait, claimed by none.
            one = dispatcher(first, c1, "")
            two = dispatcher(second, c2, "")
            await one.start()
            await two.start()
            try:
                await until(parked)
                assert set((await claims(api)).values()) == {(None, None)}
                # An api process PATCHes each session's webhook_url: neither dispatcher was
                # told, both find the lines due on their next scan.
                for sid in sessions:
                    await api.update_session(sid, {"webhook_url": receiver.url})
                await until(lambda: len(receiver.requests) >= 20, timeout=30)
                await until(lambda: all_delivered(api), timeout=30)
            finally:
                await one.stop()
                await two.stop()
    ids = [r["json"]["id"] for r in receiver.requests]
    assert len(ids) == 20 and len(set(ids)) == 20, "an event was delivered twice"
    for sid in sessions:
        seen = [e["data"]["n"] for e in receiver.events() if e["session_id"] == sid]
        assert seen == list(range(5)), sid
    assert {e.status for e in await api.list_events(limit=1000)} == {"delivered"}


@pytest.mark.parametrize("engine", ENGINES)
async def test_a_url_set_while_a_urlless_head_is_claimed_is_not_parked_away(
    stores: Stores,
) -> None:
    store = await stores()
    await emit(store, "s", 1)
    # A dispatcher with no SIDECAR_WEBHOOK_URL claims the head, which has no URL...
    head = await store.claim_line("s", "A", time.time(), 30)
    assert head is not None and head.url is None
    # ...and before it records that the head waits for one, the session gets one.
    await store.update_session("s", {"webhook_url": "http://127.0.0.1:9/hook"})
    async with httpx.AsyncClient() as client:
        waiting = Dispatcher(store, client, secret=WEBHOOK_SECRET, default_url="", owner="A")
        assert await waiting._deliver(head) is False
    # The URL wins: the head stays due now, not parked for 24 h, and nobody holds it.
    event = await store.get_event(head.id)
    assert event is not None
    assert event.url == "http://127.0.0.1:9/hook"
    assert event.last_error is None and event.next_attempt_at <= time.time()
    assert event.attempts == 0
    assert await store.due_lines(time.time(), 10) == ["s"]
    assert (await claims(store))[head.id] == (None, None)


@pytest.mark.parametrize("engine", ENGINES)
async def test_a_deleted_sessions_waiting_events_neither_block_nor_reach_its_successor(
    stores: Stores,
) -> None:
    store = await stores()
    await store.create_session(SessionRecord(session_id="s", workspace_id="acme"))
    await store.update_session("s", {}, [NewEvent("test_event", {"n": "old"})])
    head = await store.claim_line("s", "A", time.time(), 30)
    assert head is not None
    async with httpx.AsyncClient() as client:
        parking = Dispatcher(store, client, secret=WEBHOOK_SECRET, default_url="", owner="A")
        assert await parking._deliver(head) is False
    parked = await store.get_event(head.id)
    assert parked is not None and parked.last_error == NO_WEBHOOK_URL

    # The session goes; another workspace creates one of the same id and gives it a URL.
    await store.delete_session("s")
    await store.create_session(SessionRecord(session_id="s", workspace_id="other"))
    await store.update_session("s", {}, [NewEvent("test_event", {"n": "new"})])
    with python_receiver() as receiver:
        await store.update_session("s", {"webhook_url": receiver.url})
        # The URL is the new session's: the old session's event does not take it.
        kept = await store.get_event(head.id)
        assert kept is not None and kept.url is None
        async with httpx.AsyncClient() as client:
            waiting = dispatcher(store, client, "")
            await waiting.start()
            try:
                # ...and does not hold its line for 24 h: it is dead, the new one goes out.
                await until(lambda: len(receiver.requests) >= 1, timeout=30)
            finally:
                await waiting.stop()
    assert [(e["workspace_id"], e["data"]["n"]) for e in receiver.events()] == [("other", "new")]
    old = await store.get_event(head.id)
    assert old is not None and old.status == "dead"
    assert old.last_error == f"{NO_WEBHOOK_URL}, and its session was deleted"
    assert old.attempts == 0
