"""`POST /api/dashboard/links`: a sign-in link to the operator dashboard, for Laravel.

A Laravel admin page asks for a link and redirects its operator to it; the link signs in
once and expires (see service/dashboard/auth.py).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from service.api.routing import Operation, Resource, body_of, reply
from service.clock import iso
from service.errors import Conflict
from service.models import requests as rq
from service.models import responses as rs


async def create_link(request: Request) -> Response:
    data = await body_of(request, rq.DashboardLinkRequest, allow_empty=True)
    dashboard = getattr(request.app.state, "dashboard", None)
    if dashboard is None:
        raise Conflict(
            "the operator dashboard is off: set SIDECAR_DASHBOARD_SECRET to turn it on",
            code="dashboard_disabled",
        )
    link = dashboard.auth.link(data.label or "operator", data.session_id, data.ttl)
    return reply(rs.DashboardLink(url=link.url, expires_at=iso(link.expires_at) or ""), 201)


routes = [
    Resource(
        "/api/dashboard/links",
        post=Operation(
            "A one-time sign-in link to the operator dashboard",
            create_link,
            {201: rs.DashboardLink},
            errors=(409,),
            body=rq.DashboardLinkRequest,
            body_required=False,
            description="Redirect an operator's browser to `url`: it signs in once, until "
            "`expires_at`, and lands on the session list (or `session_id`'s page). "
            "409 `dashboard_disabled` while `SIDECAR_DASHBOARD_SECRET` is not set.",
        ),
    ),
]
