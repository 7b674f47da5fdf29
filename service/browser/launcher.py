"""Launching Debian's Chromium through Playwright, one persistent profile per session."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import subprocess
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playwright.async_api import BrowserContext, Page, Playwright, ProxySettings, async_playwright
from playwright.async_api import Error as PlaywrightError

from service.browser.flags import chromium_args
from service.browser.process import (
    browser_pid,
    kill_processes,
    leftovers,
    profile_processes,
    tree_pss,
)
from service.browser.profile_lock import clear_stale_locks

log = logging.getLogger("service.browser")

Emit = Callable[[str], Awaitable[None]]


class LaunchError(Exception):
    """Chromium could not be started or the page could not be opened."""


@dataclass(frozen=True)
class BrowserProxy:
    """The proxy a browser sends everything through: `server` is `scheme://host:port`."""

    server: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    def settings(self) -> ProxySettings:
        """Playwright's form. It sends loopback through the proxy too (its Chromium
        launcher adds `<-loopback>` to the bypass list), so nothing skips the proxy."""
        proxy = ProxySettings(server=self.server)
        if self.username is not None:
            proxy["username"] = self.username
            proxy["password"] = self.password or ""
        return proxy


# Chromium puts its singleton socket at $TMPDIR/.org.chromium.Chromium.XXXXXX/SingletonSocket,
# and a Unix socket path holds at most 107 bytes: under a longer TMPDIR it cannot start, and
# says only "Target page, context or browser has been closed".
_SOCKET_PATH_MAX = 107
_SOCKET_SUFFIX = len("/.org.chromium.Chromium.XXXXXX/SingletonSocket")


def chromium_env(
    environ: dict[str, str] | None = None,
) -> dict[str, str | float | bool] | None:
    """The environment Chromium starts with: ours (None), unless TMPDIR is too long for its
    singleton socket; then the same with TMPDIR at the system's /tmp."""
    env = dict(os.environ if environ is None else environ)
    tmpdir = env.get("TMPDIR", "")
    if len(tmpdir.encode()) + _SOCKET_SUFFIX <= _SOCKET_PATH_MAX:
        return None
    log.warning("TMPDIR is too long for Chromium's socket: its browsers use /tmp instead")
    # Chromium makes its own private (0700, random name) directory there.
    fixed: dict[str, str | float | bool] = {**env, "TMPDIR": "/tmp"}  # noqa: S108
    return fixed


def _user_agent(chromium_path: str) -> str:
    """A desktop Chrome user agent for this Chromium's version (headless says 'Headless')."""
    version = "130.0.0.0"
    try:
        out = subprocess.run(
            [chromium_path, "--version"], capture_output=True, text=True, timeout=30
        ).stdout
        match = re.search(r"(\d+\.\d+\.\d+\.\d+)", out)
        if match:
            version = match.group(1)
    except (OSError, subprocess.SubprocessError):
        pass
    return (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        f"Chrome/{version} Safari/537.36"
    )


class BrowserSession:
    """One running Chromium with its persistent context and its single page."""

    def __init__(self, context: BrowserContext, page: Page, profile: Path) -> None:
        self.context = context
        self.page = page
        self.profile = profile
        self.pid = browser_pid(profile)
        self.closed = asyncio.Event()
        self.close_reason: str | None = None
        self._closing = False
        context.on("close", lambda _ctx: self._gone("browser exited"))
        page.on("crash", lambda _page: self._gone("page crashed"))
        page.on("close", lambda _page: self._gone("page closed"))

    def _gone(self, reason: str) -> None:
        if not self.closed.is_set():
            self.close_reason = "closed" if self._closing else reason
            self.closed.set()

    async def goto(self, url: str, timeout: float = 60.0) -> None:
        try:
            await self.page.goto(url, wait_until="domcontentloaded", timeout=timeout * 1000)
        except PlaywrightError as exc:
            raise LaunchError(f"could not open {url}: {exc.message.splitlines()[0]}") from None

    async def evaluate(self, expression: str, arg: Any = None) -> Any:
        return await self.page.evaluate(expression, arg)

    def memory_bytes(self) -> int:
        """PSS of the whole Chromium process tree of this session."""
        return tree_pss(self.pid) if self.pid else 0

    async def close(self, timeout: float = 10.0) -> None:
        """Close cleanly so the profile stays consistent; kill whatever is left after that."""
        self._closing = True
        with contextlib.suppress(PlaywrightError, asyncio.TimeoutError):
            await asyncio.wait_for(self.context.close(), timeout)
        left = leftovers(self.profile, self.pid)
        if left:
            log.warning("killing %d leftover Chromium processes", len(left))
            await asyncio.to_thread(kill_processes, left)
        self._gone("closed")


class ChromiumLauncher:
    """Owns the Playwright driver and launches one persistent context per profile."""

    def __init__(self, chromium_path: str) -> None:
        self.chromium_path = chromium_path
        self._playwright: Playwright | None = None
        self._user_agent = ""
        self._env: dict[str, str | float | bool] | None = None

    async def start(self) -> None:
        self._env = chromium_env()
        self._user_agent = await asyncio.to_thread(_user_agent, self.chromium_path)
        self._playwright = await async_playwright().start()

    def ready(self) -> bool:
        return self._playwright is not None and os.access(self.chromium_path, os.X_OK)

    async def stop(self) -> None:
        if self._playwright is not None:
            with contextlib.suppress(Exception):
                await self._playwright.stop()
            self._playwright = None

    async def launch(
        self,
        profile: Path,
        *,
        init_script: str,
        binding: str,
        emit: Emit,
        proxy: BrowserProxy | None = None,
    ) -> BrowserSession:
        """Start Chromium on `profile` with `init_script` and `window[binding](json)` wired,
        its traffic through `proxy` when given."""
        if self._playwright is None:
            raise LaunchError("the browser driver is not started")
        profile.mkdir(mode=0o700, parents=True, exist_ok=True)
        # A Chromium left over from a previous run of ours (kill -9 of the service) still
        # holds the profile: end it, then the lock it leaves is stale.
        leftovers = profile_processes(profile)
        if leftovers:
            log.warning("ending %d orphaned Chromium processes on a profile", len(leftovers))
            # Gracefully first: a fresh login may not be on disk yet.
            await asyncio.to_thread(kill_processes, leftovers, 5.0)
        clear_stale_locks(profile)
        try:
            context = await self._playwright.chromium.launch_persistent_context(
                str(profile.resolve()),
                executable_path=self.chromium_path,
                headless=True,
                args=chromium_args(),
                user_agent=self._user_agent,
                viewport={"width": 1024, "height": 768},
                bypass_csp=True,
                timeout=60_000,
                proxy=proxy.settings() if proxy is not None else None,
                env=self._env,
            )
        except PlaywrightError as exc:
            raise LaunchError(f"Chromium did not start: {exc.message.splitlines()[0]}") from None
        try:
            await context.add_init_script(init_script)
            await context.expose_function(binding, emit)
            page = context.pages[0] if context.pages else await context.new_page()
        except PlaywrightError as exc:
            with contextlib.suppress(PlaywrightError):
                await context.close()
            raise LaunchError(f"Chromium page setup failed: {exc.message}") from None
        return BrowserSession(context, page, profile)
