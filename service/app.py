"""The app factory: builds the store, the runtime and the routes, and wires them together."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import psutil
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.routing import BaseRoute

from adapters.meta import MetaEngine
from adapters.selector import ProviderSelector
from adapters.webjs import WebJsEngine
from service import __version__, apidocs
from service.api import (
    calls,
    campaigns,
    chats,
    cluster,
    contacts,
    dashboard,
    groups,
    message_actions,
    messages,
    meta,
    qr,
    sessions,
    system,
    webhooks,
)
from service.auth import RequestGuard
from service.browser import ChromiumLauncher
from service.browser.bridge import WaJsConfig
from service.campaigns.manager import CampaignManager
from service.campaigns.runner import CampaignRunner
from service.cluster.agent import WorkerAgent
from service.cluster.fencing import FencedStore
from service.cluster.node import ClusterNode
from service.cluster.placement import SESSION_BYTES, memory_headroom
from service.cluster.profiles import ProfileGuard
from service.cluster.remote import RemoteEngine, RemoteEngines, RemoteRuntime
from service.cluster.rpc import RpcClient, internal_routes
from service.dashboard.app import build_dashboard
from service.dashboard.routing import Dashboard
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
from service.messaging.retention import MediaRetention
from service.metrics import Metrics
from service.netguard import AllowList, NetGuard, webhook_url_problem
from service.openapi import build_openapi
from service.qr import qr_links
from service.secretbox import SecretBox, parse_key
from service.sessions.layout import private_dir
from service.sessions.manager import Engines, Runtime, SessionManager
from service.sessions.runtime import SessionRuntime
from service.sessions.state import StatusWriter
from service.sessions.worker import WorkerContext
from service.settings import Settings
from service.store import SqlStore, Store, open_store
from service.store.campaigns import CampaignStore
from webhooks.broadcast import Broadcaster, PusherConfig
from webhooks.dispatcher import Dispatcher, RetryPolicy

MB = 1024 * 1024


def host_headroom(settings: Settings) -> int:
    """More sessions this host's available memory takes (MemAvailable, less a reserve)."""
    per_session = settings.session_memory_limit_mb * MB or SESSION_BYTES
    return memory_headroom(psutil.virtual_memory().available, per_session)


async def check_service_kind(store: SqlStore, role: str, ttl: float) -> None:
    """A single-host service (role all) and a cluster never share a store: both would run
    the same sessions. ConfigError, with what to do, when the other kind is there."""
    if role == "all":
        live = [n for n in await store.list_nodes() if time.time() - n.heartbeat_at < ttl]
        if live:
            raise ConfigError(
                f"cluster processes ({', '.join(n.node_id for n in live[:5])}) use this store: "
                "start this one with a cluster role (--role api or worker), or stop them"
            )
        await store.hold_single_service()
    elif await store.single_service_running():
        raise ConfigError(
            "a single-host service (--role all) runs on this store: stop it before starting "
            f"--role {role} processes on it"
        )


def create_app(
    settings: Settings, store: Store | None = None, *, with_browsers: bool = True
) -> Starlette:
    """A complete sidecar on `settings`; nothing global, so tests build one per temp dir.

    `settings.role` says what this process does: `all` (the single host), `api` (the HTTP
    API and webhook delivery; sessions run on workers), `worker` (the sessions whose leases
    it holds, and the internal RPC endpoint) or `dispatcher` (webhooks and broadcasting).
    `with_browsers=False` leaves out the Chromium runtime: sessions are records only.
    """
    settings.require_secrets()
    settings.check_cluster()
    settings.check_dashboard()
    if settings.webhook_url and (problem := webhook_url_problem(settings.webhook_url)):
        raise ConfigError(f"SIDECAR_WEBHOOK_URL {problem}")
    role = settings.role
    store = store or open_store(settings.store_url, settings.db_prefix)
    secretbox = SecretBox(parse_key(settings.encryption_key)) if settings.encryption_key else None
    metrics = Metrics(node=settings.node_name if role != "all" else "", role=role)
    store.subscribe(metrics.on_events)
    links_qr = qr_links(settings.api_secrets[0], settings.base_url)
    links_media = media_links(settings.api_secrets[0], settings.base_url)
    # One shared client for outbound fetches: bounded pool, no cookies carried between hosts.
    http = httpx.AsyncClient(
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
        timeout=httpx.Timeout(settings.media_fetch_timeout),
        headers={"User-Agent": f"wa-sidecar/{__version__}"},
    )
    # Every process of a cluster heartbeats; workers also hold sessions' leases.
    node: ClusterNode | None = None
    if role != "all":
        node = ClusterNode(
            store,
            settings.node_name,
            role=role,
            capacity=settings.max_sessions,
            ttl=float(settings.lease_ttl),
            placement=settings.placement,
            address=settings.rpc_url,
            # A worker takes sessions while MAX_SESSIONS and its host's free memory allow.
            headroom=(lambda: host_headroom(settings)) if role == "worker" else None,
        )
    # A worker's writes for a session carry its lease: refused once the lease moved on.
    writer = (
        FencedStore.wrap(store, node.node_id, node.owned) if node and role == "worker" else store
    )
    runtime: SessionRuntime | None = None
    messenger: Messenger | None = None
    selector: ProviderSelector | None = None
    meta_provider: MetaEngine | None = None
    webjs: WebJsEngine | None = None
    rpc: RpcClient | None = None
    engines: Engines | None = None
    session_runtime: Runtime | None = None
    status = StatusWriter(writer)

    def meta_engine() -> MetaEngine:
        return MetaEngine(
            http,
            graph_url=settings.meta_graph_url,
            version=settings.meta_graph_version,
            sessions_root=settings.sessions_dir,
            credentials=lambda record: manager.meta_config(record),
            statuses=status,
        )

    def build_messenger(
        chooser: ProviderSelector, nudge: Callable[[str], None] | None
    ) -> Messenger:
        return Messenger(
            writer,
            chooser,
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
            max_inbound_media_bytes=settings.inbound_media_max_bytes,
            observe_send=lambda provider, seconds: metrics.send_seconds.labels(provider).observe(
                seconds
            ),
            nudge=nudge,
            # A worker sends only while its lease runs, by its own clock.
            may_send=node.holds if node is not None and role == "worker" else None,
        )

    if with_browsers and role in ("all", "worker"):
        wa_js = Path(settings.wa_js_path)
        context = WorkerContext(
            store=writer,
            status=status,
            launcher=ChromiumLauncher(settings.chromium_path),
            launch_slots=asyncio.Semaphore(settings.max_concurrent_launches),
            qr_links=links_qr,
            sessions_root=settings.sessions_dir,
            wa_web_url=settings.wa_web_url,
            wa_js_path=str(wa_js.resolve()) if wa_js.is_file() else None,
            memory_limit_bytes=settings.session_memory_limit_mb * MB,
            secretbox=secretbox,
            load_timeout=float(settings.wa_load_timeout),
            qr_timeout=float(settings.qr_timeout),
            page_timeout=float(settings.page_timeout),
            wa_js_config=WaJsConfig(
                device_name=settings.wa_device_name,
                link_preview_servers=settings.link_preview_servers,
            ),
        )
        if node is not None:
            context.profile_guard = ProfileGuard(store, float(settings.lease_ttl)).may_open
        owned = node.owned if node is not None else None
        runtime = SessionRuntime(
            context, owns=(lambda session_id: session_id in owned) if owned is not None else None
        )
        webjs = WebJsEngine(
            runtime,
            settings.sessions_dir,
            link_previews=bool(settings.link_preview_servers),
            handoff=float(settings.send_handoff_timeout),
            page_timeout=float(settings.page_timeout),
        )
        meta_provider = meta_engine()
        selector = ProviderSelector(
            writer,
            webjs,
            meta_provider,
            failure_threshold=settings.failover_threshold,
            cooldown=float(settings.failover_cooldown_s),
        )
        messenger = build_messenger(selector, None)
        context.pages = webjs
        context.replier = messenger
        webjs.sink = meta_provider.sink = messenger
        status.subscribe(messenger.on_session_status)
        engines, session_runtime = selector, runtime
    elif with_browsers and role == "api":
        # Sessions run on the workers: the API reaches each one's owner over RPC.
        rpc = RpcClient(store, http, settings.internal_secret, float(settings.lease_ttl))
        remote = RemoteEngine(
            store, rpc, status, settings.sessions_dir, float(settings.page_timeout)
        )
        meta_provider = meta_engine()
        selector = ProviderSelector(store, remote, meta_provider)
        messenger = build_messenger(selector, rpc.nudge)
        meta_provider.sink = messenger
        engines = RemoteEngines(
            remote,
            RemoteEngine(store, rpc, status, settings.sessions_dir, float(settings.page_timeout)),
        )
        session_runtime = RemoteRuntime(rpc)
    dispatcher: Dispatcher | None = None
    broadcaster: Broadcaster | None = None
    if role in ("all", "dispatcher") or (role == "api" and settings.api_dispatch):
        dispatcher = Dispatcher(
            store,
            http,
            secret=settings.webhook_secret,
            default_url=settings.webhook_url,
            timeout=settings.webhook_timeout,
            concurrency=settings.webhook_concurrency,
            retry=RetryPolicy(
                base=settings.webhook_retry_base_ms / 1000,
                cap=float(settings.webhook_retry_cap_s),
            ),
            on_result=lambda result: metrics.deliveries.labels(result).inc(),
            # A stable owner lets a restart after a kill -9 take back the lines it had
            # claimed at once, not after their claims expire: the node id in a cluster, the
            # host for the single service (`hold_single_service`).
            owner=(node.node_id if node else f"service@{socket.gethostname()}")[:64],
        )
        store.subscribe(dispatcher.on_events)
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
    # Campaigns: any API process stores them; the process that runs a session (the single
    # service, or the worker holding its lease) feeds them into its queue.
    campaign_manager: CampaignManager | None = None
    campaign_runner: CampaignRunner | None = None
    if messenger is not None and isinstance(store, SqlStore):
        campaign_store = CampaignStore(store)
        if runtime is not None:
            campaign_runner = CampaignRunner(
                campaign_store,
                sessions_root=settings.sessions_dir,
                wake_sender=messenger.wake,
                progress_every=float(settings.campaign_progress_s),
                owns=node.holds if node is not None else None,
                fence=writer.fence if isinstance(writer, FencedStore) else None,
            )
        campaign_manager = CampaignManager(
            campaign_store,
            messenger,
            messenger.pacing,
            settings.sessions_dir,
            campaign_runner if role == "all" else None,
        )
    manager = SessionManager(
        writer,
        settings.sessions_dir,
        # In a cluster MAX_SESSIONS is each worker's: placement keeps to it.
        max_sessions=settings.max_sessions if role == "all" else 10**9,
        secretbox=secretbox,
        runtime=session_runtime,
        engines=engines,
        forgetful=tuple(x for x in (messenger, selector, campaign_manager) if x is not None),
    )
    # The processes that hold the sessions' files delete expired inbound media: the single
    # service, or the first live worker of a cluster (the store, not the lease, is written:
    # a stopped session's files expire too).
    retention: MediaRetention | None = None
    if role == "all" or (role == "worker" and node is not None):
        retention = MediaRetention(
            store,
            settings.sessions_dir,
            settings.media_retention_days,
            may_run=node.is_first_worker if node is not None else None,
        )
    agent: WorkerAgent | None = None
    if node is not None and role == "worker" and runtime is not None and messenger is not None:
        assert webjs is not None
        peers = RpcClient(store, http, settings.internal_secret, float(settings.lease_ttl))
        agent = WorkerAgent(node, store, manager, runtime, messenger, webjs, peers)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        private_dir(settings.sessions_dir)
        redact_access_log()
        await store.open()
        if isinstance(store, SqlStore):
            await check_service_kind(store, role, float(settings.lease_ttl))
        # Other processes sharing a MySQL store append events too: notice them.
        watching = None
        if isinstance(store, SqlStore) and not store.is_sqlite and dispatcher is not None:
            watching = asyncio.create_task(store.watch())
        heartbeat = None
        try:
            if dispatcher is not None:
                await dispatcher.start()
            if broadcaster is not None:
                await broadcaster.start()
            # Settle interrupted sends before any browser can report a connection (a worker
            # settles each session as it takes it).
            if messenger is not None and agent is None:
                await messenger.start()
            if runtime is not None:
                await runtime.start()
                metrics.start_memory_sampler(runtime.memory_sample)
                if agent is not None:
                    agent.start()
                else:
                    await manager.restore()
            elif node is not None:
                heartbeat = asyncio.create_task(node.run())
            if retention is not None:
                retention.start()
            if campaign_runner is not None:
                campaign_runner.start()
            if operator_dashboard is not None:
                operator_dashboard.ops.start()
            yield
        finally:
            if operator_dashboard is not None:
                await operator_dashboard.ops.stop()
            if campaign_runner is not None:
                await campaign_runner.stop()
            if retention is not None:
                await retention.stop()
            if agent is not None:
                # Hand every session over (browsers closed, leases released) first.
                await agent.stop()
            if heartbeat is not None:
                heartbeat.cancel()
                await asyncio.gather(heartbeat, return_exceptions=True)
            # Senders finish their message in flight while the browsers are still up.
            if messenger is not None:
                await messenger.stop()
            if runtime is not None:
                await runtime.shutdown()
            await metrics.stop()
            if broadcaster is not None:
                await broadcaster.stop()
            # Deliveries in flight finish; the rest wait in the outbox for the next start.
            if dispatcher is not None:
                await dispatcher.stop()
            if rpc is not None:
                await rpc.close()
            await http.aclose()
            if watching is not None:
                watching.cancel()
                await asyncio.gather(watching, return_exceptions=True)
            await store.close()

    public = [
        *system.routes,
        *sessions.routes,
        *qr.routes,
        *messages.routes,
        *contacts.routes,
        *groups.routes,
        *chats.routes,
        *message_actions.routes,
        *calls.routes,
        *campaigns.routes,
        *webhooks.routes,
        *meta.routes,
        *cluster.routes,
        *dashboard.routes,
    ]
    # The operator dashboard: where the API is served, once its secret is set.
    operator_dashboard: Dashboard | None = None
    if role in ("all", "api"):
        routes: list[BaseRoute] = list(public)
        if settings.dashboard_secret:
            operator_dashboard, mount = build_dashboard(
                settings, store, memory=lambda: metrics.last_memory
            )
            routes.append(mount)
        # The API viewer, outside the document it shows (it is a page, not an API operation).
        if settings.api_docs:
            routes += apidocs.routes
        guard = Middleware(
            RequestGuard,
            secrets=settings.api_secrets,
            tolerance=settings.signature_tolerance,
            max_body_bytes=settings.max_body_bytes,
            first_sighting=store.first_sighting,
        )
    else:
        # A worker answers only the cluster's signed calls (and health and metrics).
        routes = [*system.routes, *(internal_routes(agent) if agent is not None else [])]
        guard = Middleware(
            RequestGuard,
            secrets=(settings.internal_secret,),
            tolerance=settings.signature_tolerance,
            max_body_bytes=settings.max_body_bytes,
            first_sighting=store.first_sighting,
            prefix="/internal",
        )
    app = Starlette(
        routes=routes,
        middleware=[guard],
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
    app.state.campaigns = campaign_manager
    app.state.selector = selector
    app.state.meta_provider = meta_provider
    app.state.media_links = links_media
    app.state.media_retention = retention
    app.state.dispatcher = dispatcher
    app.state.broadcaster = broadcaster
    app.state.qr_links = links_qr
    app.state.openapi = build_openapi(public)
    app.state.metrics = metrics
    app.state.node = node
    app.state.dashboard = operator_dashboard
    return app
