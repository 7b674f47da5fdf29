"""Messaging end to end: real Chromium on the sandbox, the durable queue, inbound and acks."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.conftest import ENGINES
from tests.support.sandbox import Phone, eventually, sandbox_process
from tests.support.server import serve_app
from tests.support.sidecar import Sidecar

pytestmark = pytest.mark.browser

ME = "5511999990001"
FRIEND = "5511988880002"
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
PDF = b"%PDF-1.4\n" + b"0" * 5000 + b"\n%%EOF\n"


def media_app() -> Starlette:
    """A local file host for media URLs: one file, one too large, one that never answers."""

    async def document(request: Request) -> Response:
        return Response(PDF, media_type="application/pdf")

    async def huge(request: Request) -> Response:
        return Response(b"x" * (2 * 1024 * 1024), media_type="video/mp4")

    async def slow(request: Request) -> Response:
        await asyncio.sleep(30)
        return Response(b"late")

    async def missing(request: Request) -> Response:
        return Response(b"gone", status_code=404)

    return Starlette(
        routes=[
            Route("/doc.pdf", document),
            Route("/huge.mp4", huge),
            Route("/slow", slow),
            Route("/missing", missing),
        ]
    )


@pytest.fixture
def phone() -> Iterator[Phone]:
    with sandbox_process() as p:
        yield p


@pytest.fixture
def files() -> Iterator[str]:
    with serve_app(media_app()) as base:
        yield base


def start_sidecar(storage: Path, phone: Phone, **env: str) -> Sidecar:
    settings = {
        "WA_WEB_URL": phone.base + "/",
        "SIDECAR_PACING": "off",
        "SIDECAR_MEDIA_MAX_BYTES": str(1024 * 1024),
        "SIDECAR_MEDIA_FETCH_TIMEOUT": "2",
        # The media file host below lives on 127.0.0.1, which is not public.
        "SIDECAR_FETCH_ALLOW": "127.0.0.1",
        **env,
    }
    return Sidecar(storage, **settings).start()


def connect(car: Sidecar, phone: Phone, session_id: str = "m1") -> None:
    response = car.api.post(
        "/api/sessions", json={"workspace_id": "acme", "session_id": session_id}
    )
    assert response.status_code == 201, response.text
    car.wait_status(session_id, "qr_required")
    qr = car.api.get(f"/api/sessions/{session_id}/qr").json()["qr"]
    assert phone.scan(qr, ME).status_code == 200
    car.wait_status(session_id, "connected")


@pytest.fixture
def car(tmp_path: Path, phone: Phone) -> Iterator[Sidecar]:
    sidecar = start_sidecar(tmp_path / "storage", phone)
    try:
        connect(sidecar, phone)
        yield sidecar
    finally:
        sidecar.close()


def send(car: Sidecar, body: dict[str, Any], **kwargs: Any) -> httpx.Response:
    return car.api.post("/api/sessions/m1/messages", json=body, **kwargs)


def wait_message(car: Sidecar, message_id: str, status: str) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        record: dict[str, Any] = car.api.get(f"/api/sessions/m1/messages/{message_id}").json()
        return record if record["status"] == status else None

    return eventually(check, 60, f"{message_id} to be {status}")


def test_text_and_every_media_type_reach_the_phone(car: Sidecar, phone: Phone, files: str) -> None:
    bodies = [
        {"to": f"+{FRIEND}", "type": "text", "text": "Olá, tudo bem? ✓"},
        {
            "to": FRIEND,
            "type": "image",
            "text": "a pixel",
            "media": {"base64": base64.b64encode(PNG).decode(), "mimetype": "image/png"},
        },
        {
            "to": f"{FRIEND}@c.us",
            "type": "document",
            "media": {"url": f"{files}/doc.pdf", "filename": "invoice-42.pdf"},
        },
        {
            "to": FRIEND,
            "type": "audio",
            "media": {
                "base64": base64.b64encode(b"OggS" + b"\0" * 300).decode(),
                "mimetype": "audio/ogg",
            },
        },
        {
            "to": FRIEND,
            "type": "video",
            "text": "clip",
            "media": {
                "base64": base64.b64encode(b"\0\0\0\x18ftypmp42" + b"\1" * 800).decode(),
                "mimetype": "video/mp4",
                "filename": "clip.mp4",
            },
        },
        {
            "to": FRIEND,
            "type": "location",
            "location": {
                "latitude": -22.95201,
                "longitude": -43.2102601,
                "name": "Cristo Redentor",
            },
        },
    ]
    ids = []
    for body in bodies:
        response = send(car, body)
        assert response.status_code == 202, response.text
        record = response.json()
        assert record["status"] in ("queued", "sending", "sent")
        ids.append(record["id"])
    records = [wait_message(car, i, "sent") for i in ids]
    assert all(r["provider"] == "webjs" and r["provider_message_id"] for r in records)

    sent = phone.sent(ME)
    assert [s["type"] for s in sent] == ["text", "image", "document", "audio", "video", "location"]
    assert {s["to"] for s in sent} == {f"{FRIEND}@c.us"}
    assert [s["message_id"] for s in sent] == [r["provider_message_id"] for r in records]
    text, image, document, audio, video, location = sent
    assert text["text"] == "Olá, tudo bem? ✓"
    assert (image["caption"], image["mimetype"], image["size"]) == (
        "a pixel",
        "image/png",
        len(PNG),
    )
    assert image["sha256"] == hashlib.sha256(PNG).hexdigest()
    assert (document["filename"], document["mimetype"]) == ("invoice-42.pdf", "application/pdf")
    assert document["sha256"] == hashlib.sha256(PDF).hexdigest()
    assert audio["mimetype"] == "audio/ogg"
    assert (video["caption"], video["filename"]) == ("clip", "clip.mp4")
    assert (location["lat"], location["lng"], location["name"]) == (
        -22.95201,
        -43.2102601,
        "Cristo Redentor",
    )


def test_idempotency_key_sends_once(car: Sidecar, phone: Phone) -> None:
    body = {"to": FRIEND, "type": "text", "text": "only once", "idempotency_key": "order-77"}
    first = send(car, body)
    again = send(car, {**body, "text": "only once, really"})
    by_header = send(
        car, {"to": FRIEND, "type": "text", "text": "x"}, headers={"Idempotency-Key": "order-77"}
    )
    assert first.status_code == again.status_code == by_header.status_code == 202
    assert first.json()["id"] == again.json()["id"] == by_header.json()["id"]
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["Idempotent-Replayed"] == "true"
    wait_message(car, first.json()["id"], "sent")
    assert [s["text"] for s in phone.sent(ME)] == ["only once"]
    # A retry whose first answer was lost still gets the first record, even once the
    # session can no longer send.
    car.api.post("/api/sessions/m1/stop")
    car.wait_status("m1", "stopped")
    late = send(car, {**body, "text": "retry after the answer was lost"})
    assert late.status_code == 202 and late.json()["id"] == first.json()["id"]
    assert late.json()["status"] == "sent"


def test_two_hundred_messages_arrive_in_order(car: Sidecar, phone: Phone) -> None:
    for i in range(200):
        response = send(
            car, {"to": FRIEND, "type": "text", "text": f"n{i}", "idempotency_key": f"o{i}"}
        )
        assert response.status_code == 202
    eventually(lambda: len(phone.sent(ME)) >= 200, 120, "200 messages at the phone")
    assert [s["text"] for s in phone.sent(ME)] == [f"n{i}" for i in range(200)]


def test_inbound_message_and_media_become_outbox_rows(car: Sidecar, phone: Phone) -> None:
    assert phone.inbound(to=ME, **{"from": FRIEND}, text="hello sidecar").status_code == 200
    assert (
        phone.inbound(
            to=ME,
            **{"from": FRIEND},
            media={
                "mimetype": "image/png",
                "data": base64.b64encode(PNG).decode(),
                "caption": "pic",
            },
        ).status_code
        == 200
    )
    events = eventually(lambda: car.events("m1", "message_received")[1:], 60, "two inbound")
    text, image = (e["data"]["message"] for e in car.events("m1", "message_received"))
    assert (text["direction"], text["type"], text["text"]) == ("in", "text", "hello sidecar")
    assert text["from"] == f"{FRIEND}@c.us" and text["chat_id"] == f"{FRIEND}@c.us"
    assert text["provider"] == "webjs" and text["provider_message_id"].startswith("false_")
    assert events
    assert (image["type"], image["text"], image["media"]["mimetype"]) == (
        "image",
        "pic",
        "image/png",
    )
    download = httpx.get(image["media"]["url"])  # signed link, no API signature
    assert download.status_code == 200 and download.content == PNG
    assert httpx.get(image["media"]["url"] + "x").status_code == 404
    stored = car.api.get(f"/api/sessions/m1/messages/{text['id']}").json()
    assert stored["status"] == "received"


def test_acks_move_status_forward_only(car: Sidecar, phone: Phone) -> None:
    record = send(car, {"to": FRIEND, "type": "text", "text": "ack me"}).json()
    provider_id = wait_message(car, record["id"], "sent")["provider_message_id"]
    for ack in (3, 2, 1, 3):  # read first, then late and repeated ones
        assert phone.ack(provider_id, ack).status_code == 200
    assert phone.ack(provider_id, 4).status_code == 200
    wait_message(car, record["id"], "played")

    def statuses() -> list[str]:
        return [
            e["data"]["status"]
            for e in car.events("m1", "message_status_updated")
            if e["data"]["message_id"] == record["id"]
        ]

    eventually(lambda: statuses()[-1:] == ["played"], 30, "the played event")
    assert statuses() == ["sent", "read", "played"]


def test_bad_inputs_get_a_4xx_naming_the_problem(car: Sidecar, phone: Phone, files: str) -> None:
    def error(response: httpx.Response, status: int) -> dict[str, Any]:
        assert response.status_code == status, response.text
        body: dict[str, Any] = response.json()["error"]
        return body

    unknown = car.api.post(
        "/api/sessions/nope/messages", json={"to": FRIEND, "type": "text", "text": "x"}
    )
    assert error(unknown, 404)["code"] == "session_not_found"
    assert (
        error(send(car, {"to": "12ab", "type": "text", "text": "x"}), 422)["details"]["field"]
        == "to"
    )
    assert (
        error(send(car, {"to": FRIEND, "type": "text", "text": ""}), 422)["details"]["field"]
        == "text"
    )
    too_big = {
        "base64": base64.b64encode(b"x" * (1024 * 1024 + 1)).decode(),
        "mimetype": "image/png",
    }
    assert error(send(car, {"to": FRIEND, "type": "image", "media": too_big}), 413)["code"] == (
        "media_too_large"
    )
    huge_url = {"url": f"{files}/huge.mp4"}
    assert error(send(car, {"to": FRIEND, "type": "video", "media": huge_url}), 413)["code"] == (
        "media_too_large"
    )
    for url in ("ftp://127.0.0.1/x.png", "file:///etc/passwd"):
        body = {"to": FRIEND, "type": "image", "media": {"url": url}}
        assert error(send(car, body), 422)["details"]["field"] == "media.url"
    for path in ("/slow", "/missing"):
        body = {"to": FRIEND, "type": "document", "media": {"url": f"{files}{path}"}}
        assert error(send(car, body), 422)["details"]["field"] == "media.url"
    closed_port = {"url": "http://127.0.0.1:9/x.pdf"}
    body = {"to": FRIEND, "type": "document", "media": closed_port}
    assert "could not be fetched" in error(send(car, body), 422)["message"]

    assert car.api.post("/api/sessions/m1/stop").status_code == 202
    car.wait_status("m1", "stopped")
    not_connected = error(send(car, {"to": FRIEND, "type": "text", "text": "x"}), 409)
    assert not_connected["code"] == "session_not_connected"
    assert not_connected["details"] == {"status": "stopped"}
    assert phone.sent(ME) == []


@pytest.mark.parametrize("engine", ENGINES)
def test_kill_9_with_a_full_queue_loses_nothing_and_sends_nothing_twice(
    tmp_path: Path, phone: Phone, database: Callable[[str], dict[str, str]]
) -> None:
    storage = tmp_path / "storage"
    # Pacing on with a short interval keeps most of the queue waiting when the kill lands.
    car = start_sidecar(
        storage,
        phone,
        SIDECAR_PACING="on",
        SIDECAR_PACING_INTERVAL_MS="40",
        SIDECAR_PACING_JITTER_MS="0",
        SIDECAR_PACING_PER_RECIPIENT="1000",
        **database("kill_full_queue"),
    )
    try:
        connect(car, phone)
        ids = []
        for i in range(100):
            response = send(
                car, {"to": FRIEND, "type": "text", "text": f"q{i}", "idempotency_key": f"q{i}"}
            )
            assert response.status_code == 202
            ids.append(response.json()["id"])
        car.kill9()
        sent_at_kill = len(phone.sent(ME))
        assert sent_at_kill < 100, "the queue drained before the kill; nothing was tested"
        car.start()
        records = eventually(
            lambda: (
                (rs := [car.api.get(f"/api/sessions/m1/messages/{i}").json() for i in ids])
                and all(r["status"] in ("sent", "failed") for r in rs)
                and rs
            ),
            120,
            "every message to be settled",
        )
    finally:
        car.close()
    texts = [s["text"] for s in phone.sent(ME)]
    assert len(texts) == len(set(texts)), "a message was sent twice"
    failed = [r for r in records if r["status"] == "failed"]
    assert len(failed) <= 1
    assert all(r["error"] == "interrupted" for r in failed)
    sent = {r["text"] for r in records if r["status"] == "sent"}
    # Everything marked sent is at the phone; the interrupted one may or may not be.
    assert sent <= set(texts)
    assert len(texts) - len(sent) <= len(failed)
    # And the order held across the crash.
    assert texts == sorted(texts, key=lambda t: int(t[1:]))


def metric(text: str, name: str, **labels: str) -> float | None:
    """The value of the sample `name` whose labels include `labels` (the `node` label, and
    any other not named, are ignored); None when there is none."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                return float(sample.value)
    return None


def test_metrics_ready_and_logs_tell_the_truth_without_bodies(car: Sidecar, phone: Phone) -> None:
    secret_text = "the body of a private message 4242"
    record = send(car, {"to": FRIEND, "type": "text", "text": secret_text}).json()
    wait_message(car, record["id"], "sent")
    phone.inbound(to=ME, **{"from": FRIEND}, text="another private body 9191")
    eventually(lambda: car.events("m1", "message_received"), 30, "the inbound message")

    ready = httpx.get(f"{car.base}/ready")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"store": True, "chromium": True}

    def scrape() -> str | None:
        body = httpx.get(f"{car.base}/metrics").text
        return body if metric(body, "wa_messages_received_total", provider="webjs") else None

    text = eventually(scrape, 30, "the inbound message in /metrics")
    assert metric(text, "wa_sessions", status="connected") == 1.0
    assert metric(text, "wa_messages_total", provider="webjs", status="sent") == 1.0
    assert metric(text, "wa_send_seconds_count", provider="webjs") == 1.0
    assert "wa_webhook_queue_depth" in text and "wa_webhook_oldest_pending_seconds" in text
    # No URL configured here: the events wait in the outbox rather than die.
    depth = metric(text, "wa_webhook_queue_depth")
    assert depth is not None and depth >= 1
    assert not metric(text, "wa_webhook_deliveries_total", result="dead")

    log = car.log.read_text()
    assert secret_text not in log and "another private body" not in log
    lines = [json.loads(line) for line in log.splitlines() if line.strip()]
    assert lines and all({"ts", "level", "logger", "msg"} <= set(line) for line in lines)
    assert any(line["logger"] == "uvicorn.access" for line in lines)
