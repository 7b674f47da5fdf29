"""The dashboard's reads of the store (on both engines), its sampled history and the SVG
charts drawn from it."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from xml.etree import ElementTree

import pytest

from service.dashboard.history import History, Point
from service.dashboard.svg import bar_chart, line_chart, mebibytes
from service.store import DeadFilter, MessageRecord, NewEvent, SessionRecord
from tests.support.stores import Opener, opened_stores


@pytest.fixture
async def stores(db_url: str) -> AsyncIterator[Opener]:
    async for opener in opened_stores(db_url):
        yield opener


def message(message_id: str, session_id: str) -> MessageRecord:
    return MessageRecord(
        id=message_id, session_id=session_id, workspace_id="w", direction="out",
        chat_id="1@c.us", type="text", content='{"text":"hi"}', status="queued",
    )  # fmt: skip


async def test_outbox_reads_by_cursor_and_by_the_replay_filter(stores: Opener) -> None:
    store = await stores()
    for sid, ws in {"a": "w1", "b": "w2"}.items():
        await store.create_session(SessionRecord(session_id=sid, workspace_id=ws))
        await store.update_session(sid, {}, [NewEvent("e1", {}), NewEvent("e2", {})])
    events = await store.list_events()
    assert len(events) == 4

    # The cursor: rows after a seq, in seq order, at most `limit`.
    assert [e.id for e in await store.events_after(0, 10)] == [e.id for e in events]
    assert [e.id for e in await store.events_after(events[1].seq, 1)] == [events[2].id]
    assert await store.events_after(events[-1].seq, 10) == []

    dead = {"status": "dead", "last_error": "HTTP 410", "last_status_code": 410}
    for event in events[1:]:
        await store.finish_attempt(event.id, dead)
    # What find_events lists as dead for a filter is what replay_dead then takes.
    for match in (DeadFilter(), DeadFilter(workspace_id="w2"), DeadFilter(event="e1")):
        rows, total = await store.find_events("dead", match, 1)
        everything, _ = await store.find_events("dead", match, 100)
        assert len(rows) == min(total, 1)
        assert total == len(everything)
        if rows:
            assert (rows[0].last_status_code, rows[0].last_error) == (410, "HTTP 410")
        assert await store.replay_dead(match, time.time()) == total, match
        for event in events[1:]:
            await store.finish_attempt(event.id, dead)
    pending, count = await store.find_events("pending", DeadFilter(session_id="a"), 100)
    assert ([e.id for e in pending], count) == ([events[0].id], 1)


async def test_history_samples_sessions_messages_and_the_backlog(stores: Opener) -> None:
    store = await stores()
    memory = {"a": 300 * 2**20, "b": 500 * 2**20}
    history = History(store, lambda: memory, interval=10, window=30)
    assert history.samples.maxlen == 4
    await store.create_session(SessionRecord(session_id="a", workspace_id="w"))
    await store.create_session(SessionRecord(session_id="b", workspace_id="w"))
    await store.update_session("a", {"status": "connected"}, [NewEvent("e", {})])
    # Samples at made-up moments a minute ahead: the backlog's head is about 60 s old then.
    t0 = time.time() + 60
    first = await history.sample(now=t0)
    assert (first.sessions["connected"], first.sessions["stopped"]) == (1, 1)
    assert first.pending == 1
    assert first.backlog_age == pytest.approx(60, abs=5)
    for i in range(6):
        await store.enqueue_message(message(f"m{i}", "a"))
    await history.sample(now=t0 + 30)
    # Six messages in 30 s are twelve a minute, drawn at the later sample.
    assert history.messages_per_minute() == [Point(t0 + 30, 12.0)]
    assert set(history.sessions_by_status()) == {"connected", "stopped"}
    assert history.memory_by_session(limit=1) == [("b", 500 * 2**20)]
    for n in range(5):
        await history.sample(now=t0 + 40 + n)
    # The ring keeps the window's worth and no more.
    assert [x.at - t0 for x in history.samples] == [41, 42, 43, 44]


def test_charts_are_svg_with_every_label_escaped() -> None:
    svg_ns = "{http://www.w3.org/2000/svg}"
    series = {"<b>": [Point(0, 1), Point(60, 3)], "connected": [Point(0, 2), Point(60, 0)]}
    svg = line_chart("sessions & more", series, colours={"connected": "#2e7d32"})
    # Well-formed XML (our own output, not untrusted): nothing unescaped got in.
    root = ElementTree.fromstring(svg)  # noqa: S314
    assert root.findtext(f"{svg_ns}title") == "sessions & more"
    assert len(root.findall(f"{svg_ns}polyline")) == 2
    assert "&lt;b&gt;" in svg
    bars = bar_chart("memory", [("s<1>", 2**30), ("s2", 2**29)], fmt=mebibytes)
    texts = [t.text for t in ElementTree.fromstring(bars).iter(f"{svg_ns}text")]  # noqa: S314
    assert ["s<1>", "1024 MiB", "s2", "512 MiB"] == texts
    assert "no samples yet" in line_chart("empty", {})
