"""The operations pages in a real Chromium (Debian's, through Playwright): sign in with a
link, replay a dead delivery from the Webhooks page and see it leave the table, watch a new
event arrive in the Events monitor, see the Nodes page say it is a single host and the
Charts draw, all without a reload. A sidecar without browsers of its own (sessions on
record); the test writes events through its own store, as another process would.

Screenshots go to storage/artifacts/dashboard/ (gitignored), beside the core pages' ones.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from service.app import create_app
from service.settings import Settings
from service.store import NewEvent, SessionRecord, SqlStore, open_store
from tests.sandbox.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.support.server import ROOT, free_port, serve_app

pytestmark = pytest.mark.browser

ARTIFACTS = ROOT / "storage" / "artifacts" / "dashboard"
T = TypeVar("T")


def on_store(settings: Settings, act: Callable[[SqlStore], Awaitable[T]]) -> T:
    """Run `act` on a store of the test's own, in a thread with its own loop (Playwright's
    sync API holds this thread's)."""
    result: list[T] = []

    async def run() -> None:
        store = open_store(settings.store_url, settings.db_prefix)
        await store.open()
        try:
            result.append(await act(store))
        finally:
            await store.close()

    thread = threading.Thread(target=lambda: asyncio.run(run()))
    thread.start()
    thread.join(30)
    return result[0]


async def seed(store: SqlStore) -> list[str]:
    """Two sessions' events: three dead (the receiver answered 502) and one pending."""
    for sid, workspace in (("support-mx", "acme"), ("sales-br", "globex")):
        await store.create_session(SessionRecord(session_id=sid, workspace_id=workspace))
        await store.update_session(sid, {"status": "connected"})
        await store.update_session(
            sid,
            {},
            [NewEvent("message_received", {"n": 1}), NewEvent("message_status_updated", {"n": 2})],
        )
    events = await store.list_events(limit=10)
    for event in events[:3]:
        changes = {"status": "dead", "last_status_code": 502, "last_error": "HTTP 502"}
        await store.finish_attempt(event.id, changes)
    return [e.id for e in events]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, str]]:
    from tests.conftest import base_env

    port = free_port()
    settings = Settings.from_mapping(
        base_env(
            tmp_path_factory.mktemp("dashops") / "storage",
            SIDECAR_PORT=str(port),
            SIDECAR_DASHBOARD_SECRET="browser-test-dashboard-ops-secret-0123456789",
            SIDECAR_DASHBOARD_SAMPLE_S="1",
        )
    )
    app = create_app(settings, with_browsers=False)
    with serve_app(app, port) as base:
        yield settings, app.state.dashboard.auth.link(label="ops@acme.example").url
        assert base.endswith(str(port))


@pytest.fixture(scope="module")
def page() -> Iterator[Page]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 860})
        tab = context.new_page()
        try:
            yield tab
        finally:
            context.close()
            browser.close()


def shoot(page: Page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_an_operator_replays_watches_events_and_reads_the_charts(
    served: tuple[Settings, str], page: Page
) -> None:
    settings, link = served
    ids = on_store(settings, seed)
    page.goto(link)
    page.wait_for_url(re.compile(r"/dashboard/sessions$"))

    # Webhooks: the dead ones with the receiver's answer; one replayed, and it leaves.
    page.get_by_role("link", name="Webhooks").click()
    rows = page.locator("tbody tr[data-key]")
    expect(rows).to_have_count(3)
    expect(rows.first.locator("td.error")).to_have_text("HTTP 502")
    expect(page.locator("[data-live]")).to_have_class(re.compile(r"\bon\b"))
    shoot(page, "webhooks")
    page.evaluate("window.__noReload = true")
    page.locator(f'tr[data-key="{ids[0]}"] button[data-action="replay"]').click()
    expect(page.locator(f'tr[data-key="{ids[0]}"]')).to_have_count(0)
    assert page.evaluate("window.__noReload === true")
    statuses = on_store(settings, lambda s: s.list_events(limit=10))
    assert {e.id: e.status for e in statuses}[ids[0]] == "pending"

    # Events: what was written, then a new one as it is written.
    page.get_by_role("link", name="Events").click()
    monitor = page.locator("tbody[data-monitor] tr")
    expect(monitor).to_have_count(len(ids))

    async def late(store: SqlStore) -> None:
        await store.update_session("sales-br", {}, [NewEvent("presence_updated", {"n": 3})])

    on_store(settings, late)
    expect(monitor.first).to_have_attribute("data-event", "presence_updated")
    expect(monitor).to_have_count(len(ids) + 1)
    shoot(page, "events")

    page.get_by_role("link", name="Nodes").click()
    expect(page.locator("[data-single]")).to_contain_text("single host")
    shoot(page, "nodes")

    page.get_by_role("link", name="Charts").click()
    expect(page.locator('[data-key="sessions"] polyline')).to_have_count(1)
    expect(page.locator('[data-key="messages"] svg')).to_be_visible()
    shoot(page, "charts")
