"""Settings: one immutable object built from the environment and `.env`.

config/.env.example documents every name. The environment wins over `.env`; `.env` wins over
defaults.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Literal, get_args
from urllib.parse import urlsplit

from dotenv import dotenv_values

from service.digits import ascii_int
from service.errors import ConfigError
from service.netguard import AllowList

# What a process of the service does: everything (one host), the HTTP API (no browser), the
# sessions (browsers, senders, inbound), or only webhook delivery and broadcasting.
Role = Literal["all", "api", "worker", "dispatcher"]
ROLES: tuple[str, ...] = get_args(Role)
NODE_ID = re.compile(r"[A-Za-z0-9._:@-]{1,64}")


def _split_secrets(raw: str) -> tuple[str, ...]:
    return tuple(s.strip() for s in raw.split(",") if s.strip())


@dataclass(frozen=True)
class Settings:
    """Everything the service reads from its environment, validated once at start."""

    host: str = "127.0.0.1"
    port: int = 3000
    storage_dir: Path = Path("./storage")
    # Several comma-separated API secrets allow rotation: any one verifies.
    api_secrets: tuple[str, ...] = field(default=(), repr=False)
    webhook_secret: str = field(default="", repr=False)
    webhook_url: str = ""
    signature_tolerance: int = 300
    webhook_timeout: int = 10
    webhook_concurrency: int = 32
    webhook_retry_base_ms: int = 1000
    webhook_retry_cap_s: int = 600
    encryption_key: str = field(default="", repr=False)
    # A SQLite path (the default, under storage) or mysql+pymysql://user:pass@host:port/db;
    # the store checks it when it is built.
    database_url: str = field(default="", repr=False)  # may carry a password
    # Table names start with this, so the tables can live in the Laravel app's own database.
    db_prefix: str = "wa_"
    wa_web_url: str = "https://web.whatsapp.com"
    chromium_path: str = "/usr/bin/chromium"
    wa_js_path: str = "node_modules/@wppconnect/wa-js/dist/wppconnect-wa.js"
    wa_load_timeout: int = 90
    # Seconds a session waits for a scan, from its first QR, before it stops (0: forever).
    qr_timeout: int = 300
    wa_device_name: str = "wa-sidecar"
    link_preview_servers: tuple[str, ...] = ()
    send_handoff_timeout: int = 20
    # Seconds a page operation (a contact lookup, ...) may take before it answers 504.
    page_timeout: int = 20
    max_sessions: int = 50
    max_concurrent_launches: int = 2
    session_memory_limit_mb: int = 0
    pacing: bool = True
    pacing_interval_ms: int = 1000
    pacing_jitter_ms: int = 1500
    pacing_per_recipient: int = 12
    # Campaigns: the least seconds between two campaign_progress events of one campaign.
    campaign_progress_s: int = 30
    media_max_bytes: int = 16 * 1024 * 1024
    media_fetch_timeout: int = 20
    # Largest inbound media kept; a larger file is not downloaded and its message says so.
    inbound_media_max_bytes: int = 64 * 1024 * 1024
    # Days an inbound media file is kept before the cleanup deletes it (0: forever).
    media_retention_days: int = 30
    # Hosts and networks (CIDR) media may be fetched from although they are not public.
    fetch_allow: tuple[str, ...] = ()
    max_body_bytes: int = 16 * 1024 * 1024
    public_url: str = ""
    broadcast_driver: str = "none"
    pusher_app_id: str = ""
    pusher_app_key: str = ""
    pusher_app_secret: str = field(default="", repr=False)
    pusher_host: str = "127.0.0.1"
    pusher_port: int = 8080
    pusher_scheme: str = "http"
    failover_threshold: int = 3
    failover_cooldown_s: int = 30
    meta_graph_url: str = "https://graph.facebook.com"
    meta_graph_version: str = "v25.0"
    log_level: str = "info"
    metrics_token: str = field(default="", repr=False)
    # Whether /docs (the API viewer) is served; /openapi.json is served either way.
    api_docs: bool = True
    # Cluster mode: what this process does (`all` is the single host), who it is, how long
    # its leases last, and where sessions go. The internal secret signs the calls between
    # processes; the advertised URL is where the others reach this worker's RPC endpoint.
    role: str = "all"
    node_id: str = ""
    lease_ttl: int = 15
    placement: str = "capacity"
    internal_secret: str = field(default="", repr=False)
    advertise_url: str = ""
    # Whether an api process also delivers webhooks (off when dispatcher processes do it,
    # which keeps the API's event loop for requests alone).
    api_dispatch: bool = True
    # The operator dashboard (/dashboard): off while the secret is empty. The secret signs
    # its login links and session cookies; links last link_ttl seconds, sessions session_ttl.
    dashboard_secret: str = field(default="", repr=False)
    dashboard_link_ttl: int = 300
    dashboard_session_ttl: int = 28800
    # Seconds between the samples the dashboard's charts draw (the last hour is kept).
    dashboard_sample_s: int = 15

    @property
    def sessions_dir(self) -> Path:
        return self.storage_dir / "sessions"

    @property
    def store_url(self) -> str:
        """What the store opens: SIDECAR_DATABASE_URL, or the SQLite file under storage."""
        return self.database_url or str(self.storage_dir / "sidecar.sqlite3")

    @property
    def base_url(self) -> str:
        """Where this service is reachable, for links it hands out (QR image URLs)."""
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def node_name(self) -> str:
        """SIDECAR_NODE_ID, or this host's name and port (unique per process on a host)."""
        return self.node_id or f"{socket.gethostname()}:{self.port}"[:64]

    @property
    def rpc_url(self) -> str:
        """Where the other processes call this worker (SIDECAR_ADVERTISE_URL by default
        `http://<host>:<port>`, the host's name when it listens on every address)."""
        if self.advertise_url:
            return self.advertise_url.rstrip("/")
        host = socket.gethostname() if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}"

    def require_secrets(self) -> None:
        """Refuse to run without the two secrets every request and webhook is signed with."""
        for name, value in (
            ("SIDECAR_API_SECRET", self.api_secrets),
            ("SIDECAR_WEBHOOK_SECRET", self.webhook_secret),
        ):
            if not value:
                raise ConfigError(
                    f"{name} is not set: generate one with `python -m service keygen` "
                    "and put it in .env or the environment"
                )

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, env_file: str | Path | None = ".env"
    ) -> Settings:
        """Build settings from `environ` (default os.environ) layered over `env_file`."""
        values: dict[str, str] = {}
        if env_file is not None and Path(env_file).is_file():
            values.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
        values.update(os.environ if environ is None else environ)
        return cls.from_mapping(values)

    @classmethod
    def from_mapping(cls, env: Mapping[str, str]) -> Settings:
        """Parse the setting names out of a plain mapping."""
        parsed: dict[str, object] = {}
        for f in fields(cls):
            name = _ENV_NAMES[f.name]
            if name not in env or env[name] == "":
                continue
            raw = env[name].strip()
            parsed[f.name] = _parse(name, raw, f.default)
        settings = cls(**parsed)  # type: ignore[arg-type]
        if settings.broadcast_driver not in ("none", "reverb", "pusher"):
            raise ConfigError("BROADCAST_DRIVER must be one of none, reverb, pusher")
        if settings.broadcast_driver != "none" and not (
            settings.pusher_app_id and settings.pusher_app_key and settings.pusher_app_secret
        ):
            raise ConfigError(
                "BROADCAST_DRIVER needs PUSHER_APP_ID, PUSHER_APP_KEY and PUSHER_APP_SECRET"
            )
        if min(settings.wa_load_timeout, settings.send_handoff_timeout, settings.page_timeout) < 1:
            raise ConfigError(
                "WA_LOAD_TIMEOUT, SIDECAR_SEND_HANDOFF_TIMEOUT and WA_PAGE_TIMEOUT must be at "
                "least 1"
            )
        if settings.max_sessions < 1 or settings.max_concurrent_launches < 1:
            raise ConfigError("MAX_SESSIONS and MAX_CONCURRENT_LAUNCHES must be at least 1")
        if settings.inbound_media_max_bytes < 1:
            raise ConfigError("SIDECAR_INBOUND_MEDIA_MAX_BYTES must be at least 1")
        settings.check_cluster()
        settings.check_dashboard()
        return settings

    def check_dashboard(self) -> None:
        """The dashboard's secret is its own, and its links and sessions expire."""
        if not self.dashboard_secret:
            return
        if len(self.dashboard_secret) < 32:
            raise ConfigError(
                "SIDECAR_DASHBOARD_SECRET must be at least 32 characters: generate one with "
                "`python -m service dashboard secret`"
            )
        if self.dashboard_secret in (*self.api_secrets, self.webhook_secret, self.internal_secret):
            raise ConfigError(
                "SIDECAR_DASHBOARD_SECRET must differ from the API, webhook and internal "
                "secrets: each one signs something else"
            )
        if not 1 <= self.dashboard_link_ttl <= 3600:
            raise ConfigError("SIDECAR_DASHBOARD_LINK_TTL must be 1 to 3600 (seconds)")
        if not 60 <= self.dashboard_session_ttl <= 7 * 86400:
            raise ConfigError("SIDECAR_DASHBOARD_SESSION_TTL must be 60 to 604800 (seconds)")
        if not 1 <= self.dashboard_sample_s <= 300:
            raise ConfigError("SIDECAR_DASHBOARD_SAMPLE_S must be 1 to 300 (seconds)")

    def check_cluster(self) -> None:
        """The cluster settings make sense together (also for `serve --role`)."""
        if self.role not in ROLES:
            raise ConfigError(f"SIDECAR_ROLE must be one of {', '.join(ROLES)}, got {self.role!r}")
        if self.placement not in ("capacity", "workspace_hash"):
            raise ConfigError("SIDECAR_PLACEMENT must be capacity or workspace_hash")
        if self.lease_ttl < 3:
            raise ConfigError("SIDECAR_LEASE_TTL must be at least 3 (seconds)")
        if self.node_id and not NODE_ID.fullmatch(self.node_id):
            raise ConfigError(
                "SIDECAR_NODE_ID: use up to 64 of A-Z, a-z, 0-9 and . _ : @ - (one per process)"
            )
        if self.role == "all":
            return
        if not self.internal_secret:
            raise ConfigError(
                f"--role {self.role} needs SIDECAR_INTERNAL_SECRET (the same on every process "
                "of the cluster): generate one with `python -m service keygen`"
            )
        if self.internal_secret in (*self.api_secrets, self.webhook_secret):
            raise ConfigError(
                "SIDECAR_INTERNAL_SECRET must differ from the API and webhook secrets: whoever "
                "holds those must not be able to call a worker's internal endpoint"
            )
        if not self.database_url.startswith("mysql"):
            raise ConfigError(
                f"--role {self.role} needs a store every process shares: set "
                "SIDECAR_DATABASE_URL=mysql+pymysql://user:pass@host:port/db (MariaDB 10.6+ or "
                "MySQL 8); SQLite serves one process only (--role all)"
            )
        if self.advertise_url and urlsplit(self.advertise_url).scheme not in ("http", "https"):
            raise ConfigError("SIDECAR_ADVERTISE_URL must be an http(s) URL")


def _parse(name: str, raw: str, default: object) -> object:
    if name == "SIDECAR_API_SECRET":
        return _split_secrets(raw)
    if name == "WA_LINK_PREVIEW_SERVERS":
        servers = tuple(s.strip().rstrip("/") for s in raw.split(",") if s.strip())
        for server in servers:
            parts = urlsplit(server)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ConfigError(f"WA_LINK_PREVIEW_SERVERS: {server!r} is not an http(s) URL")
        return servers
    if name == "SIDECAR_FETCH_ALLOW":
        entries = tuple(s.strip() for s in raw.split(",") if s.strip())
        try:
            AllowList.parse(entries)
        except ValueError as exc:
            raise ConfigError(f"SIDECAR_FETCH_ALLOW: {exc}") from None
        return entries
    if name == "SIDECAR_PACING":
        if raw.lower() not in ("on", "off", "true", "false", "1", "0"):
            raise ConfigError("SIDECAR_PACING must be on or off")
        return raw.lower() in ("on", "true", "1")
    if isinstance(default, bool):
        return raw.lower() in ("on", "true", "1", "yes")
    if isinstance(default, int):
        value = ascii_int(raw)
        if value is None:
            raise ConfigError(f"{name} must be a whole number (ASCII digits), got {raw!r}")
        return value
    if isinstance(default, Path):
        return Path(raw)
    return raw


_ENV_NAMES: dict[str, str] = {
    "host": "SIDECAR_HOST",
    "port": "SIDECAR_PORT",
    "storage_dir": "SIDECAR_STORAGE_DIR",
    "api_secrets": "SIDECAR_API_SECRET",
    "webhook_secret": "SIDECAR_WEBHOOK_SECRET",
    "webhook_url": "SIDECAR_WEBHOOK_URL",
    "signature_tolerance": "SIDECAR_SIGNATURE_TOLERANCE",
    "webhook_timeout": "SIDECAR_WEBHOOK_TIMEOUT",
    "webhook_concurrency": "SIDECAR_WEBHOOK_CONCURRENCY",
    "webhook_retry_base_ms": "SIDECAR_WEBHOOK_RETRY_BASE_MS",
    "webhook_retry_cap_s": "SIDECAR_WEBHOOK_RETRY_CAP_S",
    "encryption_key": "SIDECAR_ENCRYPTION_KEY",
    "database_url": "SIDECAR_DATABASE_URL",
    "db_prefix": "SIDECAR_DB_PREFIX",
    "wa_web_url": "WA_WEB_URL",
    "chromium_path": "CHROMIUM_PATH",
    "wa_js_path": "WA_JS_PATH",
    "wa_load_timeout": "WA_LOAD_TIMEOUT",
    "qr_timeout": "SIDECAR_QR_TIMEOUT",
    "wa_device_name": "WA_DEVICE_NAME",
    "link_preview_servers": "WA_LINK_PREVIEW_SERVERS",
    "send_handoff_timeout": "SIDECAR_SEND_HANDOFF_TIMEOUT",
    "page_timeout": "WA_PAGE_TIMEOUT",
    "max_sessions": "MAX_SESSIONS",
    "max_concurrent_launches": "MAX_CONCURRENT_LAUNCHES",
    "session_memory_limit_mb": "SESSION_MEMORY_LIMIT_MB",
    "pacing": "SIDECAR_PACING",
    "pacing_interval_ms": "SIDECAR_PACING_INTERVAL_MS",
    "pacing_jitter_ms": "SIDECAR_PACING_JITTER_MS",
    "pacing_per_recipient": "SIDECAR_PACING_PER_RECIPIENT",
    "campaign_progress_s": "SIDECAR_CAMPAIGN_PROGRESS_S",
    "media_max_bytes": "SIDECAR_MEDIA_MAX_BYTES",
    "media_fetch_timeout": "SIDECAR_MEDIA_FETCH_TIMEOUT",
    "inbound_media_max_bytes": "SIDECAR_INBOUND_MEDIA_MAX_BYTES",
    "media_retention_days": "SIDECAR_MEDIA_RETENTION_DAYS",
    "fetch_allow": "SIDECAR_FETCH_ALLOW",
    "max_body_bytes": "SIDECAR_MAX_BODY_BYTES",
    "public_url": "SIDECAR_PUBLIC_URL",
    "broadcast_driver": "BROADCAST_DRIVER",
    "pusher_app_id": "PUSHER_APP_ID",
    "pusher_app_key": "PUSHER_APP_KEY",
    "pusher_app_secret": "PUSHER_APP_SECRET",
    "pusher_host": "PUSHER_HOST",
    "pusher_port": "PUSHER_PORT",
    "pusher_scheme": "PUSHER_SCHEME",
    "failover_threshold": "SIDECAR_FAILOVER_THRESHOLD",
    "failover_cooldown_s": "SIDECAR_FAILOVER_COOLDOWN",
    "meta_graph_url": "META_GRAPH_URL",
    "meta_graph_version": "META_GRAPH_VERSION",
    "log_level": "SIDECAR_LOG_LEVEL",
    "metrics_token": "SIDECAR_METRICS_TOKEN",
    "api_docs": "SIDECAR_API_DOCS",
    "role": "SIDECAR_ROLE",
    "node_id": "SIDECAR_NODE_ID",
    "lease_ttl": "SIDECAR_LEASE_TTL",
    "placement": "SIDECAR_PLACEMENT",
    "internal_secret": "SIDECAR_INTERNAL_SECRET",
    "advertise_url": "SIDECAR_ADVERTISE_URL",
    "api_dispatch": "SIDECAR_API_DISPATCH",
    "dashboard_secret": "SIDECAR_DASHBOARD_SECRET",
    "dashboard_link_ttl": "SIDECAR_DASHBOARD_LINK_TTL",
    "dashboard_session_ttl": "SIDECAR_DASHBOARD_SESSION_TTL",
    "dashboard_sample_s": "SIDECAR_DASHBOARD_SAMPLE_S",
}
