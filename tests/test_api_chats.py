"""The chat endpoints end to end: a signed API call, the session's page in Chromium, the
sandbox's wa-js chat functions, and what WhatsApp's servers hear. One linked session for
the whole module; the chats come from messages the other parties send."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.receivers import Receiver, python_receiver
from tests.support.sandbox import Phone, eventually, sandbox_process
from tests.support.sidecar import Sidecar

pytestmark = pytest.mark.browser

ME = "5511999990001"
FRIEND = "5511988880002"
OTHER = "5511988880003"
META = {"phone_number_id": "109876543210", "access_token": "EAAG-test", "app_secret": "s"}
CHATS = "/api/sessions/c1/chats"


@pytest.fixture(scope="module")
def phone() -> Iterator[Phone]:
    with sandbox_process() as p:
        yield p


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with python_receiver() as r:
        yield r


@pytest.fixture(scope="module")
def car(
    tmp_path_factory: pytest.TempPathFactory, phone: Phone, receiver: Receiver
) -> Iterator[Sidecar]:
    """A sidecar on the sandbox with session c1 linked as ME, its webhooks to `receiver`."""
    sidecar = Sidecar(
        tmp_path_factory.mktemp("chats") / "storage",
        WA_WEB_URL=phone.base + "/",
        SIDECAR_WEBHOOK_URL=receiver.url,
    )
    sidecar.start()
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


def say(phone: Phone, sender: str, text: str) -> str:
    answer = phone.inbound(to=ME, **{"from": sender}, text=text)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["message_id"])


@pytest.fixture(scope="module")
def talk(car: Sidecar, phone: Phone) -> list[str]:
    """FRIEND writes three messages, then OTHER one: two chats, OTHER's the newest."""
    ids = [say(phone, FRIEND, f"hello {n}") for n in (1, 2, 3)]
    ids.append(say(phone, OTHER, "hi"))

    def arrived() -> list[dict[str, Any]] | None:
        chats = ok(car.api.get(CHATS))["data"]
        unread = {c["id"]: c["unread_count"] for c in chats}
        return chats if unread == {f"{FRIEND}@c.us": 3, f"{OTHER}@c.us": 1} else None

    eventually(arrived, what="both chats on the page")
    return ids


def ids_of(chats: list[dict[str, Any]]) -> list[str]:
    return [c["id"] for c in chats]


def test_the_chat_list_newest_first_and_its_pages(car: Sidecar, talk: list[str]) -> None:
    chats = ok(car.api.get(CHATS))["data"]
    assert ids_of(chats) == [f"{OTHER}@c.us", f"{FRIEND}@c.us"]
    friend = chats[1]
    assert (friend["is_group"], friend["archived"], friend["unread_count"]) == (False, False, 3)
    assert isinstance(friend["timestamp"], int)
    first = ok(car.api.get(CHATS, params={"limit": "1"}))["data"]
    assert ids_of(first) == [f"{OTHER}@c.us"]
    after = {"limit": "1", "after": f"{OTHER}@c.us"}
    assert ids_of(ok(car.api.get(CHATS, params=after))["data"]) == [f"{FRIEND}@c.us"]
    last = ok(car.api.get(CHATS, params={"after": f"{FRIEND}@c.us"}))["data"]
    assert last == []
    before = ok(car.api.get(CHATS, params={"before": f"{FRIEND}@c.us"}))["data"]
    assert ids_of(before) == [f"{OTHER}@c.us"]
    # A chat the page does not hold is no anchor: refused, not the first page again.
    unknown = error(car.api.get(CHATS, params={"after": "5511977770009@c.us"}), 409)
    assert (unknown["code"], unknown["details"]) == ("page_refused", {"wa_code": "chat_not_found"})


def test_a_chats_messages_oldest_first_and_their_pages(car: Sidecar, talk: list[str]) -> None:
    url = f"{CHATS}/{FRIEND}@c.us/messages"
    newest = ok(car.api.get(url, params={"limit": "2"}))
    assert newest["chat_id"] == f"{FRIEND}@c.us"
    assert [m["id"] for m in newest["data"]] == talk[1:3]
    message = newest["data"][1]
    assert (message["from"], message["to"], message["from_me"]) == (
        f"{FRIEND}@c.us",
        f"{ME}@c.us",
        False,
    )
    assert (message["type"], message["body"], message["ref"]) == (
        "chat",
        "hello 3",
        talk[2].split("_")[2],
    )
    older = ok(car.api.get(url, params={"before": talk[1], "limit": "2"}))["data"]
    assert [m["id"] for m in older] == talk[:1]
    newer = ok(car.api.get(url, params={"after": talk[0]}))["data"]
    assert [m["body"] for m in newer] == ["hello 2", "hello 3"]
    nobody = error(car.api.get(f"{CHATS}/5511977770009@c.us/messages"), 409)
    assert nobody["details"] == {"wa_code": "chat_not_found"}


def test_mark_read_sends_read_receipts(car: Sidecar, phone: Phone, talk: list[str]) -> None:
    read = ok(car.api.post(f"{CHATS}/{FRIEND}@c.us/read"))
    assert read == {"chat_id": f"{FRIEND}@c.us", "unread_count": 3}
    receipts = [a for a in phone.chat_actions(ME) if a["action"] == "read"]
    bare = [i.split("_")[2] for i in talk[:3]]
    assert receipts == [{"chat": f"{FRIEND}@c.us", "action": "read", "ids": bare}]
    chats = {c["id"]: c for c in ok(car.api.get(CHATS))["data"]}
    assert chats[f"{FRIEND}@c.us"]["unread_count"] == 0
    again = ok(car.api.post(f"{CHATS}/{FRIEND}@c.us/read", json={}))
    assert again["unread_count"] == 0


def test_archive_and_unarchive(car: Sidecar, phone: Phone, talk: list[str]) -> None:
    url = f"{CHATS}/{OTHER}@c.us/archive"
    assert ok(car.api.post(url)) == {"chat_id": f"{OTHER}@c.us", "archived": True}
    chats = {c["id"]: c for c in ok(car.api.get(CHATS))["data"]}
    assert chats[f"{OTHER}@c.us"]["archived"] is True
    # The same body twice in a second would be a replay: `{}` makes it another request.
    twice = error(car.api.post(url, json={}), 409)
    assert (twice["code"], twice["details"]) == ("page_refused", {"wa_code": "archive_error"})
    assert ok(car.api.delete(url)) == {"chat_id": f"{OTHER}@c.us", "archived": False}
    again = car.api.request("DELETE", url, json={})
    assert error(again, 409)["details"] == {"wa_code": "unarchive_error"}
    heard = [a["action"] for a in phone.chat_actions(ME) if a["chat"] == f"{OTHER}@c.us"]
    assert heard == ["archive", "unarchive"]


def test_typing_and_recording(car: Sidecar, phone: Phone, talk: list[str]) -> None:
    url = f"{CHATS}/{FRIEND}@c.us/presence"

    def states() -> list[str]:
        return [
            a["action"]
            for a in phone.chat_actions(ME)
            if a["chat"] == f"{FRIEND}@c.us" and a["action"] in ("typing", "recording", "paused")
        ]

    assert ok(car.api.post(url, json={"state": "typing"})) == {
        "chat_id": f"{FRIEND}@c.us",
        "state": "typing",
    }
    assert ok(car.api.post(url, json={"state": "paused"}))["state"] == "paused"
    # With a duration, WhatsApp Web pauses by itself afterwards; the call does not wait.
    assert ok(car.api.post(url, json={"state": "recording", "duration_ms": 200}))
    eventually(lambda: states() == ["typing", "paused", "recording", "paused"], what="the pause")


def test_a_followed_contacts_presence_is_a_webhook(
    car: Sidecar, phone: Phone, receiver: Receiver
) -> None:
    def heard() -> list[dict[str, Any]]:
        return [e["data"] for e in receiver.events() if e["event"] == "presence_updated"]

    # Not followed yet: WhatsApp tells this account nothing.
    assert phone.presence(OTHER, "available") == 0
    url = f"{CHATS}/{OTHER}@c.us/presence/subscribe"
    assert ok(car.api.post(url)) == {"chat_id": f"{OTHER}@c.us", "subscribed": True}
    assert phone.presence(OTHER, "composing") == 1
    assert phone.presence(OTHER, "unavailable") == 1
    got = eventually(lambda: heard() if len(heard()) == 2 else None, what="two presence events")
    assert got == [
        {"chat_id": f"{OTHER}@c.us", "online": True, "state": "composing", "participants": []},
        {"chat_id": f"{OTHER}@c.us", "online": False, "state": "unavailable", "participants": []},
    ]
    event = next(e for e in receiver.events() if e["event"] == "presence_updated")
    assert event["session_id"] == "c1"
    group = error(car.api.post(f"{CHATS}/120363025246125888@g.us/presence/subscribe"), 422)
    assert group["details"]["field"] == "chat_id"


def test_delete_removes_the_chat(car: Sidecar, phone: Phone, talk: list[str]) -> None:
    # Last: the other tests read OTHER's chat.
    deleted = ok(car.api.delete(f"{CHATS}/{OTHER}@c.us"))
    assert deleted == {"chat_id": f"{OTHER}@c.us", "deleted": True}
    assert f"{OTHER}@c.us" not in ids_of(ok(car.api.get(CHATS))["data"])
    assert {"chat": f"{OTHER}@c.us", "action": "delete"} in phone.chat_actions(ME)


def test_bad_input_is_refused_before_the_page(car: Sidecar, phone: Phone) -> None:
    before = phone.chat_actions(ME)
    for chat in ("5511988880002", "abc@c.us", "5511988880002@s.whatsapp.net", "1@lid"):
        refused = error(car.api.get(f"{CHATS}/{chat}/messages"), 422)
        assert refused["details"]["field"] == "chat_id"
        refused = error(car.api.post(f"{CHATS}/{chat}/read"), 422)
        assert refused["details"]["field"] == "chat_id"
    for limit in ("0", "101", "\uff15", "+5", "2.0", ""):
        refused = error(car.api.get(CHATS, params={"limit": limit}), 422)
        assert refused["details"]["field"] == "limit"
    both = {"before": f"{OTHER}@c.us", "after": f"{FRIEND}@c.us"}
    assert error(car.api.get(CHATS, params=both), 422)["details"]["field"] == "after"
    assert error(car.api.get(CHATS, params={"page": "2"}), 422)["details"]["field"] == "page"
    url = f"{CHATS}/{FRIEND}@c.us/messages"
    elsewhere = f"false_{OTHER}@c.us_3EB0C767D26A1D8C3E2F"
    assert error(car.api.get(url, params={"before": elsewhere}), 422)["details"]["field"] == (
        "before"
    )
    assert error(car.api.get(url, params={"after": "3EB0C767"}), 422)["details"]["field"] == (
        "after"
    )
    presence = f"{CHATS}/{FRIEND}@c.us/presence"
    for body, field in (
        ({"state": "online"}, "state"),
        ({}, "state"),
        ({"state": "typing", "duration_ms": 0}, "duration_ms"),
        ({"state": "typing", "duration_ms": 60_001}, "duration_ms"),
        ({"state": "typing", "duration_ms": "5"}, "duration_ms"),
        ({"state": "paused", "duration_ms": 5}, "duration_ms"),
    ):
        assert error(car.api.post(presence, json=body), 422)["details"]["field"] == field
    extra = car.api.post(f"{CHATS}/{FRIEND}@c.us/archive", json={"why": "x"})
    assert error(extra, 422)["details"]["field"] == "why"
    # Nothing reached WhatsApp.
    assert phone.chat_actions(ME) == before


def test_a_session_without_a_page_answers_409(car: Sidecar, tmp_path: Path) -> None:
    stopped = car.api.post(
        "/api/sessions", json={"workspace_id": "acme", "session_id": "idle", "start": False}
    )
    assert stopped.status_code == 201, stopped.text
    idle = error(car.api.get("/api/sessions/idle/chats"), 409)
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
        car.api.get("/api/sessions/cloud/chats"),
        # (marking read is the Cloud API's: test_api_reactions)
        car.api.post(f"/api/sessions/cloud/chats/{FRIEND}@c.us/archive"),
        car.api.post(f"/api/sessions/cloud/chats/{FRIEND}@c.us/presence/subscribe"),
        car.api.post(f"/api/sessions/cloud/chats/{FRIEND}@c.us/presence", json={"state": "typing"}),
    ):
        refused = error(response, 409)
        assert (refused["code"], refused["details"]) == (
            "not_supported_by_provider",
            {"provider": "meta"},
        )
