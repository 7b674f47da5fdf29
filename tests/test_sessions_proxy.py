"""A session's proxy on a real service, browser and sandbox: the page load goes through a
real proxy on 127.0.0.1 (with its login, sealed at rest), and a PATCHed proxy applies from
the next restart. Playwright sends loopback through the proxy too (it adds `<-loopback>` to
Chromium's bypass list), so the sandbox on 127.0.0.1 needs nothing special."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest

from tests.support.proxy import ForwardProxy, forward_proxy
from tests.support.sandbox import Phone, eventually, sandbox_process
from tests.support.sidecar import Sidecar, chromium_processes

pytestmark = pytest.mark.browser

USER = "proxy-user"
PASSWORD = "pr0xy-s3cret-pass"


@pytest.fixture(scope="module")
def phone() -> Iterator[Phone]:
    with sandbox_process() as p:
        yield p


@pytest.fixture(scope="module")
def car(tmp_path_factory: pytest.TempPathFactory, phone: Phone) -> Iterator[Sidecar]:
    storage = tmp_path_factory.mktemp("proxy") / "storage"
    sidecar = Sidecar(storage, WA_WEB_URL=phone.base + "/").start()
    try:
        yield sidecar
    finally:
        sidecar.close()


@pytest.fixture(scope="module")
def guarded() -> Iterator[ForwardProxy]:
    with forward_proxy(USER, PASSWORD) as proxy:
        yield proxy


def test_the_page_loads_through_the_sessions_proxy_with_its_login(
    car: Sidecar, phone: Phone, guarded: ForwardProxy
) -> None:
    created = car.api.post(
        "/api/sessions",
        json={
            "workspace_id": "acme",
            "session_id": "px",
            "proxy": {"url": guarded.url, "username": USER, "password": PASSWORD},
        },
    )
    assert created.status_code == 201, created.text
    assert created.json()["proxy"] == {"url": guarded.url, "authenticated": True}
    car.wait_status("px", "qr_required", timeout=120)
    page = phone.base + "/"
    assert guarded.forwarded(page), guarded.seen
    # The proxy demanded its login, and the browser answered with the sealed one.
    assert any(not s.authorized for s in guarded.seen)
    for path in car.storage.glob("sidecar.sqlite3*"):
        assert PASSWORD.encode() not in path.read_bytes()


def test_a_patched_proxy_applies_from_the_next_restart(
    car: Sidecar, phone: Phone, guarded: ForwardProxy
) -> None:
    if car.session("px")["status"] != "qr_required":
        pytest.skip("needs the session of the previous test")
    page = phone.base + "/"
    with forward_proxy() as open_proxy:
        patched = car.api.patch("/api/sessions/px", json={"proxy": {"url": open_proxy.url}})
        assert patched.status_code == 200, patched.text
        assert patched.json()["proxy"] == {"url": open_proxy.url, "authenticated": False}
        before = len(guarded.forwarded(page))
        assert car.api.post("/api/sessions/px/restart").status_code == 202
        eventually(lambda: open_proxy.forwarded(page), 120, "the page load through the new proxy")
        car.wait_status("px", "qr_required", timeout=120)
        assert len(guarded.forwarded(page)) == before
    cleared = car.api.patch("/api/sessions/px", json={"proxy": None})
    assert cleared.status_code == 200 and cleared.json()["proxy"] is None
    assert car.api.post("/api/sessions/px/stop").status_code == 202


def test_a_proxy_login_that_does_not_open_fails_the_session_instead_of_going_direct(
    car: Sidecar, guarded: ForwardProxy
) -> None:
    created = car.api.post(
        "/api/sessions",
        json={
            "workspace_id": "acme",
            "session_id": "locked",
            "start": False,
            "proxy": {"url": guarded.url, "username": USER, "password": PASSWORD},
        },
    )
    assert created.status_code == 201, created.text
    # The service comes back with another key (a cluster worker configured apart, say).
    car.terminate()
    car.env["SIDECAR_ENCRYPTION_KEY"] = "base64:" + base64.b64encode(b"k" * 32).decode()
    car.start()
    seen = len(guarded.seen)
    assert car.api.post("/api/sessions/locked/start").status_code == 202
    failed = car.wait_status("locked", "failed")
    assert "SIDECAR_ENCRYPTION_KEY" in failed["last_error"]
    last = car.events("locked", "session_status_changed")[-1]["data"]
    assert last["status"] == "failed" and last["reason"] == "proxy_unavailable"
    # No browser was started for it, with the proxy or without.
    assert chromium_processes(car.storage) == [] and len(guarded.seen) == seen
    # Set again, the login is sealed with this key.
    again = car.api.patch(
        "/api/sessions/locked",
        json={"proxy": {"url": guarded.url, "username": USER, "password": PASSWORD}},
    )
    assert again.status_code == 200 and again.json()["proxy"]["authenticated"] is True
