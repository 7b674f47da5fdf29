"""`python -m service doctor`: check this host and configuration before (or while) serving.

Each check is a small function that returns a `Check`: `ok`, `warn` and `info` never fail the
run; one `fail` makes the exit code 1. A failing check says what to do, never a stack trace,
and no check prints a secret.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from service import __version__, apidocs
from service.digits import seconds_arg
from service.errors import ConfigError
from service.netguard import redact_url, webhook_url_problem
from service.secretbox import parse_key
from service.settings import Settings
from service.stack import STACK_FILE, Stack, running_stack
from webhooks.dispatcher import RETRYABLE
from webhooks.signing import webhook_headers

OK, WARN, FAIL, INFO = "ok", "warn", "FAIL", "info"
MIN_SECRET_LENGTH = 32
LOW_DISK_BYTES = 1024**3
LAUNCH_TIMEOUT = 60.0
NETWORK_TIMEOUT = 5.0
PROJECT_ROOT = Path(__file__).resolve().parents[1]
WA_JS_PACKAGE = "@wppconnect/wa-js"
# What doctor POSTs to the webhook URL: signed like every event, but of no session, so a
# controller that switches on the event name ignores it and answers 2xx.
PING_EVENT = "ping"


@dataclass(frozen=True)
class Check:
    """The outcome of one check: `status` is ok, warn, FAIL or info; `detail` is one line."""

    name: str
    status: str
    detail: str

    @property
    def failed(self) -> bool:
        return self.status == FAIL

    def line(self) -> str:
        return f"{self.name:<16} {self.status}: {self.detail}"


# --- Chromium ------------------------------------------------------------------------------


def check_chromium(settings: Settings) -> Check:
    """CHROMIUM_PATH names an executable file, and it reports a version."""
    path = settings.chromium_path
    resolved = shutil.which(path)
    if resolved is None:
        return Check(
            "chromium",
            FAIL,
            f"no executable at {path}: install it (apt-get install chromium) "
            "or set CHROMIUM_PATH to Chromium's path",
        )
    try:
        out = subprocess.run(
            [resolved, "--version"], capture_output=True, text=True, timeout=30, check=False
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        return Check("chromium", FAIL, f"{path} does not run ({exc}): reinstall chromium")
    return Check("chromium", OK, f"{path} ({out or 'version unknown'})")


def check_chromium_launch(settings: Settings, timeout: float = LAUNCH_TIMEOUT) -> Check:
    """Launch Chromium headless the way sessions do, open about:blank, close it."""
    if shutil.which(settings.chromium_path) is None:
        return Check("chromium launch", FAIL, "skipped: fix the chromium check first")
    profile = Path(tempfile.mkdtemp(prefix="wa-sidecar-doctor-"))
    try:
        error = asyncio.run(_launch_once(settings.chromium_path, profile / "profile", timeout))
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    if error is None:
        return Check("chromium launch", OK, "started headless, opened about:blank, closed")
    return Check(
        "chromium launch",
        FAIL,
        f"{error}: run `{settings.chromium_path} --headless --dump-dom about:blank` "
        "(as root add --no-sandbox) to see Chromium's own error",
    )


async def _launch_once(chromium_path: str, profile: Path, timeout: float) -> str | None:
    """None when a browser came up and went away cleanly; else what went wrong."""
    # The browser layer owns every Playwright call; the doctor uses it like a session does.
    from service.browser.launcher import ChromiumLauncher, LaunchError
    from service.browser.process import kill_processes, profile_processes

    launcher = ChromiumLauncher(chromium_path)

    async def ignore(payload: str) -> None:
        return None

    async def attempt() -> None:
        await launcher.start()
        session = await launcher.launch(
            profile, init_script="", binding="__waSidecarDoctor", emit=ignore
        )
        try:
            await session.goto("about:blank", timeout=timeout)
        finally:
            await session.close()

    try:
        await asyncio.wait_for(attempt(), timeout)
        return None
    except TimeoutError:
        return f"Chromium did not start and open a page within {timeout:.0f} s"
    except LaunchError as exc:
        return str(exc)
    except Exception as exc:  # the driver's own failures: report, never a traceback
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    finally:
        await launcher.stop()
        leftovers = profile_processes(profile)
        if leftovers:
            await asyncio.to_thread(kill_processes, leftovers)


# --- wa-js ---------------------------------------------------------------------------------


def check_wa_js(settings: Settings, project_root: Path | None = None) -> Check:
    """The wa-js bundle is at WA_JS_PATH and its version is the one package.json pins."""
    bundle = Path(settings.wa_js_path)
    if not bundle.is_file():
        return Check(
            "wa-js",
            FAIL,
            f"no file at {bundle}: run `npm ci` in the project directory "
            "(./scripts/run does it), or set WA_JS_PATH",
        )
    installed = _installed_wa_js_version(bundle)
    pinned = _pinned_wa_js_version(project_root)
    if pinned is None:
        return Check("wa-js", OK, f"{installed or 'version unknown'} at {bundle} (no pin found)")
    if installed != pinned:
        return Check(
            "wa-js",
            FAIL,
            f"{installed or 'an unknown version'} at {bundle}, but package.json pins {pinned}: "
            "run `npm ci` in the project directory",
        )
    return Check("wa-js", OK, f"{installed} at {bundle} (the pinned version)")


def check_api_docs(settings: Settings) -> Check:
    """/docs can serve its viewer: swagger-ui-dist is installed (or /docs is off here)."""
    if not settings.api_docs:
        return Check("api docs", INFO, "/docs is off (SIDECAR_API_DOCS=false)")
    if settings.role not in ("all", "api"):
        return Check(
            "api docs", INFO, f"/docs is served by the api role, not --role {settings.role}"
        )
    missing = apidocs.missing_assets()
    if missing:
        return Check(
            "api docs",
            WARN,
            f"/docs answers 503: {', '.join(missing)} missing; run `npm ci` in the project "
            "directory (./scripts/run does it)",
        )
    version = (_read_json(apidocs.SWAGGER_DIST / "package.json") or {}).get("version")
    return Check("api docs", OK, f"/docs serves swagger-ui-dist {version}")


def _installed_wa_js_version(bundle: Path) -> str | None:
    for directory in list(bundle.resolve().parents)[:4]:
        manifest = _read_json(directory / "package.json")
        if manifest is not None and manifest.get("name") == WA_JS_PACKAGE:
            version = manifest.get("version")
            return str(version) if version else None
    return None


def _pinned_wa_js_version(project_root: Path | None) -> str | None:
    roots = [project_root] if project_root is not None else [Path.cwd(), PROJECT_ROOT]
    for root in roots:
        manifest = _read_json(root / "package.json")
        if manifest is None:
            continue
        dependencies = manifest.get("dependencies")
        pin = dependencies.get(WA_JS_PACKAGE) if isinstance(dependencies, dict) else None
        if pin:
            return str(pin).lstrip("^~=v ")
    return None


def _read_json(path: Path) -> dict[str, object] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


# --- secrets -------------------------------------------------------------------------------


def check_api_secret(settings: Settings) -> Check:
    """SIDECAR_API_SECRET is set, each secret long enough; never shows them."""
    secrets = settings.api_secrets
    if not secrets:
        return Check("api secret", FAIL, _unset("SIDECAR_API_SECRET"))
    short = [i + 1 for i, s in enumerate(secrets) if len(s) < MIN_SECRET_LENGTH]
    count = f"{len(secrets)} secrets, rotating" if len(secrets) > 1 else "1 secret"
    if short:
        which = "it is" if len(secrets) == 1 else f"secret {', '.join(map(str, short))} is"
        return Check(
            "api secret",
            WARN,
            f"set ({count}) but {which} shorter than {MIN_SECRET_LENGTH} characters: "
            "replace it with one from `python -m service keygen`",
        )
    return Check("api secret", OK, f"set ({count})")


def check_webhook_secret(settings: Settings) -> Check:
    """SIDECAR_WEBHOOK_SECRET is set and long enough; never shows it."""
    secret = settings.webhook_secret
    if not secret:
        return Check("webhook secret", FAIL, _unset("SIDECAR_WEBHOOK_SECRET"))
    if len(secret) < MIN_SECRET_LENGTH:
        return Check(
            "webhook secret",
            WARN,
            f"set but shorter than {MIN_SECRET_LENGTH} characters: replace it with one from "
            "`python -m service keygen` (and give Laravel the same)",
        )
    return Check("webhook secret", OK, "set")


def check_encryption_key(settings: Settings) -> Check:
    """SIDECAR_ENCRYPTION_KEY: optional, but the service refuses to start on a malformed one."""
    if not settings.encryption_key:
        return Check(
            "encryption key",
            WARN,
            "SIDECAR_ENCRYPTION_KEY is not set: sessions cannot be given Meta credentials "
            "(`python -m service keygen` prints one)",
        )
    try:
        parse_key(settings.encryption_key)
    except ConfigError as exc:
        return Check(
            "encryption key",
            FAIL,
            f"{exc}, and the service will not start with it: replace it with the one "
            "`python -m service keygen` prints (keep the old key if Meta credentials were "
            "sealed with it)",
        )
    return Check("encryption key", OK, "set, 32 bytes")


def _unset(name: str) -> str:
    return (
        f"{name} is not set and the service will not start: run `python -m service keygen` "
        "and put its lines in .env (or the environment)"
    )


# --- storage and database ------------------------------------------------------------------


def check_storage(settings: Settings) -> Check:
    """The storage dir takes a new file (created and deleted); reports the free space."""
    storage = settings.storage_dir
    if not storage.exists():
        parent = storage.absolute().parent
        if not parent.is_dir():
            return Check(
                "storage",
                FAIL,
                f"{storage} does not exist and neither does its parent {parent}: create it "
                f"(mkdir -p {storage}), owned by the service's user, or fix SIDECAR_STORAGE_DIR",
            )
        if not os.access(parent, os.W_OK | os.X_OK):
            return Check(
                "storage",
                FAIL,
                f"{storage} does not exist and {parent} is not writable: create it "
                f"(mkdir -p {storage}) and give it to the service's user",
            )
        return Check(
            "storage",
            OK,
            f"{storage} does not exist yet; the service creates it ({_free(parent)} free)",
        )
    if not storage.is_dir():
        return Check("storage", FAIL, f"{storage} is not a directory: fix SIDECAR_STORAGE_DIR")
    try:
        fd, name = tempfile.mkstemp(prefix=".doctor-", dir=storage)
        os.close(fd)
        os.unlink(name)
    except OSError as exc:
        return Check(
            "storage",
            FAIL,
            f"cannot create a file in {storage} ({exc.strerror}): make it writable by the "
            f"service's user (chown -R <user> {storage})",
        )
    free = shutil.disk_usage(storage).free
    if free < LOW_DISK_BYTES:
        return Check(
            "storage",
            WARN,
            f"{storage} is writable but only {_free(storage)} is free: each session's profile "
            "grows to tens of MB; free some space",
        )
    return Check("storage", OK, f"{storage} is writable, {_free(storage)} free")


def _free(path: Path) -> str:
    free = shutil.disk_usage(path).free
    return f"{free / 1024**3:.1f} GiB"


_REMEDY = "check the URL, the server, the owner and permissions, or restore it from a backup"
# Oldest servers the store is built for: SKIP LOCKED and utf8mb4 by default.
MIN_SERVER = {"mariadb": (10, 6), "mysql": (8, 0)}


def check_database(settings: Settings) -> Check:
    """The store opens through its own interface: schema version, and for MySQL/MariaDB the
    server version, utf8mb4, sql_mode and SKIP LOCKED."""
    from service.dbcli import inspect_store
    from service.store.sql import open_store

    try:
        store = open_store(settings.store_url, settings.db_prefix)
    except ConfigError as exc:
        return Check("database", FAIL, str(exc))
    if store.path is not None and not store.path.exists():
        return Check("database", OK, f"{store.path} does not exist yet; the service creates it")
    try:
        info = asyncio.run(inspect_store(store))
    except ConfigError as exc:
        return Check("database", FAIL, f"{exc}; {_REMEDY}")
    except Exception as exc:
        return Check(
            "database",
            FAIL,
            f"{store.display_url} does not open ({type(exc).__name__}: {exc}); {_REMEDY}",
        )
    current, head, sessions = info["current"], info["head"], info["sessions"]
    where = f"{info['engine']} {info['server_version']} at {store.display_url}"
    problems = _server_problems(info)
    if current is None:
        state = "empty; the service migrates it at start"
    elif current != head:
        state = f"schema {current}, the service migrates it to {head} at start"
    else:
        state = f"schema {current}, {sessions} sessions"
    if problems:
        return Check("database", WARN, f"{where} ({state}): {'; '.join(problems)}")
    return Check("database", OK, f"{where} ({state})")


def _server_problems(info: dict[str, Any]) -> list[str]:
    """What a MySQL/MariaDB server lacks for this store, each with what to do."""
    if info["engine"] == "sqlite":
        return []
    problems = []
    version = tuple(int(part) for part in re.findall(r"\d+", info["server_version"])[:2])
    least = MIN_SERVER[info["engine"]]
    if version < least:
        problems.append(f"{info['engine']} {'.'.join(map(str, least))} or newer is needed")
    # The tables' own collation once they exist; before that, the database's default.
    collation = info.get("table_collation") or info.get("collation") or ""
    if not collation.startswith("utf8mb4"):
        problems.append(
            f"the collation is {collation}: ALTER DATABASE ... CHARACTER SET utf8mb4 "
            "(emoji need 4 bytes)"
        )
    if "STRICT_TRANS_TABLES" not in (info.get("sql_mode") or ""):
        problems.append("sql_mode lacks STRICT_TRANS_TABLES: values too long would be cut")
    if not info.get("skip_locked"):
        problems.append("the server has no FOR UPDATE SKIP LOCKED")
    return problems


# --- network -------------------------------------------------------------------------------


def check_wa_web_url(
    settings: Settings, timeout: float = NETWORK_TIMEOUT, stack: Stack | None = None
) -> Check:
    """WA_WEB_URL, the page every session opens, answers a GET with 2xx (after redirects,
    which Chromium follows too)."""
    url = settings.wa_web_url
    sandbox = stack is not None and "WA_WEB_URL" in stack.settings
    what = f"{url} (the sandbox of ./scripts/run --sandbox)" if sandbox else url
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return Check("whatsapp web", FAIL, "WA_WEB_URL is not an http(s) URL: fix it in .env")
    if sandbox:
        todo = (
            "the sandbox is not running: see `.venv/bin/supervisorctl -c supervisord.conf "
            "status sandbox` and storage/logs/sandbox.log"
        )
    else:
        todo = (
            "sessions load WhatsApp Web from there: check this host's internet access, DNS, "
            "proxy and firewall, or fix WA_WEB_URL"
        )
    try:
        response = httpx.get(url, timeout=timeout, follow_redirects=True)
    except httpx.ConnectError as exc:
        return Check(
            "whatsapp web", FAIL, f"cannot connect to {what} ({_connect_reason(exc)}): {todo}"
        )
    except httpx.TimeoutException:
        return Check("whatsapp web", FAIL, f"{what} did not answer within {timeout:.0f} s: {todo}")
    except httpx.HTTPError as exc:
        return Check("whatsapp web", FAIL, f"{what} failed ({type(exc).__name__}): {todo}")
    if not response.is_success:
        return Check(
            "whatsapp web",
            FAIL,
            f"{what} answers HTTP {response.status_code}: sessions cannot load WhatsApp Web "
            "from it; check WA_WEB_URL and any proxy in between",
        )
    return Check("whatsapp web", OK, f"{what} answers (HTTP {response.status_code})")


def check_webhook_url(settings: Settings, timeout: float | None = None) -> Check:
    """SIDECAR_WEBHOOK_URL takes a signed test event (`ping`) the way it takes events: only
    a 2xx counts, and a refusal says whether the secret, the route or the app is at fault."""
    url = settings.webhook_url
    if not url:
        return Check(
            "webhook url",
            WARN,
            "SIDECAR_WEBHOOK_URL is not set: events of sessions without their own webhook_url "
            "wait in the outbox; set it to your Laravel webhook route",
        )
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return Check(
            "webhook url", FAIL, "SIDECAR_WEBHOOK_URL is not an http(s) URL: fix it in .env"
        )
    problem = webhook_url_problem(url)
    if problem is not None:
        return Check("webhook url", FAIL, f"no webhook is ever sent there: it {problem}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    where = f"{parts.hostname}:{port}"
    timeout = float(settings.webhook_timeout) if timeout is None else timeout
    body, headers = ping(settings.webhook_secret)
    try:
        response = httpx.post(
            url, content=body, headers=headers, timeout=timeout, follow_redirects=False
        )
    except httpx.ConnectError as exc:
        reason = _connect_reason(exc)
        todo = (
            "check the host name in SIDECAR_WEBHOOK_URL and this host's DNS"
            if reason == "unknown host"
            else "start Laravel's web server there, or fix SIDECAR_WEBHOOK_URL"
        )
        return Check("webhook url", FAIL, f"cannot connect to {where} ({reason}): {todo}")
    except httpx.TimeoutException:
        return Check(
            "webhook url",
            FAIL,
            f"{where} did not answer within {timeout:.0f} s (SIDECAR_WEBHOOK_TIMEOUT): check "
            "the host, firewall and SIDECAR_WEBHOOK_URL, and that the route answers fast",
        )
    except httpx.HTTPError as exc:
        return Check(
            "webhook url",
            FAIL,
            f"{where} failed ({type(exc).__name__}): check the URL and its TLS certificate",
        )
    return _webhook_answer(response, where, signed=bool(settings.webhook_secret))


def ping(secret: str, now: int | None = None) -> tuple[bytes, dict[str, str]]:
    """The body and headers of one signed `ping`: an envelope like every event's, of no
    workspace, session or metadata, with a fresh id (so a receiver's dedupe lets it in)."""
    timestamp = int(time.time()) if now is None else now
    event_id = f"evt_{secrets.token_hex(12)}"
    envelope = {
        "id": event_id,
        "event": PING_EVENT,
        "timestamp": timestamp,
        "workspace_id": None,
        "session_id": None,
        "metadata": None,
        "data": {},
    }
    body = json.dumps(envelope, separators=(",", ":")).encode()
    headers = webhook_headers(secret, body, timestamp, event_id, PING_EVENT)
    if not secret:
        # Nothing to sign with: say so, rather than send signatures made with no key.
        for name in ("X-HMAC-Signature", "Signature"):
            headers.pop(name)
    return body, headers


def _webhook_answer(response: httpx.Response, where: str, signed: bool) -> Check:
    """What one answer to the ping means for the events that will follow it."""
    status = response.status_code
    answered = f"{where} answered HTTP {status}"
    if response.is_success:
        if not signed:
            return Check(
                "webhook url",
                WARN,
                f"{answered} to an unsigned test event: set SIDECAR_WEBHOOK_SECRET, and let "
                "Laravel check signatures (the kit's wa-sidecar.webhook middleware)",
            )
        return Check("webhook url", OK, f"{answered} to a signed test event")
    code = _error_code(response)
    if status in (401, 403) and code == "stale_timestamp":
        return Check(
            "webhook url",
            FAIL,
            f"{answered} stale_timestamp: the clocks of this host and Laravel's differ by more "
            "than the allowed skew; run NTP on both (refused events go to dead)",
        )
    if status in (401, 403):
        if not signed:
            return Check(
                "webhook url",
                FAIL,
                f"{answered} to an unsigned test event: set SIDECAR_WEBHOOK_SECRET here to "
                "the secret Laravel has",
            )
        return Check(
            "webhook url",
            FAIL,
            f"{answered}{' ' + code if code else ''}: the signed test event was refused, a "
            "secret mismatch: SIDECAR_WEBHOOK_SECRET here and in Laravel's .env must be the "
            "same (refused events go to dead)",
        )
    if status == 419:
        return Check(
            "webhook url",
            FAIL,
            f"{answered} (CSRF token mismatch): leave the webhook path out of Laravel's CSRF "
            "check (validateCsrfTokens except)",
        )
    if 300 <= status < 400:
        target = redact_url(response.headers.get("location", ""))[:200] or "nowhere"
        return Check(
            "webhook url",
            FAIL,
            f"{answered}, a redirect to {target}: webhooks never follow one, so put the final "
            "URL in SIDECAR_WEBHOOK_URL",
        )
    if status in (404, 405):
        return Check(
            "webhook url",
            FAIL,
            f"{answered}: no POST route there; check the path in SIDECAR_WEBHOOK_URL against "
            "`php artisan route:list`",
        )
    if status >= 500:
        return Check(
            "webhook url",
            FAIL,
            f"{answered}: the app failed on the test event; see Laravel's log "
            "(storage/logs/laravel.log). Events are retried until it answers 2xx",
        )
    if status in RETRYABLE:
        return Check(
            "webhook url",
            FAIL,
            f"{answered}: only a 2xx counts as delivered; events answered {status} are retried "
            "(24 h at most), so nothing arrives until it answers 2xx",
        )
    return Check(
        "webhook url",
        FAIL,
        f"{answered}: only a 2xx counts as delivered, and events answered {status} go to dead",
    )


def _error_code(response: httpx.Response) -> str:
    """The `error.code` of a JSON error answer (the kit's middleware gives one), or ""."""
    try:
        code = response.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return ""
    return code if isinstance(code, str) and re.fullmatch(r"[a-z_]{1,40}", code) else ""


def check_outbox(settings: Settings) -> Check:
    """The webhook outbox, read without migrating: how many events wait (for a URL, when
    SIDECAR_WEBHOOK_URL is not set) and how many are dead."""
    from service.store import RETRY_WINDOW, SqlStore, open_store

    async def read(store: SqlStore) -> dict[str, Any]:
        await store.open(migrate=False)
        try:
            current, head = await store.schema_status()
            # An empty or older schema is the database check's to report.
            return await store.outbox_stats() if current == head else {}
        finally:
            await store.close()

    try:
        store = open_store(settings.store_url, settings.db_prefix)
        exists = store.path is None or store.path.exists()
        stats = asyncio.run(read(store)) if exists else {}
    except Exception as exc:
        return Check("webhook outbox", INFO, f"not read ({type(exc).__name__}); see database")
    hours = int(RETRY_WINDOW // 3600)
    if not settings.webhook_url:
        waiting = f"{stats['pending_without_url']} waiting now" if stats else "none yet"
        return Check(
            "webhook outbox",
            WARN,
            "without SIDECAR_WEBHOOK_URL, events of sessions without their own webhook_url "
            f"wait in the outbox ({waiting}) until one is set; after {hours} h they are dead",
        )
    if not stats:
        return Check("webhook outbox", OK, "empty (the service creates it)")
    line = f"{stats['pending']} pending, {stats['dead']} dead"
    if stats["dead"]:
        return Check(
            "webhook outbox", WARN, f"{line}: replay them with `python -m service webhooks replay`"
        )
    return Check("webhook outbox", OK, line)


def _connect_reason(exc: httpx.ConnectError) -> str:
    text = str(exc).lower()
    if "refused" in text:
        return "connection refused"
    if "name or service" in text or "nodename" in text or "resolution" in text:
        return "unknown host"
    if "unreachable" in text:
        return "network unreachable"
    return "connect failed"


def check_service(settings: Settings, timeout: float = 3.0) -> Check:
    """Info only: whether a sidecar answers /health at its configured address."""
    url = f"{settings.base_url}/health"
    try:
        response = httpx.get(url, timeout=timeout)
        data = response.json()
    except (httpx.HTTPError, ValueError):
        return Check("service", INFO, f"nothing answers {url} (not running, or elsewhere)")
    if response.status_code == 200 and isinstance(data, dict) and data.get("status") == "ok":
        return Check(
            "service", INFO, f"answers at {settings.base_url} (version {data.get('version')})"
        )
    return Check("service", INFO, f"{url} answers HTTP {response.status_code}, not a wa-sidecar")


# --- the command ---------------------------------------------------------------------------


def run_checks(
    settings: Settings, launch_timeout: float = LAUNCH_TIMEOUT, stack: Stack | None = None
) -> list[Check]:
    """Every check, in the order a person fixes things; `stack` is the running stack of
    ./scripts/run, if any."""
    checks: list[Callable[[], Check]] = [
        lambda: check_chromium(settings),
        lambda: check_chromium_launch(settings, launch_timeout),
        lambda: check_wa_js(settings),
        lambda: check_api_docs(settings),
        lambda: check_api_secret(settings),
        lambda: check_webhook_secret(settings),
        lambda: check_encryption_key(settings),
        lambda: check_storage(settings),
        lambda: check_database(settings),
        lambda: check_wa_web_url(settings, stack=stack),
        lambda: check_webhook_url(settings),
        lambda: check_outbox(settings),
        lambda: check_service(settings),
    ]
    return [check() for check in checks]


def cmd_doctor(args: argparse.Namespace) -> int:
    """Print one line per check; 0 when none failed."""
    env_file = Path(".env")
    source = (
        f"{env_file.resolve()} and the environment"
        if env_file.is_file()
        else "the environment (no .env here)"
    )
    print(f"wa-sidecar {__version__} doctor, settings from {source}")
    # The settings ./scripts/run gave the running stack win, as they do in its environment.
    stack = running_stack(Path.cwd())
    if stack is not None and stack.settings:
        names = ", ".join(sorted(stack.settings))
        print(
            f"and {names} from ./scripts/run{' --sandbox' if stack.sandbox else ''}, "
            f"running as supervisord pid {stack.pid} ({STACK_FILE})"
        )
    try:
        settings = Settings.from_env({**os.environ, **(stack.settings if stack else {})})
    except ConfigError as exc:
        print(Check("settings", FAIL, f"{exc}: fix it in .env or the environment").line())
        return 1
    results = []
    for result in run_checks(settings, args.timeout, stack):
        print(result.line(), flush=True)
        results.append(result)
    failed = sum(r.failed for r in results)
    print(f"{failed} check{'s' if failed != 1 else ''} failed" if failed else "all checks ok")
    return 1 if failed else 0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `doctor` on the CLI's subparsers."""
    doctor = sub.add_parser(
        "doctor", help="check Chromium, wa-js, secrets, storage, WhatsApp Web and webhooks"
    )
    doctor.add_argument(
        "--timeout",
        type=seconds_arg,
        default=LAUNCH_TIMEOUT,
        help=f"seconds Chromium may take to start (default {LAUNCH_TIMEOUT:.0f})",
    )
    doctor.set_defaults(func=cmd_doctor)
