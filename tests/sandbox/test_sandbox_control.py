"""The sandbox over plain HTTP: control-API validation, the page's network, SSE, shutdown."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from sandbox.app import create_app
from sandbox.server import serve_in_thread
from tests.support.server import free_port, wait_http

if TYPE_CHECKING:
    from tests.sandbox.conftest import Sandbox

PEER = "4915112345678"


def error_code(response: httpx.Response) -> str:
    """The `error.code` of a JSON error answer (and check its shape on the way)."""
    body = response.json()
    assert set(body) == {"error"}
    assert isinstance(body["error"]["message"], str)
    code: str = body["error"]["code"]
    return code


@pytest.fixture(scope="module")
def shared() -> Iterator[httpx.Client]:
    """One server for the read-only validation tests (a server per case costs 0.2 s)."""
    with serve_in_thread(create_app()) as url, httpx.Client(base_url=url, timeout=10) as client:
        yield client


async def frames(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    """Parse `id:`/`data:` SSE frames into {id, kind, data}."""
    frame_id: str | None = None
    async for line in response.aiter_lines():
        if line.startswith("id: "):
            frame_id = line[4:]
        elif line.startswith("data: "):
            payload = json.loads(line[6:])
            yield {"id": int(frame_id or 0), **payload}


async def next_frame(stream: AsyncIterator[dict[str, Any]]) -> dict[str, Any]:
    """The next frame, or fail after 5 s."""
    return await asyncio.wait_for(anext(stream), timeout=5)


@pytest.mark.parametrize(
    ("path", "raw"),
    [
        ("/control/scan", b"{not json"),
        ("/control/scan", b""),
        ("/control/pairing", b"[1, 2]"),
        ("/control/inbound", b'"text"'),
        ("/control/ack", b"\xff\xfe"),
        ("/net/hello", b"null"),
    ],
)
def test_malformed_bodies_are_400(shared: httpx.Client, path: str, raw: bytes) -> None:
    response = shared.post(path, content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert error_code(response) == "invalid_json"


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [
        ("/control/scan", {}, 422, "validation_error"),
        ("/control/scan", {"qr": "2@abc"}, 422, "validation_error"),
        ("/control/scan", {"qr": "2@abc", "phone": "12ab"}, 422, "validation_error"),
        ("/control/scan", {"qr": 5, "phone": "15550000001"}, 422, "validation_error"),
        ("/control/scan", {"qr": "2@never,k1,k2,k3", "phone": "15550000001"}, 404, "unknown_qr"),
        ("/control/pairing", {}, 422, "validation_error"),
        ("/control/pairing", {"code": "short"}, 422, "validation_error"),
        ("/control/pairing", {"code": "ABCD-EFGH"}, 404, "unknown_code"),
        ("/control/inbound", {"from": PEER, "text": "x"}, 422, "validation_error"),
        ("/control/inbound", {"to": "15550000001", "from": PEER}, 422, "validation_error"),
        ("/control/inbound", {"to": "15550000001", "from": "x", "text": "x"}, 422, None),
        (
            "/control/inbound",
            {"to": "15550000001", "from": PEER, "text": "x"},
            404,
            "unknown_phone",
        ),
        (
            "/control/inbound",
            {"to": "15550000001", "from": PEER, "media": {"mimetype": "image/png", "data": "!!"}},
            422,
            "validation_error",
        ),
        (
            "/control/inbound",
            {"to": "15550000001", "from": PEER, "location": {"lat": 91, "lng": 0}},
            422,
            "validation_error",
        ),
        ("/control/inbound", {"to": "1", "from": PEER, "text": 5}, 422, "validation_error"),
        (
            "/control/inbound",
            {"to": "15550000001", "from": PEER, "system": "revoke"},
            422,
            "validation_error",
        ),
        (
            "/control/inbound",
            {"to": "15550000001", "from": PEER, "system": "call_log", "text": "x"},
            422,
            "validation_error",
        ),
        (
            "/control/inbound",
            {"to": "15550000001", "from": PEER, "system": "e2e_notification", "from_me": True},
            422,
            "validation_error",
        ),
        (
            "/control/inbound",
            {"to": "15550000001", "from": PEER, "text": "x", "ciphertext": "yes"},
            422,
            "validation_error",
        ),
        (
            "/control/inbound",
            {"to": "15550000001", "from": PEER, "text": "x", "reply_to": "3EB0AAAA"},
            404,
            "unknown_phone",
        ),
        ("/control/devices/15550000001/stall", None, 404, "unknown_phone"),
        ("/control/devices/15550000001/fail-sends", None, 404, "unknown_phone"),
        ("/control/devices/15550000001/fail-sends", {"ack": 0}, 422, "validation_error"),
        ("/control/devices/15550000001/fail-sends", {"ack": -8}, 422, "validation_error"),
        ("/control/devices/15550000001/fail-sends", {"result": "OK"}, 422, "validation_error"),
        ("/control/devices/15550000001/fail-sends", {"count": 0}, 422, "validation_error"),
        ("/control/ack", {"message_id": "true_1@c.us_3EB0AAAA", "ack": 9}, 422, None),
        ("/control/ack", {"message_id": "true_1@c.us_3EB0AAAA", "ack": 0}, 422, None),
        ("/control/ack", {"message_id": "true_1@c.us_3EB0AAAA", "ack": -1}, 422, None),
        (
            "/control/ack",
            {"message_id": "true_1@c.us_3EB0AAAA", "ack": 3, "lid": "yes"},
            422,
            "validation_error",
        ),
        ("/control/ack", {"message_id": "true_1@c.us_3EB0AAAA", "ack": True}, 422, None),
        ("/control/ack", {"message_id": "true_1@c.us_3EB0AAAA", "ack": 3}, 404, "unknown_message"),
        ("/control/ack", {"ack": 3}, 422, "validation_error"),
        ("/control/devices/15550000001/disconnect", None, 404, "unknown_phone"),
        ("/control/devices/not-a-phone/logout", None, 422, "validation_error"),
        ("/control/devices/dev_0123456789abcdef0123/reconnect", None, 404, "unknown_device"),
        ("/net/qr", {"device_id": "dev_0123456789abcdef0123"}, 404, "unknown_device"),
        ("/net/send", {"device_id": "x", "token": "y", "to": "1@c.us"}, 401, "not_authenticated"),
        ("/net/logout", {}, 401, "not_authenticated"),
        ("/control/contacts", {}, 422, "validation_error"),
        ("/control/contacts", {"phone": "12ab"}, 422, "validation_error"),
        ("/control/contacts", {"phone": PEER, "exists": "yes"}, 422, "validation_error"),
        ("/control/contacts", {"phone": PEER, "about": 5}, 422, "validation_error"),
        ("/net/contact", {"device_id": "x", "token": "y", "id": "1@c.us"}, 401, None),
        ("/net/blocklist", {"device_id": "x", "token": "y"}, 401, "not_authenticated"),
        ("/net/group", {"device_id": "x", "token": "y", "op": "list"}, 401, "not_authenticated"),
        ("/control/groups", {"creator": PEER}, 422, "validation_error"),
        ("/control/groups", {"creator": "12ab", "subject": "S"}, 422, "validation_error"),
        ("/control/groups", {"creator": PEER, "subject": "x" * 101}, 422, "validation_error"),
        ("/control/groups", {"creator": PEER, "subject": "S", "participants": "no"}, 422, None),
        ("/control/groups/1203630000@g.us/participants", {"by": PEER}, 404, "group_not_found"),
        ("/control/groups/1203630000@g.us/leave", {"phone": PEER}, 404, "group_not_found"),
        ("/control/groups/join", {"phone": PEER, "code": "nope"}, 404, "invalid_invite_code"),
        ("/control/groups/join", {"phone": PEER}, 422, "validation_error"),
    ],
)
def test_bad_control_input_is_a_json_4xx(
    shared: httpx.Client, path: str, body: Any, status: int, code: str | None
) -> None:
    response = shared.post(path, json=body)
    assert response.status_code == status, response.text
    found = error_code(response)
    if code is not None:
        assert found == code


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/control/sent", 422),
        ("GET", "/control/sent?phone=abc", 422),
        ("GET", "/control/qr?device=nope", 404),
        ("GET", "/control/lid", 422),
        ("GET", "/control/lid?phone=12ab", 422),
        ("GET", "/control/blocklist", 422),
        ("GET", "/control/groups/1203630000@g.us", 404),
        ("GET", "/net/events?device=nope", 404),
        ("GET", "/net/media?device=x&token=y&id=3EB0AA", 401),
        ("GET", "/no/such/page", 404),
        ("DELETE", "/control/scan", 405),
    ],
)
def test_bad_reads_are_json_errors(
    shared: httpx.Client, method: str, path: str, status: int
) -> None:
    response = shared.request(method, path)
    assert response.status_code == status
    error_code(response)


async def test_a_device_links_sends_and_resumes_over_plain_http(sandbox: Sandbox) -> None:
    client = sandbox.client
    hello = (await client.post("/net/hello", json={"keys": {"staticKeyPair": "s"}})).json()
    assert hello["status"] == "unpaired"
    assert hello["config"] == {"qr_interval": 20.0, "qr_max_rotations": 5, "main_ready_delay": 0.1}
    device = hello["device_id"]
    ref = (await client.post("/net/qr", json={"device_id": device})).json()["ref"]
    shown = (await client.get("/control/qr", params={"device": device})).json()
    assert shown["ref"] == ref and shown["full_code"] is None  # the page shared only one key

    async with client.stream("GET", "/net/events", params={"device": device}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        stream = frames(response)
        scanned = await client.post("/control/scan", json={"qr": ref, "phone": "15550000020"})
        assert scanned.status_code == 200
        linked = await next_frame(stream)
        assert linked["kind"] == "linked" and linked["id"] == 1
        assert linked["data"]["phone"] == "15550000020" and linked["data"]["via"] == "qr"
        token = linked["data"]["token"]

        inbound = await client.post(
            "/control/inbound", json={"to": "15550000020", "from": PEER, "text": "hey"}
        )
        message = await next_frame(stream)
        assert message["kind"] == "message" and message["id"] == 2
        assert message["data"]["serialized"] == inbound.json()["message_id"]

    send = {"device_id": device, "token": token, "to": f"{PEER}@c.us", "type": "text"}
    forged = await client.post("/net/send", json={**send, "token": "tök€n", "text": "x"})
    assert forged.status_code == 401
    missing_text = await client.post("/net/send", json=send)
    assert missing_text.status_code == 422
    accepted = await client.post("/net/send", json={**send, "text": "hi"})
    assert accepted.status_code == 200, accepted.text
    msg_id = accepted.json()["id"]
    [record] = (await client.get("/control/sent", params={"device": device})).json()["messages"]
    assert record["message_id"] == f"true_{PEER}@c.us_{msg_id}"
    taken = await client.post("/net/send", json={**send, "text": "x", "to": "15550009999@c.us"})
    assert taken.status_code == 200
    clash = await client.post(
        "/net/send", json={**send, "text": "x", "to": "15550009999@c.us", "message_id": msg_id}
    )
    assert clash.status_code == 409 and error_code(clash) == "duplicate_message_id"
    await client.post("/control/ack", json={"message_id": msg_id, "ack": 2})

    # A page that comes back resumes after the last event it handled (EventSource sends
    # Last-Event-ID by itself; a reloaded page passes ?since=).
    resumed = await client.post("/net/hello", json={"device_id": device, "token": token})
    assert resumed.json()["status"] == "authenticated"
    assert resumed.json()["phone"] == "15550000020"
    headers = {"Last-Event-ID": "2"}
    async with client.stream(
        "GET", "/net/events", params={"device": device}, headers=headers
    ) as response:
        ack = await next_frame(frames(response))
    assert ack["id"] == 3 and ack["kind"] == "ack"
    assert ack["data"] == {"ack": 2, "ids": [msg_id], "chat": f"{PEER}@c.us", "from": "15550000020"}

    stale = await client.post("/net/hello", json={"device_id": device, "token": "forged"})
    assert stale.json()["status"] == "logged_out"
    devices = (await client.get("/control/devices")).json()["devices"]
    assert devices[0]["linked"] is False


def test_an_ack_of_zero_or_below_is_refused_because_wa_js_emits_nothing(
    shared: httpx.Client,
) -> None:
    response = shared.post("/control/ack", json={"message_id": "true_1@c.us_3EB0AAAA", "ack": 0})
    assert response.status_code == 422
    assert "wa-js emits no chat.msg_ack_change" in response.json()["error"]["message"]


def test_a_group_refuses_what_its_members_cannot_do(shared: httpx.Client) -> None:
    """The control side plays WhatsApp's rules: admins manage members, members exist."""
    owner, member, nobody = "15557770001", "15557770002", "15557770003"
    shared.post("/control/contacts", json={"phone": member}).raise_for_status()
    shared.post("/control/contacts", json={"phone": nobody, "exists": False}).raise_for_status()
    created = shared.post("/control/groups", json={"creator": owner, "subject": "Rules"})
    assert created.status_code == 200, created.text
    gid = created.json()["id"]
    members = f"/control/groups/{gid}/participants"
    added = shared.post(members, json={"by": owner, "action": "add", "participants": [member]})
    assert added.json() == {"results": {f"{member}@c.us": 200}}
    by_member = {"by": member, "action": "remove", "participants": [owner]}
    assert error_code(shared.post(members, json=by_member)) == "group_you_are_not_admin"
    unknown = {"by": owner, "action": "add", "participants": [nobody]}
    assert error_code(shared.post(members, json=unknown)) == "participant_not_exists"
    bad_action = {"by": owner, "action": "ban", "participants": [member]}
    assert shared.post(members, json=bad_action).status_code == 422
    assert shared.post(f"/control/groups/{gid}/invite", json={"by": member}).status_code == 409
    code = shared.post(f"/control/groups/{gid}/invite", json={"by": owner}).json()["code"]
    assert len(code) == 22 and code.isalnum()
    left = shared.post(f"/control/groups/{gid}/leave", json={"phone": member})
    assert [p["id"] for p in left.json()["participants"]] == [f"{owner}@c.us"]


def test_every_phone_has_one_stable_lid(shared: httpx.Client) -> None:
    first = shared.get("/control/lid", params={"phone": "+49 151 2222 3333"}).json()
    assert first["phone"] == "4915122223333"
    assert re.fullmatch(r"[1-9][0-9]{14}@lid", first["lid"])
    assert shared.get("/control/lid", params={"phone": "4915122223333"}).json() == first
    other = shared.get("/control/lid", params={"phone": "4915122224444"}).json()
    assert other["lid"] != first["lid"]


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    """Poll `check` until it is true; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "the condition never came true"
        await asyncio.sleep(0.01)


async def link_over_http(client: httpx.AsyncClient, phone: str) -> dict[str, str]:
    """Link a device as `phone` with plain HTTP calls; returns {device_id, token}."""
    device = (await client.post("/net/hello", json={})).json()["device_id"]
    ref = (await client.post("/net/qr", json={"device_id": device})).json()["ref"]
    async with client.stream("GET", "/net/events", params={"device": device}) as response:
        stream = frames(response)
        scanned = await client.post("/control/scan", json={"qr": ref, "phone": phone})
        assert scanned.status_code == 200, scanned.text
        linked = await next_frame(stream)
    assert (
        linked["data"]["lid"]
        == (await client.get("/control/lid", params={"phone": phone})).json()["lid"]
    )
    return {"device_id": device, "token": linked["data"]["token"]}


async def test_held_sends_are_answered_in_order_and_recorded_once(sandbox: Sandbox) -> None:
    client = sandbox.client
    auth = await link_over_http(client, "15550000030")
    send = {**auth, "to": f"{PEER}@c.us", "type": "text"}
    stalled = await client.post("/control/devices/15550000030/stall")
    assert stalled.status_code == 200

    async def held() -> int:
        devices = (await client.get("/control/devices")).json()["devices"]
        count: int = devices[0]["held_sends"]
        return count

    async def hold(body: dict[str, Any]) -> asyncio.Task[httpx.Response]:
        # One at a time, so the network sees them in this order.
        before = await held()
        task = asyncio.create_task(client.post("/net/send", json={**send, **body}))

        async def taken() -> bool:
            return await held() > before

        await until(taken)
        return task

    first = await hold({"text": "a", "message_id": "3EB0000000000000000A"})
    # The same id again (a retry), then another message: all wait.
    again = await hold({"text": "a", "message_id": "3EB0000000000000000A"})
    second = await hold({"text": "b"})
    assert not (first.done() or again.done() or second.done())
    assert (await client.get("/control/sent", params={"phone": "15550000030"})).json() == {
        "messages": []
    }

    # A failure armed now applies to the first send the network takes.
    armed = await client.post(
        "/control/devices/15550000030/fail-sends", json={"ack": -2, "result": "ERROR_EXPIRED"}
    )
    assert armed.status_code == 200 and armed.json()["count"] == 1
    await client.post("/control/devices/15550000030/reconnect")
    answers = [(await task).json() for task in (first, again, second)]
    assert answers[0] == answers[1], "the retry gets the first answer"
    assert (answers[0]["ack"], answers[0]["result"]) == (-2, "ERROR_EXPIRED")
    assert (answers[2]["ack"], answers[2]["result"]) == (1, "OK")
    records = (await client.get("/control/sent", params={"phone": "15550000030"})).json()
    assert [(m["text"], m["ack"]) for m in records["messages"]] == [("a", -2), ("b", 1)]
    assert (await held()) == 0


async def test_held_sends_fail_when_the_device_is_unlinked(sandbox: Sandbox) -> None:
    client = sandbox.client
    auth = await link_over_http(client, "15550000031")
    await client.post("/control/devices/15550000031/disconnect")
    task = asyncio.create_task(
        client.post(
            "/net/send", json={**auth, "to": f"{PEER}@c.us", "type": "text", "text": "lost"}
        )
    )

    async def held() -> bool:
        devices = (await client.get("/control/devices")).json()["devices"]
        return bool(devices[0]["held_sends"] >= 1)

    await until(held)
    await client.post("/control/devices/15550000031/logout")
    assert (await task).status_code == 401
    assert (await client.get("/control/sent", params={"device": auth["device_id"]})).json() == {
        "messages": []
    }


def test_open_event_streams_do_not_hold_up_shutdown() -> None:
    app = create_app()
    received: list[str] = []
    stopped_at: list[float] = []

    with serve_in_thread(app) as url:
        device = httpx.post(f"{url}/net/hello", json={}).json()["device_id"]

        def listen() -> None:
            with httpx.stream("GET", f"{url}/net/events?device={device}", timeout=30) as response:
                for line in response.iter_lines():
                    received.append(line)
            stopped_at.append(time.monotonic())

        listeners = [threading.Thread(target=listen, daemon=True) for _ in range(3)]
        for listener in listeners:
            listener.start()
        deadline = time.monotonic() + 5
        while app.state.network.devices[device].streams < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert app.state.network.devices[device].streams == 3
        started = time.monotonic()
    assert time.monotonic() - started < 2.5, "the server waited on its event streams"
    for listener in listeners:
        listener.join(timeout=2)
    assert len(stopped_at) == 3, "the streams ended cleanly"
    assert "retry: 500" in received


def test_python_m_sandbox_serves_and_stops_on_sigterm() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "--port", str(port), "--qr-interval", "5"],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                hello = httpx.post(f"{url}/net/hello", json={}, timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the sandbox did not start"
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                time.sleep(0.1)
        assert hello.json()["config"]["qr_interval"] == 5.0
        assert b"window.WPP" in httpx.get(f"{url}/static/wpp.js").content
        stream = httpx.stream("GET", f"{url}/net/events?device={hello.json()['device_id']}")
        with stream as response:
            next(response.iter_lines())
            started = time.monotonic()
            process.send_signal(signal.SIGTERM)
            # A clean exit 0, not death by the signal uvicorn re-raises: supervisord would
            # report that as a warning on every stop.
            assert process.wait(timeout=5) == 0
            assert time.monotonic() - started < 2.5, "the server waited on its event stream"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stderr:
            process.stderr.close()


def test_create_app_rejects_nonsense_settings() -> None:
    with pytest.raises(ValueError):
        create_app(qr_interval=0)
    with pytest.raises(ValueError):
        create_app(qr_max_rotations=0)


def test_ctrl_c_stops_python_m_sandbox_cleanly() -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/control/devices", proc=process)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=10)
        assert process.returncode == 0
        assert b"Traceback" not in err and b"KeyboardInterrupt" not in err, err.decode()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
