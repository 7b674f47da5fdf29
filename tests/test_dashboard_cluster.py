"""The dashboard in cluster mode: the api process serves it, the session runs on a worker.
What a worker writes reaches the api's live streams (through the shared store), and the
dashboard's actions and pairing code reach the worker as the API's do. Plain HTTP: the
browser test (test_dashboard_browser.py) covers the page itself."""

from __future__ import annotations

import html
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.cluster import Cluster, running_cluster
from tests.support.mariadb import PrivateMariaDB
from tests.support.sandbox import Phone, eventually, sandbox_process

pytestmark = pytest.mark.browser

ME = "5511999990001"


@pytest.fixture
def phone() -> Iterator[Phone]:
    with sandbox_process() as p:
        yield p


@pytest.fixture
def cluster(tmp_path: Path, phone: Phone, mariadb_server: PrivateMariaDB) -> Iterator[Cluster]:
    with running_cluster(
        tmp_path / "storage",
        phone,
        mariadb_server,
        "dash",
        SIDECAR_DASHBOARD_SECRET="cluster-dashboard-secret-0123456789abcdef",
    ) as group:
        yield group.start("w1")


def fragments(events: Iterator[str]) -> Iterator[dict[str, Any] | None]:
    """The `fragment` payloads of an event stream as they come; None for any other line
    (a keepalive comes at least every 15 s), so a reader can give up."""
    event = ""
    for line in events:
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: ") and event == "fragment":
            yield json.loads(line[6:])
            continue
        yield None


def until(
    stream: Iterator[dict[str, Any] | None], key: str, pattern: str, timeout: float = 90
) -> re.Match[str]:
    deadline = time.monotonic() + timeout
    last = None
    for fragment in stream:
        if fragment is not None and fragment["key"] == key:
            last = fragment["html"]
            if found := re.search(pattern, last):
                return found
        if time.monotonic() > deadline:
            break
    raise AssertionError(f"{key} did not match {pattern} (last: {last})")


def test_the_api_serves_the_dashboard_of_a_workers_session(cluster: Cluster, phone: Phone) -> None:
    api = cluster.api
    created = api.api.post("/api/sessions", json={"workspace_id": "acme", "session_id": "c1"})
    assert created.status_code == 201, created.text
    link = api.api.post("/api/dashboard/links", json={"session_id": "c1"}).json()["url"]
    with httpx.Client(base_url=api.base, timeout=60) as browser:
        signed = browser.post("/dashboard/login", data={"token": link.rsplit("/", 1)[1]})
        assert signed.headers["location"] == "/dashboard/sessions/c1"
        page = browser.get("/dashboard/sessions/c1").text
        assert '<span class="tag">api</span>' in page
        csrf = re.search(r'name="csrf-token" content="([0-9a-f]{64})"', page)
        assert csrf is not None
        headers = {"X-CSRF-Token": csrf.group(1), "Accept": "application/json"}
        with browser.stream("GET", "/dashboard/stream/sessions/c1") as events:
            stream = fragments(events.iter_lines())
            # The QR the worker's browser shows, written to the store, streamed by the api.
            for _ in range(3):  # a QR that rotated away under the camera: the next one
                qr = html.unescape(until(stream, "qr", r'data-qr="([^"]+)"').group(1))
                if phone.scan(qr, ME).status_code == 200:
                    break
            else:
                raise AssertionError("no QR scanned")
            until(stream, "summary", r'data-status="connected"')
            # The browser's memory is the worker's to measure: the page says where.
            assert "measured on its worker w1" in browser.get("/dashboard/sessions/c1").text
            # An action on the api reaches the worker, which stops the browser.
            stop = browser.post("/dashboard/sessions/c1/stop", headers=headers)
            assert stop.status_code == 202, stop.text
            until(stream, "summary", r'data-status="stopped"')
            start = browser.post("/dashboard/sessions/c1/start", headers=headers)
            assert start.status_code == 202, start.text
            until(stream, "summary", r'data-status="connected"')
    assert cluster.owners() == {"c1": "w1"}
    eventually(lambda: api.session("c1")["phone_number"] == ME, 30, "c1 linked as ME")
