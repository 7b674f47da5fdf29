"""One cluster node's control loop: heartbeat, lease renewal, claiming, rebalancing, drain.

Each coroutine is one round, so tests (and the control-plane benchmark) drive them with an
injected clock; `run()` repeats `tick()` every ttl/3 until cancelled. The node keeps what it
believes it owns (`owned`, session id -> Lease) and tells its owner through callbacks:
`on_acquired(lease)` when it gains a session, `on_lost(session_id)` when a lease ran out
under it (another node may run the session now: stop without writing), `on_released(
session_id)` when it gave one up on purpose (rebalance, drain, desired state stopped).
`before_release(session_id)` is awaited while the lease is still held, before giving a session
up on purpose: the browser closes and lets go of the profile before another node may open it.
`wake()` cuts the wait before the next round short (a session was created or started).
A drain is either called (`drain()`) or requested through the store (`python -m service
drain NODE` sets the row's flag): the next heartbeat hears of it and the round drains. Either
way the node stays drained until its process restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import socket
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from service.cluster.placement import (
    PLACEMENT_POLICIES,
    WORKER_ROLES,
    free_slots,
    live_nodes,
    place,
    preferred_order,
    rebalance,
)
from service.store.base import Lease, NodeRecord, SessionRecord, Store

log = logging.getLogger("service.cluster")


def _ignore(_: object) -> None:
    return None


async def _nothing(_: str) -> None:
    return None


class ClusterNode:
    """A node of the cluster, coordinating with the others only through `store`."""

    def __init__(
        self,
        store: Store,
        node_id: str,
        role: str = "worker",
        capacity: int = 50,
        ttl: float = 15.0,
        placement: str = "capacity",
        clock: Callable[[], float] = time.time,
        address: str | None = None,
        *,
        claim_batch: int = 25,
        rebalance_step: int = 5,
        headroom: Callable[[], int | None] | None = None,
        on_acquired: Callable[[Lease], None] = _ignore,
        on_lost: Callable[[str], None] = _ignore,
        on_released: Callable[[str], None] = _ignore,
        before_release: Callable[[str], Awaitable[None]] = _nothing,
    ) -> None:
        if placement not in PLACEMENT_POLICIES:
            raise ValueError(f"unknown placement policy {placement!r}")
        self.store = store
        self.node_id = node_id
        self.role = role
        self.capacity = capacity
        self.ttl = ttl
        self.placement = placement
        self.clock = clock
        self.address = address
        self.host = socket.gethostname()
        self.claim_batch = claim_batch
        self.rebalance_step = rebalance_step
        # How many more sessions memory allows now (None: no limit beyond `capacity`).
        self.headroom = headroom
        self.on_acquired = on_acquired
        self.on_lost = on_lost
        self.on_released = on_released
        self.before_release = before_release
        self.owned: dict[str, Lease] = {}
        self._wake = asyncio.Event()
        self.draining = False
        self.started_at = 0.0
        self._renewed_at = 0.0
        # The token of each lease given up, so a renewal racing the release never adopts it.
        self._released: dict[str, int] = {}

    @property
    def runs_sessions(self) -> bool:
        return self.role in WORKER_ROLES and not self.draining

    def effective_capacity(self) -> int:
        """`capacity`, lowered to what memory headroom allows on top of what it runs."""
        room = self.headroom() if self.headroom is not None else None
        if room is None:
            return self.capacity
        return max(0, min(self.capacity, len(self.owned) + room))

    # -- rounds ---------------------------------------------------------------------------

    async def beat(self) -> NodeRecord:
        """Heartbeat: this node's row with its session count, capacity and draining flag.
        A drain requested through the store sets `draining` (for good: `tick` drains)."""
        now = self.clock()
        if not self.started_at:
            self.started_at = now
        record = NodeRecord(
            node_id=self.node_id,
            role=self.role,
            address=self.address,
            capacity=self.effective_capacity(),
            sessions=len(self.owned),
            started_at=self.started_at,
            heartbeat_at=now,
            draining=self.draining,
            host=self.host,
        )
        if await self.store.heartbeat(record, now) and not self.draining:
            log.info("node %s: drain requested", self.node_id)
            self.draining = True
            self.wake()  # the placement loop drains
            record = dataclasses.replace(record, draining=True)
        return record

    async def renew(self) -> list[str]:
        """Extend this node's live leases; each session it owned that did not renew (expired,
        maybe taken over) is dropped and reported to `on_lost`. A live lease of this node it
        did not know of (a restart under the same id within the ttl) is adopted.

        Safe beside a claim or a release running at the same time (`run` renews in a loop of
        its own): only sessions held before the renewal can be lost by it, and a session
        given up meanwhile is not adopted back."""
        now = self.clock()
        before = dict(self.owned)
        renewed = {
            lease.session_id: lease
            for lease in await self.store.renew_leases(self.node_id, now, self.ttl)
        }
        self._renewed_at = now
        lost = [
            session_id
            for session_id, lease in before.items()
            if self._holds(session_id, lease.token)
            and (session_id not in renewed or renewed[session_id].token != lease.token)
        ]
        for session_id in lost:
            del self.owned[session_id]
            self._call(self.on_lost, session_id)
        for session_id, lease in renewed.items():
            current = self.owned.get(session_id)
            if current is not None:
                if current.token == lease.token:
                    self.owned[session_id] = lease  # the new expiry
            elif session_id not in before and self._released.get(session_id) != lease.token:
                self.owned[session_id] = lease
                self._call(self.on_acquired, lease)
        return lost

    def _holds(self, session_id: str, token: int) -> bool:
        current = self.owned.get(session_id)
        return current is not None and current.token == token

    def holds(self, session_id: str, margin: float = 1.0) -> bool:
        """Whether this node may act for the session now: it holds the lease and the lease
        runs for at least `margin` more seconds by its last renewal. A node that was paused
        past its lease (SIGSTOP, a long GC) says no at once, before a renewal round ran."""
        lease = self.owned.get(session_id)
        return lease is not None and lease.expires_at - margin > self.clock()

    async def claim(self) -> list[Lease]:
        """Take (up to `claim_batch`) running sessions with no live lease that placement
        gives this node, and release owned sessions whose desired state is no longer
        running. Every node plays the same placement over the same orphans, so each takes
        its own share; a session another node won first is skipped."""
        if not self.runs_sessions:
            return []
        now = self.clock()
        nodes, live, wanted = await self._view(now)
        for session_id in sorted(set(self.owned) - set(wanted)):
            await self.release(session_id)
        if self.node_id not in {node.node_id for node in nodes}:
            return []  # not live yet (no heartbeat) or seen as gone: leave them to others
        load = Counter(lease.node_id for lease in live.values())
        acquired: list[Lease] = []
        for session_id in sorted(set(wanted) - set(live)):
            if len(acquired) >= self.claim_batch:
                break
            target = place(wanted[session_id], nodes, load, self.placement)
            if target is None:
                break
            load[target] += 1
            if target != self.node_id:
                continue
            lease = await self.store.acquire_lease(session_id, self.node_id, now, self.ttl)
            if lease is None:
                continue  # another node was first
            if session_id in self.owned:  # its lease ran out before a renewal noticed
                del self.owned[session_id]
                self._call(self.on_lost, session_id)
            self.owned[session_id] = lease
            self._released.pop(session_id, None)
            acquired.append(lease)
            self._call(self.on_acquired, lease)
        return acquired

    async def rebalance(self) -> list[str]:
        """Give up this node's share of moves toward an even cluster (at most
        `rebalance_step` cluster-wide per round), so a node that joined takes some; waits
        while any running session has no owner. Under `workspace_hash`, give up sessions
        whose workspace now prefers another live node with room."""
        if not self.runs_sessions or not self.owned:
            return []
        now = self.clock()
        nodes, live, wanted = await self._view(now)
        if set(wanted) - set(live) or self.node_id not in {node.node_id for node in nodes}:
            return []
        load = Counter(lease.node_id for lease in live.values())
        mine = sorted(session_id for session_id in self.owned if session_id in wanted)
        if self.placement == "capacity":
            count = rebalance(nodes, load, self.rebalance_step).get(self.node_id, 0)
            # Give up the most recently taken ones (the highest tokens) first.
            mine.sort(key=lambda session_id: (-self.owned[session_id].token, session_id))
            leaving = mine[:count]
        else:
            leaving = []
            for session_id in mine:
                if len(leaving) >= self.rebalance_step:
                    break
                for node in preferred_order(wanted[session_id].workspace_id, nodes):
                    if node.node_id == self.node_id:
                        break
                    if free_slots(node, load) > 0:
                        load[node.node_id] += 1
                        leaving.append(session_id)
                        break
        released = []
        for session_id in leaving:
            if await self.release(session_id):
                released.append(session_id)
        return released

    async def release(self, session_id: str) -> bool:
        """Give up one owned session's lease (reported to `on_released`); False when this
        node did not own it or the lease was no longer its own."""
        lease = self.owned.get(session_id)
        if lease is None:
            return False
        try:
            await self.before_release(session_id)
        except Exception:
            log.exception("node %s: closing session %s before release", self.node_id, session_id)
        if not self._holds(session_id, lease.token):
            return False  # lost meanwhile (a renewal round saw it expire)
        del self.owned[session_id]
        self._released[session_id] = lease.token
        done = await self.store.release_lease(session_id, self.node_id, lease.token)
        self._call(self.on_released if done else self.on_lost, session_id)
        return done

    async def drain(self) -> list[str]:
        """Stop taking sessions, say so in a heartbeat, and release every lease (each after
        `before_release`), renewing the ones still held as the closing goes on."""
        self.draining = True
        await self.beat()
        released = []
        for session_id in sorted(self.owned):
            if self.clock() - self._renewed_at >= self.ttl / 3:
                # Closing browsers one at a time may outlast a lease: keep the rest held.
                await self.renew()
            if await self.release(session_id):
                released.append(session_id)
        await self.beat()
        return released

    async def tick(self) -> None:
        """One round: beat (then drain, when a drain was requested), renew, claim,
        rebalance."""
        await self.beat()
        if self.draining and self.owned:
            await self.drain()
        await self.renew()
        await self.claim()
        await self.rebalance()

    def wake(self) -> None:
        """Run the next round now (a session to place was created, started or stopped)."""
        self._wake.set()

    async def run(self) -> None:
        """Until cancelled: heartbeats and renewals every ttl/3 in a loop of their own, which
        nothing else waits on (closing a browser before a release may take many seconds,
        and the other leases must not run out meanwhile); and placement rounds (drain when
        requested, claim, rebalance) every ttl/3, or at once after `wake()`. A failed round
        is logged and retried. On cancel nothing is released (as after a kill): call
        `drain()` for a clean exit."""
        keeper = asyncio.create_task(self.keep_alive(), name=f"lease-keeper:{self.node_id}")
        try:
            while True:
                self._wake.clear()
                try:
                    if self.draining and self.owned:
                        await self.drain()
                    await self.claim()
                    await self.rebalance()
                except Exception as exc:  # the store may be restarting: keep going
                    log.warning("cluster round of node %s failed: %s", self.node_id, exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.ttl / 3)
        finally:
            keeper.cancel()
            await asyncio.gather(keeper, return_exceptions=True)

    async def keep_alive(self) -> None:
        """Heartbeat and renew every ttl/3 until cancelled (also while a node drains)."""
        while True:
            try:
                await self.beat()
                await self.renew()
            except Exception as exc:
                log.warning("heartbeat of node %s failed: %s", self.node_id, exc)
            await asyncio.sleep(self.ttl / 3)

    async def is_first_worker(self) -> bool:
        """Whether this node is the first live worker by node id: the one that runs the
        cluster's housekeeping (the media cleanup), so that the workers agree on one without
        talking, as placement does. A moment when two views differ costs a repeated pass."""
        nodes = live_nodes(await self.store.list_nodes(), self.clock(), self.ttl)
        return bool(nodes) and nodes[0].node_id == self.node_id

    # -- helpers --------------------------------------------------------------------------

    async def _view(
        self, now: float
    ) -> tuple[list[NodeRecord], dict[str, Lease], dict[str, SessionRecord]]:
        """Live worker nodes, live leases by session, and running sessions by id."""
        nodes = live_nodes(await self.store.list_nodes(), now, self.ttl)
        live = {
            lease.session_id: lease for lease in await self.store.leases() if lease.expires_at > now
        }
        wanted = {
            session.session_id: session
            for session in await self.store.list_sessions(desired_state="running")
        }
        return nodes, live, wanted

    def _call(self, callback: Callable[[Any], None], arg: Any) -> None:
        try:
            callback(arg)
        except Exception:
            log.exception("cluster callback of node %s failed", self.node_id)
