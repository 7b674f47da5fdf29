"""The sidecar against WhatsApp Web as wa-js really behaves (the sandbox follows wa-js 4.6.0).

Each test is one behaviour the real site has and the first version of the bridge got wrong:
the connection events, undecrypted messages, replies, `@lid` chats, failed sends, sends that
stay pending while offline, and how wa-js gets into the page.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from tests.support.graph import GraphStandIn, graph_standin
from tests.support.receivers import Receiver, python_receiver
from tests.support.sandbox import Phone, eventually, sandbox_process
from tests.support.server import serve_app
from tests.support.sidecar import Sidecar

pytestmark = pytest.mark.browser

ME, FRIEND = "5511999990001", "5511988880002"
PNID, TOKEN = "109876543210", "EAAG-test-token"
META = {"phone_number_id": PNID, "access_token": TOKEN, "app_secret": "s", "verify_token": "v"}


@pytest.fixture
def phone() -> Iterator[Phone]:
    with sandbox_process() as p:
        yield p


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with python_receiver() as r:
        yield r


def start(tmp_path: Path, phone: Phone, receiver: Receiver, **env: str) -> Sidecar:
    return Sidecar(
        tmp_path / "storage",
        WA_WEB_URL=phone.base + "/",
        SIDECAR_WEBHOOK_URL=receiver.url,
        SIDECAR_PACING="off",
        SIDECAR_WEBHOOK_RETRY_BASE_MS="100",
        **env,
    ).start()


@pytest.fixture
def car(tmp_path: Path, phone: Phone, receiver: Receiver) -> Iterator[Sidecar]:
    """A sidecar on the sandbox with session f1 linked as ME."""
    sidecar = start(tmp_path, phone, receiver)
    try:
        link(sidecar, phone)
        yield sidecar
    finally:
        sidecar.close()


def link(car: Sidecar, phone: Phone, session: str = "f1", **extra: Any) -> None:
    body = {"workspace_id": "acme", "session_id": session, **extra}
    assert car.api.post("/api/sessions", json=body).status_code == 201
    car.wait_status(session, "qr_required")
    assert (
        phone.scan(car.api.get(f"/api/sessions/{session}/qr").json()["qr"], ME).status_code == 200
    )
    car.wait_status(session, "connected")


def send(car: Sidecar, **body: Any) -> dict[str, Any]:
    response = car.api.post("/api/sessions/f1/messages", json=body)
    assert response.status_code == 202, response.text
    record: dict[str, Any] = response.json()
    return record


def message(car: Sidecar, message_id: str) -> dict[str, Any]:
    record: dict[str, Any] = car.api.get(f"/api/sessions/f1/messages/{message_id}").json()
    return record


def settled(car: Sidecar, message_id: str) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        record = message(car, message_id)
        return record if record["status"] not in ("queued", "sending") else None

    return eventually(check, 60, f"{message_id} to settle")


def statuses(receiver: Receiver, session: str = "f1") -> list[str]:
    return [
        e["data"]["status"]
        for e in receiver.events()
        if e["event"] == "session_status_changed" and e["session_id"] == session
    ]


def received(receiver: Receiver) -> list[dict[str, Any]]:
    return [e["data"]["message"] for e in receiver.events() if e["event"] == "message_received"]


def test_qr_then_authenticating_then_connected_and_a_restart_comes_back_connected(
    tmp_path: Path, phone: Phone, receiver: Receiver
) -> None:
    car = start(tmp_path, phone, receiver)
    try:
        link(car, phone)
        eventually(lambda: "connected" in statuses(receiver), 30, "the connected webhook")
        # wa-js fires conn.main_ready on the QR screen already: that must not count as
        # connected. The scan is followed by authenticating, then connected.
        assert statuses(receiver) == ["initializing", "qr_required", "authenticating", "connected"]
        assert car.session("f1")["phone_number"] == ME

        car.terminate()
        receiver.requests.clear()
        car.start()
        car.wait_status("f1", "connected")
        eventually(lambda: "connected" in statuses(receiver), 30, "connected after the restart")
        # A restored session never sees conn.authenticated, and shows no QR.
        assert statuses(receiver) == ["initializing", "connected"]
    finally:
        car.close()


def test_an_undecrypted_message_arrives_once_with_its_text(
    car: Sidecar, phone: Phone, receiver: Receiver
) -> None:
    answer = phone.inbound(to=ME, **{"from": FRIEND}, text="sealed words", ciphertext=True)
    assert answer.status_code == 200, answer.text
    eventually(lambda: received(receiver), 30, "the message")
    # Anything the first (ciphertext) copy produced would be there before this one.
    phone.inbound(to=ME, **{"from": FRIEND}, text="marker")
    eventually(lambda: len(received(receiver)) >= 2, 30, "the marker")
    assert [m["text"] for m in received(receiver)] == ["sealed words", "marker"]


def test_own_and_system_messages_are_not_message_received(
    car: Sidecar, phone: Phone, receiver: Receiver
) -> None:
    phone.inbound(to=ME, **{"from": FRIEND}, text="typed on the phone", from_me=True)
    for kind in ("e2e_notification", "notification_template", "gp2", "call_log", "protocol"):
        assert phone.inbound(to=ME, **{"from": FRIEND}, system=kind).status_code == 200
    record = send(car, to=FRIEND, type="text", text="from the API")
    assert settled(car, record["id"])["status"] == "sent"
    phone.inbound(to=ME, **{"from": FRIEND}, text="a real one")
    eventually(lambda: received(receiver), 30, "the real message")
    assert [m["text"] for m in received(receiver)] == ["a real one"]


def test_a_reply_to_a_lid_chat_round_trips(car: Sidecar, phone: Phone, receiver: Receiver) -> None:
    lid = phone.lid(FRIEND)
    phone.inbound(to=ME, **{"from": FRIEND}, text="from a linked id", lid=True)
    (inbound,) = eventually(lambda: received(receiver), 30, "the @lid message")
    assert (inbound["chat_id"], inbound["from"], inbound["from_phone"]) == (lid, lid, FRIEND)

    # Answer in the @lid chat, quoting the message by our id.
    reply = send(car, to=inbound["chat_id"], type="text", text="got it", reply_to=inbound["id"])
    sent = settled(car, reply["id"])
    assert sent["status"] == "sent" and sent["reply_to"] == inbound["id"]
    (at_phone,) = phone.sent(ME)
    assert (at_phone["to"], at_phone["to_phone"], at_phone["text"]) == (lid, FRIEND, "got it")
    assert at_phone["quoted"] == inbound["provider_message_id"].split("_")[2]

    # The friend answers our reply: the webhook names our message.
    phone.inbound(to=ME, **{"from": FRIEND}, text="thanks", reply_to=at_phone["message_id"])
    eventually(lambda: len(received(receiver)) >= 2, 30, "the answer")
    assert received(receiver)[1]["reply_to"] == reply["id"]

    # A provider id works as reply_to too; an unknown message id is refused up front.
    by_provider = send(
        car, to=FRIEND, type="text", text="again", reply_to=inbound["provider_message_id"]
    )
    assert settled(car, by_provider["id"])["status"] == "sent"
    assert phone.sent(ME)[-1]["quoted"] == at_phone["quoted"]
    unknown = car.api.post(
        "/api/sessions/f1/messages",
        json={"to": FRIEND, "type": "text", "text": "x", "reply_to": "msg_000000000000"},
    )
    assert unknown.status_code == 422 and unknown.json()["error"]["details"]["field"] == (
        "reply_to"
    )


def test_a_send_whatsapp_does_not_accept_fails_with_the_ack(
    car: Sidecar, phone: Phone, receiver: Receiver
) -> None:
    assert phone.fail_sends(ME, count=1, ack=-1).status_code == 200
    failed = settled(car, send(car, to=FRIEND, type="text", text="refused")["id"])
    assert failed["status"] == "failed" and failed["error"].startswith("FAILED")
    ok = settled(car, send(car, to=FRIEND, type="text", text="accepted")["id"])
    assert ok["status"] == "sent"


def test_offline_fails_over_only_what_was_never_handed_and_sends_nothing_twice(
    tmp_path: Path, phone: Phone, receiver: Receiver
) -> None:
    with graph_standin() as graph:
        graph.add_number(PNID, TOKEN)
        car = start(
            tmp_path,
            phone,
            receiver,
            META_GRAPH_URL=graph.base,
            SIDECAR_SEND_HANDOFF_TIMEOUT="1",
            SIDECAR_FAILOVER_COOLDOWN="1",
        )
        try:
            _offline_flow(car, phone, graph)
        finally:
            car.close()


def _offline_flow(car: Sidecar, phone: Phone, graph: GraphStandIn) -> None:
    link(car, phone, meta=META)
    # The network stops answering while the page still believes it is online: this send is
    # handed to wa-js and stays pending there, as on a real flaky connection.
    assert phone.device(ME, "stall").status_code == 200
    held = send(car, to=FRIEND, type="text", text="held by WhatsApp Web")
    eventually(
        lambda: message(car, held["id"])["provider"] == "webjs", 30, "the send to be handed over"
    )
    assert message(car, held["id"])["status"] == "sending"

    phone.device(ME, "disconnect")
    car.wait_status("f1", "disconnected")
    # Not handed to the page: the Cloud API takes it.
    rerouted = settled(car, send(car, to=FRIEND, type="text", text="through Meta")["id"])
    assert (rerouted["status"], rerouted["provider"]) == ("sent", "meta")
    assert message(car, held["id"])["status"] == "sending"  # still WhatsApp Web's

    phone.device(ME, "reconnect")
    car.wait_status("f1", "connected")
    done = settled(car, held["id"])
    assert (done["status"], done["provider"]) == ("sent", "webjs")
    assert [s["text"] for s in phone.sent(ME)] == ["held by WhatsApp Web"]
    assert [s["body"]["text"]["body"] for s in graph.sent] == ["through Meta"]


def test_a_pending_send_whose_device_is_unlinked_ends_interrupted(
    tmp_path: Path, phone: Phone, receiver: Receiver
) -> None:
    car = start(tmp_path, phone, receiver, SIDECAR_SEND_HANDOFF_TIMEOUT="1")
    try:
        link(car, phone)
        assert phone.device(ME, "stall").status_code == 200
        held = send(car, to=FRIEND, type="text", text="never confirmed")
        eventually(
            lambda: message(car, held["id"])["provider_message_id"], 30, "the send handed over"
        )
        assert message(car, held["id"])["status"] == "sending"
        # The phone unlinks the device: wa-js would wait forever; the message must not.
        assert phone.device(ME, "logout").status_code == 200
        car.wait_status("f1", "qr_required")
        done = settled(car, held["id"])
        # Whichever comes first: the logout (nobody can tell: "interrupted") or the page's
        # own rejection of the send.
        assert done["status"] == "failed" and done["error"], done
        assert phone.sent(ME) == []
    finally:
        car.close()


BLANK = "<!doctype html><html><head><title>not WhatsApp</title></head><body>empty</body></html>"


@pytest.fixture
def blank_site() -> Iterator[str]:
    async def page(request: Request) -> HTMLResponse:
        return HTMLResponse(BLANK)

    with serve_app(Starlette(routes=[Route("/", page)])) as base:
        yield base


@pytest.mark.parametrize(
    ("wa_js", "expected"),
    [
        (None, "wa-js is injected but WhatsApp's own loader never appeared"),
        ("/nonexistent/wppconnect-wa.js", "window.WPP never appeared"),
    ],
)
def test_a_page_that_never_loads_whatsapp_ends_in_a_clear_error(
    tmp_path: Path, receiver: Receiver, blank_site: str, wa_js: str | None, expected: str
) -> None:
    env = {"WA_WEB_URL": blank_site + "/", "WA_LOAD_TIMEOUT": "2"}
    if wa_js is not None:
        env["WA_JS_PATH"] = wa_js
    car = Sidecar(tmp_path / "storage", SIDECAR_WEBHOOK_URL=receiver.url, **env).start()
    try:
        created = car.api.post("/api/sessions", json={"workspace_id": "acme", "session_id": "x"})
        assert created.status_code == 201
        record = eventually(lambda: (r := car.session("x"))["last_error"] and r, 60, "a last_error")
        assert expected in record["last_error"]
        assert record["status"] in ("initializing", "failed")
    finally:
        car.close()


async def test_the_bundle_is_injected_before_the_page_with_our_config(
    tmp_path: Path, blank_site: str
) -> None:
    from playwright.async_api import async_playwright

    from service.browser.bridge import WaJsConfig, init_script
    from service.browser.flags import chromium_args
    from service.settings import Settings
    from tests.support.server import ROOT

    bundle = str(ROOT / Settings().wa_js_path)
    script = init_script(bundle, WaJsConfig(link_preview_servers=("https://previews.example",)))
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path="/usr/bin/chromium", args=chromium_args()
        )
        try:
            page = await browser.new_page()
            await page.add_init_script(script)
            # What a page script sees first: wa-js is there before the page's own code runs.
            await page.route(
                blank_site + "/",
                lambda route: route.fulfill(
                    content_type="text/html",
                    body="<script>window.__seen = typeof window.WPP</script>" + BLANK,
                ),
            )
            await page.goto(blank_site + "/")
            seen = await page.evaluate(
                """() => ({
                    first: window.__seen,
                    version: WPP.version,
                    ready: WPP.isReady,
                    analyticsOff: WPP.config.disableGoogleAnalytics,
                    previews: WPP.config.linkPreviewApiServers,
                    device: WPP.config.deviceName,
                    bridge: typeof window.__waSidecar,
                })"""
            )
        finally:
            await browser.close()
    assert seen == {
        "first": "object",
        "version": "4.6.0",
        "ready": False,  # waiting for WhatsApp's loader, which this page never has
        "analyticsOff": True,
        "previews": ["https://previews.example"],
        "device": "wa-sidecar",
        "bridge": "object",
    }
    assert httpx.get(blank_site + "/").status_code == 200
