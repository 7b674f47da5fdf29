"""The app factory: builds the store, the runtime and the routes, and wires them together."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware

from adapters.meta import MetaEngine
from adapters.selector import ProviderSelector
from adapters.webjs import WebJsEngine
from service import __version__
from service.api import cluster, messages, meta, qr, sessions, system, webhooks
from service.auth import RequestGuard
from service.browser import ChromiumLauncher
from service.browser.bridge import WaJsConfig
from service.errors import (
    ApiError,
    ConfigError,
    handle_api_error,
    handle_http_exception,
    handle_unexpected,
)
from service.links import redact_access_log
from service.messaging.media import MediaFetcher, media_links
from service.messaging.messenger import Messenger
from service.messaging.pacing import PacingPolicy
from service.metrics import Metrics
from service.netguard import AllowList, NetGuard, webhook_url_problem
from service.openapi import build_openapi
from service.qr import qr_links
from service.secretbox import SecretBox, parse_key
from service.sessions.layout import private_dir
from service.sessions.manager import SessionManager
from service.sessions.runtime import SessionRuntime
from service.sessions.state import StatusWriter
from service.sessions.worker import WorkerContext
from service.settings import Settings
from service.store import SqlStore, Store, open_store
from webhooks.broadcast import Broadcaster, PusherConfig
from webhooks.dispatcher import Dispatcher, RetryPolicy

MB = 1024 * 1024


def create_app(
    settings: Settings, store: Store | None = None, *, with_browsers: bool = True
) -> Starlette:
    """A complete sidecar on `settings`; nothing global, so tests build one per temp dir.

    `with_browsers=False` leaves out the Chromium runtime: sessions are records only.
    """
    settings.require_secrets()
    if settings.webhook_url and (problem := webhook_url_problem(settings.webhook_url)):
        raise ConfigError(f"SIDECAR_WEBHOOK_URL {problem}")
    store = store or open_store(settings.store_url, settings.db_prefix)
    secretbox = SecretBox(parse_key(settings.encryption_key)) if settings.encryption_key else None
    metrics = Metrics()
    store.subscribe(metrics.on_events)
    links_qr = qr_links(settings.api_secrets[0], settings.base_url)
    links_media = media_links(settings.api_secrets[0], settings.base_url)
    # One shared client for outbound fetches: bounded pool, no cookies carried between hosts.
    http = httpx.AsyncClient(
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
        timeout=httpx.Timeout(settings.media_fetch_timeout),
        headers={"User-Agent": f"wa-sidecar/{__version__}"},
    )
    runtime: SessionRuntime | None = None
    messenger: Messenger | None = None
    selector: ProviderSelector | None = None
    meta_provider: MetaEngine | None = None
    if with_browsers:
        wa_js = Path(settings.wa_js_path)
        status = StatusWriter(store)
        context = WorkerContext(
            store=store,
            status=status,
            launcher=ChromiumLauncher(settings.chromium_path),
            launch_slots=asyncio.Semaphore(settings.max_concurrent_launches),
            qr_links=links_qr,
            sessions_root=settings.sessions_dir,
            wa_web_url=settings.wa_web_url,
            wa_js_path=str(wa_js.resolve()) if wa_js.is_file() else None,
            memory_limit_bytes=settings.session_memory_limit_mb * MB,
            load_timeout=float(settings.wa_load_timeout),
            wa_js_config=WaJsConfig(
                device_name=settings.wa_device_name,
                link_preview_servers=settings.link_preview_servers,
            ),
        )
        runtime = SessionRuntime(context)
        webjs = WebJsEngine(
            runtime,
            settings.sessions_dir,
            link_previews=bool(settings.link_preview_servers),
            handoff=float(settings.send_handoff_timeout),
        )
        meta_provider = MetaEngine(
            http,
            graph_url=settings.meta_graph_url,
            version=settings.meta_graph_version,
            sessions_root=settings.sessions_dir,
            credentials=lambda record: manager.meta_config(record),
            statuses=status,
        )
        selector = ProviderSelector(
            store,
            webjs,
            meta_provider,
            failure_threshold=settings.failover_threshold,
            cooldown=float(settings.failover_cooldown_s),
        )
        messenger = Messenger(
            store,
            selector,
            settings.sessions_dir,
            fetcher=MediaFetcher(
                NetGuard(
                    AllowList.parse(settings.fetch_allow),
                    resolve_timeout=settings.media_fetch_timeout,
                ),
                settings.media_max_bytes,
                settings.media_fetch_timeout,
            ),
            links=links_media,
            pacing=PacingPolicy(
                enabled=settings.pacing,
                min_interval=settings.pacing_interval_ms / 1000,
                jitter=settings.pacing_jitter_ms / 1000,
                per_recipient_per_minute=settings.pacing_per_recipient,
            ),
            max_media_bytes=settings.media_max_bytes,
            observe_send=lambda provider, seconds: metrics.send_seconds.labels(provider).observe(
                seconds
            ),
        )
        context.pages = webjs
        webjs.sink = meta_provider.sink = messenger
        status.subscribe(messenger.on_session_status)
    dispatcher = Dispatcher(
        store,
        http,
        secret=settings.webhook_secret,
        default_url=settings.webhook_url,
        timeout=settings.webhook_timeout,
        concurrency=settings.webhook_concurrency,
        retry=RetryPolicy(
            base=settings.webhook_retry_base_ms / 1000, cap=float(settings.webhook_retry_cap_s)
        ),
        on_result=lambda result: metrics.deliveries.labels(result).inc(),
        # One service per store (`hold_single_service`): a stable owner lets a restart after
        # a kill -9 take back the lines it had claimed at once, not after their claims expire.
        owner=f"service@{socket.gethostname()}"[:64],
    )
    store.subscribe(dispatcher.on_events)
    broadcaster: Broadcaster | None = None
    if settings.broadcast_driver != "none":
        broadcaster = Broadcaster(
            PusherConfig(
                app_id=settings.pusher_app_id,
                key=settings.pusher_app_key,
                secret=settings.pusher_app_secret,
                host=settings.pusher_host,
                port=settings.pusher_port,
                scheme=settings.pusher_scheme,
            ),
            http,
        )
        store.subscribe(broadcaster.on_events)
    manager = SessionManager(
        store,
        settings.sessions_dir,
        max_sessions=settings.max_sessions,
        secretbox=secretbox,
        runtime=runtime,
        engines=selector,
        forgetful=tuple(x for x in (messenger, selector) if x is not None),
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        private_dir(settings.sessions_dir)
        redact_access_log()
        await store.open()
        if isinstance(store, SqlStore):
            await store.hold_single_service()
        # Another process sharing a MySQL store appends events too: notice them.
        watching = None
        if isinstance(store, SqlStore) and not store.is_sqlite:
            watching = asyncio.create_task(store.watch())
        try:
            await dispatcher.start()
            if broadcaster is not None:
                await broadcaster.start()
            # Settle interrupted sends before any browser can report a connection.
            if messenger is not None:
                await messenger.start()
            if runtime is not None:
                await runtime.start()
                await manager.restore()
                metrics.start_memory_sampler(runtime.memory_sample)
            yield
        finally:
            # Senders finish their message in flight while the browsers are still up.
            if messenger is not None:
                await messenger.stop()
            if runtime is not None:
                await runtime.shutdown()
            await metrics.stop()
            if broadcaster is not None:
                await broadcaster.stop()
            # Deliveries in flight finish; the rest wait in the outbox for the next start.
            await dispatcher.stop()
            await http.aclose()
            if watching is not None:
                watching.cancel()
                await asyncio.gather(watching, return_exceptions=True)
            await store.close()

    routes = [
        *system.routes,
        *sessions.routes,
        *qr.routes,
        *messages.routes,
        *webhooks.routes,
        *meta.routes,
        *cluster.routes,
    ]
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(
                RequestGuard,
                secrets=settings.api_secrets,
                tolerance=settings.signature_tolerance,
                max_body_bytes=settings.max_body_bytes,
                first_sighting=store.first_sighting,
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
    app.state.messenger = messenger
    app.state.selector = selector
    app.state.meta_provider = meta_provider
    app.state.media_links = links_media
    app.state.dispatcher = dispatcher
    app.state.broadcaster = broadcaster
    app.state.qr_links = links_qr
    app.state.openapi = build_openapi(routes)
    app.state.metrics = metrics
    return app
