"""`python -m service dashboard link|secret`: sign-in links to the operator dashboard.

`link` signs a one-time link with SIDECAR_DASHBOARD_SECRET from the same settings as the
service (environment over `.env`); it needs no running service, only the same secret and
SIDECAR_PUBLIC_URL (or host and port) the service has.
"""

from __future__ import annotations

import argparse
import secrets
import sys
from datetime import UTC, datetime

from service.dashboard.auth import LABEL, DashboardAuth
from service.digits import seconds_arg
from service.errors import ConfigError
from service.settings import Settings
from service.validation import is_valid_id


def cmd_link(args: argparse.Namespace) -> int:
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"wa-sidecar: {exc}", file=sys.stderr)
        return 2
    if not settings.dashboard_secret:
        print(
            "wa-sidecar: the dashboard is off: set SIDECAR_DASHBOARD_SECRET (for example "
            f"SIDECAR_DASHBOARD_SECRET={secrets.token_hex(32)}) and restart the service",
            file=sys.stderr,
        )
        return 2
    if args.session is not None and not is_valid_id(args.session):
        print(f"wa-sidecar: {args.session!r} is not a session id", file=sys.stderr)
        return 2
    if not LABEL.fullmatch(args.label):
        print("wa-sidecar: --label: 1-64 letters, digits, spaces or _ . @ + : -", file=sys.stderr)
        return 2
    auth = DashboardAuth(
        settings.dashboard_secret,
        settings.base_url,
        link_ttl=settings.dashboard_link_ttl,
        session_ttl=settings.dashboard_session_ttl,
    )
    link = auth.link(args.label, args.session, max(1, int(args.ttl)) if args.ttl else None)
    print(link.url)
    until = datetime.fromtimestamp(link.expires_at, UTC).strftime("%H:%M:%S UTC")
    print(f"signs in once, until {until}", file=sys.stderr)
    return 0


def cmd_secret(args: argparse.Namespace) -> int:
    print(f"SIDECAR_DASHBOARD_SECRET={secrets.token_hex(32)}")
    return 0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    dashboard = sub.add_parser("dashboard", help="sign-in links to the operator dashboard")
    actions = dashboard.add_subparsers(dest="dashboard_command", required=True)
    link = actions.add_parser(
        "link",
        help="print a one-time sign-in link (SIDECAR_DASHBOARD_LINK_TTL seconds)",
    )
    link.add_argument("--label", default="operator", help="who signs in (shown and logged)")
    link.add_argument("--session", help="land on this session's page")
    link.add_argument("--ttl", type=seconds_arg, help="seconds it stays valid (at most the TTL)")
    link.set_defaults(func=cmd_link)
    secret = actions.add_parser("secret", help="print a fresh SIDECAR_DASHBOARD_SECRET line")
    secret.set_defaults(func=cmd_secret)
