"""Everything that touches Chromium: launch, flags, process tree, profile locks, page bridge.

No other package imports Playwright, so the driver stays replaceable.
"""

from service.browser.bridge import BridgeError, BridgeTimeout, PageBridge
from service.browser.launcher import BrowserProxy, BrowserSession, ChromiumLauncher, LaunchError

__all__ = [
    "BridgeError",
    "BridgeTimeout",
    "BrowserProxy",
    "BrowserSession",
    "ChromiumLauncher",
    "LaunchError",
    "PageBridge",
]
