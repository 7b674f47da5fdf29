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

# Chromium honours only the LAST --disable-features switch, and Playwright passes its own list
# first: so ours must repeat Playwright's (keeping Google preconnects, AI-mode checks, network
# time queries off) and add what we want gone. One list, one switch.
DISABLED_FEATURES = [
    # Playwright's own list (its chromiumSwitches), kept in force.
    "AvoidUnnecessaryBeforeUnloadCheckSync",
    "DestroyProfileOnBrowserClose",
    "HttpsUpgrades",
    "HttpsFirstBalancedModeAutoEnable",
    "LensOverlay",
    "MediaRouter",
    "PaintHolding",
    "ThirdPartyStoragePartitioning",
    "AvoidCorsURLLoaderRestartOnRedirect",
    "OptimizationHints",
    "NetworkTimeServiceQuerying",
    "AimEnabled",
    "PreconnectToSearch",
    # Ours: no browser UI renderer nobody sees (headless Chromium still preloads the
    # omnibox popup WebUI, a whole renderer per session), nothing that phones home.
    "WebUIOmniboxPopup",
    "WebUIOmniboxAimPopup",
    "PreloadTopChromeWebUI",
    "Translate",
    "BackForwardCache",
    "AutofillServerCommunication",
    "CertificateTransparencyComponentUpdater",
    "InterestFeedContentSuggestions",
    "SpareRendererForSitePerProcess",
    "DialMediaRouteProvider",
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
    "--disable-features=" + ",".join(DISABLED_FEATURES),
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
