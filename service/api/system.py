"""Unsigned operational endpoints: liveness, readiness and the OpenAPI document."""

from __future__ import annotations

import hmac

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service import __version__
from service.api.routing import Operation, Raw, Resource, reply
from service.errors import error_json
from service.metrics import CONTENT_TYPE, Metrics
from service.models import responses as rs
from service.sessions.runtime import SessionRuntime
from service.store import Store


async def health(request: Request) -> Response:
    return reply(rs.Health(status="ok", version=__version__))


async def ready(request: Request) -> Response:
    store: Store = request.app.state.store
    runtime: SessionRuntime | None = request.app.state.runtime
    checks = rs.ReadyChecks(store=await store.ping())
    if runtime is not None:
        checks.chromium = runtime.ready()
    ok = checks.store and checks.chromium is not False
    return reply(rs.Ready(status="ready" if ok else "not_ready", checks=checks), 200 if ok else 503)


async def metrics(request: Request) -> Response:
    """Prometheus text; with SIDECAR_METRICS_TOKEN set, only for `Authorization: Bearer`
    (Prometheus' `authorization` scrape setting) with that token."""
    token: str = request.app.state.settings.metrics_token
    if token:
        given = request.headers.get("authorization", "")
        scheme, _, value = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            value.strip().encode(), token.encode()
        ):
            return error_json(
                401,
                "invalid_token",
                "/metrics needs Authorization: Bearer <token>",
                headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
            )
    registry: Metrics = request.app.state.metrics
    body = await registry.render(request.app.state.store)
    return Response(body, media_type=CONTENT_TYPE)


async def openapi(request: Request) -> Response:
    return JSONResponse(request.app.state.openapi)


routes = [
    Resource("/health", get=Operation("Liveness", health, {200: rs.Health}, signed=False)),
    Resource(
        "/ready",
        get=Operation(
            "Readiness: the store answers and Chromium is available",
            ready,
            {200: rs.Ready, 503: rs.Ready},
            signed=False,
        ),
    ),
    Resource(
        "/metrics",
        get=Operation(
            "Prometheus metrics; with SIDECAR_METRICS_TOKEN set, only for Authorization: "
            "Bearer <token>",
            metrics,
            {200: Raw(CONTENT_TYPE.split(";")[0], "the text exposition format")},
            errors=(401,),
            signed=False,
        ),
    ),
    Resource(
        "/openapi.json",
        get=Operation(
            "This document",
            openapi,
            {200: Raw("application/json", "OpenAPI 3.1", {"type": "object"})},
            signed=False,
        ),
    ),
]
