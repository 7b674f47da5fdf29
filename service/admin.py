"""`python -m service sessions ...`: an operator's client of the running service.

It reads the same settings as the service (environment over `.env`), signs every request
exactly as Laravel does (docs/api.md) and prints what a person at a terminal wants to see.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from typing import Any, get_args
from urllib.parse import quote, urlsplit, urlunsplit

import httpx

from service.digits import seconds_arg
from service.errors import ConfigError
from service.qr import qr_terminal
from service.settings import Settings
from service.signing import HmacAuth
from service.store.base import SessionStatus

ACTIONS = ("start", "stop", "restart", "logout")
TABLE_COLUMNS = (
    "session_id",
    "workspace_id",
    "status",
    "desired_state",
    "phone_number",
    "provider_mode",
    "updated_at",
)
# Reads answer at once; an action may wait for a browser to close (up to 30 s) first.
READ_TIMEOUT = 15.0
ACTION_TIMEOUT = 90.0
WAIT_TIMEOUT = 60.0
# Statuses a session passes through on its way somewhere; an action is done once it is
# in none of these (and, for a running session, no longer `stopped`).
TRANSITIONAL = frozenset({"initializing", "authenticating"})
STATUSES: tuple[str, ...] = get_args(SessionStatus)
# The first start of a fresh install launches Chromium and loads wa-js: allow for it.
READY_TIMEOUT = 120.0
POLL_INTERVAL = 0.25
# A message in these has not left yet.
UNSENT = ("queued", "scheduled", "sending")


class Unreachable(Exception):
    """Nothing answered at the sidecar's address (refused, timed out, DNS, TLS)."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(
            f"cannot reach the sidecar at {url}: is it running? (supervisorctl status)"
        )
        self.url = url
        self.reason = reason


class WaitFailed(Exception):
    """What was waited for did not come: the session went elsewhere, or time ran out."""


class ApiFailure(Exception):
    """The sidecar answered with an error: its HTTP status and `{"error": {code, message}}`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message


def display_url(url: str) -> str:
    """`url` without any user:password part, safe to print."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


class SidecarClient:
    """A signed client of one sidecar's `/api`; the demo uses it too."""

    def __init__(self, base_url: str, secret: str, timeout: float = READ_TIMEOUT) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, auth=HmacAuth(secret), timeout=timeout)

    @classmethod
    def from_settings(cls, settings: Settings) -> SidecarClient:
        """A client of the service these settings describe, signing with the first secret."""
        if not settings.api_secrets:
            raise ConfigError(
                "SIDECAR_API_SECRET is not set: the client signs with the service's secret, "
                "so run it where the service's .env or environment is"
            )
        return cls(settings.base_url, settings.api_secrets[0])

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> SidecarClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
        timeout: float | None = None,
    ) -> Any:
        """The decoded JSON answer of a 2xx; `ApiFailure` or `Unreachable` otherwise."""
        content = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json"} if body is not None else {}
        response = self._send(method, path, params, content, headers, timeout)
        if response.status_code == 401 and _error_code(response) == "replayed_request":
            # The same command twice within one second signs the same bytes; the server
            # rightly sees a replay. A new second gives a new signature.
            time.sleep(1.05 - time.time() % 1)
            response = self._send(method, path, params, content, headers, timeout)
        if response.is_success:
            return response.json() if response.content else None
        raise _failure(response)

    def _send(
        self,
        method: str,
        path: str,
        params: dict[str, str] | None,
        content: bytes,
        headers: dict[str, str],
        timeout: float | None,
    ) -> httpx.Response:
        try:
            return self._http.request(
                method,
                path,
                params=params or None,
                content=content,
                headers=headers,
                timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
            )
        except httpx.TransportError as exc:
            raise Unreachable(display_url(self.base_url), type(exc).__name__) from None

    def list_sessions(
        self, workspace_id: str | None = None, status: str | None = None
    ) -> list[dict[str, Any]]:
        params = {k: v for k, v in (("workspace_id", workspace_id), ("status", status)) if v}
        data = self.request("GET", "/api/sessions", params=params)
        return list(data["data"])

    def get_session(self, session_id: str) -> dict[str, Any]:
        data: dict[str, Any] = self.request("GET", f"/api/sessions/{quote(session_id, safe='')}")
        return data

    def qr(self, session_id: str) -> dict[str, Any]:
        """GET /api/sessions/{id}/qr: `{qr, expires_at, image_url}`."""
        data: dict[str, Any] = self.request("GET", f"/api/sessions/{quote(session_id, safe='')}/qr")
        return data

    def send_text(self, session_id: str, to: str, text: str) -> dict[str, Any]:
        """POST /api/sessions/{id}/messages with a text message; the message record."""
        data: dict[str, Any] = self.request(
            "POST",
            f"/api/sessions/{quote(session_id, safe='')}/messages",
            body={"to": to, "type": "text", "text": text},
        )
        return data

    def get_message(self, session_id: str, message_id: str) -> dict[str, Any]:
        sid, mid = quote(session_id, safe=""), quote(message_id, safe="")
        data: dict[str, Any] = self.request("GET", f"/api/sessions/{sid}/messages/{mid}")
        return data

    def action(self, session_id: str, action: str) -> dict[str, Any]:
        """POST /api/sessions/{id}/{start|stop|restart|logout}; the session afterwards."""
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r}")
        data: dict[str, Any] = self.request(
            "POST", f"/api/sessions/{quote(session_id, safe='')}/{action}", timeout=ACTION_TIMEOUT
        )
        return data


def settled(action: str, before: dict[str, Any], now: dict[str, Any]) -> bool:
    """Whether `now` is where `action` (answered with `before`) leads: the browser has
    stopped, or is up and showing a QR or connected, or the session failed."""
    status = now["status"]
    if status == "failed":
        return True
    if status in TRANSITIONAL:
        return False
    if now["desired_state"] != "running":
        return bool(status == "stopped")
    if status == "stopped":
        return False
    if action == "logout":
        # The login is wiped: done once the fresh browser asks for a new QR.
        return bool(status == "qr_required")
    if action == "restart" and before["status"] not in TRANSITIONAL | {"stopped"}:
        # The answer came before the browser went down; done once the record has moved.
        return bool(now["updated_at"] != before["updated_at"])
    return True


def wait_settled(
    client: SidecarClient,
    action: str,
    before: dict[str, Any],
    timeout: float,
    interval: float = 0.25,
) -> tuple[dict[str, Any], bool]:
    """Poll the session until `settled`; the last record and whether it settled in time."""
    deadline = time.monotonic() + timeout
    now = before
    while True:
        now = client.get_session(before["session_id"])
        if settled(action, before, now):
            return now, True
        if time.monotonic() >= deadline:
            return now, False
        time.sleep(interval)


def dead_end(record: dict[str, Any], wanted: str) -> str | None:
    """Why waiting for `wanted` (a status, or `qr`) is pointless now, or None while the
    session may still get there."""
    sid, status = record["session_id"], record["status"]
    if status == wanted:
        return None
    if status == "failed":
        error = f": {record['last_error']}" if record.get("last_error") else ""
        return f"session {sid} failed{error}"
    if status == "stopped" and record.get("desired_state") == "stopped":
        return (
            f"session {sid} is stopped (desired_state: stopped); start it with "
            f"`python -m service sessions start {sid}`"
        )
    if wanted == "qr" and status == "connected":
        return f"session {sid} is connected: it needs no QR"
    return None


def wait_for_status(
    client: SidecarClient, session_id: str, status: str, timeout: float
) -> dict[str, Any]:
    """Poll until the session is in `status`; `WaitFailed` once it cannot get there or the
    time is up."""
    deadline = time.monotonic() + timeout
    while True:
        record = client.get_session(session_id)
        if record["status"] == status:
            return record
        reason = dead_end(record, status)
        if reason is not None:
            raise WaitFailed(reason)
        if time.monotonic() >= deadline:
            raise WaitFailed(
                f"session {session_id} is still {record['status']} after {timeout:g} s, "
                f"not {status}"
            )
        time.sleep(POLL_INTERVAL)


def wait_for_qr(client: SidecarClient, session_id: str, timeout: float) -> dict[str, Any]:
    """The session's QR once it shows one (status qr_required); `WaitFailed` once it lands
    where no QR comes (connected, failed, stopped) or the time is up."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return client.qr(session_id)
        except ApiFailure as exc:
            # Not there yet (the page is loading, or a new QR is on its way).
            if exc.code not in ("no_qr", "qr_not_ready"):
                raise
        record = client.get_session(session_id)
        reason = dead_end(record, "qr")
        if reason is not None:
            raise WaitFailed(reason)
        if time.monotonic() >= deadline:
            raise WaitFailed(
                f"no QR for session {session_id} after {timeout:g} s (status {record['status']})"
            )
        time.sleep(POLL_INTERVAL)


def wait_for_send(
    client: SidecarClient, session_id: str, message: dict[str, Any], timeout: float
) -> dict[str, Any]:
    """Poll until the message has left (sent or further); `WaitFailed` once it failed or the
    time is up."""
    deadline = time.monotonic() + timeout
    while True:
        if message["status"] == "failed":
            raise WaitFailed(f"message {message['id']} failed: {message.get('error')}")
        if message["status"] not in UNSENT:
            return message
        if time.monotonic() >= deadline:
            raise WaitFailed(
                f"message {message['id']} is still {message['status']} after {timeout:g} s"
            )
        time.sleep(POLL_INTERVAL)
        message = client.get_message(session_id, message["id"])


def wait_ready(base_url: str, timeout: float) -> None:
    """Poll `/ready` until it answers 200; `WaitFailed` naming the last answer otherwise."""
    url = f"{base_url.rstrip('/')}/ready"
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=5.0) as http:
        while True:
            try:
                response = http.get(url)
                if response.status_code == 200:
                    return
                last = f"it answers {response.status_code} {_not_ready(response)}".rstrip()
            except httpx.TransportError:
                last = "nothing answers there yet"
            if time.monotonic() >= deadline:
                raise WaitFailed(
                    f"the sidecar at {display_url(url)} is not ready after {timeout:g} s: {last}"
                )
            time.sleep(POLL_INTERVAL * 2)


def _not_ready(response: httpx.Response) -> str:
    """The failing checks of a /ready answer, as `(chromium: false)`."""
    try:
        checks = response.json()["checks"]
        failing = [f"{name}: false" for name, ok in checks.items() if ok is False]
    except (ValueError, KeyError, TypeError, AttributeError):
        return ""
    return f"({', '.join(failing)})" if failing else ""


def _error_code(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return ""


def _failure(response: httpx.Response) -> ApiFailure:
    try:
        error = response.json()["error"]
        return ApiFailure(response.status_code, str(error["code"]), str(error["message"]))
    except (ValueError, KeyError, TypeError):
        # Not our error shape: a proxy in between, or another service on that port.
        text = " ".join(response.text.split())[:200] or response.reason_phrase
        return ApiFailure(response.status_code, f"http_{response.status_code}", text)


def format_table(records: Sequence[dict[str, Any]], columns: Sequence[str] = TABLE_COLUMNS) -> str:
    """Left-aligned columns under a header; `-` for empty values."""
    rows = [list(columns)]
    rows += [["-" if r.get(c) in (None, "") else str(r.get(c)) for c in columns] for r in records]
    widths = [max(len(row[i]) for row in rows) for i in range(len(columns))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(line.rstrip() for line in lines)


def _describe(record: dict[str, Any]) -> str:
    line = f"{record['session_id']}: {record['status']} (desired_state: {record['desired_state']})"
    if record.get("last_error"):
        line += f", last_error: {record['last_error']}"
    return line


def cmd_sessions(args: argparse.Namespace) -> int:
    """Run one `sessions` subcommand; 0 on success, 1 on any error, 2 on bad configuration."""
    try:
        client = SidecarClient.from_settings(Settings.from_env())
    except ConfigError as exc:
        print(f"wa-sidecar: {exc}", file=sys.stderr)
        return 2
    try:
        with client:
            if args.action == "list":
                records = client.list_sessions(args.workspace, args.status)
                if args.json:
                    print(json.dumps(records, indent=2))
                elif records:
                    print(format_table(records))
                else:
                    print("no sessions")
            elif args.action == "show":
                print(json.dumps(client.get_session(args.session_id), indent=2))
            elif args.action == "qr":
                if args.wait:
                    qr = wait_for_qr(client, args.session_id, args.timeout)
                else:
                    qr = client.qr(args.session_id)
                if args.text:
                    print(qr["qr"])
                else:
                    qr_terminal(qr["qr"], sys.stdout)
                    print(
                        "Scan it in WhatsApp: Linked devices > Link a device. It changes about "
                        f"every 20 s (this one until {qr['expires_at']}); as an image: "
                        f"{qr['image_url']}"
                    )
            elif args.action == "send":
                message = client.send_text(args.session_id, args.to, args.text)
                if not args.no_wait:
                    message = wait_for_send(client, args.session_id, message, args.timeout)
                provider = f" ({message['provider']})" if message.get("provider") else ""
                print(f"{message['id']}: {message['status']}{provider}")
            elif args.action == "wait":
                record = wait_for_status(client, args.session_id, args.status, args.timeout)
                print(_describe(record))
            else:
                record = client.action(args.session_id, args.action)
                if args.no_wait:
                    print(f"{args.action} requested; {_describe(record)}")
                    return 0
                record, done = wait_settled(client, args.action, record, args.timeout)
                print(_describe(record))
                if not done:
                    print(
                        f"still {record['status']} after {args.timeout:g} s: see "
                        f"`sessions show {args.session_id}` and the service's log",
                        file=sys.stderr,
                    )
                    return 1
    except Unreachable as exc:
        print(exc, file=sys.stderr)
        return 1
    except ApiFailure as exc:
        print(f"error {exc.status} {exc.code}: {exc.message}", file=sys.stderr)
        return 1
    except WaitFailed as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


def cmd_wait_ready(args: argparse.Namespace) -> int:
    """Wait until the service answers /ready; 0 when it does, 1 on timeout, 2 on bad
    configuration."""
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"wa-sidecar: {exc}", file=sys.stderr)
        return 2
    try:
        wait_ready(settings.base_url, args.timeout)
    except WaitFailed as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"ready: {display_url(settings.base_url)}")
    return 0


def add_ready_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `wait-ready` on the CLI's subparsers."""
    ready = sub.add_parser(
        "wait-ready",
        help="wait until the running service is ready (GET /ready answers 200)",
    )
    ready.add_argument(
        "--timeout",
        type=seconds_arg,
        default=READY_TIMEOUT,
        help=f"seconds to wait (default {READY_TIMEOUT:g}); exit 1 after it",
    )
    ready.set_defaults(func=cmd_wait_ready)


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `sessions list|show|qr|wait|send|start|stop|restart|logout` on the CLI's
    subparsers."""
    sessions = sub.add_parser(
        "sessions",
        help="list, inspect, start and stop sessions of the running service",
        description="Talks to the running service at SIDECAR_PUBLIC_URL (or "
        "http://SIDECAR_HOST:SIDECAR_PORT), signing with the first SIDECAR_API_SECRET.",
    )
    actions = sessions.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="a table of sessions")
    listing.add_argument("--workspace", help="only this workspace_id")
    listing.add_argument("--status", help="only this status (connected, qr_required, ...)")
    listing.add_argument("--json", action="store_true", help="print the records as JSON")
    show = actions.add_parser("show", help="one session's record as JSON")
    show.add_argument("session_id")
    qr = actions.add_parser("qr", help="draw the session's current QR in the terminal")
    qr.add_argument("session_id")
    qr.add_argument(
        "--wait",
        action="store_true",
        help="wait for the QR (status qr_required); fail if the session connects, fails or "
        "stops instead",
    )
    qr.add_argument(
        "--timeout",
        type=seconds_arg,
        default=WAIT_TIMEOUT,
        help=f"seconds --wait waits (default {WAIT_TIMEOUT:g})",
    )
    qr.add_argument("--text", action="store_true", help="print the QR's text instead of drawing it")
    wait = actions.add_parser("wait", help="wait until a session reaches a status")
    wait.add_argument("session_id")
    wait.add_argument("--status", required=True, choices=STATUSES, help="the status to wait for")
    wait.add_argument(
        "--timeout",
        type=seconds_arg,
        default=WAIT_TIMEOUT,
        help=f"seconds to wait (default {WAIT_TIMEOUT:g})",
    )
    send = actions.add_parser("send", help="send a text message and wait until it has left")
    send.add_argument("session_id")
    send.add_argument("--to", required=True, help="the recipient: +5511988880002, or a chat id")
    send.add_argument("--text", required=True, help="the message's text")
    send.add_argument(
        "--no-wait", action="store_true", help="print the message as queued, without waiting"
    )
    send.add_argument(
        "--timeout",
        type=seconds_arg,
        default=WAIT_TIMEOUT,
        help=f"seconds to wait for it to leave (default {WAIT_TIMEOUT:g})",
    )
    helps = {
        "start": "start a session (desired_state: running)",
        "stop": "stop a session and keep its login",
        "restart": "restart a session's browser",
        "logout": "unlink the device and wipe the login",
    }
    for action in ACTIONS:
        parser = actions.add_parser(action, help=helps[action])
        parser.add_argument("session_id")
        parser.add_argument(
            "--no-wait",
            action="store_true",
            help="print the answer at once instead of waiting for the session to settle",
        )
        parser.add_argument(
            "--timeout",
            type=seconds_arg,
            default=WAIT_TIMEOUT,
            help=f"seconds to wait for the session to settle (default {WAIT_TIMEOUT:g})",
        )
    sessions.set_defaults(func=cmd_sessions)
