"""The dashboard's Campaigns pages over HTTP with a signed-in cookie: the list by session,
workspace and status, a campaign's page (its recipients a page at a time, by status, the CSV),
the live progress when a recipient is sent, and pause, resume and cancel behind the CSRF token.

One service for the module, its sessions never started (no Chromium): a campaign's first
message waits in the queue, and the test settles it through a store of its own on the same
database, as the worker that sent it would."""

from __future__ import annotations

import asyncio
import csv
import io
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from service.app import create_app
from service.settings import Settings
from service.store import NewEvent, open_store
from tests.conftest import API_SECRET, base_env
from tests.support.sandbox import eventually
from tests.support.server import serve_app
from tests.support.signing import SidecarAuth
from tests.test_dashboard import refused
from tests.test_dashboard_ops import DASHBOARD_SECRET, signed_in

# Due well ahead (within the year a start_at may be), so nothing sends during the test.
LATER = (datetime.now(UTC) + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Site:
    settings: Settings
    api: httpx.Client
    web: httpx.Client
    csrf: str

    def create(self, session_id: str, count: int, **extra: Any) -> dict[str, Any]:
        body = {
            "name": f"promo {session_id} {count}",
            "message": {"type": "text", "text": "Hi {{name}}"},
            "recipients": [
                {"to": f"55119{count:02d}{i:06d}", "variables": {"name": f"n{i}"}, "key": f"k{i}"}
                for i in range(count)
            ],
            "rate": {"per_minute": 600, "jitter": 0},
            **extra,
        }
        answer = self.api.post(f"/api/sessions/{session_id}/campaigns", json=body)
        assert answer.status_code == 201, answer.text
        campaign: dict[str, Any] = answer.json()
        return campaign

    def campaign(self, campaign: dict[str, Any]) -> dict[str, Any]:
        answer = self.api.get(f"/api/sessions/{campaign['session_id']}/campaigns/{campaign['id']}")
        assert answer.status_code == 200, answer.text
        current: dict[str, Any] = answer.json()
        return current


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    storage = tmp_path_factory.mktemp("dashboard_campaigns") / "storage"
    settings = Settings.from_mapping(base_env(storage, SIDECAR_DASHBOARD_SECRET=DASHBOARD_SECRET))
    with serve_app(create_app(settings)) as base:
        with httpx.Client(base_url=base, auth=SidecarAuth(API_SECRET), timeout=30) as api:
            for sid, workspace in (("s1", "acme"), ("s2", "beta")):
                body = {"workspace_id": workspace, "session_id": sid, "start": False}
                assert api.post("/api/sessions", json=body).status_code == 201
            web, csrf = signed_in(base)
            try:
                yield Site(settings, api, web, csrf)
            finally:
                web.close()


def listed(page: httpx.Response) -> list[str]:
    assert page.status_code == 200, page.text
    return re.findall(r'<tr data-key="(cmp_[0-9a-f]+)"', page.text)


def recipients(page: httpx.Response) -> list[int]:
    assert page.status_code == 200, page.text
    return [int(n) for n in re.findall(r'<tr data-key="r(\d+)"', page.text)]


def test_the_list_filters_and_a_campaigns_page_pages_its_recipients(site: Site) -> None:
    first = site.create("s1", 60, start_at=LATER)
    other = site.create("s2", 2, start_at=LATER)

    everything = site.web.get("/dashboard/campaigns")
    assert listed(everything)[:2] == [other["id"], first["id"]]  # newest first
    assert 'max="60" value="0"' in everything.text and "pending 60" in everything.text
    assert listed(site.web.get("/dashboard/campaigns", params={"session_id": "s1"})) == [
        first["id"]
    ]
    assert listed(site.web.get("/dashboard/campaigns", params={"workspace_id": "beta"})) == [
        other["id"]
    ]
    assert listed(site.web.get("/dashboard/campaigns", params={"status": "paused"})) == []
    for params in ({"session_id": "../x"}, {"status": "sent"}):
        refused(site.web.get("/dashboard/campaigns", params=params), 422, "validation_failed")

    url = f"/dashboard/campaigns/s1/{first['id']}"
    one = site.web.get(url)
    assert recipients(one) == list(range(1, 51))
    assert "5511960000000@c.us" in one.text and ">k0<" in one.text
    assert 'href="?after=50" data-next' in one.text
    assert recipients(site.web.get(url, params={"after": "50"})) == list(range(51, 61))
    assert recipients(site.web.get(url, params={"status": "sent"})) == []
    refused(site.web.get(url, params={"after": "-1"}), 422, "validation_failed")
    # Not this session's campaign, or not an id at all.
    refused(site.web.get(f"/dashboard/campaigns/s2/{first['id']}"), 404, "campaign_not_found")
    refused(site.web.get("/dashboard/campaigns/s1/x%20y"), 422, "validation_failed")

    # The CSV is the API's, under the dashboard's sign-in only.
    assert f'href="{url}/recipients.csv"' in one.text
    download = site.web.get(f"{url}/recipients.csv")
    assert download.status_code == 200 and download.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(download.text)))
    assert rows[0][:4] == ["seq", "to", "key", "status"] and len(rows) == 61
    assert httpx.get(str(site.web.base_url.join(f"{url}/recipients.csv"))).status_code == 401


async def _settle(settings: Settings, message_id: str, status: str) -> None:
    """What the worker that sent the message writes (a store of the test's own)."""
    store = open_store(settings.store_url, settings.db_prefix)
    await store.open()
    try:
        message = await store.update_message(
            message_id,
            {"status": status},
            [NewEvent("message_status_updated", {"message_id": message_id, "status": status})],
        )
        assert message.status == status
    finally:
        await store.close()


def test_the_progress_shows_a_recipient_sent_without_a_reload(site: Site) -> None:
    campaign = site.create("s1", 3)
    # The session never runs: its first recipient's message waits in the queue.
    first = eventually(
        lambda: (r := site.campaign(campaign))["counts"]["queued"] == 1 and r,
        30,
        "the first recipient to be queued",
    )
    assert first["status"] == "running"
    page = site.api.get(f"/api/sessions/s1/campaigns/{campaign['id']}/recipients").json()
    message_id = page["data"][0]["message_id"]

    url = f"/dashboard/stream/campaigns/s1/{campaign['id']}"
    with site.web.stream("GET", url) as events:
        assert events.headers["content-type"].startswith("text/event-stream")
        lines = events.iter_lines()
        assert next(lines) == "retry: 2000"
        shown = next(line for line in lines if line.startswith("data:"))
        assert "queued 1" in shown and 'data-count=\\"sent\\"' not in shown
        asyncio.run(_settle(site.settings, message_id, "sent"))
        deadline = time.monotonic() + 30
        for line in lines:
            assert time.monotonic() < deadline, "no fragment showed the recipient sent"
            if line.startswith("data:") and "sent 1" in line:
                break
    assert 'data-done=\\"1\\"' in line and 'data-key=\\"summary\\"' in line


def test_pause_resume_and_cancel_need_the_csrf_token_and_do_what_the_api_does(
    site: Site,
) -> None:
    campaign = site.create("s2", 4, start_at=LATER)
    base = f"/dashboard/campaigns/s2/{campaign['id']}"

    forged = site.web.post(f"{base}/pause", data={"csrf_token": "x" * 64})
    refused(forged, 403, "csrf_failed")
    missing = site.web.post(f"{base}/cancel", headers={"Accept": "application/json"})
    assert missing.status_code == 403 and missing.json()["error"]["code"] == "csrf_failed"
    assert site.campaign(campaign)["status"] == "scheduled"

    # As the form posts it without the script: back where it came from.
    paused = site.web.post(
        f"{base}/pause", data={"csrf_token": site.csrf, "next": "/dashboard/campaigns"}
    )
    assert paused.status_code == 303 and paused.headers["location"] == "/dashboard/campaigns"
    assert (site.campaign(campaign)["status"], site.campaign(campaign)["reason"]) == (
        "paused",
        "requested",
    )
    row = site.web.get("/dashboard/campaigns", params={"status": "paused"})
    assert listed(row) == [campaign["id"]]
    assert "data-reason>requested<" in row.text and 'data-action="resume"' in row.text

    # As the script posts it: the CSRF header, a JSON answer.
    script = {"Accept": "application/json", "X-CSRF-Token": site.csrf}
    resumed = site.web.post(f"{base}/resume", headers=script)
    assert resumed.status_code == 200, resumed.text
    assert resumed.json() == {"id": campaign["id"], "status": "scheduled"}
    again = site.web.post(f"{base}/resume", headers=script)
    assert again.status_code == 409 and again.json()["error"]["code"] == "campaign_state"

    cancelled = site.web.post(f"{base}/cancel", headers=script)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    final = site.campaign(campaign)
    assert final["status"] == "cancelled" and final["counts"]["cancelled"] == 4
    page = site.web.get(base)
    assert 'data-action="' not in page.text.split('data-key="summary"')[1].split("</section>")[0]
