"""The app factory: builds the store, the runtime and the routes, and wires them together."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware

from service.api import qr, sessions, system
from service.auth import RequestGuard
from service.browser import ChromiumLauncher
from service.errors import ApiError, handle_api_error, handle_http_exception, handle_unexpected
from service.openapi import build_openapi
from service.qr import qr_links
from service.secretbox import SecretBox, parse_key
from service.sessions.manager import SessionManager
from service.sessions.runtime import SessionRuntime
from service.sessions.state import StatusWriter
from service.sessions.worker import WorkerContext
from service.settings import Settings
from service.store import SQLiteStore, Store

MB = 1024 * 1024


def create_app(
    settings: Settings, store: Store | None = None, *, with_browsers: bool = True
) -> Starlette:
    """A complete sidecar on `settings`; nothing global, so tests build one per temp dir.

    `with_browsers=False` leaves out the Chromium runtime: sessions are records only.
    """
    settings.require_secrets()
    store = store or SQLiteStore(settings.sqlite_path)
    secretbox = SecretBox(parse_key(settings.encryption_key)) if settings.encryption_key else None
    links_qr = qr_links(settings.api_secrets[0], settings.base_url)
    runtime: SessionRuntime | None = None
    if with_browsers:
        wa_js = Path(settings.wa_js_path)
        runtime = SessionRuntime(
            WorkerContext(
                store=store,
                status=StatusWriter(store),
                launcher=ChromiumLauncher(settings.chromium_path),
                launch_slots=asyncio.Semaphore(settings.max_concurrent_launches),
                qr_links=links_qr,
                sessions_root=settings.sessions_dir,
                wa_web_url=settings.wa_web_url,
                wa_js_path=str(wa_js.resolve()) if wa_js.is_file() else None,
                memory_limit_bytes=settings.session_memory_limit_mb * MB,
            )
        )
    manager = SessionManager(
        store,
        settings.sessions_dir,
        max_sessions=settings.max_sessions,
        secretbox=secretbox,
        runtime=runtime,
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        settings.sessions_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        await store.open()
        try:
            if runtime is not None:
                await runtime.start()
            yield
        finally:
            if runtime is not None:
                await runtime.shutdown()
            await store.close()

    app = Starlette(
        routes=[*system.routes, *sessions.routes, *qr.routes],
        middleware=[
            Middleware(
                RequestGuard,
                secrets=settings.api_secrets,
                tolerance=settings.signature_tolerance,
                max_body_bytes=settings.max_body_bytes,
            )
        ],
        exception_handlers={
            ApiError: handle_api_error,
            HTTPException: handle_http_exception,
            Exception: handle_unexpected,
        },
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.store = store
    app.state.sessions = manager
    app.state.runtime = runtime
    app.state.qr_links = links_qr
    app.state.openapi = build_openapi()
    return app
