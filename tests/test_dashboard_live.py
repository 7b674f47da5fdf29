"""Page streams over a real store: a burst of commits re-reads a page at most every
MIN_GAP, and a stream ends by itself at its lifetime (the sign-in's expiry), so a tab left
open does not outlive its session."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from service.dashboard import live
from service.dashboard.live import Changes, snapshot_events
from service.store import NewEvent, SessionRecord, SqlStore


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqlStore]:
    store = SqlStore(str(tmp_path / "s.sqlite3"))
    await store.open()
    await store.create_session(SessionRecord(session_id="a", workspace_id="w"))
    yield store
    await store.close()


async def test_a_burst_of_commits_is_read_at_most_every_min_gap(store: SqlStore) -> None:
    changes = Changes(store)
    reads = 0

    async def snapshot() -> dict[str, Any]:
        nonlocal reads
        reads += 1
        return {"n": {"reads": reads}}

    lifetime = 6 * live.MIN_GAP
    stream = snapshot_events(changes, snapshot, "fragment", lifetime=lifetime)
    chunks: list[str] = []

    async def consume() -> None:
        async for chunk in stream:
            chunks.append(chunk)

    consumer = asyncio.create_task(consume())
    commits = 0
    while not consumer.done():
        # Every commit wakes the stream; far more of them than MIN_GAP allows reads for.
        await store.update_session("a", {}, [NewEvent("e", {"n": commits})])
        commits += 1
    await consumer  # it ended by itself at its lifetime
    assert commits > 3 * (lifetime / live.MIN_GAP)
    # One read at once, then at most one per MIN_GAP of the lifetime (a slow machine reads
    # fewer, never more).
    assert 2 <= reads <= lifetime / live.MIN_GAP + 1
    assert chunks[0].startswith("retry:") and changes.open == 0


async def test_a_stream_whose_sign_in_has_expired_ends_at_once(store: SqlStore) -> None:
    changes = Changes(store)

    async def snapshot() -> dict[str, Any]:
        return {"x": {"v": 1}}

    chunks = [c async for c in snapshot_events(changes, snapshot, "fragment", lifetime=0.0)]
    assert chunks == ["retry: 2000\n\n"]
