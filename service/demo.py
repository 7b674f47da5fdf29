"""`python -m service demo`: a guided tour on the sandbox, no phone, no internet, no .env.

It starts the sandbox and a sidecar as child processes on free loopback ports, in a temp
directory it deletes at the end, plus a webhook receiver in this process that verifies every
signature. Then it walks one session from QR to a message each way, narrating each call.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, TextIO, TypeVar

import httpx
import psutil
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from service.admin import ApiFailure, SidecarClient, Unreachable
from service.browser.process import kill_processes
from service.digits import seconds_arg
from service.errors import ConfigError
from service.qr import qr_terminal
from service.settings import Settings
from service.signing import hmac_matches

T = TypeVar("T")

PROJECT_ROOT = Path(__file__).resolve().parents[1]
ME = "5511999990001"
FRIEND = "5511988880002"
WORKSPACE = "demo"
SESSION = "demo-1"
HELLO = "Hello from the wa-sidecar demo!"
REPLY = "Hi! Got it, thanks."
DEFAULT_TIMEOUT = 60.0
STEPS = 8
WEBHOOK_TOLERANCE = 300
# The events a complete tour produces; the tour fails unless each arrived, signed.
EXPECTED_EVENTS = (
    "session_status_changed",
    "qr_code_generated",
    "message_status_updated",
    "message_received",
)
# Settings the operator may have exported for the real service; the demo's sidecar must
# not inherit them (CHROMIUM_PATH is kept on purpose: it says where this host's browser is).
_SETTING_PREFIXES = ("SIDECAR_", "WA_WEB_URL", "WA_JS_PATH", "PUSHER_", "META_", "BROADCAST_")
_SETTING_NAMES = ("MAX_SESSIONS", "MAX_CONCURRENT_LAUNCHES", "SESSION_MEMORY_LIMIT_MB")


class DemoFailed(Exception):
    """A step of the tour did not happen; the message says which and what was seen."""


# --- the webhook receiver ------------------------------------------------------------------


@dataclass(frozen=True)
class Webhook:
    """One POST the receiver got, and whether its signatures checked out."""

    event: str
    verified: bool
    data: dict[str, Any]


class WebhookRecorder:
    """What a Laravel app does with our webhooks, in miniature: verify, record, answer."""

    def __init__(self, secret: str) -> None:
        self._secret = secret
        self._lock = threading.Lock()
        self._received: list[Webhook] = []

    def verify(self, timestamp: str, body: bytes, signature: str, plain_signature: str) -> bool:
        """X-HMAC-Signature = HMAC(ts + body), Signature = HMAC(body), ts within 300 s."""
        if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > WEBHOOK_TOLERANCE:
            return False
        with_ts = hmac_matches([self._secret], timestamp.encode() + body, signature)
        return with_ts & hmac_matches([self._secret], body, plain_signature)

    async def receive(self, request: Request) -> Response:
        body = await request.body()
        verified = self.verify(
            request.headers.get("X-Timestamp", ""),
            body,
            request.headers.get("X-HMAC-Signature", ""),
            request.headers.get("Signature", ""),
        )
        try:
            payload = json.loads(body)
        except ValueError:
            payload = {}
        if not isinstance(payload, dict):
            payload = {}
        data = payload.get("data")
        webhook = Webhook(
            event=str(payload.get("event", "?")),
            verified=verified,
            data=data if isinstance(data, dict) else {},
        )
        with self._lock:
            self._received.append(webhook)
        # As the Laravel middleware would: a bad signature is a 401.
        return JSONResponse({"ok": verified}, status_code=200 if verified else 401)

    def received(self) -> list[Webhook]:
        with self._lock:
            return list(self._received)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/webhooks/whatsapp", self.receive, methods=["POST"])])


@contextmanager
def serve_in_thread(app: Starlette) -> Iterator[str]:
    """Serve `app` with uvicorn on a thread, on a port bound here (no race); yields its URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=lambda: asyncio.run(server.serve(sockets=[sock])), name="demo-webhooks", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise DemoFailed("the local webhook receiver did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


# --- child processes -----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Child:
    """A child process with its output in a log file; stopped with TERM, then KILL."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], cwd: Path) -> None:
        self.name = name
        self.log_path = cwd / f"{name}.log"
        with self.log_path.open("ab") as log:
            # Its own session: a Ctrl-C at the terminal reaches the demo only, which then
            # stops the children in order (the sidecar first, so it closes its browsers).
            self.proc = subprocess.Popen(
                argv,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def exited(self) -> int | None:
        return self.proc.poll()

    def stop(self, grace: float) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def log_tail(self, lines: int = 15) -> list[str]:
        try:
            return self.log_path.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return []


def child_env(extra: dict[str, str]) -> dict[str, str]:
    """This process's environment without sidecar settings, plus `extra`."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(_SETTING_PREFIXES) and k not in _SETTING_NAMES
    }
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
    return {**env, **extra}


def chromium_under(storage: Path) -> list[psutil.Process]:
    """Live Chromium processes whose profile lies under `storage`."""
    marker = f"--user-data-dir={storage.resolve()}{os.sep}"
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        cmdline = proc.info["cmdline"] or []
        if proc.info["status"] != psutil.STATUS_ZOMBIE and any(
            arg.startswith(marker) for arg in cmdline
        ):
            found.append(proc)
    return found


# --- the tour ------------------------------------------------------------------------------


class Tour:
    """One run of the demo: set up, narrate the steps, tear down."""

    def __init__(self, timeout: float, out: TextIO = sys.stdout) -> None:
        self.timeout = timeout
        self.out = out
        self.step_no = 0
        self.children: list[Child] = []
        self.api_secret = secrets.token_hex(32)
        self.webhook_secret = secrets.token_hex(32)
        self.encryption_key = base64.b64encode(secrets.token_bytes(32)).decode()
        self.recorder = WebhookRecorder(self.webhook_secret)

    # -- output --

    def step(self, text: str) -> None:
        self.step_no += 1
        self.say(f"\n[{self.step_no}/{STEPS}] {text}", indent="")

    def say(self, text: str, indent: str = "    ") -> None:
        print(f"{indent}{text}", file=self.out, flush=True)

    def print_qr(self, code: str) -> None:
        qr_terminal(code, self.out)

    # -- waiting --

    def wait(self, what: str, check: Callable[[], T | None], timeout: float | None = None) -> T:
        """Poll `check` until it returns something; fail naming `what` after the timeout."""
        limit = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        while True:
            for child in self.children:
                code = child.exited()
                if code is not None:
                    raise DemoFailed(
                        f"the {child.name} exited (code {code}) while waiting for {what}"
                    )
            result = check()
            if result:
                return result
            if time.monotonic() > deadline:
                raise DemoFailed(f"no {what} within {limit:g} s")
            time.sleep(0.2)

    # -- the run --

    def run(self, keep: bool) -> int:
        workdir = Path(tempfile.mkdtemp(prefix="wa-sidecar-demo-"))
        storage = workdir / "storage"
        print(
            "wa-sidecar demo: one session on the sandbox, from QR to a message each way.",
            file=self.out,
        )
        self.say(f"(working in {workdir}; it is deleted at the end)", indent="")
        result = 1
        try:
            with serve_in_thread(self.recorder.app()) as receiver:
                try:
                    self.tour(workdir, storage, receiver + "/webhooks/whatsapp")
                    result = 0
                    self.say(
                        "\nDemo complete: connected, a message each way, every webhook verified.",
                        indent="",
                    )
                    if keep:
                        self.keep_running(workdir)
                except (DemoFailed, ApiFailure, Unreachable, httpx.HTTPError) as exc:
                    result = 1
                    self.say(f"\nFAIL: {_failure(exc)}", indent="")
                    self.show_logs()
                except KeyboardInterrupt:
                    # After a complete tour (--keep), Ctrl-C is the normal way out.
                    self.say("\nstopping" if result == 0 else "\ninterrupted", indent="")
                finally:
                    self.teardown(storage)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
            self.say(f"removed {workdir}", indent="")
        return result

    def tour(self, workdir: Path, storage: Path, webhook_url: str) -> None:
        settings = _local_settings()
        if shutil.which(settings.chromium_path) is None:
            raise DemoFailed(
                f"no Chromium at {settings.chromium_path}: run ./scripts/run once (it installs "
                "chromium), or set CHROMIUM_PATH"
            )

        self.step("Starting the sandbox, a local stand-in for web.whatsapp.com")
        sandbox_port = free_port()
        sandbox_url = f"http://127.0.0.1:{sandbox_port}"
        self.children.append(
            Child(
                "sandbox",
                [
                    sys.executable,
                    "-m",
                    "sandbox",
                    "--port",
                    str(sandbox_port),
                    "--log-level",
                    "warning",
                ],
                child_env({}),
                workdir,
            )
        )
        with httpx.Client(base_url=sandbox_url, timeout=30) as probe:
            self.wait("answer from the sandbox", lambda: _answers(probe, "/control/devices"))
        self.say(f"sandbox at {sandbox_url}; its control API plays the phone +{ME}")

        self.step("Starting a sidecar with fresh secrets, pacing off, webhooks to this demo")
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        wa_js = Path(settings.wa_js_path)
        env = {
            "SIDECAR_HOST": "127.0.0.1",
            "SIDECAR_PORT": str(port),
            "SIDECAR_STORAGE_DIR": str(storage),
            "SIDECAR_API_SECRET": self.api_secret,
            "SIDECAR_WEBHOOK_SECRET": self.webhook_secret,
            "SIDECAR_ENCRYPTION_KEY": self.encryption_key,
            "SIDECAR_WEBHOOK_URL": webhook_url,
            "SIDECAR_PACING": "off",
            "SIDECAR_LOG_LEVEL": "warning",
            "WA_WEB_URL": sandbox_url + "/",
            "CHROMIUM_PATH": settings.chromium_path,
        }
        if wa_js.is_file():
            env["WA_JS_PATH"] = str(wa_js.resolve())
        # For --keep: `. demo.env` lets `python -m service sessions ...` reach this sidecar.
        _write_env_file(workdir / "demo.env", env)
        self.children.append(
            Child("sidecar", [sys.executable, "-m", "service", "serve"], child_env(env), workdir)
        )
        with httpx.Client(base_url=base, timeout=5) as probe:
            self.wait("answer from the sidecar's /health", lambda: _answers(probe, "/health"))
        self.say(f"sidecar at {base}, storage in {storage}")
        self.say(f"webhooks go to {webhook_url}, which checks X-HMAC-Signature")

        with (
            httpx.Client(base_url=sandbox_url, timeout=30) as phone,
            SidecarClient(base, self.api_secret, timeout=60) as api,
        ):
            self.walk(api, phone)

    def walk(self, api: SidecarClient, phone: httpx.Client) -> None:
        self.step(f"Creating session {SESSION} in workspace {WORKSPACE}: POST /api/sessions")
        record = api.request(
            "POST", "/api/sessions", body={"workspace_id": WORKSPACE, "session_id": SESSION}
        )
        self.say(f"201 Created, status {record['status']}; Chromium is opening the page")
        self.wait("QR (status qr_required)", lambda: self._status(api, "qr_required"))

        self.step(f"The QR, from GET /api/sessions/{SESSION}/qr")
        qr = api.request("GET", f"/api/sessions/{SESSION}/qr")
        self.print_qr(qr["qr"])
        self.say(f"QR printed ({qr['qr'][:24]}...); on the real site: WhatsApp > Linked devices")

        self.step(f"The sandbox phone +{ME} scans it: POST /control/scan")
        self.wait("successful scan", lambda: self._scan(api, phone))
        record = self.wait("connected session", lambda: self._status(api, "connected"))
        self.say(f"status connected as {record['phone_number']}")

        self.step(f"Sending a text to +{FRIEND}: POST /api/sessions/{SESSION}/messages")
        message = api.request(
            "POST",
            f"/api/sessions/{SESSION}/messages",
            body={"to": f"+{FRIEND}", "type": "text", "text": HELLO, "idempotency_key": "demo-1"},
        )
        self.say(f"202 Accepted: message {message['id']} is {message['status']}")
        sent = self.wait("send (message status sent)", lambda: self._sent(api, message["id"]))
        self.say(f"status {sent['status']} via {sent['provider']}")
        arrived = self.wait("message at the sandbox", lambda: _sandbox_sent(phone))
        self.say(
            f"message delivered: the sandbox saw +{ME} send {arrived.get('text')!r} "
            f"to {arrived.get('to')} (GET /control/sent)"
        )

        self.step(f"+{FRIEND} replies: POST /control/inbound")
        response = phone.post(
            "/control/inbound",
            json={"to": ME, "from": FRIEND, "text": REPLY, "notify_name": "Demo Friend"},
        )
        if response.status_code != 200:
            raise DemoFailed(f"the sandbox refused the reply: {response.text[:200]}")
        inbound = self.wait("message_received webhook", self._received_reply)
        reply = inbound.data.get("message") or {}
        self.say(f"message_received webhook: from {reply.get('from')}: {reply.get('text')!r}")

        self.step("Webhooks the local receiver got (signature checked with the webhook secret)")
        self.wait("the expected webhooks", self._all_expected)
        received = self.recorder.received()
        width = max(len(w.event) for w in received)
        self.say(f"{'event'.ljust(width)}  verified  data")
        for webhook in received:
            verified = "yes" if webhook.verified else "NO"
            self.say(f"{webhook.event.ljust(width)}  {verified.ljust(8)}  {_summary(webhook)}")
        bad = [w.event for w in received if not w.verified]
        if bad:
            raise DemoFailed(f"{len(bad)} webhooks did not verify: {', '.join(bad)}")
        self.say(f"{len(received)} webhooks, all verified")

    # -- checks polled by `wait` --

    def _status(self, api: SidecarClient, status: str) -> dict[str, Any] | None:
        record = api.get_session(SESSION)
        if record["status"] == "failed":
            raise DemoFailed(f"the session failed: {record.get('last_error')}")
        return record if record["status"] == status else None

    def _scan(self, api: SidecarClient, phone: httpx.Client) -> bool:
        # The QR rotates; a scan that lost the race just asks for the current one again.
        qr = api.request("GET", f"/api/sessions/{SESSION}/qr")
        response = phone.post("/control/scan", json={"qr": qr["qr"], "phone": ME})
        return response.status_code == 200

    def _sent(self, api: SidecarClient, message_id: str) -> dict[str, Any] | None:
        record: dict[str, Any] = api.request(
            "GET", f"/api/sessions/{SESSION}/messages/{message_id}"
        )
        if record["status"] == "failed":
            raise DemoFailed(f"the message failed: {record.get('error')}")
        return record if record["status"] in ("sent", "delivered", "read", "played") else None

    def _received_reply(self) -> Webhook | None:
        for webhook in self.recorder.received():
            if webhook.event == "message_received":
                return webhook
        return None

    def _all_expected(self) -> bool:
        seen = {w.event for w in self.recorder.received()}
        return all(event in seen for event in EXPECTED_EVENTS)

    # -- the end --

    def keep_running(self, workdir: Path) -> None:
        self.say("\nStill running; Ctrl-C stops everything and deletes the directory.", indent="")
        self.say("Talk to this sidecar with the demo's settings (its secrets are in that file):")
        self.say(
            f"set -a; . {workdir / 'demo.env'}; set +a; {sys.executable} -m service sessions list"
        )
        while True:
            for child in self.children:
                if child.exited() is not None:
                    raise DemoFailed(f"the {child.name} exited (code {child.exited()})")
            time.sleep(1)

    def show_logs(self) -> None:
        for child in self.children:
            tail = child.log_tail()
            if tail:
                self.say(f"last lines of the {child.name}'s log:", indent="")
                for line in tail:
                    self.say(line)

    def teardown(self, storage: Path) -> None:
        if not self.children:
            return
        with _signals_ignored():
            self._stop_children(storage)

    def _stop_children(self, storage: Path) -> None:
        self.say("\nStopping the sidecar (it closes its browser) and the sandbox", indent="")
        # The sidecar first and with time to spare: on SIGTERM it closes every browser.
        for child in reversed(self.children):
            child.stop(grace=60 if child.name == "sidecar" else 15)
        leftovers = chromium_under(storage)
        if leftovers:
            self.say(f"killing {len(leftovers)} Chromium processes left behind")
            kill_processes(leftovers, grace=5.0)
        self.children.clear()


def _failure(exc: Exception) -> str:
    """One line for what went wrong, in the demo's terms."""
    if isinstance(exc, Unreachable):
        return f"the sidecar stopped answering at {exc.url} ({exc.reason})"
    if isinstance(exc, ApiFailure):
        return f"the sidecar answered {exc.status} {exc.code}: {exc.message}"
    if isinstance(exc, httpx.HTTPError):
        return f"the sandbox stopped answering ({type(exc).__name__})"
    return str(exc)


def _local_settings() -> Settings:
    """Where this host's Chromium and wa-js are (from the environment or .env if readable)."""
    try:
        settings = Settings.from_env()
    except ConfigError:
        settings = Settings()
    wa_js = Path(settings.wa_js_path)
    if not wa_js.is_absolute() and not wa_js.is_file():
        # Run from elsewhere than the checkout: the default path is relative to it.
        settings = Settings(
            chromium_path=settings.chromium_path, wa_js_path=str(PROJECT_ROOT / wa_js)
        )
    return settings


def _answers(client: httpx.Client, path: str) -> bool:
    try:
        return client.get(path).status_code == 200
    except httpx.TransportError:
        return False


def _sandbox_sent(phone: httpx.Client) -> dict[str, Any] | None:
    response = phone.get("/control/sent", params={"phone": ME})
    if response.status_code != 200:
        return None
    for message in response.json().get("messages", []):
        if message.get("text") == HELLO:
            found: dict[str, Any] = message
            return found
    return None


def _write_env_file(path: Path, env: dict[str, str]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.writelines(f"{k}={v}\n" for k, v in env.items())


def _summary(webhook: Webhook) -> str:
    data = webhook.data
    if webhook.event == "session_status_changed":
        phone = f" ({data['phone_number']})" if data.get("phone_number") else ""
        return f"{data.get('previous')} -> {data.get('status')}{phone}"
    if webhook.event == "qr_code_generated":
        return f"qr {str(data.get('qr', ''))[:16]}..."
    if webhook.event == "message_status_updated":
        return f"{data.get('message_id')} {data.get('status')} via {data.get('provider')}"
    if webhook.event == "message_received":
        message = data.get("message") or {}
        return f"from {message.get('from')}: {message.get('text')!r}"
    return json.dumps(data)[:60]


@contextmanager
def _signals_ignored() -> Iterator[None]:
    """A second Ctrl-C must not cut the teardown short and leave browsers behind."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the tour; 0 when every step happened."""
    # supervisorctl stop / kill send SIGTERM: clean up exactly as for Ctrl-C.
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        return Tour(args.timeout).run(keep=args.keep)
    finally:
        signal.signal(signal.SIGTERM, previous)


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `demo` on the CLI's subparsers."""
    demo = sub.add_parser(
        "demo", help="a guided tour on the sandbox: QR, scan, send, reply, webhooks"
    )
    demo.add_argument(
        "--keep", action="store_true", help="leave the sandbox and sidecar running until Ctrl-C"
    )
    demo.add_argument(
        "--timeout",
        type=seconds_arg,
        default=DEFAULT_TIMEOUT,
        help=f"seconds each step may take (default {DEFAULT_TIMEOUT:.0f})",
    )
    demo.set_defaults(func=cmd_demo)
