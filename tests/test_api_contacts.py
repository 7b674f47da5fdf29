"""The contact endpoints end to end: a signed API call, the session's page in Chromium, the
sandbox's wa-js functions, and back. One linked session for the whole module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.sandbox import Phone, sandbox_process
from tests.support.sidecar import Sidecar

pytestmark = pytest.mark.browser

ME = "5511999990001"
FRIEND = "5511988880002"
QUIET = "5511988880003"  # on WhatsApp, no picture or about text
NOBODY = "5511977770004"  # not on WhatsApp
STRANGER = "5511988880005"  # on WhatsApp, and only looked up by its LID test
PICTURE = "https://pps.example.test/v/t61/friend.jpg"
META = {"phone_number_id": "109876543210", "access_token": "EAAG-test", "app_secret": "s"}


@pytest.fixture(scope="module")
def phone() -> Iterator[Phone]:
    with sandbox_process() as p:
        p.contact(FRIEND, picture=PICTURE, about="Available")
        p.contact(QUIET)
        p.contact(STRANGER)
        p.contact(NOBODY, exists=False)
        yield p


@pytest.fixture(scope="module")
def car(tmp_path_factory: pytest.TempPathFactory, phone: Phone) -> Iterator[Sidecar]:
    """A sidecar on the sandbox with session c1 linked as ME."""
    sidecar = Sidecar(
        tmp_path_factory.mktemp("contacts") / "storage",
        WA_WEB_URL=phone.base + "/",
        # Short, so the test of a page that never answers is short too.
        WA_PAGE_TIMEOUT="3",
    ).start()
    try:
        created = sidecar.api.post(
            "/api/sessions", json={"workspace_id": "acme", "session_id": "c1"}
        )
        assert created.status_code == 201, created.text
        sidecar.wait_status("c1", "qr_required")
        qr = sidecar.api.get("/api/sessions/c1/qr").json()["qr"]
        assert phone.scan(qr, ME).status_code == 200
        sidecar.wait_status("c1", "connected")
        yield sidecar
    finally:
        sidecar.close()


def ok(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def error(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()["error"]
    return body


def test_check_says_which_numbers_are_on_whatsapp(car: Sidecar, phone: Phone) -> None:
    asked = ["+55 11 98888-0002", NOBODY, ME, FRIEND]
    answer = ok(car.api.post("/api/sessions/c1/contacts/check", json={"phones": asked}))
    friend_lid = phone.lid(FRIEND)
    assert answer["data"] == [
        {"phone": FRIEND, "exists": True, "wid": f"{FRIEND}@c.us", "lid": friend_lid},
        {"phone": NOBODY, "exists": False},
        {"phone": ME, "exists": True, "wid": f"{ME}@c.us", "lid": phone.lid(ME)},
        {"phone": FRIEND, "exists": True, "wid": f"{FRIEND}@c.us", "lid": friend_lid},
    ]


def test_picture_and_about_text(car: Sidecar) -> None:
    picture = ok(car.api.get(f"/api/sessions/c1/contacts/{FRIEND}/picture"))
    assert picture == {"contact_id": FRIEND, "url": PICTURE}
    about = ok(car.api.get(f"/api/sessions/c1/contacts/%2B{FRIEND}/about"))
    assert about == {"contact_id": f"+{FRIEND}", "about": "Available"}
    # On WhatsApp with nothing to show, or not on WhatsApp at all: null, not an error.
    assert ok(car.api.get(f"/api/sessions/c1/contacts/{QUIET}@c.us/picture"))["url"] is None
    assert ok(car.api.get(f"/api/sessions/c1/contacts/{QUIET}/about"))["about"] is None
    assert ok(car.api.get(f"/api/sessions/c1/contacts/{NOBODY}/about"))["about"] is None


def test_block_and_unblock_reach_the_accounts_blocklist(car: Sidecar, phone: Phone) -> None:
    blocked = ok(car.api.post(f"/api/sessions/c1/contacts/{FRIEND}/block"))
    assert blocked == {"contact_id": FRIEND, "blocked": True}
    assert phone.blocklist(ME) == [f"{FRIEND}@c.us"]
    # Blocking twice changes nothing.
    assert ok(car.api.post(f"/api/sessions/c1/contacts/{FRIEND}/block", json={}))["blocked"]
    assert phone.blocklist(ME) == [f"{FRIEND}@c.us"]
    unblocked = ok(car.api.delete(f"/api/sessions/c1/contacts/{FRIEND}/block"))
    assert unblocked == {"contact_id": FRIEND, "blocked": False}
    assert phone.blocklist(ME) == []


def test_the_phone_behind_a_lid_and_back(car: Sidecar, phone: Phone) -> None:
    lid = phone.lid(STRANGER)
    # A LID WhatsApp never explained to this account: its number stays unknown.
    unexplained = ok(car.api.get(f"/api/sessions/c1/contacts/{lid}/ids"))
    assert unexplained == {"contact_id": lid, "phone": None, "lid": lid}
    # A number's LID is asked of WhatsApp, which teaches the page the pair both ways.
    forward = ok(car.api.get(f"/api/sessions/c1/contacts/{STRANGER}/ids"))
    assert forward == {"contact_id": STRANGER, "phone": STRANGER, "lid": lid}
    back = ok(car.api.get(f"/api/sessions/c1/contacts/{lid}/ids"))
    assert back == {"contact_id": lid, "phone": STRANGER, "lid": lid}


def test_bad_input_is_refused_before_the_page(car: Sidecar) -> None:
    secret = "5511-not-a-phone"
    for contact in (secret, "12", "5511988880002@g.us", "abc@lid"):
        refused = error(car.api.get(f"/api/sessions/c1/contacts/{contact}/about"), 422)
        assert refused["details"]["field"] == "contact_id"
        assert contact not in refused["message"]
    for phones in ([], ["not a phone"], [FRIEND] * 51, [5511988880002]):
        refused = error(
            car.api.post("/api/sessions/c1/contacts/check", json={"phones": phones}), 422
        )
        assert refused["details"]["field"].startswith("phones")
        assert "not a phone" not in refused["message"]
    extra = car.api.post(f"/api/sessions/c1/contacts/{FRIEND}/block", json={"reason": "spam"})
    assert error(extra, 422)["details"]["field"] == "reason"
    assert error(car.api.get(f"/api/sessions/nope/contacts/{FRIEND}/about"), 404)["code"] == (
        "session_not_found"
    )


def test_a_session_without_a_page_answers_409(car: Sidecar, tmp_path: Path) -> None:
    stopped = car.api.post(
        "/api/sessions", json={"workspace_id": "acme", "session_id": "idle", "start": False}
    )
    assert stopped.status_code == 201, stopped.text
    idle = error(car.api.get(f"/api/sessions/idle/contacts/{FRIEND}/about"), 409)
    assert (idle["code"], idle["details"]["status"]) == ("session_not_connected", "stopped")

    meta = car.api.post(
        "/api/sessions",
        json={
            "workspace_id": "acme",
            "session_id": "cloud",
            "provider_mode": "meta",
            "meta": META,
            "start": False,
        },
    )
    assert meta.status_code == 201, meta.text
    for response in (
        car.api.post("/api/sessions/cloud/contacts/check", json={"phones": [FRIEND]}),
        car.api.post(f"/api/sessions/cloud/contacts/{FRIEND}/block"),
    ):
        refused = error(response, 409)
        assert (refused["code"], refused["details"]) == (
            "not_supported_by_provider",
            {"provider": "meta"},
        )


def test_a_page_that_never_answers_is_a_504_not_a_hang(car: Sidecar, phone: Phone) -> None:
    # The network stops answering the account while its page stays online (a stall).
    assert phone.device(ME, "stall").status_code == 200
    try:
        late = error(car.api.get(f"/api/sessions/c1/contacts/{FRIEND}/picture"), 504)
        assert late["code"] == "page_timeout"
        assert car.session("c1")["status"] == "connected"
    finally:
        assert phone.device(ME, "reconnect").status_code == 200
    assert ok(car.api.get(f"/api/sessions/c1/contacts/{FRIEND}/picture"))["url"] == PICTURE
