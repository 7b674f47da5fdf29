"""What the cluster looks like now, read from the store: for `GET /api/cluster/nodes` and
`python -m service cluster status`.

A node's session count comes from the leases table (live leases it holds), not only from its
own last heartbeat, which may be up to a round old or come from a process that died.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from service.clock import iso
from service.store.base import NodeRecord, Store


@dataclass(frozen=True)
class NodeStatus:
    """One node row and what the store says about it at `now`."""

    record: NodeRecord
    # Live leases held now (the leases table), and the heartbeat's age in seconds.
    leases: int
    age: float
    # A heartbeat younger than the lease ttl and not draining: it may take sessions.
    live: bool

    def as_dict(self) -> dict[str, Any]:
        """As the API and `cluster status --json` show it (`rs.Node`)."""
        record = self.record
        return {
            "node_id": record.node_id,
            "role": record.role,
            "address": record.address,
            "capacity": record.capacity,
            "sessions": self.leases,
            "reported_sessions": record.sessions,
            "heartbeat_at": iso(record.heartbeat_at),
            "started_at": iso(record.started_at),
            "heartbeat_age_s": round(self.age, 3),
            "live": self.live,
            "draining": record.draining,
        }


@dataclass(frozen=True)
class ClusterStatus:
    """Every node, by node id, and the running sessions that no live lease covers (waiting
    for a worker: none live, all full, or a takeover yet to happen)."""

    nodes: list[NodeStatus]
    unplaced: list[str]
    lease_ttl: float


async def cluster_status(store: Store, now: float, lease_ttl: float) -> ClusterStatus:
    """The nodes and leases in `store` as of `now`, judged by `lease_ttl`."""
    live_leases = [lease for lease in await store.leases() if lease.expires_at > now]
    held = Counter(lease.node_id for lease in live_leases)
    nodes = [
        NodeStatus(
            record=node,
            leases=held.get(node.node_id, 0),
            age=now - node.heartbeat_at,
            live=now - node.heartbeat_at < lease_ttl and not node.draining,
        )
        for node in await store.list_nodes()
    ]
    covered = {lease.session_id for lease in live_leases}
    unplaced = sorted(
        session.session_id
        for session in await store.list_sessions(desired_state="running")
        if session.session_id not in covered
    )
    return ClusterStatus(nodes, unplaced, lease_ttl)
