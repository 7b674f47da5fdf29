"""The app factory: builds the store, the managers and the routes, and wires them together."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware

from service.api import sessions, system
from service.auth import RequestGuard
from service.errors import ApiError, handle_api_error, handle_http_exception, handle_unexpected
from service.openapi import build_openapi
from service.secretbox import SecretBox, parse_key
from service.sessions.manager import SessionManager
from service.settings import Settings
from service.store import SQLiteStore, Store


def create_app(settings: Settings, store: Store | None = None) -> Starlette:
    """A complete sidecar on `settings`; nothing global, so tests build one per temp dir."""
    settings.require_secrets()
    store = store or SQLiteStore(settings.sqlite_path)
    secretbox = SecretBox(parse_key(settings.encryption_key)) if settings.encryption_key else None
    manager = SessionManager(
        store,
        settings.sessions_dir,
        max_sessions=settings.max_sessions,
        secretbox=secretbox,
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        settings.sessions_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        await store.open()
        try:
            yield
        finally:
            await store.close()

    app = Starlette(
        routes=[*system.routes, *sessions.routes],
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
    app.state.openapi = build_openapi()
    return app
