"""Everything that touches Chromium: launch, flags, process tree, profile locks, page bridge.

No other package imports Playwright, so the driver stays replaceable.
"""

from service.browser.bridge import BridgeError, PageBridge
from service.browser.launcher import BrowserSession, ChromiumLauncher, LaunchError

__all__ = ["BridgeError", "BrowserSession", "ChromiumLauncher", "LaunchError", "PageBridge"]
