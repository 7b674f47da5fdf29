"""Cluster control plane: placement (pure) and ClusterNode rounds on both store engines.

The nodes share one store and one injected clock (started at the wall clock, since fenced
writes check expiry by it); each test drives their rounds by hand.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest

from service.cluster import ClusterNode, live_nodes, place, preferred_order, rebalance
from service.store import Lease, LeaseLost, NodeRecord, SessionRecord, SqlStore
from tests.support.mariadb import PrivateMariaDB
from tests.support.stores import Opener, database_name, opened_stores

TTL = 10.0


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[SqlStore]:
    async for opener in opened_stores(db_url):
        yield await opener()


@pytest.fixture
async def stores(db_url: str) -> AsyncIterator[Opener]:
    """Stores on this test's database, as separate processes would have them."""
    async for opener in opened_stores(db_url):
        yield opener


@pytest.fixture
async def mysql_stores(
    request: pytest.FixtureRequest, mariadb_server: PrivateMariaDB
) -> AsyncIterator[Opener]:
    async for opener in opened_stores(mariadb_server.fresh_database(database_name(request))):
        yield opener


async def seed(store: SqlStore, count: int, workspaces: int = 5) -> list[str]:
    ids = [f"s{i:03d}" for i in range(count)]
    for i, session_id in enumerate(ids):
        await store.create_session(
            SessionRecord(session_id, f"ws{i % workspaces}", desired_state="running")
        )
    return ids


async def owners(store: SqlStore, now: float) -> dict[str, Lease]:
    return {lease.session_id: lease for lease in await store.leases() if lease.expires_at > now}


def counts(leases: dict[str, Lease]) -> dict[str, int]:
    return dict(Counter(lease.node_id for lease in leases.values()))


def make_nodes(store: SqlStore, clock: Clock, names: str, **options: Any) -> list[ClusterNode]:
    defaults: dict[str, Any] = {"capacity": 20, "ttl": TTL, "clock": clock}
    return [ClusterNode(store, name, **(defaults | options)) for name in names]


async def start(nodes: list[ClusterNode]) -> None:
    for node in nodes:
        await node.beat()
    for node in nodes:
        await node.claim()


async def run_rounds(nodes: list[ClusterNode], clock: Clock, rounds: int) -> None:
    for _ in range(rounds):
        clock.advance(TTL / 3)
        for node in nodes:
            await node.tick()


def assert_consistent(nodes: list[ClusterNode], leases: dict[str, Lease]) -> None:
    """What each node believes it owns is exactly what the store says, no session twice."""
    for node in nodes:
        assert node.owned == {s: x for s, x in leases.items() if x.node_id == node.node_id}


# --- placement: pure ------------------------------------------------------------------------


def node(node_id: str, capacity: int = 10, beat: float = 100.0, **changes: Any) -> NodeRecord:
    return NodeRecord(
        node_id, changes.pop("role", "worker"), None, capacity, 0, 0.0, beat, **changes
    )


def test_live_nodes_are_fresh_workers_not_draining() -> None:
    nodes = [
        node("c"),
        node("a", role="all"),
        node("api", role="api"),
        node("old", beat=89.9),
        node("edge", beat=90.0),  # exactly ttl old: gone
        node("d", draining=True),
    ]
    assert [n.node_id for n in live_nodes(nodes, now=100.0, ttl=10.0)] == ["a", "c"]


def test_capacity_placement_takes_the_most_free_slots_ties_to_the_lowest_id() -> None:
    session = SessionRecord("s", "w")
    nodes = [node("b", 10), node("a", 10), node("c", 4)]
    assert place(session, nodes, {}) == "a"
    assert place(session, nodes, {"a": 1}) == "b"
    assert place(session, nodes, {"a": 7, "b": 7}) == "c"
    assert place(session, nodes, {"a": 10, "b": 10, "c": 4}) is None
    with pytest.raises(ValueError):
        place(session, nodes, {}, "random")


def test_workspace_hash_is_stable_and_losing_a_node_moves_only_its_workspaces() -> None:
    names = ["n1", "n2", "n3", "n4", "n5"]
    nodes = [node(name, 1000) for name in names]
    workspaces = [f"w{i}" for i in range(400)]

    def assignment(live: list[NodeRecord]) -> dict[str, str | None]:
        return {w: place(SessionRecord("s", w), live, {}, "workspace_hash") for w in workspaces}

    before = assignment(nodes)
    assert before == assignment(list(reversed(nodes)))  # order of the list does not matter
    assert set(Counter(before.values())) == set(names)
    assert min(Counter(before.values()).values()) > 40  # spread, roughly evenly
    after = assignment([n for n in nodes if n.node_id != "n3"])
    moved = {w for w in workspaces if before[w] != after[w]}
    assert moved == {w for w in workspaces if before[w] == "n3"}
    # A full node is skipped: the next by weight takes it.
    first, second = preferred_order("w7", nodes)[:2]
    full = {first.node_id: 1000}
    assert place(SessionRecord("s", "w7"), nodes, full, "workspace_hash") == second.node_id


def test_rebalance_evens_free_slots_a_few_at_a_time() -> None:
    nodes = [node("a", 20), node("b", 20), node("c", 20)]
    assert rebalance(nodes, {"a": 15, "b": 15}, step=4) == {"a": 2, "b": 2}
    assert rebalance(nodes, {"a": 15, "b": 15}, step=100) == {"a": 5, "b": 5}
    assert rebalance(nodes, {"a": 11, "b": 10, "c": 10}, step=5) == {}  # within one
    assert rebalance(nodes, {"a": 11, "b": 10, "c": 9}, step=5) == {"a": 1}
    assert rebalance(nodes, {"a": 12, "b": 10, "c": 9}, step=5) == {"a": 1}
    assert rebalance(nodes, {}, step=5) == {}
    assert rebalance([], {"a": 3}, step=5) == {}


# --- ClusterNode on both engines ------------------------------------------------------------


async def test_three_nodes_share_the_sessions_by_capacity(store: SqlStore) -> None:
    clock = Clock()
    ids = await seed(store, 30)
    acquired: list[str] = []
    nodes = make_nodes(store, clock, "abc", on_acquired=lambda x: acquired.append(x.session_id))
    await start(nodes)
    leases = await owners(store, clock())
    assert sorted(leases) == ids == sorted(acquired)
    assert counts(leases) == {"a": 10, "b": 10, "c": 10}
    assert_consistent(nodes, leases)
    # Heartbeats carry the counts; another round changes nothing.
    await run_rounds(nodes, clock, 2)
    assert [n.sessions for n in await store.list_nodes()] == [10, 10, 10]
    assert await owners(store, clock()) == {
        s: Lease(s, x.node_id, 1, clock() + TTL) for s, x in leases.items()
    }


async def test_claims_are_bounded_per_round_and_stop_at_capacity(store: SqlStore) -> None:
    clock = Clock()
    await seed(store, 30)
    (a,) = make_nodes(store, clock, "a", capacity=12, claim_batch=5)
    await a.beat()
    assert len(await a.claim()) == 5
    await run_rounds([a], clock, 3)
    assert len(a.owned) == 12  # full: the rest wait for another node


async def test_workspace_hash_keeps_workspaces_together_and_moves_only_the_lost_nodes(
    store: SqlStore,
) -> None:
    clock = Clock()
    await seed(store, 36, workspaces=12)
    nodes = make_nodes(store, clock, "abc", capacity=50, placement="workspace_hash")
    await start(nodes)
    before = await owners(store, clock())
    assert len(before) == 36
    records = await store.list_nodes()
    by_workspace: dict[str, set[str]] = {}
    for session in await store.list_sessions():
        by_workspace.setdefault(session.workspace_id, set()).add(before[session.session_id].node_id)
    for workspace, held in by_workspace.items():
        assert held == {preferred_order(workspace, records)[0].node_id}
    assert len(set(counts(before))) == 3
    # c stops beating; a and b go on until its heartbeat and leases are older than the ttl.
    a, b = nodes[:2]
    await run_rounds([a, b], clock, 4)
    after = await owners(store, clock())
    assert sorted(after) == sorted(before)
    for session_id, lease in before.items():
        if lease.node_id != "c":
            assert (after[session_id].node_id, after[session_id].token) == (lease.node_id, 1)
        else:
            assert after[session_id].node_id in ("a", "b") and after[session_id].token == 2
    survivors = [r for r in records if r.node_id != "c"]
    for session in await store.list_sessions():
        expected = preferred_order(session.workspace_id, survivors)[0].node_id
        assert after[session.session_id].node_id == expected
    assert_consistent([a, b], after)


async def test_a_node_that_stops_beating_loses_its_sessions_and_its_fenced_writes(
    store: SqlStore,
) -> None:
    clock = Clock()
    await seed(store, 30)
    lost: list[str] = []
    nodes = make_nodes(store, clock, "abc", on_lost=lost.append)
    await start(nodes)
    a, b, c = nodes
    c_had = dict(c.owned)
    assert len(c_had) == 10
    victim, lease = next(iter(c_had.items()))
    await store.update_session(victim, {"last_error": "ok"}, fence=("c", lease.token))
    await run_rounds([a, b], clock, 4)  # 13.3 s: c is gone
    after = await owners(store, clock())
    assert len(after) == 30 and counts(after) == {"a": 15, "b": 15}
    assert all(after[s].token == 2 for s in c_had)
    with pytest.raises(LeaseLost):
        await store.update_session(victim, {"last_error": "stale"}, fence=("c", lease.token))
    new = after[victim]
    await store.update_session(victim, {"last_error": "new"}, fence=(new.node_id, new.token))
    session = await store.get_session(victim)
    assert session is not None and session.last_error == "new"
    # c wakes up: its renewal finds nothing, every session is reported lost, none kept.
    assert lost == []
    assert sorted(await c.renew()) == sorted(c_had) == sorted(lost)
    assert c.owned == {}
    await c.tick()  # it beats again and is live, but takes nothing from live leases
    assert await owners(store, clock()) == after


async def test_a_joining_node_takes_a_share_a_few_at_a_time(store: SqlStore) -> None:
    clock = Clock()
    await seed(store, 30)
    released: list[str] = []
    a, b = make_nodes(store, clock, "ab", rebalance_step=2, on_released=released.append)
    await start([a, b])
    assert counts(await owners(store, clock())) == {"a": 15, "b": 15}
    (c,) = make_nodes(store, clock, "c", rebalance_step=2)
    await c.beat()
    per_round = []
    for _ in range(15):
        mark = len(released)
        await run_rounds([a, b, c], clock, 1)
        per_round.append(len(released) - mark)
    assert max(per_round) <= 2
    leases = await owners(store, clock())
    assert len(leases) == 30 and counts(leases) == {"a": 10, "b": 10, "c": 10}
    assert {s for s, x in leases.items() if x.node_id == "c"} == set(released)
    assert all(leases[s].token == 2 for s in released)
    assert per_round[-3:] == [0, 0, 0]  # settled
    assert_consistent([a, b, c], leases)


async def test_drain_releases_everything_and_the_others_take_it(store: SqlStore) -> None:
    clock = Clock()
    await seed(store, 30)
    nodes = make_nodes(store, clock, "abc")
    await start(nodes)
    c = nodes[2]
    had = set(c.owned)
    assert sorted(await c.drain()) == sorted(had) and c.owned == {}
    (record,) = [r for r in await store.list_nodes() if r.node_id == "c"]
    assert record.draining and record.sessions == 0
    assert [n.node_id for n in live_nodes(await store.list_nodes(), clock(), TTL)] == ["a", "b"]
    await run_rounds(nodes, clock, 1)
    leases = await owners(store, clock())
    assert counts(leases) == {"a": 15, "b": 15}
    assert all(leases[s].token == 2 for s in had)
    assert await c.claim() == []


async def test_a_drain_requested_through_the_store_holds_until_the_process_restarts(
    stores: Opener,
) -> None:
    store, command = await stores(), await stores()  # the node's, and the drain command's
    clock = Clock()
    await seed(store, 30)
    closed: list[tuple[str, bool]] = []
    released: list[str] = []

    async def close(session_id: str) -> None:
        lease = c.owned[session_id]
        held = await store.check_lease(session_id, "c", lease.token, clock())
        closed.append((session_id, held))

    a, b = make_nodes(store, clock, "ab")
    (c,) = make_nodes(store, clock, "c", before_release=close, on_released=released.append)
    await start([a, b, c])
    had = sorted(c.owned)
    assert len(had) == 10
    assert await command.request_drain("c")
    assert not await command.request_drain("nobody")
    await run_rounds([c, a, b], clock, 1)
    # c heard of it at its heartbeat, closed each session while still holding its lease,
    # then gave it up; a and b (later in the round) took them over.
    assert c.draining and c.owned == {}
    assert closed == [(session_id, True) for session_id in had] and released == had
    leases = await owners(store, clock())
    assert counts(leases) == {"a": 15, "b": 15}
    assert all(leases[s].token == 2 for s in had)
    # It stays drained while the process lives: its own heartbeats do not clear it.
    await run_rounds([a, b, c], clock, 3)
    assert c.owned == {} and await c.claim() == []
    (record,) = [r for r in await store.list_nodes() if r.node_id == "c"]
    assert record.draining and record.sessions == 0
    # Restarted under the same node id (a new ClusterNode, a later start): fresh.
    (c,) = make_nodes(store, clock, "c", rebalance_step=5)
    assert not (await c.beat()).draining
    await run_rounds([a, b, c], clock, 6)
    leases = await owners(store, clock())
    assert counts(leases) == {"a": 10, "b": 10, "c": 10}
    assert_consistent([a, b, c], leases)


async def test_a_drain_slower_than_the_ttl_keeps_the_leases_it_has_not_released(
    store: SqlStore,
) -> None:
    clock = Clock()
    await seed(store, 8)
    lost: list[str] = []
    held: list[bool] = []

    async def slow_close(session_id: str) -> None:
        clock.advance(TTL / 2)  # each browser takes half a ttl to close
        lease = a.owned[session_id]
        held.append(await store.check_lease(session_id, "a", lease.token, clock()))

    (a,) = make_nodes(store, clock, "a", before_release=slow_close, on_lost=lost.append)
    await start([a])
    assert len(a.owned) == 8
    assert len(await a.drain()) == 8  # four ttls: every lease was renewed on the way
    assert held == [True] * 8 and lost == []


async def test_a_session_no_longer_wanted_is_released(store: SqlStore) -> None:
    clock = Clock()
    await seed(store, 4)
    released: list[str] = []
    (a,) = make_nodes(store, clock, "a", on_released=released.append)
    await start([a])
    await store.update_session("s001", {"desired_state": "stopped"})
    await run_rounds([a], clock, 1)
    assert released == ["s001"] and sorted(a.owned) == ["s000", "s002", "s003"]


# --- MariaDB: two processes' stores racing ---------------------------------------------------


class Alone(ClusterNode):
    """A node whose view of the cluster holds only itself (it has not seen the other's
    heartbeat yet), so both place every orphan on themselves and race for it."""

    async def _view(self, now: float) -> Any:
        nodes, live, wanted = await super()._view(now)
        return [n for n in nodes if n.node_id == self.node_id], live, wanted


async def test_two_stores_racing_claims_never_give_a_session_two_owners(
    mysql_stores: Opener,
) -> None:
    first, second = await mysql_stores(), await mysql_stores()
    ids = await seed(first, 120)
    clock = Clock()
    options: dict[str, Any] = {"capacity": 500, "ttl": TTL, "clock": clock, "claim_batch": 10}
    a, b = Alone(first, "a", **options), Alone(second, "b", **options)
    await a.beat()
    await b.beat()

    async def claim_all(node: Alone) -> list[Lease]:
        # Rounds of 10: one claim of all 120 could end before the other's began.
        got: list[Lease] = []
        while taken := await node.claim():
            got += taken
        return got

    got_a, got_b = await asyncio.gather(claim_all(a), claim_all(b))
    assert got_a and got_b  # they really raced
    assert len(got_a) + len(got_b) == 120
    assert not set(a.owned) & set(b.owned)
    leases = await owners(first, clock())
    assert sorted(leases) == ids
    assert_consistent([a, b], leases)
    # Both renew and claim again: nothing changes hands.
    clock.advance(TTL / 3)
    await asyncio.gather(a.tick(), b.tick())
    assert await owners(second, clock()) == {
        s: Lease(s, x.node_id, x.token, clock() + TTL) for s, x in leases.items()
    }


async def test_run_repeats_rounds_until_cancelled(store: SqlStore) -> None:
    await seed(store, 6)
    node = ClusterNode(store, "a", capacity=10, ttl=0.3, claim_batch=2)
    task = asyncio.create_task(node.run())
    for _ in range(100):
        if len(node.owned) == 6:
            break
        await asyncio.sleep(0.02)
    assert len(node.owned) == 6  # three rounds of two claims
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # Nothing released on cancel (as after a kill): the leases run out on their own.
    assert len(await owners(store, time.time())) == 6


async def test_housekeeping_falls_to_one_live_worker_and_moves_when_it_goes(
    store: SqlStore,
) -> None:
    clock = Clock()
    a, b = make_nodes(store, clock, "ab")
    api = ClusterNode(store, "0-api", role="api", ttl=TTL, clock=clock)
    for each in (api, b):
        await each.beat()
    # An api node sorts first but runs no sessions' housekeeping; b is the only worker yet.
    assert [await n.is_first_worker() for n in (api, b)] == [False, True]
    await a.beat()
    assert [await n.is_first_worker() for n in (a, b)] == [True, False]
    clock.advance(TTL + 1)  # a stops beating: b takes over
    await b.beat()
    assert [await n.is_first_worker() for n in (a, b)] == [False, True]
