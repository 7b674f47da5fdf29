"""Fixtures for the sandbox tests: a real uvicorn server on 127.0.0.1 and real Chromium."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import BrowserContext, Page, Playwright, async_playwright

from sandbox.app import create_app
from sandbox.server import serve_in_thread

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--disable-gpu",
]
# Every event the tests look at, recorded in the page as {name, payload, copy, at}: `payload`
# is the object itself (a message model may change later, as wa-js's do), `copy` its JSON
# at the moment it was emitted.
RECORDED_EVENTS = [
    "conn.auth_code_change",
    "conn.qrcode_idle",
    "conn.require_auth",
    "conn.authenticated",
    "conn.main_ready",
    "conn.logout",
    "conn.online",
    "conn.stream_mode_changed",
    "conn.stream_info_changed",
    "chat.new_message",
    "chat.msg_ack_change",
]
STREAM_EVENTS = {"conn.stream_mode_changed", "conn.stream_info_changed"}
# The page assigns window.WPP from a <head> script; a setter trap installed before any
# page script attaches the recorder at that very moment, so no early event is missed. A WPP
# that an earlier init script put there is kept as it is (the page adopts its listeners).
RECORDER = """
(() => {
  const names = __NAMES__;
  window.__events = [];
  const record = (name) => (payload) => {
    const at = Date.now();
    const copy = payload === undefined ? null : JSON.parse(JSON.stringify(payload));
    window.__events.push({name, payload: payload === undefined ? null : payload, copy, at});
  };
  let current = window.WPP;
  Object.defineProperty(window, 'WPP', {
    configurable: true,
    get() { return current; },
    set(value) {
      current = value;
      if (value && typeof value.on === 'function') names.forEach((n) => value.on(n, record(n)));
    },
  });
})();
""".replace("__NAMES__", json.dumps(RECORDED_EVENTS))


@dataclass
class Sandbox:
    """A running sandbox server and a control-API client for it."""

    url: str
    client: httpx.AsyncClient

    async def control(self, method: str, path: str, body: Any = None) -> httpx.Response:
        """Call the control API (JSON in, JSON out)."""
        return await self.client.request(method, path, json=body)

    async def sent(self, phone: str) -> list[dict[str, Any]]:
        """What the phone's devices sent, oldest first."""
        response = await self.client.get("/control/sent", params={"phone": phone})
        assert response.status_code == 200, response.text
        messages: list[dict[str, Any]] = response.json()["messages"]
        return messages


class WaPage:
    """A sandbox page in Chromium with its recorded WPP events."""

    def __init__(self, page: Page) -> None:
        self.page = page

    async def js(self, expression: str, arg: Any = None) -> Any:
        """Evaluate in the page (a function expression receives `arg`)."""
        return await self.page.evaluate(expression, arg)

    async def events(self, name: str | None = None) -> list[dict[str, Any]]:
        """Recorded events, optionally of one name, oldest first."""
        found: list[dict[str, Any]] = await self.page.evaluate(
            "(name) => window.__events.filter((e) => !name || e.name === name)", name
        )
        return found

    async def names(self, *, stream: bool = False) -> list[str]:
        """The names of the recorded events, in order; the stream_* events only if asked."""
        return [e["name"] for e in await self.events() if stream or e["name"] not in STREAM_EVENTS]

    async def copies(self, name: str) -> list[Any]:
        """The JSON of each `name` event as it was when emitted."""
        return [e["copy"] for e in await self.events(name)]

    async def stream_log(self) -> list[str]:
        """The stream and login events in order, with the stream values:
        `['mode:QR', 'conn.main_ready', 'info:PAIRING', ...]`."""
        short = {"conn.stream_mode_changed": "mode", "conn.stream_info_changed": "info"}
        wanted = {*short, "conn.main_ready", "conn.authenticated", "conn.logout"}
        wanted |= {"conn.online", "conn.require_auth"}
        return [
            f"{short[e['name']]}:{e['payload']}" if e["name"] in short else e["name"]
            for e in await self.events()
            if e["name"] in wanted
        ]

    async def wait_event(self, name: str, count: int = 1, timeout: float = 5000) -> dict[str, Any]:
        """Wait until `name` was emitted `count` times; returns that occurrence."""
        await self.page.wait_for_function(
            "([name, count]) => window.__events.filter((e) => e.name === name).length >= count",
            arg=[name, count],
            timeout=timeout,
        )
        return (await self.events(name))[count - 1]

    async def wait_mode(self, mode: str, count: int = 1, timeout: float = 5000) -> None:
        """Wait until conn.stream_mode_changed has reported `mode` `count` times."""
        await self.page.wait_for_function(
            """([mode, count]) => window.__events.filter((e) =>
                 e.name === 'conn.stream_mode_changed' && e.payload === mode
               ).length >= count""",
            arg=[mode, count],
            timeout=timeout,
        )

    async def attempt(self, expression: str, arg: Any = None) -> dict[str, Any]:
        """Run an async call in the page; returns {ok, value}, or for a throw {ok: false,
        code (or null), name, message, wpp (a WPPError?), has_code} or {ok: false, thrown}
        when something that is not an Error was thrown."""
        outcome: dict[str, Any] = await self.page.evaluate(
            """async ([source, arg]) => {
                 try { return {ok: true, value: await (eval(source))(arg)}; }
                 catch (err) {
                   if (!(err instanceof Error)) return {ok: false, thrown: err};
                   return {ok: false, code: err.code || null, name: err.name,
                           message: String(err.message),
                           wpp: err instanceof WPP.util.WPPError,
                           has_code: Object.prototype.hasOwnProperty.call(err, 'code')};
                 }
               }""",
            [expression, arg],
        )
        return outcome


Launch = Callable[..., Awaitable[WaPage]]
Link = Callable[..., Awaitable[WaPage]]


@pytest.fixture
def start_sandbox() -> Iterator[Callable[..., str]]:
    """Start sandbox servers (`create_app` keyword arguments); all stop after the test."""
    with ExitStack() as stack:

        def start(**kwargs: Any) -> str:
            kwargs.setdefault("main_ready_delay", 0.1)
            return stack.enter_context(serve_in_thread(create_app(**kwargs)))

        yield start


@pytest.fixture
async def sandbox(start_sandbox: Callable[..., str]) -> AsyncIterator[Sandbox]:
    """A sandbox with a 20 s QR interval (no rotation during a test)."""
    url = start_sandbox()
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        yield Sandbox(url, client)


@pytest.fixture
async def playwright() -> AsyncIterator[Playwright]:
    """The Playwright driver."""
    async with async_playwright() as pw:
        yield pw


@pytest.fixture
async def launch(playwright: Playwright, tmp_path: Path) -> AsyncIterator[Launch]:
    """Open the sandbox page in a persistent Chromium profile (default: one per test)."""
    contexts: list[BrowserContext] = []

    async def open_page(
        url: str, profile: Path | None = None, init_scripts: list[str] | None = None
    ) -> WaPage:
        context = await playwright.chromium.launch_persistent_context(
            str(profile or tmp_path / "profile"),
            executable_path=CHROMIUM,
            args=CHROMIUM_ARGS,
            headless=True,
        )
        contexts.append(context)
        for script in init_scripts or []:
            await context.add_init_script(script)
        await context.add_init_script(RECORDER)
        page = context.pages[0] if context.pages else await context.new_page()
        await page.goto(url + "/")
        await page.wait_for_function("window.WPP && WPP.isReady", timeout=5000)
        return WaPage(page)

    yield open_page
    for context in contexts:
        # Contexts the test closed itself raise here; that is fine.
        with contextlib.suppress(Exception):
            await context.close()


@pytest.fixture
def link(sandbox: Sandbox, launch: Launch) -> Link:
    """Open a page, scan its QR as a phone, and wait for the stream mode MAIN."""

    async def linked(phone: str, profile: Path | None = None) -> WaPage:
        wa = await launch(sandbox.url, profile)
        code = await wa.js("WPP.conn.getAuthCode()")
        response = await sandbox.control(
            "POST", "/control/scan", {"qr": code["fullCode"], "phone": phone}
        )
        assert response.status_code == 200, response.text
        await wa.wait_mode("MAIN")
        return wa

    return linked
