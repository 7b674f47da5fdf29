"""The Python half of the page bridge: typed calls into the page, events out of it."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from playwright.async_api import Error as PlaywrightError

from service.browser.launcher import BrowserProxy, BrowserSession, ChromiumLauncher

log = logging.getLogger("service.browser")

BINDING = "__waSidecarEmit"


@dataclass(frozen=True)
class BridgeEvent:
    """One event from the page: `ready`, `state`, `auth_code`, `qr_idle`, `authenticated`,
    `logout`, `message`, `ack`, `send_result`, `reaction`, `edited`, `revoked` or
    `bridge_error`."""

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


class BridgeTimeout(BridgeError):
    """The page did not answer in time (the call may still complete there)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, ambiguous=True)


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


@dataclass(frozen=True)
class WaJsConfig:
    """`window.WPPConfig`, read once when the wa-js bundle is evaluated.

    wa-js phones home by default: a Google Analytics tracker, and link previews fetched
    through third-party servers. Analytics is always off here; link previews go only through
    servers the operator names (none: no previews).
    """

    device_name: str = "wa-sidecar"
    link_preview_servers: tuple[str, ...] = ()

    def as_js(self) -> dict[str, Any]:
        return {
            "deviceName": self.device_name,
            "disableGoogleAnalytics": True,
            "googleAnalyticsId": None,
            "linkPreviewApiServers": list(self.link_preview_servers),
        }


@cache
def init_script(wa_js_path: str | None, config: WaJsConfig) -> str:
    """What runs in the top frame before any page script: WPPConfig, the pinned wa-js
    bundle, then the bridge. The bundle waits for WhatsApp's own loader by itself."""
    parts = []
    if wa_js_path:
        bundle = _read(wa_js_path)
        # Evaluated once per document, top frame only: nothing in the bundle guards a second
        # evaluation, and frames have no WhatsApp to hook.
        parts.append(
            "if (window.top === window && !window.WPP) {\n"
            f"window.WPPConfig = {json.dumps(config.as_js())};\n"
            "try {\n"
            f"(function () {{\n{bundle}\n}}).call(window);\n"
            # A bundle that throws must not take the bridge down with it: the load
            # deadline reports this.
            "} catch (e) { window.__waSidecarLoadError = String(e && e.stack || e); }\n"
            "}\n"
        )
    parts.append(bridge_script())
    return "\n;\n".join(parts)


OnEvent = Callable[[BridgeEvent], Awaitable[None]]


class PageBridge:
    """A session's page: opened on WhatsApp Web with the bridge, events to `on_event`."""

    def __init__(self, browser: BrowserSession) -> None:
        self.browser = browser

    @classmethod
    async def open(
        cls,
        launcher: ChromiumLauncher,
        profile: Path,
        url: str,
        *,
        wa_js_path: str | None,
        config: WaJsConfig,
        on_event: OnEvent,
        proxy: BrowserProxy | None = None,
    ) -> PageBridge:
        """Launch Chromium on `profile` (through `proxy` when given), install wa-js and the
        bridge, navigate to `url`."""

        async def emit(raw: str) -> None:
            try:
                data = json.loads(raw)
                event = BridgeEvent(str(data["type"]), data.get("payload"))
            except (ValueError, KeyError, TypeError):
                log.warning("dropping a malformed bridge message")
                return
            await on_event(event)

        script = await asyncio.to_thread(init_script, wa_js_path, config)
        browser = await launcher.launch(
            profile, init_script=script, binding=BINDING, emit=emit, proxy=proxy
        )
        bridge = cls(browser)
        try:
            await browser.goto(url)
        except BaseException:
            await browser.close()
            raise
        return bridge

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
            raise BridgeTimeout(f"{method} did not answer within {timeout:.0f} s") from None

    async def probe(self) -> dict[str, Any]:
        """`{wpp, injected, ready}`: how far wa-js got in the page."""
        result: dict[str, Any] = await self.call("probe", timeout=10.0)
        return result

    async def refresh_qr(self) -> None:
        await self.call("refreshQR")

    async def pairing_code(self, phone: str) -> str:
        return str(await self.call("pairingCode", phone))

    async def logout(self, timeout: float = 60.0) -> None:
        """Log the page out: WhatsApp unlinks the device from the phone."""
        await self.call("logout", timeout=timeout)

    async def send(self, method: str, *args: Any, handoff: float) -> dict[str, Any]:
        """Hand a message to wa-js (`sendText`, `sendFile`, `sendLocation` or `sendPoll`).

        The page answers `{ok, id, ref, ack, result, pending}` or `{ok: false, code,
        message, handed}` within about `handoff` seconds; a send still pending then is
        settled later by a `send_result` event.
        """
        options = dict(args[-1]) | {"handoffMs": int(handoff * 1000)}
        result: dict[str, Any] = await self.call(
            method, *args[:-1], options, timeout=handoff + 30.0
        )
        return result

    async def op(self, name: str, args: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Run a page operation of the bridge's table: `{ok: true, value}` or `{ok: false,
        code, message}` (code: wa-js's, or null)."""
        result: dict[str, Any] = await self.call("op", name, args, timeout=timeout)
        return result

    async def download_media(self, message_id: str, max_bytes: int | None = None) -> dict[str, Any]:
        """An inbound message's media: `{data}` (base64), or `{tooLarge: size}` when it is
        larger than `max_bytes`."""
        result: dict[str, Any] = await self.call("downloadMedia", message_id, max_bytes)
        return result

    async def close(self) -> None:
        await self.browser.close()
