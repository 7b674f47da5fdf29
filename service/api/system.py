"""Unsigned operational endpoints: liveness, readiness and the OpenAPI document."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from service import __version__
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
