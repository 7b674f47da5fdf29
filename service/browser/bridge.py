"""The Python half of the page bridge: typed calls into the page, events out of it."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from playwright.async_api import Error as PlaywrightError

from service.browser.launcher import BrowserSession, ChromiumLauncher

log = logging.getLogger("service.browser")

BINDING = "__waSidecarEmit"


@dataclass(frozen=True)
class BridgeEvent:
    """One event from the page: `ready`, `auth_code`, `qr_idle`, `authenticated`,
    `main_ready`, `logout`, `online`, `message`, `ack` or `bridge_error`."""

    type: str
    payload: dict[str, Any] | None


class BridgeError(Exception):
    """A call into the page failed.

    `ambiguous` is True when nobody can tell whether the call took effect in the page: it
    timed out, or the page reloaded or closed under it. False means the page itself
    rejected the call (a WPP error), so it did not happen.
    """

    def __init__(self, message: str, *, ambiguous: bool = False) -> None:
        super().__init__(message)
        self.ambiguous = ambiguous
        # `[device_offline] ...`: the code of the WPPError the page threw, when it had one.
        match = re.match(r"\[([a-z0-9_]+)\]", message)
        self.code = match.group(1) if match else None


# Playwright's words for "the page went away under the call".
_PAGE_GONE = (
    "Execution context was destroyed",
    "Target closed",
    "has been closed",
    "Target page, context or browser",
)


@cache
def bridge_script() -> str:
    return resources.files("service.browser").joinpath("bridge.js").read_text()


@cache
def _read(path: str) -> str:
    return Path(path).read_text()


OnEvent = Callable[[BridgeEvent], Awaitable[None]]


class PageBridge:
    """A session's page: opened on WhatsApp Web with the bridge, events to `on_event`."""

    def __init__(self, browser: BrowserSession) -> None:
        self.browser = browser
        self._background: set[asyncio.Task[None]] = set()

    @classmethod
    async def open(
        cls,
        launcher: ChromiumLauncher,
        profile: Path,
        url: str,
        *,
        wa_js_path: str | None,
        on_event: OnEvent,
    ) -> PageBridge:
        """Launch Chromium on `profile`, install the bridge and navigate to `url`."""
        holder: dict[str, PageBridge] = {}

        async def emit(raw: str) -> None:
            try:
                data = json.loads(raw)
                event = BridgeEvent(str(data["type"]), data.get("payload"))
            except (ValueError, KeyError, TypeError):
                log.warning("dropping a malformed bridge message")
                return
            if event.type == "need_wa_js":
                # Not awaited here: the page is waiting on this very binding call.
                bridge = holder["bridge"]
                task = asyncio.create_task(bridge._inject_wa_js(wa_js_path))
                bridge._background.add(task)
                task.add_done_callback(bridge._background.discard)
                return
            await on_event(event)

        browser = await launcher.launch(
            profile, init_script=bridge_script(), binding=BINDING, emit=emit
        )
        bridge = holder["bridge"] = cls(browser)
        try:
            await browser.goto(url)
        except BaseException:
            await browser.close()
            raise
        return bridge

    async def _inject_wa_js(self, wa_js_path: str | None) -> None:
        if not wa_js_path or not Path(wa_js_path).is_file():
            log.error("the page has no WPP and WA_JS_PATH %r is not a file", wa_js_path)
            return
        try:
            source = await asyncio.to_thread(_read, wa_js_path)
            await self.browser.evaluate(source)
            await self.browser.evaluate("window.__waSidecar.boot()")
        except PlaywrightError as exc:
            log.error("injecting wa-js failed: %s", exc.message.splitlines()[0])

    async def call(self, method: str, *args: Any, timeout: float = 60.0) -> Any:
        """Call `window.__waSidecar[method](...args)` in the page and return its JSON value."""
        try:
            return await asyncio.wait_for(
                self.browser.evaluate(
                    "([method, args]) => window.__waSidecar[method](...args)", [method, list(args)]
                ),
                timeout,
            )
        except PlaywrightError as exc:
            message = exc.message.splitlines()[0] if exc.message else "page call failed"
            gone = any(marker in message for marker in _PAGE_GONE)
            raise BridgeError(message.removeprefix("Error: "), ambiguous=gone) from None
        except TimeoutError:
            # The page's promise may still complete after we stopped waiting.
            raise BridgeError(
                f"{method} did not answer within {timeout:.0f} s", ambiguous=True
            ) from None

    async def refresh_qr(self) -> None:
        await self.call("refreshQR")

    async def pairing_code(self, phone: str) -> str:
        return str(await self.call("pairingCode", phone))

    async def logout(self) -> None:
        await self.call("logout")

    async def send_text(self, to: str, text: str, options: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = await self.call("sendText", to, text, options)
        return result

    async def send_file(self, to: str, data_url: str, options: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = await self.call("sendFile", to, data_url, options)
        return result

    async def send_location(self, to: str, options: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = await self.call("sendLocation", to, options)
        return result

    async def download_media(self, message_id: str) -> str:
        """Base64 of an inbound message's media."""
        return str(await self.call("downloadMedia", message_id))

    async def close(self) -> None:
        await self.browser.close()
