"""`python -m service serve|keygen|sign|sessions|wait-ready|webhooks|doctor|db|cluster|drain|
demo|docs|dashboard`: the operator's entry points."""

from __future__ import annotations

import argparse
import asyncio
import base64
import dataclasses
import logging
import secrets
import shlex
import signal
import sys
import time
from collections.abc import Callable
from types import FrameType

import uvicorn
from starlette.applications import Starlette

from service import (
    admin,
    clustercli,
    dashboardcli,
    dbcli,
    demo,
    doctables,
    doctor,
    logs,
    webhookcli,
)
from service.digits import port_arg
from service.errors import ConfigError
from service.settings import ROLES, Settings
from service.signing import sign_request


def cmd_serve(args: argparse.Namespace) -> int:
    from service.app import create_app

    try:
        settings = Settings.from_env()
        # The command line wins over the environment; the app must know its own port (a
        # worker tells the others where to call it).
        overrides = {"host": args.host, "port": args.port, "role": args.role}
        settings = dataclasses.replace(
            settings, **{k: v for k, v in overrides.items() if v is not None}
        )
        settings.check_cluster()
        app = create_app(settings)
        # A store that cannot be reached (or migrated) stops the start with one line, before
        # uvicorn would print the same as a traceback.
        asyncio.run(_check_store(settings))
    except ConfigError as exc:
        print(f"wa-sidecar: {exc}", file=sys.stderr)
        return 2
    log_config = logs.configure(settings.log_level)
    # uvicorn shuts down gracefully on SIGTERM/SIGINT and then re-raises the signal to the
    # handler that was there before it; make that handler a clean exit 0 for supervisord.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _exit_cleanly)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        log_config=log_config,
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=30,
        # Bounded: idle keep-alive connections close after 5 s, and past this many open
        # connections new ones get 503 instead of piling up (the body itself has its own
        # time limit in the request guard).
        timeout_keep_alive=5,
        limit_concurrency=1024,
    )
    server = _Server(config, on_signal=_stop_hook(app))
    server.run()
    if not server.started:
        return 3  # uvicorn's startup failure (the port taken, the lifespan failed)
    return 0


async def _check_store(settings: Settings) -> None:
    from service.app import check_service_kind
    from service.store import SqlStore, open_store

    store = open_store(settings.store_url, settings.db_prefix)
    await store.open()
    try:
        if isinstance(store, SqlStore):
            await check_service_kind(store, settings.role, float(settings.lease_ttl))
    finally:
        await store.close()


def _stop_hook(app: Starlette) -> Callable[[], None]:
    """What a stop signal tells the app at once: the browsers may end before the lifespan's
    shutdown (not a crash), and the dashboard's live streams end (uvicorn would wait for
    them before the shutdown)."""
    runtime, dashboard = app.state.runtime, app.state.dashboard

    def hook() -> None:
        if runtime is not None:
            runtime.stopping()
        if dashboard is not None:
            dashboard.changes.close()

    return hook


def _exit_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(0)


class _Server(uvicorn.Server):
    """uvicorn's server that tells the app the moment a stop signal arrives: the browsers
    may end before the lifespan's shutdown runs (a signal to the whole process group also
    reaches Playwright's driver, which closes them), and that must not read as a crash."""

    def __init__(self, config: uvicorn.Config, on_signal: Callable[[], None] | None) -> None:
        super().__init__(config)
        self._on_signal = on_signal

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._on_signal is not None:
            self._on_signal()
        super().handle_exit(sig, frame)


def cmd_keygen(args: argparse.Namespace) -> int:
    """Print fresh secrets as .env lines, ready for `>> .env`."""
    print(f"SIDECAR_API_SECRET={secrets.token_hex(32)}")
    print(f"SIDECAR_WEBHOOK_SECRET={secrets.token_hex(32)}")
    print(f"SIDECAR_ENCRYPTION_KEY={base64.b64encode(secrets.token_bytes(32)).decode()}")
    print(f"SIDECAR_INTERNAL_SECRET={secrets.token_hex(32)}")
    return 0


def cmd_sign(args: argparse.Namespace) -> int:
    """Print curl arguments for one signed request, for testing by hand; the arguments given
    after `--` go to curl as they are (`-i`, `-H 'Accept: image/png'`, `-o qr.png`)."""
    settings = Settings.from_env()
    if not settings.api_secrets:
        print("wa-sidecar: SIDECAR_API_SECRET is not set", file=sys.stderr)
        return 2
    method = args.method.upper()
    body = args.body.encode() if args.body is not None else b""
    timestamp = str(int(time.time()))
    # The first secret signs; the others are only accepted while rotating.
    signature = sign_request(settings.api_secrets[0], timestamp, method, args.path, body)
    parts = [
        "curl",
        "-sS",
        "-X",
        method,
        "-H",
        f"X-Timestamp: {timestamp}",
        "-H",
        f"X-HMAC-Signature: {signature}",
    ]
    if args.body is not None:
        parts += ["-H", "Content-Type: application/json", "--data-binary", args.body]
    parts += args.curl_args
    parts.append(f"{settings.base_url}{args.path}")
    # Quoted for a POSIX shell, so the line means the same pasted or run through eval.
    print(" ".join(shlex.quote(p) for p in parts))
    return 0


def split_curl_args(argv: list[str]) -> tuple[list[str], list[str]]:
    """`sign ... -- CURL ARGS`: the arguments before the first `--`, and curl's after it.

    argparse would hand the first of curl's arguments to the optional BODY, so they never
    reach it."""
    if argv[:1] != ["sign"] or "--" not in argv:
        return argv, []
    cut = argv.index("--")
    return argv[:cut], argv[cut + 1 :]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m service", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP service (uvicorn)")
    serve.add_argument("--host", help="override SIDECAR_HOST")
    serve.add_argument("--port", type=port_arg, help="override SIDECAR_PORT")
    serve.add_argument(
        "--role",
        choices=ROLES,
        help="override SIDECAR_ROLE: all (one host, the default), api, worker or dispatcher",
    )
    serve.set_defaults(func=cmd_serve)
    keygen = sub.add_parser("keygen", help="print new secrets as .env lines")
    keygen.set_defaults(func=cmd_keygen)
    sign = sub.add_parser(
        "sign",
        help="print a signed curl command for METHOD PATH [BODY] [-- CURL ARGS]",
        usage="%(prog)s [-h] method path [body] [-- curl args ...]",
        epilog="Arguments after -- go to curl as they are, quoted: "
        "sign GET /api/sessions/ID/qr -- -i -H 'Accept: image/png'. "
        "Leave method, path and body to sign: curl options that change them break the signature.",
    )
    sign.add_argument("method")
    sign.add_argument("path", help="path plus ?query exactly as it will be sent")
    sign.add_argument("body", nargs="?", help="the exact raw body")
    # Filled from what follows `--` (see split_curl_args), never by argparse.
    sign.set_defaults(func=cmd_sign, curl_args=[])
    admin.add_parser(sub)
    admin.add_ready_parser(sub)
    webhookcli.add_parser(sub)
    doctor.add_parser(sub)
    dbcli.add_parser(sub)
    clustercli.add_parser(sub)
    demo.add_parser(sub)
    doctables.add_parser(sub)
    dashboardcli.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    own, curl_args = split_curl_args(sys.argv[1:] if argv is None else list(argv))
    args = build_parser().parse_args(own)
    if curl_args:
        args.curl_args = curl_args
    # The service logs JSON lines (set up in serve); the operator commands print their own
    # lines, and httpx's per-request INFO lines would only bury them.
    if args.command != "serve":
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
    result: int = args.func(args)
    return result
