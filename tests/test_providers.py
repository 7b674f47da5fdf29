"""The provider selector end to end: web sessions, the Cloud API stand-in, failover and back,
and Meta's inbound webhook giving Laravel the same event shapes as a web session."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ENGINES
from tests.support.graph import GraphStandIn, graph_standin, inbound_text, sign, status_update
from tests.support.receivers import Receiver, python_receiver
from tests.support.sandbox import Phone, eventually, sandbox_process
from tests.support.sidecar import Sidecar

PNID, TOKEN, APP_SECRET, VERIFY = "109876543210", "EAAG-test-token", "app-secret-x", "verify-me"
ME, FRIEND = "5511999990001", "5511988880002"
META = {
    "phone_number_id": PNID,
    "access_token": TOKEN,
    "app_secret": APP_SECRET,
    "verify_token": VERIFY,
}


@pytest.fixture
def graph() -> Iterator[GraphStandIn]:
    with graph_standin() as g:
        g.add_number(PNID, TOKEN)
        yield g


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with python_receiver() as r:
        yield r


def start(tmp_path: Path, graph: GraphStandIn, receiver: Receiver, **env: str) -> Sidecar:
    return Sidecar(
        tmp_path / "storage",
        META_GRAPH_URL=graph.base,
        SIDECAR_WEBHOOK_URL=receiver.url,
        SIDECAR_PACING="off",
        SIDECAR_FAILOVER_COOLDOWN="1",
        SIDECAR_WEBHOOK_RETRY_BASE_MS="100",
        **env,
    ).start()


def send(car: Sidecar, session: str, **body: Any) -> dict[str, Any]:
    response = car.api.post(f"/api/sessions/{session}/messages", json=body)
    assert response.status_code == 202, response.text
    record: dict[str, Any] = response.json()
    return record


def settled(car: Sidecar, session: str, message_id: str) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        record: dict[str, Any] = car.api.get(
            f"/api/sessions/{session}/messages/{message_id}"
        ).json()
        return record if record["status"] not in ("queued", "sending") else None

    return eventually(check, 60, f"{message_id} to settle")


def test_meta_mode_needs_no_browser_and_maps_each_error_class(
    tmp_path: Path, graph: GraphStandIn, receiver: Receiver
) -> None:
    car = start(tmp_path, graph, receiver)
    try:
        created = car.api.post(
            "/api/sessions",
            json={
                "workspace_id": "acme",
                "session_id": "c1",
                "provider_mode": "meta",
                "meta": META,
            },
        )
        assert created.status_code == 201, created.text
        car.wait_status("c1", "connected")

        # The Cloud API addresses phone numbers only: no linked ids, no groups.
        for chat in ("190256482017342@lid", "120363000000000001@g.us"):
            refused = car.api.post(
                "/api/sessions/c1/messages", json={"to": chat, "type": "text", "text": "x"}
            )
            assert refused.status_code == 422, refused.text
            assert refused.json()["error"]["details"]["field"] == "to"
        ok = settled(car, "c1", send(car, "c1", to=FRIEND, type="text", text="hi")["id"])
        assert (ok["status"], ok["provider"]) == ("sent", "meta")
        assert ok["provider_message_id"] == graph.sent[-1]["wamid"]
        template = send(
            car,
            "c1",
            to=FRIEND,
            type="template",
            template={"name": "order_update", "language": "pt_BR"},
        )
        assert settled(car, "c1", template["id"])["status"] == "sent"
        assert graph.sent[-1]["body"]["template"]["language"] == {"code": "pt_BR"}

        # Transient: retried, then sent.
        graph.fail_next(131000, 500, count=2)
        assert (
            settled(car, "c1", send(car, "c1", to=FRIEND, type="text", text="t")["id"])["status"]
            == "sent"
        )
        # Recipient-level and request bugs: failed with the Meta code, no second try.
        for code in (131026, 100):
            graph.fail_next(code, 400)
            calls = graph.calls
            failed = settled(
                car, "c1", send(car, "c1", to=FRIEND, type="text", text=str(code))["id"]
            )
            assert failed["status"] == "failed" and failed["error"].startswith(f"{code}:")
            assert graph.calls == calls + 1
        # Provider down: the circuit opens, the message waits, and a probe after the
        # cooldown sends it once Meta is back.
        graph.fail_all(190, 401)
        waiting = send(car, "c1", to=FRIEND, type="text", text="after outage")
        eventually(lambda: graph.calls >= 3, 30, "a few attempts during the outage")
        assert car.api.get(f"/api/sessions/c1/messages/{waiting['id']}").json()["status"] in (
            "queued",
            "sending",
        )
        graph.heal()
        assert settled(car, "c1", waiting["id"])["status"] == "sent"
        assert [s["body"]["text"]["body"] for s in graph.sent if s["body"]["type"] == "text"][
            -1
        ] == ("after outage")
    finally:
        car.close()


@pytest.mark.browser
@pytest.mark.parametrize("engine", ENGINES)
def test_auto_fails_over_to_meta_and_back_and_inbound_has_one_shape(
    tmp_path: Path,
    graph: GraphStandIn,
    receiver: Receiver,
    database: Callable[[str], dict[str, str]],
) -> None:
    with sandbox_process() as phone:
        car = start(tmp_path, graph, receiver, WA_WEB_URL=phone.base + "/", **database("failover"))
        try:
            _auto_flow(car, phone, graph, receiver)
        finally:
            car.close()


def _auto_flow(car: Sidecar, phone: Phone, graph: GraphStandIn, receiver: Receiver) -> None:
    assert (
        car.api.post(
            "/api/sessions",
            json={
                "workspace_id": "acme",
                "session_id": "a1",
                "meta": META,
            },
        ).status_code
        == 201
    )
    car.wait_status("a1", "qr_required")
    phone.scan(car.api.get("/api/sessions/a1/qr").json()["qr"], ME)
    car.wait_status("a1", "connected")

    web = settled(car, "a1", send(car, "a1", to=FRIEND, type="text", text="via web")["id"])
    assert web["provider"] == "webjs"

    phone.device(ME, "disconnect")
    car.wait_status("a1", "disconnected")
    meta = settled(car, "a1", send(car, "a1", to=FRIEND, type="text", text="via meta")["id"])
    assert (meta["status"], meta["provider"]) == ("sent", "meta")
    assert graph.sent[-1]["body"]["text"]["body"] == "via meta"

    phone.device(ME, "reconnect")
    car.wait_status("a1", "connected")
    back = settled(car, "a1", send(car, "a1", to=FRIEND, type="text", text="web again")["id"])
    assert back["provider"] == "webjs"
    assert [s["text"] for s in phone.sent(ME)] == ["via web", "web again"]

    def failovers() -> list[dict[str, Any]]:
        return [e["data"] for e in receiver.events() if e["event"] == "provider_failover"]

    eventually(lambda: len(failovers()) >= 2, 30, "both provider_failover webhooks")
    first, second = failovers()[:2]
    assert (first["from"], first["to"]) == ("webjs", "meta") and "disconnected" in first["reason"]
    assert (second["from"], second["to"], second["reason"]) == ("meta", "webjs", "webjs recovered")

    # Meta reports statuses for what it sent: forward-only, like web acks.
    _meta_post(car, status_update(PNID, "15550000000", meta["provider_message_id"], "read", FRIEND))
    eventually(
        lambda: car.api.get(f"/api/sessions/a1/messages/{meta['id']}").json()["status"] == "read",
        30,
        "the read status",
    )
    _meta_post(
        car, status_update(PNID, "15550000000", meta["provider_message_id"], "delivered", FRIEND)
    )

    # An inbound message from each provider: Laravel gets one shape.
    phone.inbound(to=ME, **{"from": FRIEND}, text="hello from web")
    response = _meta_post(car, inbound_text(PNID, "15550000000", FRIEND, "hello from meta"))
    assert response.status_code == 200, response.text

    def inbound() -> list[dict[str, Any]]:
        return [e["data"]["message"] for e in receiver.events() if e["event"] == "message_received"]

    eventually(lambda: len(inbound()) >= 2, 30, "two message_received webhooks")
    by_provider = {m["provider"]: m for m in inbound()}
    web_in, meta_in = by_provider["webjs"], by_provider["meta"]
    assert set(web_in) == set(meta_in)
    for key in ("direction", "type", "chat_id", "from", "status"):
        assert web_in[key] == meta_in[key], key
    assert (web_in["text"], meta_in["text"]) == ("hello from web", "hello from meta")
    assert meta_in["notify_name"] == "Maria"
    statuses = [
        m["status"] for m in [car.api.get(f"/api/sessions/a1/messages/{meta['id']}").json()]
    ]
    assert statuses == ["read"]  # the late "delivered" did not move it back


def _meta_post(car: Sidecar, payload: dict[str, Any], secret: str = APP_SECRET) -> httpx.Response:
    body = json.dumps(payload).encode()
    return httpx.post(
        f"{car.base}/webhooks/meta",
        content=body,
        headers={
            "Content-Type": "application/json",
            "X-Hub-Signature-256": sign(body, secret),
        },
    )


def test_meta_webhook_handshake_and_forged_signatures(
    tmp_path: Path, graph: GraphStandIn, receiver: Receiver
) -> None:
    car = start(tmp_path, graph, receiver)
    try:
        car.api.post(
            "/api/sessions",
            json={
                "workspace_id": "acme",
                "session_id": "h1",
                "provider_mode": "meta",
                "meta": META,
            },
        )
        hub = {"hub.mode": "subscribe", "hub.verify_token": VERIFY, "hub.challenge": "1158201444"}
        ok = httpx.get(f"{car.base}/webhooks/meta", params=hub)
        assert (ok.status_code, ok.text) == (200, "1158201444")
        for bad in ({**hub, "hub.verify_token": "nope"}, {**hub, "hub.mode": "unsubscribe"}, {}):
            assert httpx.get(f"{car.base}/webhooks/meta", params=bad).status_code == 403

        payload = inbound_text(PNID, "15550000000", FRIEND, "forged")
        assert _meta_post(car, payload, secret="not-the-app-secret").status_code == 401
        unsigned = httpx.post(f"{car.base}/webhooks/meta", content=json.dumps(payload).encode())
        assert unsigned.status_code == 401
        unknown = inbound_text("999", "15550000000", FRIEND, "to nobody")
        assert _meta_post(car, unknown).status_code == 401
        assert httpx.post(f"{car.base}/webhooks/meta", content=b"{").status_code == 400
        assert car.events("h1", "message_received") == []  # nothing stored from any of them

        genuine = inbound_text(PNID, "15550000000", FRIEND, "genuine")
        assert _meta_post(car, genuine).status_code == 200
        assert _meta_post(car, genuine).status_code == 200  # Meta redelivers: stored once
        eventually(lambda: car.events("h1", "message_received"), 30, "the genuine message")
        (event,) = car.events("h1", "message_received")
        assert event["data"]["message"]["text"] == "genuine"
    finally:
        car.close()


def test_a_body_signed_by_one_tenant_cannot_carry_messages_into_another(
    tmp_path: Path, graph: GraphStandIn, receiver: Receiver
) -> None:
    car = start(tmp_path, graph, receiver)
    try:
        tenants = {
            "ta": {**META, "phone_number_id": "111111111111", "app_secret": "secret-a"},
            "tb": {**META, "phone_number_id": "222222222222", "app_secret": "secret-b"},
        }
        for session, meta in tenants.items():
            created = car.api.post(
                "/api/sessions",
                json={
                    "workspace_id": session,
                    "session_id": session,
                    "provider_mode": "meta",
                    "meta": meta,
                },
            )
            assert created.status_code == 201, created.text
        a = inbound_text("111111111111", "15550000001", FRIEND, "to tenant A")
        b = inbound_text("222222222222", "15550000002", FRIEND, "forged into tenant B")
        both = {**a, "entry": a["entry"] + b["entry"]}
        # Signed with A's secret: B's change cannot ride along, so nothing is taken.
        assert _meta_post(car, both, secret="secret-a").status_code == 401
        assert _meta_post(car, b, secret="secret-a").status_code == 401
        # A number nobody owns is ignored (and logged); the rest goes through.
        stranger = inbound_text("999999999999", "15550000009", FRIEND, "to nobody")
        mixed = {**a, "entry": a["entry"] + stranger["entry"]}
        assert _meta_post(car, mixed, secret="secret-a").status_code == 200
        eventually(lambda: car.events("ta", "message_received"), 30, "A's message")
        assert [e["data"]["message"]["text"] for e in car.events("ta", "message_received")] == [
            "to tenant A"
        ]
        assert car.events("tb", "message_received") == []
        assert "999999999999" in car.log.read_text()
    finally:
        car.close()


def test_a_meta_sessions_webhooks_carry_its_metadata_and_only_the_events_it_asked_for(
    tmp_path: Path, graph: GraphStandIn, receiver: Receiver
) -> None:
    car = start(tmp_path, graph, receiver)
    try:
        created = car.api.post(
            "/api/sessions",
            json={
                "workspace_id": "acme",
                "session_id": "k1",
                "provider_mode": "meta",
                "meta": META,
                "metadata": {"account_id": 42, "tags": ["vip"]},
                "webhook_events": ["message_received"],
            },
        )
        assert created.status_code == 201, created.text
        car.wait_status("k1", "connected")
        # A send makes message_status_updated events, which this session does not want.
        assert (
            settled(car, "k1", send(car, "k1", to=FRIEND, type="text", text="hi")["id"])["status"]
            == "sent"
        )
        assert _meta_post(car, inbound_text(PNID, "15550000000", FRIEND, "one")).status_code == 200
        eventually(lambda: receiver.events(), 30, "the first inbound at the receiver")
        patched = car.api.patch("/api/sessions/k1", json={"metadata": {"account_id": 43}})
        assert patched.status_code == 200, patched.text
        assert _meta_post(car, inbound_text(PNID, "15550000000", FRIEND, "two")).status_code == 200
        # One line per session, in order: anything written before "two" arrived before it.
        eventually(lambda: len(receiver.events()) >= 2, 30, "the second inbound")
        got = receiver.events()
        assert [e["event"] for e in got] == ["message_received", "message_received"]
        assert [e["data"]["message"]["text"] for e in got] == ["one", "two"]
        assert [e["metadata"] for e in got] == [
            {"account_id": 42, "tags": ["vip"]},
            {"account_id": 43},
        ]
        # Nothing else was written for it either: the outbox holds what was sent, as sent.
        assert car.events("k1") == got
    finally:
        car.close()
