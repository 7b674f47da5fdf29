"""The event monitor's streams over a real store: where a fresh, a resuming and a far-behind
client start, a new row woken through the store's listener, and the end when the service
stops."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from service.dashboard import events as monitor
from service.dashboard.events import EventMonitor, StreamFilter
from service.dashboard.live import Changes
from service.store import NewEvent, SessionRecord, SqlStore


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqlStore]:
    store = SqlStore(str(tmp_path / "s.sqlite3"))
    await store.open()
    await store.create_session(SessionRecord(session_id="a", workspace_id="w"))
    await store.create_session(SessionRecord(session_id="b", workspace_id="w"))
    yield store
    await store.close()


def parse(chunk: str) -> tuple[str | None, int | None, dict[str, Any] | None]:
    """(event, id, data) of one server-sent event; data None for a comment or retry line."""
    fields = dict(line.split(": ", 1) for line in chunk.strip().splitlines())
    data = json.loads(fields["data"]) if "data" in fields else None
    event_id = int(fields["id"]) if "id" in fields else None
    return fields.get("event"), event_id, data


async def take(stream: AsyncIterator[str], count: int) -> list[tuple[Any, ...]]:
    """The next `count` events with data (retry lines and keep-alives skipped)."""
    taken: list[tuple[Any, ...]] = []
    while len(taken) < count:
        parsed = parse(await asyncio.wait_for(anext(stream), 10))
        if parsed[2] is not None:
            taken.append(parsed)
    return taken


async def test_a_fresh_client_gets_the_last_few_then_each_new_row(store: SqlStore) -> None:
    for i in range(monitor.INITIAL + 5):
        await store.update_session("a", {}, [NewEvent("e", {"n": i})])
    changes = Changes(store)
    feed = EventMonitor(store, changes)
    stream = feed.stream(None, StreamFilter())
    first = await take(stream, monitor.INITIAL)
    assert [data["body"]["data"]["n"] for _, _, data in first] == list(range(5, 25))
    assert {event for event, _, _ in first} == {"outbox"}
    # A new row is streamed (the store's listener wakes the stream), with its seq as id.
    reading = asyncio.create_task(take(stream, 1))
    await store.update_session("b", {}, [NewEvent("late", {})])
    ((_, seq, data),) = await reading
    assert (data["event"], data["session_id"], data["seq"]) == ("late", "b", seq)
    assert seq == await store.outbox_mark()
    assert feed.open == 1
    changes.close()
    # The service stops: the stream ends (uvicorn would otherwise wait for it).
    with pytest.raises(StopAsyncIteration):
        while True:
            await asyncio.wait_for(anext(stream), 5)
    assert feed.open == 0


async def test_a_reconnecting_client_resumes_after_its_last_id_or_learns_of_a_gap(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(monitor, "RESUME_LIMIT", 3)
    for i in range(6):
        await store.update_session("a" if i % 2 else "b", {}, [NewEvent(f"e{i}", {})])
    rows = await store.events_after(0, 10)
    feed = EventMonitor(store, Changes(store))

    resumed = await take(feed.stream(rows[3].seq, StreamFilter()), 2)
    assert [data["id"] for _, _, data in resumed] == [rows[4].id, rows[5].id]

    behind = await take(feed.stream(rows[0].seq, StreamFilter(session_id="a")), 3)
    # Five rows after its id, the last three caught up: two skipped, said so with an id.
    assert behind[0] == ("gap", rows[2].seq, {"skipped": 2})
    assert [data["event"] for _, _, data in behind[1:]] == ["e3", "e5"]
