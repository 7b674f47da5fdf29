"""Calls and polls end to end. The sandbox phone rings the session's account, the page's
wa-js emits `call.incoming_call`, the sidecar records `call_received`, and a signed API call
(or the session's `call_policy`) rejects the call through wa-js `call.reject`. A poll goes
out through the send queue and `WPP.chat.sendCreatePollMessage`; votes come back through
`chat.poll_response` as `poll_vote`. One linked session for the whole module."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.sandbox import Phone, eventually, sandbox_process
from tests.support.sidecar import Sidecar

pytestmark = pytest.mark.browser

ME = "5511999990001"
CALLER = "5511988880002"
OTHER = "5511988880003"
META = {"phone_number_id": "109876543210", "access_token": "EAAG-test", "app_secret": "s"}


@pytest.fixture(scope="module")
def phone() -> Iterator[Phone]:
    with sandbox_process() as p:
        yield p


@pytest.fixture(scope="module")
def car(tmp_path_factory: pytest.TempPathFactory, phone: Phone) -> Iterator[Sidecar]:
    """A sidecar on the sandbox with session k1 linked as ME."""
    sidecar = Sidecar(
        tmp_path_factory.mktemp("calls") / "storage", WA_WEB_URL=phone.base + "/"
    ).start()
    try:
        created = sidecar.api.post(
            "/api/sessions", json={"workspace_id": "acme", "session_id": "k1"}
        )
        assert created.status_code == 201, created.text
        assert created.json()["call_policy"] is None
        sidecar.wait_status("k1", "qr_required")
        qr = sidecar.api.get("/api/sessions/k1/qr").json()["qr"]
        assert phone.scan(qr, ME).status_code == 200
        sidecar.wait_status("k1", "connected")
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


def received(car: Sidecar, call_id: str) -> dict[str, Any]:
    """The `call_received` data of one call, once the sidecar recorded it."""

    def find() -> dict[str, Any] | None:
        for event in car.events("k1", "call_received"):
            if event["data"]["call_id"] == call_id:
                data: dict[str, Any] = event["data"]
                return data
        return None

    return eventually(find, 30, f"call_received for {call_id}")


def state(phone: Phone, call_id: str) -> str:
    return str(next(c["state"] for c in phone.calls(ME) if c["id"] == call_id))


def test_a_call_is_reported_and_rejected_through_the_api(car: Sidecar, phone: Phone) -> None:
    call = phone.call(ME, CALLER, video=True)
    data = received(car, call["id"])
    assert data["from"] == f"{CALLER}@c.us"
    assert (data["is_video"], data["is_group"], data["rejected"]) == (True, False, False)
    assert data["offered_at"].endswith("Z")
    # No policy: it keeps ringing until someone decides.
    assert state(phone, call["id"]) == "ringing"

    answer = ok(car.api.post(f"/api/sessions/k1/calls/{call['id']}/reject"))
    assert answer == {"call_id": call["id"], "rejected": True}
    assert state(phone, call["id"]) == "rejected"
    # A call that no longer rings, or one this session never saw: wa-js's own codes.
    again = error(car.api.post(f"/api/sessions/k1/calls/{call['id']}/reject", json={}), 409)
    assert (again["code"], again["details"]) == (
        "page_refused",
        {"wa_code": "call_is_not_incoming_ring"},
    )
    unknown = error(car.api.post("/api/sessions/k1/calls/ABCDEF0123/reject"), 409)
    assert unknown["details"] == {"wa_code": "call_not_found"}


def test_a_caller_named_by_its_lid_is_reported_as_such(car: Sidecar, phone: Phone) -> None:
    call = phone.call(ME, OTHER, lid=True, group=True)
    data = received(car, call["id"])
    assert (data["from"], data["is_group"], data["is_video"]) == (phone.lid(OTHER), True, False)
    ok(car.api.post(f"/api/sessions/k1/calls/{call['id']}/reject"))


def test_the_call_policy_rejects_and_answers_through_the_send_path(
    car: Sidecar, phone: Phone
) -> None:
    policy = {"reject": True, "message": "We cannot take calls here; please write."}
    patched = ok(car.api.patch("/api/sessions/k1", json={"call_policy": policy}))
    assert patched["call_policy"] == policy
    try:
        call = phone.call(ME, CALLER)
        data = received(car, call["id"])
        assert data["rejected"] is True
        assert state(phone, call["id"]) == "rejected"

        # The reply is an ordinary queued send: the network got it, and its statuses are
        # webhooks like any other message's.
        def replied() -> list[dict[str, Any]]:
            return [
                m
                for m in phone.sent(ME)
                if m.get("text") == policy["message"] and m["to"] == f"{CALLER}@c.us"
            ]

        assert len(eventually(replied, 30, "the reply to the caller")) == 1

        def sent_status() -> list[dict[str, Any]]:
            return [
                e["data"]
                for e in car.events("k1", "message_status_updated")
                if e["data"]["status"] == "sent"
            ]

        statuses = eventually(sent_status, 30, "the reply's sent status")
        message = ok(car.api.get(f"/api/sessions/k1/messages/{statuses[-1]['message_id']}"))
        assert (message["type"], message["text"], message["to"]) == (
            "text",
            policy["message"],
            f"{CALLER}@c.us",
        )
    finally:
        cleared = ok(car.api.patch("/api/sessions/k1", json={"call_policy": None}))
        assert cleared["call_policy"] is None
    assert car.session("k1")["call_policy"] is None


def test_bad_input_is_refused_before_the_page(car: Sidecar) -> None:
    for policy, field in (
        ({"reject": False, "message": "hi"}, "call_policy.message"),
        ({"reject": True, "message": "x" * 1025}, "call_policy.message"),
        ({"reject": True, "message": ""}, "call_policy.message"),
        ({"reject": "yes"}, "call_policy.reject"),
        ({"message": "hi"}, "call_policy.reject"),
        ({"reject": True, "extra": 1}, "call_policy.extra"),
    ):
        refused = error(car.api.patch("/api/sessions/k1", json={"call_policy": policy}), 422)
        assert refused["details"]["field"] == field, refused
    assert car.session("k1")["call_policy"] is None
    created = car.api.post(
        "/api/sessions",
        json={"workspace_id": "acme", "session_id": "k2", "start": False, "call_policy": {}},
    )
    assert error(created, 422)["details"]["field"] == "call_policy.reject"
    for call_id in ("not%20an%20id", "x" * 65, "a.b"):
        refused = error(car.api.post(f"/api/sessions/k1/calls/{call_id}/reject"), 422)
        assert refused["details"]["field"] == "call_id"
    extra = car.api.post("/api/sessions/k1/calls/ABCDEF/reject", json={"reason": "busy"})
    assert error(extra, 422)["details"]["field"] == "reason"


def test_a_session_without_a_page_answers_409(car: Sidecar) -> None:
    meta = car.api.post(
        "/api/sessions",
        json={
            "workspace_id": "acme",
            "session_id": "cloud",
            "provider_mode": "meta",
            "meta": META,
            "start": False,
            "call_policy": {"reject": True},
        },
    )
    assert meta.status_code == 201, meta.text
    assert meta.json()["call_policy"] == {"reject": True, "message": None}
    refused = error(car.api.post("/api/sessions/cloud/calls/ABCDEF/reject"), 409)
    assert (refused["code"], refused["details"]) == (
        "not_supported_by_provider",
        {"provider": "meta"},
    )


POLL = {"name": "Lunch?", "options": ["pizza", "sushi", "salad"], "selectable_count": 1}


def sent_poll(car: Sidecar, body: dict[str, Any]) -> dict[str, Any]:
    """Queue a poll to CALLER and wait until WhatsApp took it; its message record."""
    queued = car.api.post(
        "/api/sessions/k1/messages", json={"to": CALLER, "type": "poll", "poll": body}
    )
    assert queued.status_code == 202, queued.text
    message_id = queued.json()["id"]

    def sent() -> dict[str, Any] | None:
        record = ok(car.api.get(f"/api/sessions/k1/messages/{message_id}"))
        return record if record["status"] == "sent" else None

    return eventually(sent, 30, f"{message_id} to be sent")


def votes(car: Sidecar, message_id: str) -> list[dict[str, Any]]:
    return [
        e["data"] for e in car.events("k1", "poll_vote") if e["data"]["message_id"] == message_id
    ]


def test_a_poll_goes_out_and_its_votes_come_back(car: Sidecar, phone: Phone) -> None:
    message = sent_poll(car, POLL)
    assert (message["type"], message["text"]) == ("poll", None)
    assert message["poll"] == POLL
    on_network = [m for m in phone.sent(ME) if m["message_id"] == message["provider_message_id"]]
    assert len(on_network) == 1
    assert (on_network[0]["type"], on_network[0]["name"]) == ("poll_creation", "Lunch?")
    assert on_network[0]["poll_options"] == POLL["options"]
    assert on_network[0]["selectable_count"] == 1

    phone.vote(message["provider_message_id"], CALLER, [1])
    first = eventually(lambda: votes(car, message["id"]), 30, "the vote")
    assert first == [
        {
            "message_id": message["id"],
            "provider_message_id": message["provider_message_id"],
            "chat_id": f"{CALLER}@c.us",
            "voter": f"{CALLER}@c.us",
            "selected": [{"index": 1, "name": "sushi"}],
            "voted_at": first[0]["voted_at"],
        }
    ]
    assert first[0]["voted_at"].endswith("Z")
    # A voter named by its LID, and a vote withdrawn: an empty choice.
    phone.vote(message["provider_message_id"], OTHER, [2], lid=True)
    phone.vote(message["provider_message_id"], CALLER, [])

    def both_later() -> list[dict[str, Any]] | None:
        # Both of them: a slice that holds only the first would pass a bare truth test.
        found = votes(car, message["id"])[1:3]
        return found if len(found) == 2 else None

    later = eventually(both_later, 30, "two more votes")
    assert [(v["voter"], v["selected"]) for v in later] == [
        (phone.lid(OTHER), [{"index": 2, "name": "salad"}]),
        (f"{CALLER}@c.us", []),
    ]


def test_a_poll_for_any_number_of_options(car: Sidecar, phone: Phone) -> None:
    message = sent_poll(car, {"name": "Which days?", "options": ["mon", "tue", "wed"]})
    assert message["poll"]["selectable_count"] == 0
    phone.vote(message["provider_message_id"], CALLER, [2, 0])
    vote = eventually(lambda: votes(car, message["id"]), 30, "the vote")[0]
    assert vote["selected"] == [{"index": 0, "name": "mon"}, {"index": 2, "name": "wed"}]


def test_a_bad_poll_is_refused_and_nothing_is_sent(car: Sidecar, phone: Phone) -> None:
    def send(body: dict[str, Any]) -> Any:
        return car.api.post("/api/sessions/k1/messages", json={"to": CALLER, **body})

    for body, field in (
        ({"type": "poll"}, "poll"),
        ({"type": "poll", "poll": {"name": "q", "options": ["a"]}}, "poll.options"),
        ({"type": "poll", "poll": {"name": "q", "options": ["o"] * 13}}, "poll.options"),
        ({"type": "poll", "poll": {"name": "q", "options": ["a", " a "]}}, "poll.options"),
        ({"type": "poll", "poll": {"name": "q", "options": ["a", "b" * 101]}}, "poll.options.1"),
        ({"type": "poll", "poll": {"name": "", "options": ["a", "b"]}}, "poll.name"),
        ({"type": "poll", "poll": {"name": " ", "options": ["a", "b"]}}, "poll.name"),
        (
            {"type": "poll", "poll": {"name": "q", "options": ["a", "b"], "selectable_count": 3}},
            "poll.selectable_count",
        ),
        (
            {"type": "poll", "poll": {"name": "q", "options": ["a", "b"], "selectable_count": "1"}},
            "poll.selectable_count",
        ),
        ({"type": "poll", "text": "hi", "poll": {"name": "q", "options": ["a", "b"]}}, "text"),
        ({"type": "text", "text": "hi", "poll": {"name": "q", "options": ["a", "b"]}}, "poll"),
    ):
        refused = error(send(body), 422)
        assert refused["details"]["field"] == field, (body, refused)
    assert all(m.get("name") != "q" for m in phone.sent(ME))


def test_a_meta_session_sends_no_polls(car: Sidecar) -> None:
    created = car.api.post(
        "/api/sessions",
        json={
            "workspace_id": "acme",
            "session_id": "cloud-polls",
            "provider_mode": "meta",
            "meta": META,
            "start": False,
        },
    )
    assert created.status_code == 201, created.text
    poll = {"to": CALLER, "type": "poll", "poll": POLL}
    refused = error(car.api.post("/api/sessions/cloud-polls/messages", json=poll), 409)
    assert (refused["code"], refused["details"]) == (
        "not_supported_by_provider",
        {"provider": "meta"},
    )
