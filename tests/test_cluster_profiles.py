"""A profile on shared storage whose Chromium lock names another host: never cleared while
that host holds the session's lease; cleared when the host is gone or its browser let go."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from service.browser.profile_lock import lock_host
from service.cluster.profiles import ProfileGuard
from service.store import NodeRecord, SessionRecord, SqlStore
from tests.support.stores import opened_stores


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[SqlStore]:
    async for opener in opened_stores(db_url):
        store = await opener()
        await store.create_session(SessionRecord("p1", "acme", desired_state="running"))
        yield store


def locked(tmp_path: Path, target: str) -> Path:
    profile = tmp_path / "profile"
    profile.mkdir(exist_ok=True)
    (profile / "SingletonLock").unlink(missing_ok=True)
    os.symlink(target, profile / "SingletonLock")
    return profile


def test_lock_host_reads_what_chromium_writes(tmp_path: Path) -> None:
    assert lock_host(tmp_path) is None
    assert lock_host(locked(tmp_path, "worker-b.example-internal-4242")) == (
        "worker-b.example-internal"
    )
    assert lock_host(locked(tmp_path, "no-pid-here")) is None


async def beat(store: SqlStore, node_id: str, host: str) -> None:
    now = time.time()
    await store.heartbeat(NodeRecord(node_id, "worker", None, 10, 0, now, now, False, host), now)


async def test_a_lock_of_a_host_that_holds_the_lease_is_never_cleared(
    store: SqlStore, tmp_path: Path
) -> None:
    profile = locked(tmp_path, "host-b-77")
    await beat(store, "wb", "host-b")
    assert await store.acquire_lease("p1", "wb", time.time(), 30.0) is not None
    assert not await ProfileGuard(store, 10.0).may_open("p1", profile, "host-b")


async def test_a_lock_of_a_host_that_is_gone_is_stale(store: SqlStore, tmp_path: Path) -> None:
    profile = locked(tmp_path, "host-c-77")
    assert await ProfileGuard(store, 10.0).may_open("p1", profile, "host-c")


async def test_a_live_host_that_lost_the_lease_is_waited_for(
    store: SqlStore, tmp_path: Path
) -> None:
    profile = locked(tmp_path, "host-b-77")
    await beat(store, "wb", "host-b")
    guard = ProfileGuard(store, 30.0, poll=0.05)
    waiting = asyncio.create_task(guard.may_open("p1", profile, "host-b"))
    await asyncio.sleep(0.3)
    assert not waiting.done()  # its browser still holds the profile
    (profile / "SingletonLock").unlink()  # closed, as a browser does when its lease is lost
    assert await asyncio.wait_for(waiting, 10)
