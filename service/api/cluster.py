"""The cluster as the store sees it: `/api/cluster/nodes`."""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import Response

from service.api.routing import Operation, Resource, reply
from service.cluster.status import cluster_status
from service.models import responses as rs
from service.settings import Settings
from service.store import Store


async def list_nodes(request: Request) -> Response:
    store: Store = request.app.state.store
    settings: Settings = request.app.state.settings
    status = await cluster_status(store, time.time(), settings.lease_ttl)
    return reply(
        rs.NodeList(
            data=[rs.Node.model_validate(node.as_dict()) for node in status.nodes],
            lease_ttl=settings.lease_ttl,
        )
    )


routes = [
    Resource(
        "/api/cluster/nodes",
        get=Operation(
            "List the cluster's nodes: heartbeat age, sessions and capacity of each",
            list_nodes,
            {200: rs.NodeList},
        ),
    ),
]
