"""Where a session should run: pure functions of the nodes' heartbeats and lease counts.

Every worker computes the same answer from the same view of the store, so they agree on
who claims what without talking to each other; the lease (one winner per session) settles
the moments when their views differ.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Literal, get_args

from service.store.base import NodeRecord, SessionRecord

PlacementPolicy = Literal["capacity", "workspace_hash"]
PLACEMENT_POLICIES: tuple[str, ...] = get_args(PlacementPolicy)
# Roles whose nodes run sessions (an `api` node only serves requests).
WORKER_ROLES = ("worker", "all")


def live_nodes(nodes: Iterable[NodeRecord], now: float, ttl: float) -> list[NodeRecord]:
    """The nodes that may take sessions, by node id: a heartbeat less than `ttl` old, not
    draining, and a worker role."""
    return sorted(
        (
            node
            for node in nodes
            if node.role in WORKER_ROLES and not node.draining and now - node.heartbeat_at < ttl
        ),
        key=lambda node: node.node_id,
    )


def free_slots(node: NodeRecord, load: Mapping[str, int]) -> int:
    return node.capacity - load.get(node.node_id, 0)


def _weight(key: str, node_id: str) -> int:
    digest = hashlib.sha256(f"{key}\x00{node_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def preferred_order(key: str, nodes: Iterable[NodeRecord]) -> list[NodeRecord]:
    """Rendezvous (highest-random-weight) order of `nodes` for `key`: stable across
    processes, and removing a node moves only the keys it was first for."""
    return sorted(nodes, key=lambda node: (-_weight(key, node.node_id), node.node_id))


def place(
    session: SessionRecord,
    nodes: Iterable[NodeRecord],
    load: Mapping[str, int],
    policy: str = "capacity",
) -> str | None:
    """The node (of live `nodes`) that should run `session`, given `load` (sessions per node
    id); None when every node is full.

    `capacity`: the most free slots (capacity - load), ties to the lowest node id.
    `workspace_hash`: the first node by rendezvous weight of the session's workspace id that
    has a free slot, so a workspace stays together while its node lives and has room.
    """
    candidates = [node for node in nodes if free_slots(node, load) > 0]
    if not candidates:
        return None
    if policy == "capacity":
        best = min(candidates, key=lambda node: (-free_slots(node, load), node.node_id))
        return best.node_id
    if policy == "workspace_hash":
        return preferred_order(session.workspace_id, candidates)[0].node_id
    raise ValueError(f"unknown placement policy {policy!r}; expected one of {PLACEMENT_POLICIES}")


def rebalance(nodes: Iterable[NodeRecord], load: Mapping[str, int], step: int) -> dict[str, int]:
    """How many sessions each node should give up this round (node id -> count, only those
    above zero), at most `step` in all, so that free slots even out (what `capacity`
    placement aims at): a node that joined with room takes a share, a few at a time.

    Simulated one move at a time: the node with the fewest free slots (and a session) gives
    one to the node with the most, while they differ by two or more. The receiver is the
    node `place` picks for a released session, and the giver never ends with more room than
    it, so nothing moves back and forth.
    """
    live = list(nodes)
    free = {node.node_id: free_slots(node, load) for node in live}
    held = {node.node_id: load.get(node.node_id, 0) for node in live}
    plan: dict[str, int] = {}
    for _ in range(max(0, step)):
        givers = [node_id for node_id in free if held[node_id] > 0]
        if not givers:
            break
        giver = min(givers, key=lambda node_id: (free[node_id], node_id))
        receiver = min(free, key=lambda node_id: (-free[node_id], node_id))
        if free[receiver] - free[giver] < 2:
            break
        free[giver] += 1
        held[giver] -= 1
        free[receiver] -= 1
        held[receiver] += 1
        plan[giver] = plan.get(giver, 0) + 1
    return plan


# What a session is assumed to take when SESSION_MEMORY_LIMIT_MB does not say (Chromium with
# WhatsApp Web measures 110 to 150 MB of PSS; see BENCHMARKS.md), and what a worker's host
# keeps for everything else.
SESSION_BYTES = 160 * 1024 * 1024
RESERVE_BYTES = 1024 * 1024 * 1024


def memory_headroom(
    available: int, per_session: int = SESSION_BYTES, reserve: int = RESERVE_BYTES
) -> int:
    """How many more sessions fit in `available` bytes of memory, after `reserve`."""
    return max(0, (available - reserve) // max(1, per_session))
