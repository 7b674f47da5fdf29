"""`python -m service cluster status` and `python -m service drain NODE`: the cluster as the
shared store sees it, and moving a worker's sessions away before it stops.

Both read the store the service uses (SIDECAR_DATABASE_URL, or the SQLite file under
storage), so they run on any host that can reach it; neither needs a running API process.
`drain` asks through the store: the node hears of it at its next heartbeat (every ttl/3),
closes its sessions one by one and gives their leases up, and the other workers take them.
It stays drained until its process restarts, so a rolling restart is `drain NODE`, then
`supervisorctl restart` of that worker.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from service.cluster.status import ClusterStatus, NodeStatus, cluster_status
from service.digits import seconds_arg
from service.errors import ConfigError
from service.settings import Settings
from service.store.base import NodeRecord
from service.store.sql import SqlStore, open_store

# How often `drain` looks at the store while it waits (a node's round is ttl/3 apart).
POLL_INTERVAL = 0.5
# Ids of sessions without a live lease listed by `cluster status` before "and N more".
SHOWN_IDS = 10


def _say(line: str) -> None:
    print(line, flush=True)


def _fail(command: str, message: str, code: int = 2) -> int:
    print(f"wa-sidecar {command}: {message}", file=sys.stderr)
    return code


@asynccontextmanager
async def _opened(settings: Settings) -> AsyncIterator[SqlStore]:
    """The service's store, opened without creating or migrating anything (looking must
    not change it); a ConfigError when there is none yet or its schema is behind."""
    store = open_store(settings.store_url, settings.db_prefix)
    if store.path is not None and not store.path.exists():
        raise ConfigError(f"{store.path} does not exist yet: no node has used this store")
    await store.open(migrate=False)
    try:
        current, head = await store.schema_status()
        if current != head:
            raise ConfigError(
                f"the store {store.display_url} is at schema {current or 'empty'}, not {head}: "
                "run `python -m service db migrate`"
            )
        yield store
    finally:
        await store.close()


# -- cluster status ------------------------------------------------------------------------


async def _status(settings: Settings) -> ClusterStatus:
    async with _opened(settings) as store:
        return await cluster_status(store, time.time(), settings.lease_ttl)


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.0f}h"


def _table(nodes: list[NodeStatus]) -> list[str]:
    header = ("node", "role", "live", "draining", "heartbeat", "sessions", "address")
    rows = [
        (
            node.record.node_id,
            node.record.role,
            "yes" if node.live else "no",
            "yes" if node.record.draining else "no",
            f"{_age(node.age)} ago",
            f"{node.leases}/{node.record.capacity}",
            node.record.address or "-",
        )
        for node in nodes
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]


def cmd_status(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    try:
        status = asyncio.run(_status(settings))
    except ConfigError as exc:
        return _fail("cluster", str(exc))
    if args.json:
        body = {
            "nodes": [node.as_dict() for node in status.nodes],
            "lease_ttl": status.lease_ttl,
            "unplaced": status.unplaced,
        }
        _say(json.dumps(body, indent=2))
        return 0
    if not status.nodes:
        # Role `all` runs its sessions itself, with no heartbeat and no lease.
        _say("no node has sent a heartbeat: a single host (role all) runs without leases")
        return 0
    for line in _table(status.nodes):
        _say(line)
    live = sum(node.live for node in status.nodes)
    _say("")
    _say(f"{live} of {len(status.nodes)} nodes live (lease ttl {status.lease_ttl:g}s)")
    shown = ", ".join(status.unplaced[:SHOWN_IDS])
    more = len(status.unplaced) - SHOWN_IDS
    if more > 0:
        shown += f" and {more} more"
    _say(
        f"running sessions with no live lease: {len(status.unplaced)}"
        + (f" ({shown})" if shown else "")
    )
    return 0


# -- drain ---------------------------------------------------------------------------------


async def _node(store: SqlStore, node_id: str) -> NodeRecord | None:
    return next((node for node in await store.list_nodes() if node.node_id == node_id), None)


async def _held(store: SqlStore, node_id: str) -> int:
    now = time.time()
    return sum(lease.expires_at > now for lease in await store.leases(node_id))


async def drain(settings: Settings, node_id: str, timeout: float, wait: bool) -> int:
    """Request the drain of `node_id`, then (with `wait`) poll the store until the node
    holds no live lease, for at most `timeout` seconds: 0 drained, 1 not in time, 2 no such
    node."""
    async with _opened(settings) as store:
        if not await store.request_drain(node_id):
            return _fail("drain", f"no node {node_id!r} in the store (see `cluster status`)")
        _say(f"{node_id}: drain requested")
        # Read after the request: a later heartbeat is one that saw it.
        before = await _node(store, node_id)
        if not wait or before is None:
            return 0
        if time.time() - before.heartbeat_at >= settings.lease_ttl:
            silent = _age(time.time() - before.heartbeat_at)
            _say(f"{node_id}: no heartbeat for {silent}; its leases run out by themselves")
        deadline = time.monotonic() + timeout
        last: int | None = None
        while True:
            node = await _node(store, node_id)
            held = await _held(store, node_id)
            if node is not None and not node.draining:
                # A new process under this id: it starts fresh and takes sessions again.
                return _fail("drain", f"{node_id} restarted before it drained", 1)
            # Drained once it holds nothing after a heartbeat that saw the request (a round
            # in progress at the request may still claim), or once it is gone (its leases
            # have run out by themselves).
            heard = node is None or node.heartbeat_at != before.heartbeat_at
            gone = node is None or time.time() - node.heartbeat_at >= settings.lease_ttl
            if held == 0 and (heard or gone):
                _say(f"{node_id}: drained, it holds no session")
                return 0
            if held != last:
                _say(f"{node_id}: {held} session{'s' if held != 1 else ''} still held")
                last = held
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return _fail(
                    "drain",
                    f"{node_id} still holds {held} session{'s' if held != 1 else ''} after "
                    f"{timeout:g}s (it keeps draining; run again to wait more)",
                    1,
                )
            await asyncio.sleep(min(POLL_INTERVAL, remaining))


def cmd_drain(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    try:
        return asyncio.run(drain(settings, args.node, args.timeout, not args.no_wait))
    except ConfigError as exc:
        return _fail("drain", str(exc))


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `cluster` and `drain` on the CLI's subparsers."""
    cluster = sub.add_parser("cluster", help="the cluster's nodes, as the store sees them")
    actions = cluster.add_subparsers(dest="action", required=True)
    status = actions.add_parser("status", help="nodes, heartbeat age, sessions and capacity")
    status.add_argument("--json", action="store_true", help="JSON for scripts")
    status.set_defaults(func=cmd_status)
    drain_ = sub.add_parser("drain", help="move a node's sessions away before it stops")
    drain_.add_argument("node", help="the node id (SIDECAR_NODE_ID; see `cluster status`)")
    drain_.add_argument(
        "--timeout",
        type=seconds_arg,
        default=120.0,
        metavar="SECONDS",
        help="how long to wait (default 120)",
    )
    drain_.add_argument("--no-wait", action="store_true", help="request the drain and return")
    drain_.set_defaults(func=cmd_drain)
