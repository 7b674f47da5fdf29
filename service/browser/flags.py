"""Chromium command-line flags, all in one place.

Two goals: no traffic to Google's services (the network here is closed and real hosts should
not see it either), and as little memory per session as a working WhatsApp Web page allows.
"""

from __future__ import annotations

import os

# Keep Chromium from calling home: each of these opens connections at start otherwise.
QUIET = [
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-default-apps",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--metrics-recording-only",
    "--no-pings",
    "--disable-breakpad",
]

# Fewer processes and smaller ones: no GPU process work, no extensions, one renderer per site,
# no spare renderer kept warm, audio muted, small caches.
LEAN = [
    "--disable-gpu",
    "--disable-software-rasterizer",
    "--disable-dev-shm-usage",
    "--disable-extensions",
    "--mute-audio",
    "--process-per-site",
    "--renderer-process-limit=2",
    "--disable-features=Translate,MediaRouter,OptimizationHints,BackForwardCache,"
    "AutofillServerCommunication,CertificateTransparencyComponentUpdater,"
    "InterestFeedContentSuggestions,SpareRendererForSitePerProcess,DialMediaRouteProvider",
    "--disk-cache-size=33554432",
    "--media-cache-size=1",
    "--js-flags=--max-old-space-size=512",
]


def chromium_args() -> list[str]:
    """The flags every session's Chromium gets."""
    args = [*QUIET, *LEAN]
    # As root Chromium refuses to start with its sandbox; elsewhere keep the sandbox on.
    if os.geteuid() == 0:
        args.append("--no-sandbox")
    return args
