"""The Nodes page: every process of a cluster with its heartbeat, its sessions against its
capacity, and drain (the store call `python -m service drain NODE` makes). The table is
live. A single host (`SIDECAR_ROLE=all`) has no nodes, and the page says so.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from service.cluster.status import NodeStatus, cluster_status
from service.dashboard.live import fragments, stream
from service.dashboard.markup import NONE, Html, fmt, join
from service.dashboard.routing import (
    NavEntry,
    Page,
    Refused,
    dashboard_of,
    hidden_csrf,
    page,
    view,
    wants_json,
)
from service.errors import NotFound
from service.settings import NODE_ID, Settings
from service.store import Store

# Running sessions without a live lease named before "and N more".
SHOWN_UNPLACED = 20


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{max(seconds, 0):.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.0f} h"


def node_row(request: Request, node: NodeStatus) -> Html:
    """One node: role, state, heartbeat age, sessions of capacity, and drain for a live
    worker."""
    record = node.record
    state = "draining" if record.draining else ("live" if node.live else "silent")
    drain = (
        fmt(
            '<form method="post" action="/dashboard/nodes/{id}/drain" data-async'
            ' data-confirm="Move every session off {id}? It stays drained until it restarts.">'
            '{csrf}<button type="submit" class="danger" data-action="drain">Drain</button></form>',
            id=record.node_id,
            csrf=hidden_csrf(request),
        )
        if record.role == "worker" and node.live
        else Html("")
    )
    badge = {"live": "connected", "draining": "qr_required", "silent": "failed"}[state]
    return fmt(
        '<tr data-key="{id}" data-state="{state}"><td><code>{id}</code></td><td>{role}</td>'
        '<td><span class="status status-{badge}">{state}</span></td><td>{age} ago</td>'
        "<td>{sessions}</td><td>{host}</td><td>{address}</td><td{cell}>{drain}</td></tr>",
        id=record.node_id,
        role=record.role,
        state=state,
        badge=badge,
        age=_age(node.age),
        # Only workers hold sessions; the others' capacity means nothing here.
        sessions=fmt(
            '{held} / {capacity} <meter min="0" max="{top}" value="{held}"></meter>',
            held=node.leases,
            capacity=record.capacity,
            top=max(record.capacity, 1),
        )
        if record.role == "worker"
        else NONE,
        host=record.host or NONE,
        address=record.address or NONE,
        drain=drain,
        cell=Html(' class="actions"') if drain else Html(""),
    )


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


async def nodes_page(request: Request) -> Response:
    settings = _settings(request)
    if dashboard_of(request).role == "all":
        body = fmt(
            '<link rel="stylesheet" href="/dashboard/static/ops.css">'
            '<div class="head"><h1>Nodes</h1></div><div class="card" data-single>'
            "<p>This sidecar runs as a single host (<code>SIDECAR_ROLE=all</code>): its "
            "sessions run in this process, so there are no nodes to list or drain.</p>"
            '<p class="muted">In cluster mode (api and worker processes over one MySQL '
            "store) this page lists every process with its heartbeat, sessions and capacity."
            "</p></div>"
        )
        return page(request, "Nodes", body, active="/nodes")
    status = await cluster_status(_store(request), time.time(), settings.lease_ttl)
    unplaced = Html("")
    if status.unplaced:
        more = len(status.unplaced) - SHOWN_UNPLACED
        unplaced = fmt(
            '<p class="muted" data-unplaced>Running sessions no live worker holds now '
            "({count}): {ids}{more}.</p>",
            count=len(status.unplaced),
            ids=", ".join(status.unplaced[:SHOWN_UNPLACED]),
            more=f" and {more} more" if more > 0 else "",
        )
    body = fmt(
        '<link rel="stylesheet" href="/dashboard/static/ops.css">'
        '<div class="head"><h1>Nodes</h1><span class="live" data-live>live</span></div>'
        '<div id="flash" class="flash" hidden></div>'
        '<table class="sessions nodes"><thead><tr><th>Node</th><th>Role</th><th>State</th>'
        "<th>Heartbeat</th><th>Sessions</th><th>Host</th><th>Address</th><th></th></tr>"
        '</thead><tbody data-stream="/dashboard/stream/nodes">{rows}</tbody></table>'
        '<p class="empty muted" data-empty{hidden}>No node has sent a heartbeat yet.</p>'
        "{unplaced}"
        '<p class="muted">A node is live while its last heartbeat is younger than the lease '
        "ttl ({ttl} s). A drained worker hands its sessions to the other workers and stays "
        "drained until its process restarts (a rolling restart: drain, then restart).</p>",
        rows=join(
            f["html"]
            for f in fragments(
                {n.record.node_id: node_row(request, n) for n in status.nodes}
            ).values()
        ),
        hidden=Html(" hidden") if status.nodes else Html(""),
        unplaced=unplaced,
        ttl=settings.lease_ttl,
    )
    return page(request, "Nodes", body, active="/nodes")


async def nodes_stream(request: Request) -> Response:
    settings = _settings(request)
    store = _store(request)

    async def snapshot() -> dict[str, Any]:
        status = await cluster_status(store, time.time(), settings.lease_ttl)
        return fragments({n.record.node_id: node_row(request, n) for n in status.nodes})

    return stream(request, snapshot, "fragment")


async def drain_node(request: Request) -> Response:
    """Ask the node to hand its sessions over; it notices at its next heartbeat."""
    node_id = str(request.path_params["node_id"])
    if dashboard_of(request).role == "all":
        raise Refused(404, "node_not_found", "No such node", "A single host has no nodes to drain.")
    if not NODE_ID.fullmatch(node_id) or not await _store(request).request_drain(node_id):
        raise NotFound(f"no node {node_id[:64]!r} in the store", code="node_not_found")
    if wants_json(request):
        return JSONResponse({"node_id": node_id, "draining": True}, 202)
    return RedirectResponse("/dashboard/nodes", 303)


PAGE = Page(
    nav=NavEntry("Nodes", "/nodes"),
    routes=[
        view("/nodes", nodes_page),
        view("/stream/nodes", nodes_stream),
        view("/nodes/{node_id}/drain", drain_node, methods=["POST"]),
    ],
)
