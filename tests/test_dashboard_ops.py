"""The dashboard's operations pages over HTTP with a signed-in cookie: webhooks (the
receiver's answer, filters, replay of one and of all that match, CSRF), the event monitor's
stream, nodes (a single host; an api process over MariaDB with a worker's heartbeat) and the
charts. A live service without browsers; the test writes events through a store of its own
on the same database, as another process would."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from service.app import create_app
from service.dashboard.auth import COOKIE
from service.settings import Settings
from service.store import NewEvent, NodeRecord, SessionRecord, SqlStore, open_store
from tests.conftest import API_SECRET
from tests.support.cluster import INTERNAL_SECRET
from tests.support.sandbox import eventually
from tests.support.server import serve_app
from tests.support.signing import SidecarAuth
from tests.test_dashboard import csrf_of, refused, sign_in

DASHBOARD_SECRET = "dashboard-secret-" + "d" * 32


@dataclass
class Ops:
    """A live service, a browser signed in to its dashboard, and a store of the test's own."""

    app: Starlette
    web: httpx.Client
    csrf: str
    store: SqlStore

    async def emit(self, session_id: str, workspace_id: str, events: list[str]) -> None:
        if await self.store.get_session(session_id) is None:
            await self.store.create_session(
                SessionRecord(session_id=session_id, workspace_id=workspace_id)
            )
        for name in events:
            await self.store.update_session(session_id, {}, [NewEvent(name, {"on": session_id})])

    async def kill(self, code: int = 500) -> list[str]:
        """Every outbox row made dead with the receiver's answer; their ids, oldest first."""
        events = await self.store.list_events(limit=1000)
        for event in events:
            await self.store.finish_attempt(
                event.id,
                {"status": "dead", "last_status_code": code, "last_error": f"HTTP {code}"},
            )
        return [e.id for e in events]

    async def statuses(self) -> dict[str, str]:
        return {e.id: e.status for e in await self.store.list_events(limit=1000)}


def signed_in(base: str) -> tuple[httpx.Client, str]:
    """A browser signed in through a link from the signed API (the core's test helpers),
    and the CSRF token its pages carry."""
    browser = httpx.Client(base_url=base, timeout=30)
    with httpx.Client(base_url=base, auth=SidecarAuth(API_SECRET), timeout=30) as api:
        sign_in(browser, api, label="ops-test")
    return browser, csrf_of(browser)


@pytest.fixture
async def ops(
    make_settings: Callable[..., Settings], database: Callable[[str], dict[str, str]]
) -> AsyncIterator[Ops]:
    settings = make_settings(
        SIDECAR_DASHBOARD_SECRET=DASHBOARD_SECRET,
        SIDECAR_DASHBOARD_SAMPLE_S="1",
        **database("dashboard_ops"),
    )
    app = create_app(settings, with_browsers=False)
    with serve_app(app) as base:
        store = open_store(settings.store_url, settings.db_prefix)
        await store.open()
        web, csrf = signed_in(base)
        try:
            yield Ops(app, web, csrf, store)
        finally:
            web.close()
            await store.close()


def delivery_ids(page: httpx.Response) -> list[str]:
    return re.findall(r'<tr data-key="(evt_[0-9a-f]+)"', page.text)


async def test_the_webhooks_page_lists_deliveries_with_the_receivers_answer_by_filter(
    ops: Ops,
) -> None:
    await ops.emit("s1", "w1", ["message_received", "qr_code_generated"])
    await ops.emit("s2", "w2", ["message_received"])
    dead = await ops.kill(503)
    await ops.emit("s1", "w1", ["session_status_changed"])

    page = ops.web.get("/dashboard/webhooks")
    assert page.status_code == 200, page.text
    assert delivery_ids(page) == dead
    assert "HTTP 503" in page.text and ">503</td>" in page.text
    assert "Replay all 3 that match" in page.text

    narrowed = ops.web.get(
        "/dashboard/webhooks", params={"workspace_id": "w1", "event": "message_received"}
    )
    assert delivery_ids(narrowed) == dead[:1]
    pending = ops.web.get("/dashboard/webhooks", params={"status": "pending", "session_id": ""})
    assert len(delivery_ids(pending)) == 1
    assert "Replay all" not in pending.text

    for params in ({"session_id": "../etc"}, {"since": "yesterday"}, {"status": "delivered"}):
        refused(ops.web.get("/dashboard/webhooks", params=params), 422, "validation_failed")
    # Signed out, nothing is shown.
    bare = httpx.get(str(ops.web.base_url.join("/dashboard/webhooks")))
    assert bare.status_code == 401


async def test_replay_from_the_page_needs_the_csrf_token_and_takes_what_the_filter_selects(
    ops: Ops,
) -> None:
    await ops.emit("s1", "w1", ["message_received", "qr_code_generated"])
    await ops.emit("s2", "w2", ["message_received", "message_received"])
    first, *rest = await ops.kill()

    forged = ops.web.post(f"/dashboard/webhooks/{first}/replay", data={"csrf_token": "x" * 40})
    refused(forged, 403, "csrf_failed")
    assert set((await ops.statuses()).values()) == {"dead"}

    # One, as the page's form posts it: back to the page, the delivery in line again.
    replayed = ops.web.post(
        f"/dashboard/webhooks/{first}/replay",
        data={"csrf_token": ops.csrf, "next": "/dashboard/webhooks?status=dead"},
    )
    assert (replayed.status_code, replayed.headers["location"]) == (
        303,
        "/dashboard/webhooks?status=dead",
    )
    assert (await ops.statuses())[first] == "pending"
    # As the script posts it: JSON, and a delivery that is not dead is the API's 409.
    again = ops.web.post(
        f"/dashboard/webhooks/{first}/replay",
        headers={"X-CSRF-Token": ops.csrf, "Accept": "application/json"},
    )
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "delivery_not_dead"

    # All that match: the form carries the page's filter.
    bulk = ops.web.post(
        "/dashboard/webhooks/replay",
        data={"csrf_token": ops.csrf, "workspace_id": "w2", "event": "message_received"},
    )
    assert bulk.status_code == 303
    assert "replayed=2" in bulk.headers["location"]
    after = await ops.statuses()
    assert {i for i, s in after.items() if s == "pending"} == {first, *rest[1:]}
    assert "Replayed 2 dead deliveries." in ops.web.get(bulk.headers["location"]).text
    missing = ops.web.post(
        "/dashboard/webhooks/replay", data={"csrf_token": ops.csrf, "until": "-1"}
    )
    assert missing.status_code == 422


async def read_events(lines: AsyncIterator[str], count: int) -> list[tuple[int, dict[str, Any]]]:
    """The next `count` `outbox` events of an open stream's lines: (id, data)."""
    found: list[tuple[int, dict[str, Any]]] = []
    event_id, kind = 0, ""
    while len(found) < count:
        line = await asyncio.wait_for(anext(lines), 20)
        if line.startswith("id: "):
            event_id = int(line[4:])
        elif line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: ") and kind == "outbox":
            found.append((event_id, json.loads(line[6:])))
    return found


async def test_the_event_stream_delivers_a_new_event_and_resumes_after_the_last_id(
    ops: Ops,
) -> None:
    await ops.emit("s1", "w1", ["session_status_changed", "qr_code_generated"])
    page = ops.web.get("/dashboard/events")
    assert page.status_code == 200
    assert 'data-monitor="/dashboard/stream/events?"' in page.text
    cookies = {COOKIE: ops.web.cookies[COOKIE]}
    async with httpx.AsyncClient(base_url=str(ops.web.base_url), cookies=cookies) as browser:
        async with browser.stream("GET", "/dashboard/stream/events") as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            lines = stream.aiter_lines()
            known = await read_events(lines, 2)
            assert [d["event"] for _, d in known] == ["session_status_changed", "qr_code_generated"]
            # Written by another store on the database (as another node would): polled.
            await ops.emit("s2", "w2", ["message_received"])
            ((seq, new),) = await read_events(lines, 1)
            assert (new["event"], new["session_id"], new["body"]["data"]) == (
                "message_received",
                "s2",
                {"on": "s2"},
            )
            assert seq == new["seq"] > known[-1][0]
        # A reconnect with Last-Event-ID resumes after it, filtered as asked.
        headers = {"Last-Event-ID": str(known[0][0])}
        url = "/dashboard/stream/events?session_id=s1"
        async with browser.stream("GET", url, headers=headers) as stream:
            ((_, resumed),) = await read_events(stream.aiter_lines(), 1)
            assert resumed["id"] == known[1][1]["id"]
        for bad in (
            await browser.get("/dashboard/stream/events", headers={"Last-Event-ID": "1e3"}),
            await browser.get("/dashboard/stream/events", params={"after": "\u0661\u0662"}),
        ):
            assert bad.status_code == 422


async def test_the_nodes_page_on_a_single_host_says_so_and_drains_nothing(ops: Ops) -> None:
    page = ops.web.get("/dashboard/nodes")
    assert page.status_code == 200
    assert "runs as a single host" in page.text
    drain = ops.web.post("/dashboard/nodes/w1/drain", data={"csrf_token": ops.csrf})
    assert drain.status_code == 404


async def test_the_charts_draw_the_sampled_history(ops: Ops) -> None:
    await ops.emit("s1", "w1", ["session_status_changed"])
    await ops.store.update_session("s1", {"status": "connected"})
    history = ops.app.state.dashboard.ops.history
    # Sampled every second: wait for two samples that saw the connected session.
    eventually(
        lambda: sum(1 for s in history.samples if s.sessions["connected"]) >= 2,
        20,
        "two samples with the session connected",
    )
    page = ops.web.get("/dashboard/charts")
    assert page.status_code == 200
    for key in ("sessions", "messages", "backlog", "memory"):
        assert f'data-key="{key}"' in page.text
    sessions = page.text.split('data-key="sessions"')[1].split("</section>")[0]
    assert "<polyline" in sessions and ">connected</text>" in sessions
    # No browsers in this process: the memory chart says nothing was measured.
    assert "nothing measured yet" in page.text


@pytest.mark.parametrize("engine", ["mariadb"])
async def test_the_nodes_page_of_an_api_process_lists_heartbeats_and_drains_a_worker(
    make_settings: Callable[..., Settings], database: Callable[[str], dict[str, str]]
) -> None:
    settings = make_settings(
        SIDECAR_DASHBOARD_SECRET=DASHBOARD_SECRET,
        SIDECAR_ROLE="api",
        SIDECAR_NODE_ID="api-1",
        SIDECAR_INTERNAL_SECRET=INTERNAL_SECRET,
        **database("dashboard_nodes"),
    )
    app = create_app(settings, with_browsers=False)
    with serve_app(app) as base:
        store = open_store(settings.store_url, settings.db_prefix)
        await store.open()
        try:
            # A worker's heartbeat, as its process writes it.
            worker = NodeRecord("worker-1", "worker", "http://127.0.0.1:9", 5, 0, host="h1")
            await store.heartbeat(worker, time.time())
            web, csrf = signed_in(base)
            try:
                page = eventually(
                    lambda: (p := web.get("/dashboard/nodes")) and "api-1" in p.text and p,
                    20,
                    "the api process's own heartbeat",
                )
                row = page.text.split('data-key="worker-1"')[1].split("</tr>")[0]
                assert 'data-state="live"' in row and "0 / 5" in row and "h1" in row
                assert 'data-action="drain"' in row
                drained = web.post("/dashboard/nodes/worker-1/drain", data={"csrf_token": csrf})
                assert drained.status_code == 303
                assert next(n for n in await store.list_nodes() if n.node_id == "worker-1").draining
                assert web.post("/dashboard/nodes/nobody/drain").status_code == 403
                gone = web.post("/dashboard/nodes/nobody/drain", data={"csrf_token": csrf})
                assert gone.status_code == 404
            finally:
                web.close()
        finally:
            await store.close()
