"""The dashboard in a real Chromium (Debian's, through Playwright), against a real sidecar
process on the sandbox: sign in with a link, see the sessions, open one, watch its QR
rotate, ask for a pairing code, scan the QR through the sandbox's phone and see the session
turn connected, its messages arrive and the actions work, all without a reload. Then the
operations pages: a dead delivery replayed, a new event in the monitor, the nodes of a
single host, the charts with the session's browser memory, and a campaign paused from its
page.

Screenshots of each page go to storage/artifacts/dashboard/ (gitignored; the path is
printed); docs/images/dashboard-session.png in the README is one of them.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import httpx
import pytest
from playwright.sync_api import Page, expect, sync_playwright

from service.store import NewEvent, SqlStore
from tests.sandbox.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.support.sandbox import Phone, eventually, sandbox_process
from tests.support.server import ROOT
from tests.support.sidecar import Sidecar

pytestmark = pytest.mark.browser

ME = "5511999990001"
FRIEND = "5511988880002"
ARTIFACTS = ROOT / "storage" / "artifacts" / "dashboard"
# Long enough to read; short enough to see the QR change while the test watches.
QR_INTERVAL = 3.0
T = TypeVar("T")


@pytest.fixture(scope="module")
def phone() -> Iterator[Phone]:
    with sandbox_process(qr_interval=QR_INTERVAL, qr_max_rotations=100) as p:
        yield p


@pytest.fixture(scope="module")
def car(tmp_path_factory: pytest.TempPathFactory, phone: Phone) -> Iterator[Sidecar]:
    sidecar = Sidecar(
        tmp_path_factory.mktemp("dash") / "storage",
        WA_WEB_URL=phone.base + "/",
        SIDECAR_DASHBOARD_SECRET="browser-test-dashboard-secret-0123456789",
    )
    sidecar.start()
    try:
        # A few sessions that only exist on record, in two workspaces, to list and filter.
        for sid, workspace in (("support-mx", "acme"), ("sales-br", "globex")):
            body = {"workspace_id": workspace, "session_id": sid, "start": False}
            assert sidecar.api.post("/api/sessions", json=body).status_code == 201
        yield sidecar
    finally:
        sidecar.close()


@pytest.fixture(scope="module")
def page() -> Iterator[Page]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    print(f"dashboard screenshots: {ARTIFACTS}")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 860})
        tab = context.new_page()
        try:
            yield tab
        finally:
            context.close()
            browser.close()


def shoot(page: Page, name: str) -> Path:
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def link(car: Sidecar, **body: str) -> str:
    answer = car.api.post("/api/dashboard/links", json=body)
    assert answer.status_code == 201, answer.text
    url: str = answer.json()["url"]
    return url


def mark(page: Page) -> None:
    """Leave a mark in the document: it survives everything but a reload."""
    page.evaluate("window.__noReload = true")


def not_reloaded(page: Page) -> bool:
    return bool(page.evaluate("window.__noReload === true"))


def row(page: Page, sid: str):  # type: ignore[no-untyped-def]
    return page.locator(f'tbody tr[data-key="{sid}"]')


def scan_shown_qr(page: Page, phone: Phone) -> None:
    """Scan the QR the page shows; one that rotated away under the camera is scanned again
    once the page shows the next (as a person would)."""
    for _ in range(5):
        shown = page.locator("img.qr").get_attribute("data-qr")
        assert shown
        answer = phone.scan(shown, ME)
        if answer.status_code == 200:
            return
        assert answer.json()["error"]["code"] == "qr_expired", answer.text
        expect(page.locator("img.qr")).not_to_have_attribute("data-qr", shown)
    raise AssertionError("the QR rotated away five times in a row")


def test_an_operator_links_a_phone_from_the_dashboard(
    car: Sidecar, phone: Phone, page: Page
) -> None:
    # Signing in: the link's page posts itself and lands on the session list.
    page.goto(link(car, label="ops@acme.example"))
    page.wait_for_url(re.compile(r"/dashboard/sessions$"))
    expect(page.locator(".who")).to_have_text("ops@acme.example")
    expect(page.locator("[data-live]")).to_have_class(re.compile(r"\bon\b"))
    expect(row(page, "support-mx")).to_be_visible()
    expect(row(page, "sales-br")).to_be_visible()

    # A session created now appears, and its status moves, without a reload.
    mark(page)
    created = car.api.post("/api/sessions", json={"workspace_id": "acme", "session_id": "desk"})
    assert created.status_code == 201, created.text
    expect(row(page, "desk")).to_have_attribute("data-status", "qr_required", timeout=60_000)
    assert not_reloaded(page)
    shoot(page, "sessions-live")

    # The workspace filter.
    page.select_option('select[name="workspace_id"]', "globex")
    page.wait_for_url(re.compile(r"workspace_id=globex"))
    expect(row(page, "sales-br")).to_be_visible()
    expect(page.locator("tbody tr[data-key]")).to_have_count(1)

    # One session: its QR, redrawn as it rotates.
    page.goto(f"{car.base}/dashboard/sessions?workspace_id=acme")
    page.click('a[href="/dashboard/sessions/desk"]')
    page.wait_for_url(re.compile(r"/dashboard/sessions/desk$"))
    mark(page)
    qr = page.locator("img.qr")
    expect(qr).to_be_visible()
    first = qr.get_attribute("data-qr")
    assert first
    expect(qr).not_to_have_attribute("data-qr", first, timeout=int(QR_INTERVAL * 5000))
    # The image is the PNG of the QR it names, drawn by the service.
    page.wait_for_function(
        "() => { const img = document.querySelector('img.qr');"
        " return img && img.complete && img.naturalWidth > 100; }"
    )
    assert not_reloaded(page)

    shoot(page, "session-qr")

    # The phone scans the QR on the screen: the page turns connected by itself.
    scan_shown_qr(page, phone)
    summary = page.locator('[data-key="summary"]')
    expect(summary).to_have_attribute("data-status", "connected", timeout=60_000)
    expect(page.locator('[data-key="qr"]')).to_contain_text(ME)
    expect(summary).to_contain_text(ME)
    assert not_reloaded(page)

    # A text sent from the page, and one coming in, show up with their delivery states.
    page.fill('.send input[name="to"]', f"+{FRIEND}")
    page.fill('.send input[name="text"]', "Hello!")
    page.click(".send button")
    queued = page.locator(".send output[data-queued]")
    expect(queued).to_contain_text("queued as msg_")
    message_id = (queued.text_content() or "").rsplit(" ", 1)[-1]
    out = page.locator(f'tr[data-message="{message_id}"]')
    expect(out).to_contain_text(re.compile(r"sent|delivered|read"), timeout=30_000)
    assert [m["text"] for m in phone.sent(ME) if m["to"] == f"{FRIEND}@c.us"] == ["Hello!"]
    assert phone.inbound(to=ME, **{"from": FRIEND}, text="Hi, is my order shipped?").is_success
    expect(page.locator('[data-key="messages"]')).to_contain_text("is my order shipped")
    expect(page.locator('[data-key="provider"]')).to_contain_text("webjs")
    expect(page.locator('[data-key="memory"]')).to_contain_text("MB")
    assert not_reloaded(page)
    shoot(page, "session-connected")


def test_the_session_actions_and_the_pairing_code(car: Sidecar, phone: Phone, page: Page) -> None:
    page.goto(f"{car.base}/dashboard/sessions/desk")
    mark(page)
    summary = page.locator('[data-key="summary"]')
    expect(summary).to_have_attribute("data-status", "connected", timeout=60_000)
    page.click('.head form[action$="/stop"] button')
    expect(summary).to_have_attribute("data-status", "stopped", timeout=60_000)
    assert car.session("desk")["desired_state"] == "stopped"
    # The buttons follow: a stopped session offers Start (after the next fragment or load).
    page.goto(f"{car.base}/dashboard/sessions")
    mark(page)
    row(page, "desk").locator('form[action$="/start"] button').click()
    # Its profile kept the login: back to connected, with no new QR.
    expect(row(page, "desk")).to_have_attribute("data-status", "connected", timeout=60_000)
    assert not_reloaded(page)
    shoot(page, "sessions")
    # Logout asks first, then unlinks: the session wants a QR again.
    page.once("dialog", lambda dialog: dialog.accept())
    row(page, "desk").locator('form[action$="/logout"] button').click()
    expect(row(page, "desk")).to_have_attribute("data-status", "qr_required", timeout=60_000)
    eventually(lambda: car.session("desk")["phone_number"] is None, 30, "the number forgotten")
    assert not_reloaded(page)

    # Linking with a code instead: the form answers in place, and the phone enters it.
    page.goto(f"{car.base}/dashboard/sessions/desk")
    # The fresh browser is up once it shows a QR.
    expect(page.locator("img.qr")).to_be_visible(timeout=60_000)
    page.fill('.pairing input[name="phone"]', "+55 11 99999-0003")
    page.click(".pairing button")
    code = page.locator("[data-code]")
    page.wait_for_function(
        "() => document.querySelector('[data-code]')?.textContent"
        " || !document.getElementById('flash').hidden"
    )
    assert page.locator("#flash").is_hidden(), page.locator("#flash").text_content()
    expect(code).to_have_text(re.compile(r"^[A-Z0-9]{4}-[A-Z0-9]{4}$"), timeout=30_000)
    shoot(page, "session-pairing")
    assert phone.pairing(code.text_content() or "").status_code == 200
    summary = page.locator('[data-key="summary"]')
    expect(summary).to_have_attribute("data-status", "connected", timeout=60_000)
    expect(summary).to_contain_text("5511999990003")


# -- the operations pages: webhooks, events, nodes, charts ---------------------------------


def on_store(car: Sidecar, act: Callable[[SqlStore], Awaitable[T]]) -> T:
    """Run `act` on a store of the test's own on the sidecar's database, as another process
    would, in a thread with its own loop (Playwright's sync API holds this one's)."""
    result: list[T] = []

    async def run() -> None:
        store = SqlStore(str(car.storage / "sidecar.sqlite3"))
        await store.open()
        try:
            result.append(await act(store))
        finally:
            await store.close()

    thread = threading.Thread(target=lambda: asyncio.run(run()))
    thread.start()
    thread.join(30)
    return result[0]


async def kill_three(store: SqlStore) -> list[str]:
    """Three deliveries made dead, as if the receiver had answered 502 to the last try."""
    events = (await store.list_events(status="pending", limit=3))[:3]
    for event in events:
        changes = {"status": "dead", "last_status_code": 502, "last_error": "HTTP 502"}
        await store.finish_attempt(event.id, changes)
    return [e.id for e in events]


def test_the_operations_pages(car: Sidecar, page: Page) -> None:
    # Webhooks: the dead deliveries with the receiver's answer; one replayed from the page
    # leaves the table without a reload.
    dead = on_store(car, kill_three)
    page.goto(f"{car.base}/dashboard/sessions")
    page.get_by_role("link", name="Webhooks").click()
    rows = page.locator("tbody tr[data-key]")
    expect(rows).to_have_count(3)
    expect(rows.first.locator("td.error")).to_have_text("HTTP 502")
    expect(page.locator("[data-live]")).to_have_class(re.compile(r"\bon\b"))
    shoot(page, "webhooks")
    mark(page)
    page.locator(f'tr[data-key="{dead[0]}"] button[data-action="replay"]').click()
    expect(page.locator(f'tr[data-key="{dead[0]}"]')).to_have_count(0)
    expect(rows).to_have_count(2)
    assert not_reloaded(page)

    # Events: the last ones written, then a new one as it is written (newest first).
    page.get_by_role("link", name="Events").click()
    monitor = page.locator("tbody[data-monitor] tr")
    expect(monitor.first).to_be_visible()

    async def late(store: SqlStore) -> None:
        await store.update_session("sales-br", {}, [NewEvent("presence_updated", {"n": 1})])

    on_store(car, late)
    expect(monitor.first).to_have_attribute("data-event", "presence_updated")
    expect(monitor.first).to_contain_text("sales-br")
    shoot(page, "events")

    page.get_by_role("link", name="Nodes").click()
    expect(page.locator("[data-single]")).to_contain_text("single host")
    shoot(page, "nodes")

    # Charts: the sampled history, and the memory of the session's real browser (measured
    # every 30 s; the chart follows the next measurement).
    page.get_by_role("link", name="Charts").click()
    expect(page.locator('[data-key="sessions"] polyline').first).to_be_visible()
    expect(page.locator('[data-key="memory"] text').first).to_have_text("desk", timeout=45_000)
    shoot(page, "charts")

    # Campaigns: one on a session that only exists on record, its progress, and pause from
    # its page followed live.
    body = {
        "name": "December promo",
        "message": {"type": "text", "text": "Hi {{name}}"},
        "recipients": [
            {"to": f"55119770{i:05d}", "variables": {"name": f"n{i}"}} for i in range(120)
        ],
        "rate": {"per_minute": 30, "jitter": 0},
        # Due well ahead (a start_at may be up to a year away): nothing sends meanwhile.
        "start_at": (datetime.now(UTC) + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    answer = car.api.post("/api/sessions/sales-br/campaigns", json=body)
    assert answer.status_code == 201, answer.text
    campaign = answer.json()["id"]
    page.get_by_role("link", name="Campaigns").click()
    expect(row(page, campaign)).to_contain_text("0/120")
    shoot(page, "campaigns")
    row(page, campaign).get_by_role("link", name="December promo").click()
    mark(page)
    summary = page.locator('[data-key="summary"]')
    expect(summary).to_have_attribute("data-status", "scheduled")
    expect(page.locator("tbody tr[data-key]")).to_have_count(50)
    summary.locator('button[data-action="pause"]').click()
    expect(summary).to_have_attribute("data-status", "paused")
    expect(summary.locator("[data-reason]")).to_have_text("requested")
    assert not_reloaded(page)
    shoot(page, "campaign")


def test_open_streams_do_not_hold_up_a_stop(car: Sidecar) -> None:
    """SIGTERM ends the live streams at once; uvicorn would otherwise wait for them until
    its graceful-shutdown timeout and cancel them (a stop that hangs for supervisord)."""
    with httpx.Client(base_url=car.base, timeout=60) as browser:
        token = link(car, label="last").rsplit("/", 1)[1]
        assert browser.post("/dashboard/login", data={"token": token}).status_code == 303
        with browser.stream("GET", "/dashboard/stream/sessions") as events:
            lines = events.iter_lines()
            assert next(lines) == "retry: 2000"
            assert car.terminate() == 0
            rest = list(lines)  # the stream ends: the service closed it
    assert all("event:" in x or "data:" in x or not x for x in rest)
    assert "graceful shutdown exceeded" not in car.log.read_text()
