"""ClusterNode's loops with real time and a real store: leases stay renewed while a browser
takes its time closing, a renewal racing a release never takes the session back, and a node
paused past its lease knows it before any renewal round."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from service.cluster import ClusterNode
from service.store import Lease, SessionRecord, SqlStore
from tests.support.stores import opened_stores

TTL = 3.0


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[SqlStore]:
    async for opener in opened_stores(db_url):
        store = await opener()
        for session_id in ("s1", "s2"):
            await store.create_session(SessionRecord(session_id, "acme", desired_state="running"))
        yield store


async def wait_for(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := await check():
            return result
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def test_leases_stay_renewed_while_a_browser_is_slow_to_close(store: SqlStore) -> None:
    closing = asyncio.Event()
    closed = asyncio.Event()

    async def slow_close(session_id: str) -> None:
        closing.set()
        await closed.wait()

    node = ClusterNode(store, "w1", ttl=TTL, before_release=slow_close)
    runner = asyncio.create_task(node.run())
    try:

        async def both() -> bool:
            return len(node.owned) == 2

        await wait_for(both, 10, "both sessions")
        await store.update_session("s1", {"desired_state": "stopped"})
        node.wake()
        await asyncio.wait_for(closing.wait(), 10)
        blocked_at = time.time()

        async def s2_renewed_since() -> bool:
            lease = await store.lease("s2")
            return lease is not None and lease.expires_at > blocked_at + TTL + 0.5

        # The placement loop waits on the browser; the leases are renewed all the same.
        await wait_for(s2_renewed_since, 3 * TTL, "a renewal while s1 closes")
        lease = await store.lease("s1")
        assert lease is not None and lease.node_id == "w1" and lease.expires_at > time.time()
        closed.set()

        async def s1_released() -> bool:
            lease = await store.lease("s1")
            return lease is not None and lease.expires_at <= time.time()

        await wait_for(s1_released, 10, "s1's lease to go")
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)


class SlowRenewals:
    """The store, with renewals that wait at `gate` after reading (a slow database)."""

    def __init__(self, store: SqlStore) -> None:
        self.store = store
        self.gate = asyncio.Event()
        self.gate.set()
        self.read = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    async def renew_leases(self, node_id: str, now: float, ttl: float) -> list[Lease]:
        renewed = await self.store.renew_leases(node_id, now, ttl)
        self.read.set()
        await self.gate.wait()
        return renewed


async def test_a_renewal_racing_a_release_never_takes_the_session_back(store: SqlStore) -> None:
    slow = SlowRenewals(store)
    acquired: list[str] = []
    node = ClusterNode(
        slow, "w1", ttl=TTL, on_acquired=lambda lease: acquired.append(lease.session_id)
    )  # type: ignore[arg-type]
    await node.tick()
    assert sorted(node.owned) == ["s1", "s2"] and sorted(acquired) == ["s1", "s2"]
    slow.gate.clear()
    slow.read.clear()
    renewal = asyncio.create_task(node.renew())
    await asyncio.wait_for(slow.read.wait(), 10)  # it read s1 as renewed, and waits
    assert await node.release("s1")
    slow.gate.set()
    assert await renewal == []
    assert sorted(node.owned) == ["s2"] and sorted(acquired) == ["s1", "s2"]


async def test_a_node_paused_past_its_lease_knows_it_at_once(store: SqlStore) -> None:
    now = [time.time()]
    node = ClusterNode(store, "w1", ttl=TTL, clock=lambda: now[0])
    await node.tick()
    assert node.holds("s1")
    now[0] += TTL - 0.5  # within a second of the end: no more sends
    assert not node.holds("s1")
    assert "s1" in node.owned  # no renewal round has run yet
