"""Campaigns end to end: one sidecar process on the sandbox (real Chromium) for the module,
fast pacing, and a kill -9 in the middle of a 500-recipient campaign."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from service.campaigns.plan import Window
from service.store import open_store
from service.store.campaigns import CampaignStore
from tests.support.sandbox import Phone, eventually, sandbox_process
from tests.support.sidecar import Sidecar

pytestmark = pytest.mark.browser

ME = "5511999990001"
SESSION = "c1"
BASE = "/api/sessions/c1/campaigns"


@pytest.fixture(scope="module")
def phone() -> Iterator[Phone]:
    with sandbox_process() as p:
        yield p


@pytest.fixture(scope="module")
def car(tmp_path_factory: pytest.TempPathFactory, phone: Phone) -> Iterator[Sidecar]:
    storage = tmp_path_factory.mktemp("campaigns") / "storage"
    sidecar = Sidecar(
        storage,
        WA_WEB_URL=phone.base + "/",
        # Pacing on, fast: the campaign's sends still go through it.
        SIDECAR_PACING="on",
        SIDECAR_PACING_INTERVAL_MS="5",
        SIDECAR_PACING_JITTER_MS="0",
        SIDECAR_PACING_PER_RECIPIENT="1000",
        SIDECAR_CAMPAIGN_PROGRESS_S="1",
    ).start()
    try:
        response = sidecar.api.post(
            "/api/sessions", json={"workspace_id": "acme", "session_id": SESSION}
        )
        assert response.status_code == 201, response.text
        sidecar.wait_status(SESSION, "qr_required")
        qr = sidecar.api.get(f"/api/sessions/{SESSION}/qr").json()["qr"]
        assert phone.scan(qr, ME).status_code == 200
        sidecar.wait_status(SESSION, "connected")
        yield sidecar
    finally:
        sidecar.close()


def number(batch: int, i: int) -> str:
    """A distinct recipient per test (`batch`) and position."""
    return f"55119{batch:02d}{i:06d}"


def create(car: Sidecar, batch: int, count: int, **extra: Any) -> dict[str, Any]:
    body = {
        "name": f"batch {batch}",
        "message": {"type": "text", "text": "Hi {{name}}, offer {{ code }}"},
        "recipients": [
            {"to": number(batch, i), "variables": {"name": f"n{i}", "code": f"b{batch}-{i}"}}
            for i in range(count)
        ],
        "rate": {"per_minute": 6000, "jitter": 0},
        **extra,
    }
    response = car.api.post(BASE, json=body)
    assert response.status_code == 201, response.text
    campaign: dict[str, Any] = response.json()
    return campaign


def get(car: Sidecar, campaign_id: str) -> dict[str, Any]:
    response = car.api.get(f"{BASE}/{campaign_id}")
    assert response.status_code == 200, response.text
    campaign: dict[str, Any] = response.json()
    return campaign


def wait_campaign(car: Sidecar, campaign_id: str, status: str, timeout: float = 120) -> dict:
    def check() -> dict[str, Any] | None:
        campaign = get(car, campaign_id)
        return campaign if campaign["status"] == status else None

    return eventually(check, timeout, f"campaign {campaign_id} to be {status}")


def settled(car: Sidecar, campaign_id: str) -> dict[str, Any]:
    """The campaign once nothing of it is in the queue."""

    def check() -> dict[str, Any] | None:
        campaign = get(car, campaign_id)
        counts = campaign["counts"]
        return campaign if counts["queued"] + counts["sending"] == 0 else None

    return eventually(check, 60, f"campaign {campaign_id} to have nothing in flight")


def sent_texts(phone: Phone, batch: int) -> list[str]:
    """What the phone sent for test `batch`, oldest first."""
    return [m["text"] for m in phone.sent(ME) if f"offer b{batch}-" in (m.get("text") or "")]


def all_recipients(car: Sidecar, campaign_id: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    after = 0
    while True:
        page = car.api.get(
            f"{BASE}/{campaign_id}/recipients", params={"after": str(after), "limit": "200"}
        ).json()
        rows += page["data"]
        if page["next_after"] is None:
            return rows
        after = page["next_after"]


def test_a_campaign_survives_kill_9_and_sends_each_recipient_once(
    car: Sidecar, phone: Phone
) -> None:
    campaign = create(car, 1, 500)
    assert campaign["status"] in ("scheduled", "running")
    assert campaign["total"] == 500
    eventually(lambda: len(sent_texts(phone, 1)) >= 40 or None, 120, "sends to begin")
    car.kill9()
    at_kill = len(sent_texts(phone, 1))
    assert at_kill < 500, "the campaign ended before the kill; nothing was tested"
    car.start()
    done = wait_campaign(car, campaign["id"], "completed", 300)
    texts = sent_texts(phone, 1)
    assert len(texts) == len(set(texts)), "a recipient got the message twice"
    rows = all_recipients(car, campaign["id"])
    assert [r["to"] for r in rows] == [f"{number(1, i)}@c.us" for i in range(500)]
    failed = [r for r in rows if r["status"] == "failed"]
    # At most the one send in flight at the kill is unknown: failed as interrupted.
    assert len(failed) <= 1 and all(r["error"] == "interrupted" for r in failed)
    sent = {f"Hi n{i}, offer b1-{i}" for i, r in enumerate(rows) if r["status"] == "sent"}
    assert sent <= set(texts)
    assert len(texts) - len(sent) <= len(failed)
    assert done["counts"]["sent"] == len(sent) >= 499
    # Order kept across the crash.
    assert texts == sorted(texts, key=lambda t: int(t.rsplit("-", 1)[1]))
    events = car.events(SESSION)
    names = [e["event"] for e in events if e["data"].get("campaign_id") == campaign["id"]]
    assert names.count("campaign_started") == 1
    # SIDECAR_CAMPAIGN_PROGRESS_S=1: progress came while it sent, in between.
    assert "campaign_progress" in names[1:-1]
    assert names[-1] == "campaign_completed"
    completed = [e for e in events if e["event"] == "campaign_completed"][-1]["data"]
    assert completed["status"] == "completed" and completed["total"] == 500


def test_pause_and_resume(car: Sidecar, phone: Phone) -> None:
    campaign = create(car, 2, 40, rate={"per_minute": 600, "jitter": 0.2})
    eventually(lambda: len(sent_texts(phone, 2)) >= 3 or None, 60, "sends to begin")
    paused = car.api.post(f"{BASE}/{campaign['id']}/pause")
    assert paused.status_code == 200, paused.text
    assert paused.json()["status"] == "paused" and paused.json()["reason"] == "requested"
    # (An empty object: the same signed request twice in one second is a replay.)
    again = car.api.post(f"{BASE}/{campaign['id']}/pause", json={})
    assert again.status_code == 409 and again.json()["error"]["code"] == "campaign_state"
    at_pause = settled(car, campaign["id"])
    assert at_pause["counts"]["pending"] > 0
    assert len(sent_texts(phone, 2)) == at_pause["counts"]["sent"]
    event = eventually(
        lambda: (
            [
                e
                for e in car.events(SESSION, "campaign_paused")
                if e["data"]["campaign_id"] == campaign["id"]
            ]
            or None
        ),
        30,
        "campaign_paused",
    )[0]
    assert event["data"]["reason"] == "requested"
    resumed = car.api.post(f"{BASE}/{campaign['id']}/resume")
    assert resumed.status_code == 200 and resumed.json()["status"] == "running"
    wait_campaign(car, campaign["id"], "completed")
    texts = sent_texts(phone, 2)
    assert sorted(texts) == sorted({f"Hi n{i}, offer b2-{i}" for i in range(40)})


def test_cancel_sends_no_more(car: Sidecar, phone: Phone) -> None:
    campaign = create(car, 3, 60, rate={"per_minute": 300, "jitter": 0})
    eventually(lambda: len(sent_texts(phone, 3)) >= 2 or None, 60, "sends to begin")
    response = car.api.post(f"{BASE}/{campaign['id']}/cancel")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "cancelled"
    final = settled(car, campaign["id"])
    assert final["counts"]["cancelled"] > 0
    assert final["counts"]["pending"] == 0
    assert final["estimated_end_at"] is None
    assert len(sent_texts(phone, 3)) == final["counts"]["sent"]
    assert car.api.post(f"{BASE}/{campaign['id']}/resume").status_code == 409
    csv = car.api.get(
        f"{BASE}/{campaign['id']}/recipients",
        params={"status": "cancelled"},
        headers={"Accept": "text/csv"},
    )
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    lines = csv.text.strip().splitlines()
    assert lines[0] == "seq,to,key,status,message_id,provider_message_id,error"
    assert len(lines) - 1 == final["counts"]["cancelled"]
    assert all(",cancelled," in line for line in lines[1:])


def test_a_closed_window_defers_every_send(car: Sidecar, phone: Phone) -> None:
    now = datetime.now(UTC)
    opens, closes = now + timedelta(hours=2), now + timedelta(hours=3)
    window = {"start": opens.strftime("%H:%M"), "end": closes.strftime("%H:%M"), "timezone": "UTC"}
    campaign = create(car, 4, 5, window=window)
    # The runner has looked at it once it is running (campaign_started is written then).
    running = wait_campaign(car, campaign["id"], "running", 30)
    assert running["counts"]["pending"] == 5
    assert running["window"] == window
    started = [
        e
        for e in car.events(SESSION, "campaign_started")
        if e["data"]["campaign_id"] == campaign["id"]
    ]
    assert len(started) == 1
    assert get(car, campaign["id"])["counts"]["pending"] == 5
    assert sent_texts(phone, 4) == []
    assert car.api.post(f"{BASE}/{campaign['id']}/cancel").status_code == 200


def test_a_media_campaign_sends_the_file_to_each_with_its_own_caption(
    car: Sidecar, phone: Phone
) -> None:
    png = base64.b64decode(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
    )
    body = {
        "name": "pictures",
        "message": {
            "type": "image",
            "text": "for {{name}}",
            "media": {"base64": base64.b64encode(png).decode(), "mimetype": "image/png"},
        },
        "recipients": [{"to": number(6, i), "variables": {"name": f"p{i}"}} for i in range(3)],
        "rate": {"per_minute": 6000, "jitter": 0},
    }
    created = car.api.post(BASE, json=body)
    assert created.status_code == 201, created.text
    assert created.json()["message"]["media"] == {
        "mimetype": "image/png",
        "filename": None,
        "size": len(png),
    }
    wait_campaign(car, created.json()["id"], "completed")
    images = [m for m in phone.sent(ME) if m["to"].startswith("5511906")]
    assert [(m["to"], m["caption"]) for m in images] == [
        (f"{number(6, i)}@c.us", f"for p{i}") for i in range(3)
    ]
    assert {m["sha256"] for m in images} == {hashlib.sha256(png).hexdigest()}
    # Each message's copy went with its send, and the campaign's own once it completed.
    out = next(car.storage.glob("sessions/*/c1/media/out"))
    assert list(out.iterdir()) == []


def test_window_wait() -> None:
    tz_window = Window.parse("09:00", "18:00", "America/Sao_Paulo")  # UTC-3
    at = datetime(2026, 12, 1, 11, 30, tzinfo=UTC).timestamp()  # 08:30 there
    assert tz_window.wait(at) == 30 * 60
    assert tz_window.wait(at + 3600) == 0  # 09:30
    evening = datetime(2026, 12, 1, 21, 0, tzinfo=UTC).timestamp()  # 18:00 there
    assert tz_window.wait(evening) == 15 * 3600
    overnight = Window.parse("22:00", "06:00", "UTC")
    assert overnight.wait(datetime(2026, 12, 1, 23, 0, tzinfo=UTC).timestamp()) == 0
    assert overnight.wait(datetime(2026, 12, 1, 5, 59, tzinfo=UTC).timestamp()) == 0
    assert overnight.wait(datetime(2026, 12, 1, 6, 0, tzinfo=UTC).timestamp()) == 16 * 3600


def test_the_stop_rule_pauses_on_failures(car: Sidecar, phone: Phone) -> None:
    assert phone.fail_sends(ME, count=6, ack=-1).status_code == 200
    campaign = create(car, 5, 30, stop_rule={"failure_rate": 0.5, "min_sample": 4})
    paused = wait_campaign(car, campaign["id"], "paused", 60)
    assert paused["reason"].startswith("failure_rate")
    assert paused["counts"]["failed"] >= 3
    assert paused["counts"]["pending"] > 0
    event = [
        e
        for e in car.events(SESSION, "campaign_paused")
        if e["data"]["campaign_id"] == campaign["id"]
    ]
    assert event and event[0]["data"]["reason"] == paused["reason"]
    assert car.api.post(f"{BASE}/{campaign['id']}/cancel").status_code == 200


def test_bad_campaigns_get_a_4xx_naming_the_problem(car: Sidecar) -> None:
    def error(body: dict[str, Any], status: int = 422, path: str = BASE) -> dict[str, Any]:
        response = car.api.post(path, json=body)
        assert response.status_code == status, response.text
        detail: dict[str, Any] = response.json()["error"]
        return detail

    good: dict[str, Any] = {
        "name": "x",
        "message": {"type": "text", "text": "Hi {{name}}"},
        "recipients": [{"to": "5511988880002", "variables": {"name": "Ana"}}],
    }
    missing = error(good | {"recipients": [{"to": "5511988880002"}]})
    assert missing["details"]["field"] == "recipients.0.variables"
    twice = error(
        good
        | {
            "recipients": [
                *good["recipients"],
                {"to": "+55 11 98888-0002", "variables": {"name": "B"}},
            ]
        }
    )
    assert twice["details"]["field"] == "recipients.1.to"
    zone = error(good | {"window": {"start": "09:00", "end": "18:00", "timezone": "Mars/Base"}})
    assert zone["details"]["field"] == "window.timezone"
    hours = error(good | {"window": {"start": "25:00", "end": "18:00", "timezone": "UTC"}})
    assert hours["details"]["field"] == "window.start"
    assert error(good | {"rate": {"per_minute": 0}})["details"]["field"] == "rate.per_minute"
    assert error(good | {"recipients": []})["details"]["field"] == "recipients"
    text = error(good | {"message": {"type": "text"}})
    assert text["details"]["field"] == "message.text"
    template = error(
        good | {"message": {"type": "template", "template": {"name": "t", "language": "en_US"}}}
    )
    assert template["details"]["field"] == "message.type"
    assert error(good, 404, "/api/sessions/nope/campaigns")["code"] == "session_not_found"
    response = car.api.get(f"{BASE}/cmp_missing")
    assert response.status_code == 404 and response.json()["error"]["code"] == "campaign_not_found"
    response = car.api.get(f"{BASE}/cmp_missing/recipients", params={"status": "lost"})
    assert response.status_code == 422
    # Variables stored as JSON: 20 values of 1,024 four-byte characters are too many bytes.
    big = {f"v{i}": "\U0001f600" * 1024 for i in range(20)} | {"name": "Ana"}
    del big["v19"]
    heavy = error(good | {"recipients": [{"to": "5511988880002", "variables": big}]})
    assert heavy["details"]["field"] == "recipients.0.variables"
    assert "bytes" in heavy["message"]
    # A text that the recipient's variables leave blank is refused, naming the recipient.
    blank = error(
        good
        | {
            "message": {"type": "text", "text": "{{name}}"},
            "recipients": [
                *good["recipients"],
                {"to": "5511988880003", "variables": {"name": ""}},
            ],
        }
    )
    assert blank["details"]["field"] == "recipients.1.variables"
    # start_at: RFC 3339 with an offset, within a year.
    for when in ("2026-12-01T09:30:00", "9999-01-01T00:00:00Z", "2000-01-01T00:00:00Z"):
        assert error(good | {"start_at": when})["details"]["field"] == "start_at", when
    listed = car.api.get(BASE)
    assert listed.status_code == 200 and isinstance(listed.json()["data"], list)


def test_deleting_the_session_deletes_its_campaigns(car: Sidecar) -> None:
    """Last in the module: it deletes the module's session."""
    later = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    campaign = create(car, 7, 3, start_at=later)
    assert campaign["status"] == "scheduled"
    assert car.api.delete(f"/api/sessions/{SESSION}").status_code == 204

    async def left() -> list[Any]:
        store = open_store(str(car.storage / "sidecar.sqlite3"))
        await store.open(migrate=False)
        try:
            campaigns = CampaignStore(store)
            rows = await campaigns.recipients(campaign["id"], status=None, after=0, limit=10)
            return [*await campaigns.find(SESSION), *rows]
        finally:
            await store.close()

    eventually(lambda: asyncio.run(left()) == [] or None, 30, "the campaigns to be deleted")
