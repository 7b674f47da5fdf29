"""`python -m sandbox --port P [--state FILE]`: serve the WhatsApp Web stand-in and its
control API."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from sandbox.app import create_app
from sandbox.server import make_server
from sandbox.state import StateError


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and serve until interrupted."""
    parser = argparse.ArgumentParser(
        prog="python -m sandbox", description="A local stand-in for web.whatsapp.com."
    )
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=3100, help="port (default 3100)")
    parser.add_argument(
        "--qr-interval", type=float, default=20.0, help="seconds between QR refs (default 20)"
    )
    parser.add_argument(
        "--qr-max-rotations",
        type=int,
        default=5,
        help="QR refs shown before the QR goes idle (default 5)",
    )
    parser.add_argument(
        "--main-ready-delay",
        type=float,
        default=0.3,
        help="seconds from login to conn.main_ready (default 0.3)",
    )
    parser.add_argument(
        "--state",
        type=Path,
        metavar="FILE",
        help="keep linked devices in this JSON file across restarts (default: in memory only)",
    )
    parser.add_argument("--log-level", default="info", help="uvicorn log level (default info)")
    args = parser.parse_args(argv)
    try:
        app = create_app(
            args.qr_interval, args.qr_max_rotations, args.main_ready_delay, state=args.state
        )
    except StateError as exc:
        sys.exit(f"python -m sandbox: {exc}")
    except ValueError as exc:
        parser.error(str(exc))
    # uvicorn shuts down gracefully on SIGTERM/SIGINT and then re-raises the signal to the
    # handler that was there before; without this one the process dies of that signal, and
    # supervisord reports every stop as "terminated by SIGTERM".
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _exit_cleanly)
    make_server(app, args.host, args.port, args.log_level).run()


def _exit_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(0)


if __name__ == "__main__":
    main()
