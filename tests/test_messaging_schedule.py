"""Scheduled sends end to end: `send_at` on real Chromium and the sandbox, cancelling a
message not yet sent, the validation of `send_at`, and a kill -9 while one waits.

One sidecar (and one Chromium session) serves the module; the kill -9 test comes last.
"""

from __future__ import annotations

import base64
import math
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import API_SECRET
from tests.support.sandbox import Phone, eventually, sandbox_process
from tests.support.sidecar import Sidecar
from tests.support.signing import SidecarAuth
from tests.test_messaging import FRIEND, ME, PNG, connect, start_sidecar

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def phone() -> Iterator[Phone]:
    with sandbox_process() as p:
        yield p


@pytest.fixture(scope="module")
def car(tmp_path_factory: pytest.TempPathFactory, phone: Phone) -> Iterator[Sidecar]:
    sidecar = start_sidecar(tmp_path_factory.mktemp("schedule") / "storage", phone)
    try:
        connect(sidecar, phone)
        yield sidecar
    finally:
        sidecar.close()


def rfc3339(ts: float, offset_hours: int = 0) -> str:
    """`ts` as RFC 3339 in the given offset (`+00:00` for 0)."""
    return datetime.fromtimestamp(ts, timezone(timedelta(hours=offset_hours))).isoformat()


def send(car: Sidecar, body: dict[str, Any]) -> httpx.Response:
    return car.api.post("/api/sessions/m1/messages", json={"to": FRIEND, "type": "text", **body})


def record(car: Sidecar, message_id: str) -> dict[str, Any]:
    response = car.api.get(f"/api/sessions/m1/messages/{message_id}")
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


def wait_status(car: Sidecar, message_id: str, status: str) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        current = record(car, message_id)
        return current if current["status"] == status else None

    return eventually(check, 60, f"{message_id} to be {status}")


def at_phone(phone: Phone, text: str) -> dict[str, Any] | None:
    return next((s for s in phone.sent(ME) if s["text"] == text), None)


def test_a_scheduled_message_waits_for_its_time_while_the_queue_moves_on(
    car: Sidecar, phone: Phone
) -> None:
    # Whole seconds, in another offset: the phone's timestamp is whole seconds too.
    send_at = math.ceil(time.time()) + 3
    later = send(
        car, {"text": "at three", "send_at": rfc3339(send_at, -3), "idempotency_key": "s1"}
    )
    assert later.status_code == 202, later.text
    scheduled = later.json()
    assert scheduled["status"] == "scheduled"
    assert scheduled["send_at"] == datetime.fromtimestamp(send_at, UTC).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    # Idempotency is as it was: the same key answers with the first record.
    again = send(car, {"text": "again", "idempotency_key": "s1"})
    assert again.json()["id"] == scheduled["id"] and again.headers["Idempotent-Replayed"] == "true"

    now = send(car, {"text": "right away"})
    wait_status(car, now.json()["id"], "sent")
    seen_at = time.time()
    if seen_at < send_at:  # read before its time (always, unless this machine stalled 3 s)
        assert record(car, scheduled["id"])["status"] == "scheduled"
        assert at_phone(phone, "at three") is None

    sent = wait_status(car, scheduled["id"], "sent")
    assert sent["send_at"] == scheduled["send_at"]
    delivered = at_phone(phone, "at three")
    assert delivered is not None and delivered["timestamp"] >= send_at


def test_cancel_takes_back_a_message_not_yet_sent_and_only_such(car: Sidecar, phone: Phone) -> None:
    soon = time.time() + 2
    doomed = send(car, {"text": "never", "send_at": rfc3339(soon)}).json()
    marker = send(car, {"text": "after never", "send_at": rfc3339(soon + 1)}).json()

    cancelled = car.api.delete(f"/api/sessions/m1/messages/{doomed['id']}")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    assert record(car, doomed["id"])["status"] == "cancelled"

    # Signed a second earlier: the same DELETE in the same second would be a replay.
    again = car.api.delete(
        f"/api/sessions/m1/messages/{doomed['id']}", auth=SidecarAuth(API_SECRET, -1)
    )
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "message_not_cancellable"
    assert again.json()["error"]["details"]["status"] == "cancelled"

    wait_status(car, marker["id"], "sent")
    assert at_phone(phone, "after never") is not None
    assert at_phone(phone, "never") is None
    sent = car.api.delete(f"/api/sessions/m1/messages/{marker['id']}")
    assert sent.status_code == 409
    assert sent.json()["error"]["details"]["status"] == "sent"

    # A scheduled image's file waits in the session directory; cancelling deletes it.
    def outgoing_files() -> set[Path]:
        return set(car.storage.rglob("media/out/*"))

    before = outgoing_files()
    image = {"base64": base64.b64encode(PNG).decode(), "mimetype": "image/png"}
    picture = send(car, {"type": "image", "media": image, "send_at": rfc3339(time.time() + 3600)})
    assert picture.status_code == 202, picture.text
    assert len(outgoing_files() - before) == 1
    dropped = car.api.delete(f"/api/sessions/m1/messages/{picture.json()['id']}")
    assert dropped.json()["status"] == "cancelled", dropped.text
    assert outgoing_files() == before

    missing = car.api.delete("/api/sessions/m1/messages/msg_000000000000000000000000")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "message_not_found"
    statuses = [
        e["data"]["status"]
        for e in car.events("m1", "message_status_updated")
        if e["data"]["message_id"] == doomed["id"]
    ]
    assert statuses == ["cancelled"]


def test_send_at_must_be_an_offset_time_within_the_horizon(car: Sidecar, phone: Phone) -> None:
    def refusal(send_at: object) -> str:
        response = send(car, {"text": "bad time", "send_at": send_at})
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert error["code"] == "validation_failed"
        assert error["details"]["field"] == "send_at"
        message: str = error["message"]
        return message

    now = time.time()
    assert "offset" in refusal("2030-01-01T09:00:00")
    assert "RFC 3339" in refusal("2030-13-01T09:00:00Z")
    assert "RFC 3339" in refusal("tomorrow")
    assert "RFC 3339" in refusal(int(now) + 60)
    assert "past" in refusal(rfc3339(now - 3600))
    assert "days ahead" in refusal(rfc3339(now + 31 * 86_400))
    # Just passed means now: queued, with no send_at.
    just = send(car, {"text": "just passed", "send_at": rfc3339(now - 5)})
    assert just.status_code == 202, just.text
    assert just.json()["status"] in ("queued", "sending", "sent")
    assert "send_at" not in just.json()
    wait_status(car, just.json()["id"], "sent")
    assert at_phone(phone, "bad time") is None


def test_a_scheduled_message_survives_a_kill_9(car: Sidecar, phone: Phone) -> None:
    send_at = math.ceil(time.time()) + 2
    waiting = send(car, {"text": "through a crash", "send_at": rfc3339(send_at)}).json()
    assert waiting["status"] == "scheduled"
    car.kill9()
    car.start()
    sent = wait_status(car, waiting["id"], "sent")
    assert sent["send_at"] == waiting["send_at"]
    texts = [s["text"] for s in phone.sent(ME)]
    assert texts.count("through a crash") == 1
