"""A worker's capacity: MAX_SESSIONS, lowered to what its host's free memory takes."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from service.cluster import ClusterNode
from service.cluster.placement import memory_headroom
from service.store import SessionRecord, SqlStore
from tests.support.stores import opened_stores

MB = 1024 * 1024


def test_memory_headroom_counts_whole_sessions_after_the_reserve() -> None:
    assert memory_headroom(4096 * MB, per_session=150 * MB, reserve=1024 * MB) == 20
    assert memory_headroom(1000 * MB, per_session=150 * MB, reserve=1024 * MB) == 0
    assert memory_headroom(1174 * MB, per_session=150 * MB, reserve=1024 * MB) == 1


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[SqlStore]:
    async for opener in opened_stores(db_url):
        yield await opener()


async def test_a_worker_short_of_memory_takes_only_what_fits(store: SqlStore) -> None:
    for i in range(6):
        await store.create_session(SessionRecord(f"m{i}", "acme", desired_state="running"))
    room = {"sessions": 2}
    now = time.time()
    node = ClusterNode(
        store, "w1", capacity=10, ttl=10.0, clock=lambda: now, headroom=lambda: room["sessions"]
    )
    await node.tick()
    assert len(node.owned) == 2
    assert (await store.list_nodes())[0].capacity == 2
    # Memory freed up: the next round takes as many more as now fit.
    room["sessions"] = 3
    await node.tick()
    assert len(node.owned) == 5
    # The sessions it started used that memory up: nothing more.
    room["sessions"] = 0
    await node.tick()
    assert len(node.owned) == 5
