"""Cluster control plane: where each session runs, who holds its lease, and failover.

Workers coordinate only through the shared store (heartbeats, session leases with fencing
tokens). `placement` is pure (no I/O); `node.ClusterNode` drives one worker's rounds.
"""

from service.cluster.node import ClusterNode
from service.cluster.placement import (
    PLACEMENT_POLICIES,
    WORKER_ROLES,
    PlacementPolicy,
    live_nodes,
    place,
    preferred_order,
    rebalance,
)

__all__ = [
    "PLACEMENT_POLICIES",
    "WORKER_ROLES",
    "ClusterNode",
    "PlacementPolicy",
    "live_nodes",
    "place",
    "preferred_order",
    "rebalance",
]
