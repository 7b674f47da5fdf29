"""`python -m service webhooks replay`: replay dead webhook deliveries of the running service.

A client of the signed API (`POST /api/webhooks/deliveries/retry`), like `sessions`: the
filters go to the service as they are typed, and the service validates them.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from service.admin import ApiFailure, SidecarClient, Unreachable
from service.errors import ConfigError
from service.settings import Settings

# The command-line flag -> the filter's name in the request body.
FILTERS = {
    "session": "session_id",
    "workspace": "workspace_id",
    "event": "event",
    "since": "since",
    "until": "until",
}


def replay_body(args: argparse.Namespace) -> dict[str, Any]:
    """The request body: the filters that were given, nothing else."""
    return {name: getattr(args, flag) for flag, name in FILTERS.items() if getattr(args, flag)}


def cmd_webhooks(args: argparse.Namespace) -> int:
    """Run `webhooks replay`; 0 on success, 1 on any error, 2 on bad configuration."""
    try:
        client = SidecarClient.from_settings(Settings.from_env())
    except ConfigError as exc:
        print(f"wa-sidecar: {exc}", file=sys.stderr)
        return 2
    body = replay_body(args)
    try:
        with client:
            answer = client.request("POST", "/api/webhooks/deliveries/retry", body=body)
    except Unreachable as exc:
        print(exc, file=sys.stderr)
        return 1
    except ApiFailure as exc:
        print(f"error {exc.status} {exc.code}: {exc.message}", file=sys.stderr)
        return 1
    retried = int(answer["retried"])
    scope = ", ".join(f"{k}={v}" for k, v in body.items()) or "all"
    print(f"replayed {retried} dead deliver{'y' if retried == 1 else 'ies'} ({scope})")
    return 0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `webhooks replay` on the CLI's subparsers."""
    webhooks = sub.add_parser(
        "webhooks",
        help="replay dead webhook deliveries of the running service",
        description="Talks to the running service at SIDECAR_PUBLIC_URL (or "
        "http://SIDECAR_HOST:SIDECAR_PORT), signing with the first SIDECAR_API_SECRET.",
    )
    actions = webhooks.add_subparsers(dest="action", required=True)
    replay = actions.add_parser(
        "replay",
        help="put dead deliveries back in line (all of them, or those the filters select)",
        description="Replays every dead delivery that matches all the given filters (with "
        "none, every dead delivery), each with a fresh 24 h retry window.",
    )
    replay.add_argument("--session", metavar="ID", help="only this session_id")
    replay.add_argument("--workspace", metavar="ID", help="only this workspace_id")
    replay.add_argument("--event", metavar="NAME", help="only this event (message_received, ...)")
    replay.add_argument(
        "--since", metavar="WHEN", help="written at or after: Unix seconds or ISO 8601"
    )
    replay.add_argument("--until", metavar="WHEN", help="written before: Unix seconds or ISO 8601")
    webhooks.set_defaults(func=cmd_webhooks)
