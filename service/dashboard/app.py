"""Builds the dashboard: its state object and the `/dashboard` mount (see the package doc)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from starlette.routing import BaseRoute, Mount, Router
from starlette.staticfiles import StaticFiles

from service.dashboard import (
    campaigns,
    charts,
    events,
    login,
    nodes,
    session,
    sessions,
    webhooks,
)
from service.dashboard.auth import DashboardAuth
from service.dashboard.live import Changes
from service.dashboard.ops import build_operations
from service.dashboard.routing import Dashboard, Page
from service.settings import Settings
from service.store import Store

STATIC = Path(__file__).parent / "static"

# The dashboard's pages, in navigation order: add a module's PAGE here.
PAGES: tuple[Page, ...] = (
    login.PAGE,
    sessions.PAGE,
    session.PAGE,
    campaigns.PAGE,
    webhooks.PAGE,
    events.PAGE,
    nodes.PAGE,
    charts.PAGE,
)


def build_dashboard(
    settings: Settings, store: Store, memory: Callable[[], dict[str, int]] = dict
) -> tuple[Dashboard, Mount]:
    """The dashboard's state and its routes under /dashboard (for the all and api roles).
    `memory` is this process's last browser memory sample, for the charts."""
    auth = DashboardAuth(
        settings.dashboard_secret,
        settings.base_url,
        link_ttl=settings.dashboard_link_ttl,
        session_ttl=settings.dashboard_session_ttl,
    )
    clustered = settings.role != "all"
    nav = [p.nav for p in PAGES if p.nav is not None and (clustered or not p.nav.cluster_only)]
    changes = Changes(store)
    ops = build_operations(settings, store, changes, memory)
    dashboard = Dashboard(auth=auth, changes=changes, role=settings.role, ops=ops, nav=nav)
    routes: list[BaseRoute] = [Mount("/static", StaticFiles(directory=STATIC), name="static")]
    for page in PAGES:
        routes.extend(page.routes)
    return dashboard, Mount("/dashboard", app=Router(routes))
