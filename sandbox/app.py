"""The sandbox ASGI app: a stand-in for web.whatsapp.com plus the phone's control API."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sandbox.control import ControlApi
from sandbox.errors import SandboxError
from sandbox.network import Network
from sandbox.page import PageSite
from sandbox.state import StateFile
from sandbox.stream import MAX_STREAM_SECONDS

logger = logging.getLogger("sandbox")


def create_app(
    qr_interval: float = 20.0,
    qr_max_rotations: int = 5,
    main_ready_delay: float = 0.3,
    stream_lifetime: float = MAX_STREAM_SECONDS,
    state: Path | None = None,
) -> Starlette:
    """Build the app; all state lives on `app.state.network`, one per app.

    `qr_interval` seconds between QR refs, `qr_max_rotations` refs before the QR idles,
    `main_ready_delay` seconds from login to `conn.main_ready`, `stream_lifetime` seconds
    before an event stream ends and the page's EventSource reconnects. With `state`, the
    network starts from that file (missing: empty) and keeps it up to date; a file it
    cannot use raises `sandbox.state.StateError`.
    """
    if qr_interval <= 0 or qr_max_rotations < 1 or main_ready_delay < 0 or stream_lifetime <= 0:
        raise ValueError(
            "need qr_interval > 0, qr_max_rotations >= 1, main_ready_delay >= 0,"
            " stream_lifetime > 0"
        )
    network = Network(
        qr_interval,
        qr_max_rotations,
        main_ready_delay,
        state=StateFile(state) if state is not None else None,
    )
    network.load_state()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        network.close()

    app = Starlette(
        routes=[*PageSite(network, stream_lifetime).routes(), *ControlApi(network).routes()],
        exception_handlers={
            SandboxError: _sandbox_error,
            HTTPException: _http_error,
            Exception: _unexpected_error,
        },
        lifespan=lifespan,
    )
    app.state.network = network
    return app


async def _sandbox_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SandboxError)
    return JSONResponse(exc.to_json(), status_code=exc.status_code)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    body = {"error": {"code": code, "message": str(exc.detail)}}
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    # A bug, not bad input: log it, and keep the stack trace out of the response.
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    body = {"error": {"code": "internal_error", "message": "internal error"}}
    return JSONResponse(body, status_code=500)
