"""Unsigned operational endpoints: liveness, readiness and the OpenAPI document."""

from __future__ import annotations

import hmac

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from service import __version__
from service.errors import error_body
from service.metrics import CONTENT_TYPE, Metrics
from service.sessions.runtime import SessionRuntime
from service.store import Store


async def health(request: Request) -> Response:
    return JSONResponse({"status": "ok", "version": __version__})


async def ready(request: Request) -> Response:
    store: Store = request.app.state.store
    checks = {"store": await store.ping()}
    runtime: SessionRuntime | None = request.app.state.runtime
    if runtime is not None:
        checks["chromium"] = runtime.ready()
    ok = all(checks.values())
    return JSONResponse(
        {"status": "ready" if ok else "not_ready", "checks": checks},
        status_code=200 if ok else 503,
    )


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
            return JSONResponse(
                error_body("invalid_token", "/metrics needs Authorization: Bearer <token>"),
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
            )
    registry: Metrics = request.app.state.metrics
    body = await registry.render(request.app.state.store)
    return Response(body, media_type=CONTENT_TYPE)


async def openapi(request: Request) -> Response:
    return JSONResponse(request.app.state.openapi)


routes = [
    Route("/health", health, methods=["GET"]),
    Route("/ready", ready, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
    Route("/openapi.json", openapi, methods=["GET"]),
]
