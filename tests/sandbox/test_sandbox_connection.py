"""The page's connection events in real Chromium, in wa-js's order: stream mode and info,
conn.main_ready once per load, conn.authenticated only for a new link."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

if TYPE_CHECKING:
    from tests.sandbox.conftest import Launch, Link, Sandbox

pytestmark = pytest.mark.browser

PEER = "4915112345678"


async def test_a_scan_goes_qr_then_authenticated_then_main_with_one_main_ready(
    sandbox: Sandbox, launch: Launch
) -> None:
    wa = await launch(sandbox.url)
    code = await wa.js("WPP.conn.getAuthCode()")
    # The QR screen is a stream mode too: wa-js fires conn.main_ready there already.
    assert await wa.js("WPP.conn.getStreamData()") == {"mode": "QR", "info": "PAIRING"}
    assert await wa.js("WPP.conn.isMainReady()") is True
    assert await wa.js("WPP.conn.isMainLoaded()") is False
    assert await wa.js("WPP.isFullReady") is True
    # loader.onReady/onFullReady only subscribe, as in wa-js: too late, they never run. A
    # zero timer set afterwards fires after any they could have set.
    late = """async () => {
      const ran = [];
      WPP.loader.onReady(() => ran.push('ready'));
      WPP.loader.onFullReady(() => ran.push('full'));
      await new Promise((resolve) => setTimeout(resolve, 0));
      return ran;
    }"""
    assert await wa.js(late) == []

    scanned = await sandbox.control(
        "POST", "/control/scan", {"qr": code["fullCode"], "phone": "15550000101"}
    )
    assert scanned.status_code == 200, scanned.text
    await wa.wait_mode("MAIN")
    await wa.wait_event("conn.stream_info_changed", 3)

    assert await wa.stream_log() == [
        "mode:QR",
        "conn.main_ready",
        "info:PAIRING",
        "conn.require_auth",
        "conn.authenticated",
        "mode:SYNCING",
        "info:SYNCING",
        "mode:MAIN",
        "info:NORMAL",
    ]
    names = await wa.names()
    assert names[names.index("conn.authenticated") - 1] == "conn.auth_code_change"
    assert (await wa.events("conn.auth_code_change"))[-1]["payload"] is None
    assert await wa.js("WPP.conn.getStreamData()") == {"mode": "MAIN", "info": "NORMAL"}
    assert await wa.js("WPP.conn.isMainLoaded() && WPP.conn.isMainInit()") is True


async def test_a_restored_profile_syncs_to_main_without_authenticated(
    sandbox: Sandbox, launch: Launch, link: Link, tmp_path: Path
) -> None:
    profile = tmp_path / "p"
    wa = await link("15550000102", profile)
    await wa.page.context.close()

    # A bridge that attaches in WPP.loader.onReady hears the stream values announced at
    # readiness, as wa-js announces them at injection.
    on_ready = """
      window.__fromReady = [];
      document.addEventListener('DOMContentLoaded', () => {
        WPP.loader.onReady(() => {
          window.__fullAtReady = WPP.isFullReady;
          WPP.on('conn.stream_mode_changed', (mode) => window.__fromReady.push('mode:' + mode));
          WPP.on('conn.stream_info_changed', (info) => window.__fromReady.push('info:' + info));
        });
        // wa-js's loader is full ready after conn.main_ready: here, at MAIN.
        WPP.loader.onFullReady(() => { window.__fullReady = WPP.conn.getStreamData().mode; });
      });
    """
    restored = await launch(sandbox.url, profile, [on_ready])
    await restored.wait_mode("MAIN")
    await restored.wait_event("conn.stream_info_changed", 2)
    expected = ["mode:SYNCING", "info:OPENING", "mode:MAIN", "conn.main_ready", "info:NORMAL"]
    assert await restored.stream_log() == expected
    assert await restored.js("window.__fromReady") == [
        "mode:SYNCING",
        "info:OPENING",
        "mode:MAIN",
        "info:NORMAL",
    ]
    assert await restored.events("conn.authenticated") == []
    assert await restored.events("conn.require_auth") == []
    await restored.page.wait_for_function("window.__fullReady")
    assert await restored.js("[window.__fullAtReady, window.__fullReady]") == [False, "MAIN"]


async def test_a_logout_shows_a_qr_without_a_new_main_ready(sandbox: Sandbox, link: Link) -> None:
    wa = await link("15550000103")
    before = len(await wa.stream_log())
    assert await wa.js("WPP.conn.logout()") is True
    await wa.wait_mode("QR", 2)
    await wa.wait_event("conn.auth_code_change", 3)
    assert (await wa.stream_log())[before:] == [
        "conn.logout",
        "mode:QR",
        "info:PAIRING",
        "conn.require_auth",
    ]
    assert len(await wa.events("conn.main_ready")) == 1
    # Both are latches for the page load, as in wa-js.
    assert await wa.js("WPP.conn.isMainReady() && WPP.conn.isMainLoaded()") is True
    assert await wa.js("WPP.conn.isAuthenticated()") is False
    assert await wa.js("WPP.conn.getStreamData()") == {"mode": "QR", "info": "PAIRING"}


async def test_messages_arriving_before_main_wait_for_it(
    start_sandbox: Callable[..., str], launch: Launch
) -> None:
    # conn.main_ready already fired on the QR; what counts is the mode MAIN.
    url = start_sandbox(main_ready_delay=1.5)
    wa = await launch(url)
    code = await wa.js("WPP.conn.getAuthCode()")
    async with httpx.AsyncClient(base_url=url) as client:
        scanned = await client.post(
            "/control/scan", json={"qr": code["fullCode"], "phone": "15550000104"}
        )
        assert scanned.status_code == 200
        await wa.wait_event("conn.authenticated")
        inbound = await client.post(
            "/control/inbound", json={"to": "15550000104", "from": PEER, "text": "early"}
        )
        assert inbound.status_code == 200
    assert (await wa.js("WPP.conn.getStreamData()"))["mode"] == "SYNCING"
    await wa.wait_event("chat.new_message")
    events = [(e["name"], e["payload"]) for e in await wa.events()]
    main_at = events.index(("conn.stream_mode_changed", "MAIN"))
    message_at = [name for name, _ in events].index("chat.new_message")
    assert main_at < message_at
