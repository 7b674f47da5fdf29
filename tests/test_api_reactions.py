"""Message actions end to end: reactions through the signed API, the session's page in
Chromium and the sandbox's wa-js, and the other party's reactions back as signed webhooks.
One linked session for the whole module."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import WEBHOOK_SECRET
from tests.support.graph import (
    GraphStandIn,
    graph_standin,
    inbound_reaction,
    inbound_text,
    new_wamid,
    sign,
)
from tests.support.receivers import Receiver, python_receiver
from tests.support.sandbox import Phone, eventually, sandbox_process
from tests.support.sidecar import Sidecar

pytestmark = pytest.mark.browser

ME = "5511999990101"
FRIEND = "5511988880102"
META = {"phone_number_id": "109876543210", "access_token": "EAAG-test", "app_secret": "s"}


@pytest.fixture(scope="module")
def phone() -> Iterator[Phone]:
    with sandbox_process() as p:
        yield p


@pytest.fixture(scope="module")
def graph() -> Iterator[GraphStandIn]:
    with graph_standin() as g:
        g.add_number(META["phone_number_id"], META["access_token"])
        yield g


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with python_receiver() as r:
        yield r


@pytest.fixture(scope="module")
def car(
    tmp_path_factory: pytest.TempPathFactory, phone: Phone, receiver: Receiver, graph: GraphStandIn
) -> Iterator[Sidecar]:
    """A sidecar on the sandbox with session r1 linked as ME, its webhooks to `receiver`,
    and meta session m1 on the Graph stand-in."""
    sidecar = Sidecar(
        tmp_path_factory.mktemp("reactions") / "storage",
        WA_WEB_URL=phone.base + "/",
        SIDECAR_WEBHOOK_URL=receiver.url,
        SIDECAR_PACING="off",
        SIDECAR_WEBHOOK_RETRY_BASE_MS="100",
        META_GRAPH_URL=graph.base,
    ).start()
    try:
        created = sidecar.api.post(
            "/api/sessions", json={"workspace_id": "acme", "session_id": "r1"}
        )
        assert created.status_code == 201, created.text
        sidecar.wait_status("r1", "qr_required")
        qr = sidecar.api.get("/api/sessions/r1/qr").json()["qr"]
        assert phone.scan(qr, ME).status_code == 200
        sidecar.wait_status("r1", "connected")
        meta = {"workspace_id": "acme", "session_id": "m1", "provider_mode": "meta", "meta": META}
        assert sidecar.api.post("/api/sessions", json=meta).status_code == 201
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


def sent_text(car: Sidecar, text: str) -> dict[str, Any]:
    """A text the session sent to FRIEND, once WhatsApp Web took it."""
    queued = car.api.post(
        "/api/sessions/r1/messages", json={"to": FRIEND, "type": "text", "text": text}
    )
    assert queued.status_code == 202, queued.text
    message_id = queued.json()["id"]

    def check() -> dict[str, Any] | None:
        record: dict[str, Any] = ok(car.api.get(f"/api/sessions/r1/messages/{message_id}"))
        return record if record["status"] not in ("queued", "sending") else None

    record = eventually(check, 60, f"{message_id} to be sent")
    assert record["status"] == "sent", record
    return record


def hooks(receiver: Receiver, event: str) -> list[dict[str, Any]]:
    """The `event` webhooks r1 got, each checked against the webhook secret."""
    found = []
    for request in receiver.requests:
        if request["json"].get("event") != event or request["json"]["session_id"] != "r1":
            continue
        signature = hmac.new(WEBHOOK_SECRET.encode(), request["body"], hashlib.sha256).hexdigest()
        assert hmac.compare_digest(request["headers"]["signature"], signature)
        found.append(request["json"]["data"])
    return found


def test_react_to_a_sent_message_and_take_it_back(car: Sidecar, phone: Phone) -> None:
    message = sent_text(car, "lunch at noon?")
    path = f"/api/sessions/r1/messages/{message['id']}/reaction"
    reacted = ok(car.api.post(path, json={"emoji": "👍"}))
    assert reacted == {
        "message_id": message["id"],
        "provider_message_id": message["provider_message_id"],
        "emoji": "👍",
    }
    removed = ok(car.api.delete(path))
    assert removed["emoji"] is None
    # What the network saw from ME's device: the reaction on that message, then none.
    seen = [
        (r["message_id"], r["reaction"])
        for r in phone.reactions(ME)
        if r["message_id"] == message["provider_message_id"]
    ]
    assert seen == [(message["provider_message_id"], "👍"), (message["provider_message_id"], "")]


def test_react_to_a_received_message(car: Sidecar, phone: Phone, receiver: Receiver) -> None:
    delivered = phone.inbound(to=ME, **{"from": FRIEND}, text="see you there")
    assert delivered.status_code == 200, delivered.text
    key = delivered.json()["message_id"]
    inbound = eventually(
        lambda: next(
            (
                d["message"]
                for d in hooks(receiver, "message_received")
                if d["message"]["provider_message_id"] == key
            ),
            None,
        ),
        60,
        "the inbound message",
    )
    path = f"/api/sessions/r1/messages/{inbound['id']}/reaction"
    assert ok(car.api.post(path, json={"emoji": "❤️"}))["provider_message_id"] == key
    assert [r["reaction"] for r in phone.reactions(ME) if r["message_id"] == key] == ["❤️"]


def test_the_other_partys_reactions_come_as_webhooks(
    car: Sidecar, phone: Phone, receiver: Receiver
) -> None:
    message = sent_text(car, "did you like it?")
    key = message["provider_message_id"]
    assert phone.react(ME, FRIEND, key, "😂").status_code == 200
    assert phone.react(ME, FRIEND, key, "").status_code == 200

    def both() -> list[dict[str, Any]] | None:
        mine = [d for d in hooks(receiver, "message_reaction") if d["provider_message_id"] == key]
        return mine if len(mine) == 2 else None

    first, second = eventually(both, 60, "the two reactions")
    assert first["message_id"] == message["id"]
    assert first["from"] == f"{FRIEND}@c.us"
    assert first["emoji"] == "😂"
    assert isinstance(first["timestamp"], int) and first["timestamp"] > 1_700_000_000
    assert second["message_id"] == message["id"]
    assert second["emoji"] is None


def test_reaction_errors(car: Sidecar) -> None:
    message = sent_text(car, "errors ahead")
    path = f"/api/sessions/r1/messages/{message['id']}/reaction"
    assert error(car.api.post(path, json={"emoji": ""}), 422)["code"] == "validation_failed"
    assert error(car.api.post(path, json={}), 422)["code"] == "validation_failed"
    missing = car.api.post("/api/sessions/r1/messages/msg_nope/reaction", json={"emoji": "👍"})
    assert error(missing, 404)["code"] == "message_not_found"
    nobody = car.api.delete(f"/api/sessions/gone/messages/{message['id']}/reaction")
    assert error(nobody, 404)["code"] == "session_not_found"
    # A meta session's reaction needs a message it sent or received itself.
    other = car.api.post(
        f"/api/sessions/m1/messages/{message['id']}/reaction", json={"emoji": "👍"}
    )
    assert error(other, 404)["code"] == "message_not_found"


def received(phone: Phone, receiver: Receiver, text: str) -> dict[str, Any]:
    """A text FRIEND sent the session, once its message_received webhook came."""
    delivered = phone.inbound(to=ME, **{"from": FRIEND}, text=text)
    assert delivered.status_code == 200, delivered.text
    key = delivered.json()["message_id"]

    def check() -> dict[str, Any] | None:
        for data in hooks(receiver, "message_received"):
            if data["message"]["provider_message_id"] == key:
                message: dict[str, Any] = data["message"]
                return message
        return None

    return eventually(check, 60, "the inbound message")


def hook_for(receiver: Receiver, event: str, provider_message_id: str) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        found = [
            d for d in hooks(receiver, event) if d["provider_message_id"] == provider_message_id
        ]
        return found[-1] if found else None

    return eventually(check, 60, f"the {event} webhook")


def test_edit_a_sent_text(car: Sidecar, phone: Phone, receiver: Receiver) -> None:
    message = sent_text(car, "meet at 5")
    edited = ok(
        car.api.post(f"/api/sessions/r1/messages/{message['id']}/edit", json={"text": "meet at 6"})
    )
    assert edited["id"] == message["id"] and edited["text"] == "meet at 6"
    assert edited["edited_at"] and "revoked_at" not in edited
    record = ok(car.api.get(f"/api/sessions/r1/messages/{message['id']}"))
    assert record["text"] == "meet at 6"
    (on_network,) = [m for m in phone.sent(ME) if m["message_id"] == message["provider_message_id"]]
    assert on_network["text"] == "meet at 6" and on_network["edited"] is True
    # WhatsApp Web reports the session's own edits too.
    hook = hook_for(receiver, "message_edited", message["provider_message_id"])
    assert hook == {
        "message_id": message["id"],
        "provider_message_id": message["provider_message_id"],
        "text": "meet at 6",
    }


def test_delete_a_sent_message_for_everyone(car: Sidecar, phone: Phone) -> None:
    message = sent_text(car, "oops, wrong chat")
    path = f"/api/sessions/r1/messages/{message['id']}"
    revoked = ok(car.api.post(f"{path}/revoke"))
    # The record keeps what it said, and when it was deleted.
    assert revoked["text"] == "oops, wrong chat" and revoked["revoked_at"]
    (on_network,) = [m for m in phone.sent(ME) if m["message_id"] == message["provider_message_id"]]
    assert on_network["revoked"] is True
    # A deleted message is no longer WhatsApp's to edit.
    refused = error(car.api.post(f"{path}/edit", json={"text": "never mind"}), 409)
    assert refused["code"] == "page_refused"
    assert refused["details"]["wa_code"] == "edit_message_error"


def test_the_other_party_edits_and_deletes_its_message(
    car: Sidecar, phone: Phone, receiver: Receiver
) -> None:
    inbound = received(phone, receiver, "the code is 1234")
    key = inbound["provider_message_id"]
    assert phone.edit(ME, FRIEND, key, "the code is 4321").status_code == 200
    edited = hook_for(receiver, "message_edited", key)
    assert edited == {
        "message_id": inbound["id"],
        "provider_message_id": key,
        "text": "the code is 4321",
    }
    record = ok(car.api.get(f"/api/sessions/r1/messages/{inbound['id']}"))
    assert record["text"] == "the code is 4321" and record["edited_at"]

    assert phone.revoke(ME, FRIEND, key).status_code == 200
    revoked = hook_for(receiver, "message_revoked", key)
    assert revoked == {
        "message_id": inbound["id"],
        "provider_message_id": key,
        "from": f"{FRIEND}@c.us",
    }
    record = ok(car.api.get(f"/api/sessions/r1/messages/{inbound['id']}"))
    assert record["revoked_at"] and record["text"] == "the code is 4321"
    # Someone else's message is not the session's to edit or delete for everyone.
    path = f"/api/sessions/r1/messages/{inbound['id']}"
    assert error(car.api.post(f"{path}/edit", json={"text": "x"}), 409)["code"] == "message_not_own"
    assert error(car.api.post(f"{path}/revoke"), 409)["code"] == "message_not_own"


def test_edit_and_revoke_errors(car: Sidecar) -> None:
    queued = car.api.post(
        "/api/sessions/r1/messages",
        json={
            "to": FRIEND,
            "type": "location",
            "location": {"latitude": -23.5, "longitude": -46.6},
        },
    )
    assert queued.status_code == 202, queued.text
    path = f"/api/sessions/r1/messages/{queued.json()['id']}"
    eventually(lambda: ok(car.api.get(path))["status"] == "sent" or None, 60, "the location")
    assert (
        error(car.api.post(f"{path}/edit", json={"text": "x"}), 409)["code"]
        == "message_not_editable"
    )
    assert (
        error(car.api.post(f"{path}/edit", json={"text": ""}), 422)["code"] == "validation_failed"
    )
    missing = "/api/sessions/r1/messages/msg_nope"
    assert error(car.api.post(f"{missing}/revoke"), 404)["code"] == "message_not_found"
    # The Cloud API has no edit or delete for everyone.
    meta = car.api.post("/api/sessions/m1/messages/msg_nope/revoke")
    assert error(meta, 409)["code"] == "not_supported_by_provider"
    meta = car.api.post("/api/sessions/m1/messages/msg_nope/edit", json={"text": "x"})
    assert error(meta, 409)["code"] == "not_supported_by_provider"


def test_a_meta_session_reacts_through_the_cloud_api(car: Sidecar, graph: GraphStandIn) -> None:
    queued = car.api.post(
        "/api/sessions/m1/messages", json={"to": FRIEND, "type": "text", "text": "hi from meta"}
    )
    assert queued.status_code == 202, queued.text
    path = f"/api/sessions/m1/messages/{queued.json()['id']}"
    sent = eventually(lambda: (r := ok(car.api.get(path)))["status"] == "sent" and r, 60, "sent")
    wamid = sent["provider_message_id"]
    assert ok(car.api.post(f"{path}/reaction", json={"emoji": "🎉"}))["emoji"] == "🎉"
    assert ok(car.api.delete(f"{path}/reaction"))["emoji"] is None
    reactions = [m["body"] for m in graph.sent if m["body"]["type"] == "reaction"]
    assert [(r["to"], r["reaction"]) for r in reactions] == [
        (FRIEND, {"message_id": wamid, "emoji": "🎉"}),
        (FRIEND, {"message_id": wamid, "emoji": ""}),
    ]
    # Meta refusing is 409 with Meta's code, and whether a retry may help.
    graph.fail_next(100)
    refused = error(car.api.post(f"{path}/reaction", json={"emoji": "🔥"}), 409)
    assert refused["code"] == "provider_refused"
    assert refused["details"]["error"].startswith("100") and refused["details"]["kind"] == "request"


def test_a_cloud_api_reaction_comes_as_a_webhook(
    car: Sidecar, graph: GraphStandIn, receiver: Receiver
) -> None:
    queued = car.api.post(
        "/api/sessions/m1/messages", json={"to": FRIEND, "type": "text", "text": "rate us"}
    )
    assert queued.status_code == 202, queued.text
    path = f"/api/sessions/m1/messages/{queued.json()['id']}"
    sent = eventually(lambda: (r := ok(car.api.get(path)))["status"] == "sent" and r, 60, "sent")
    wamid = sent["provider_message_id"]
    for emoji in ("⭐", ""):
        payload = inbound_reaction(META["phone_number_id"], "15550000000", FRIEND, wamid, emoji)
        body = json.dumps(payload).encode()
        posted = httpx.post(
            f"{car.base}/webhooks/meta",
            content=body,
            headers={"Content-Type": "application/json", "X-Hub-Signature-256": sign(body, "s")},
        )
        assert posted.status_code == 200, posted.text

    def both() -> list[dict[str, Any]] | None:
        found = [
            (d["message_id"], d["from"], d["emoji"])
            for d in _session_hooks(receiver, "m1", "message_reaction")
            if d["provider_message_id"] == wamid
        ]
        return found if len(found) == 2 else None

    assert eventually(both, 60, "the Cloud API reactions") == [
        (sent["id"], f"{FRIEND}@c.us", "⭐"),
        (sent["id"], f"{FRIEND}@c.us", None),
    ]
    # A reaction is not a message of its own.
    received_types = [
        d["message"]["type"] for d in _session_hooks(receiver, "m1", "message_received")
    ]
    assert "reaction" not in received_types


def _post_meta(car: Sidecar, payload: dict[str, Any]) -> None:
    body = json.dumps(payload).encode()
    posted = httpx.post(
        f"{car.base}/webhooks/meta",
        content=body,
        headers={"Content-Type": "application/json", "X-Hub-Signature-256": sign(body, "s")},
    )
    assert posted.status_code == 200, posted.text


def test_a_meta_session_marks_a_chat_read_through_the_cloud_api(
    car: Sidecar, graph: GraphStandIn, receiver: Receiver
) -> None:
    reader, other = "5511977770103", "5511977770104"
    chat = f"/api/sessions/m1/chats/{reader}@c.us/read"
    # Nothing received from a chat: nothing to mark, and Graph is not asked.
    assert ok(car.api.post("/api/sessions/m1/chats/5511977770105@c.us/read"))["unread_count"] == 0
    assert graph.read_marks == []
    wamids = [new_wamid(reader), new_wamid(reader), new_wamid(other)]
    for n, (sender, wamid) in enumerate(zip((reader, reader, other), wamids, strict=True)):
        _post_meta(car, inbound_text(META["phone_number_id"], "1555", sender, f"q{n}", wamid=wamid))
    eventually(
        lambda: (
            sorted(
                d["message"]["provider_message_id"]
                for d in _session_hooks(receiver, "m1", "message_received")
                if d["message"]["provider_message_id"] in wamids
            )
            == sorted(wamids)
            or None
        ),
        60,
        "the inbound messages",
    )
    # The chat's newest is marked; Meta marks every earlier one of the chat with it.
    assert ok(car.api.post(chat)) == {"chat_id": f"{reader}@c.us", "unread_count": 0}
    assert graph.read_marks == [
        {"phone_number_id": META["phone_number_id"], "message_id": wamids[1]}
    ]
    graph.fail_next(100)
    refused = error(car.api.post(f"/api/sessions/m1/chats/{other}@c.us/read"), 409)
    assert refused["code"] == "provider_refused"
    assert len(graph.read_marks) == 1
    # A meta session has no QR code, under the same code.
    qr = error(car.api.get("/api/sessions/m1/qr"), 409)
    assert (qr["code"], qr["details"]) == ("not_supported_by_provider", {"provider": "meta"})
    # The rest of the chat surface is the page's alone.
    archived = car.api.post(f"/api/sessions/m1/chats/{reader}@c.us/archive")
    assert error(archived, 409)["code"] == "not_supported_by_provider"


def _session_hooks(receiver: Receiver, session: str, event: str) -> list[dict[str, Any]]:
    return [
        e["data"] for e in receiver.events() if e["event"] == event and e["session_id"] == session
    ]
