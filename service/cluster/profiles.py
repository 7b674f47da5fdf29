"""Shared storage: a profile whose Chromium lock names another host.

Profiles live on storage every worker mounts. Chromium refuses a profile whose
`SingletonLock` names another host, and the launcher clears a lock no process of its own
host holds, so a worker could open a profile a browser on another host still writes to.
The lease is the guard: a worker only opens profiles of sessions it holds, and before it
clears a lock naming another host, `ProfileGuard` checks that host. No live node there: the
lock is stale (the host is gone). A node there holding the session's live lease: never
clear (refused). A live node there without the lease (it lost it and is closing the
browser): wait, bounded by the lease ttl, for its browser to let go.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path

from service.browser.profile_lock import lock_host
from service.store.base import Store

log = logging.getLogger("service.cluster")


class ProfileGuard:
    """Decides whether a worker may clear a profile lock that names another host."""

    def __init__(
        self,
        store: Store,
        ttl: float,
        *,
        poll: float = 0.5,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.ttl = ttl
        self.poll = poll
        self.clock = clock

    async def may_open(self, session_id: str, profile: Path, host: str) -> bool:
        """True when the lock naming `host` on `profile` may be cleared; False when a node
        on `host` holds the session's live lease."""
        deadline = time.monotonic() + self.ttl
        while True:
            now = self.clock()
            there = {
                node.node_id
                for node in await self.store.list_nodes()
                if node.host == host and now - node.heartbeat_at < self.ttl
            }
            if not there:
                return True  # the host is gone: what it left is stale
            lease = await self.store.lease(session_id)
            if lease is not None and lease.expires_at > now and lease.node_id in there:
                log.error(
                    "session %s: its profile is locked by host %s, which holds its lease",
                    session_id,
                    host,
                )
                return False
            if lock_host(profile) != host:
                return True  # that host's browser let go
            if time.monotonic() >= deadline:
                log.warning(
                    "session %s: host %s still locks the profile after %.0f s; clearing",
                    session_id,
                    host,
                    self.ttl,
                )
                return True
            await asyncio.sleep(self.poll)
