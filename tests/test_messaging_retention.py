"""Inbound media limits: the size cap (the message arrives, its file is not kept) and the
retention cleanup (files past SIDECAR_MEDIA_RETENTION_DAYS are deleted, their links 410).

The cleanup pass is driven by an injected clock on both store engines; end to end, a
sidecar on the sandbox restarts on a store whose file dates were set back, and its first
pass expires the file.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.messaging.media import media_links
from service.messaging.messenger import Messenger
from service.messaging.pacing import PacingPolicy
from service.messaging.retention import DAY, MediaRetention
from service.store import MessageRecord, NewEvent, SessionRecord, SqlStore
from tests.support.graph import GraphStandIn, graph_standin, sign
from tests.support.sandbox import Phone, eventually, sandbox_process
from tests.support.sidecar import Sidecar
from tests.support.stores import Opener, opened_stores

ME, FRIEND = "5511999990001", "5511988880002"
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
CAP = 1000
BIG = b"%PDF-1.4\n" + b"0" * (CAP + 1)
NOW = 1_800_000_000.0


# --- the cleanup pass, on both engines ---------------------------------------------------


@pytest.fixture
async def stores(db_url: str) -> AsyncIterator[Opener]:
    async for opener in opened_stores(db_url):
        yield opener


async def _inbound(store: SqlStore, root: Path, message_id: str, stored_at: float | None) -> Path:
    """An inbound image as messaging records it: a file under media/in when kept."""
    path = root / "w" / "s" / "media" / "in" / f"{message_id}.png"
    media: dict[str, Any] = {"mimetype": "image/png", "filename": None, "size": len(PNG)}
    if stored_at is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(PNG)
        media["file"] = f"media/in/{message_id}.png"
    else:
        media |= {"file": None, "reason": "too_large"}
    record = MessageRecord(
        id=message_id, session_id="s", workspace_id="w", direction="in", chat_id="1@c.us",
        type="image", content=json.dumps({"text": "pic", "media": media}), status="received",
        provider_ref=f"R-{message_id}", media_stored_at=stored_at,
    )  # fmt: skip
    await store.record_inbound(record, NewEvent("message_received", {}))
    return path


async def test_files_past_the_retention_are_deleted_and_their_messages_say_so(
    stores: Opener, tmp_path: Path
) -> None:
    store = await stores()
    root = tmp_path / "sessions"
    await store.create_session(SessionRecord(session_id="s", workspace_id="w"))
    old = await _inbound(store, root, "old", NOW - 31 * DAY)
    fresh = await _inbound(store, root, "fresh", NOW - 29 * DAY)
    await _inbound(store, root, "refused", None)
    clock = [NOW]
    retention = MediaRetention(store, root, 30, clock=lambda: clock[0])

    assert await retention.run_once() == 1
    assert not old.exists() and fresh.read_bytes() == PNG
    record = await store.get_message("old")
    assert record is not None and record.media_stored_at is None
    content = json.loads(record.content)
    assert content["text"] == "pic"  # the message itself stays
    assert content["media"] == {
        "mimetype": "image/png", "filename": None, "size": len(PNG), "file": None,
        "reason": "expired",
    }  # fmt: skip
    refused = await store.get_message("refused")
    assert refused is not None and json.loads(refused.content)["media"]["reason"] == "too_large"
    assert await retention.run_once() == 0  # nothing twice

    clock[0] += 2 * DAY
    assert await retention.run_once() == 1
    assert not fresh.exists()


async def test_a_file_that_will_not_delete_stays_recorded_for_the_next_pass(
    stores: Opener, tmp_path: Path
) -> None:
    store = await stores()
    root = tmp_path / "sessions"
    await store.create_session(SessionRecord(session_id="s", workspace_id="w"))
    path = await _inbound(store, root, "held", NOW - 40 * DAY)
    path.unlink()
    path.mkdir()  # unlink() of a directory fails: the record must not say the file is gone
    retention = MediaRetention(store, root, 30, clock=lambda: NOW)
    assert await retention.run_once() == 0
    record = await store.get_message("held")
    assert record is not None and record.media_stored_at == NOW - 40 * DAY
    path.rmdir()  # (a file already gone counts as deleted)
    assert await retention.run_once() == 1


async def test_retention_zero_keeps_everything(stores: Opener, tmp_path: Path) -> None:
    store = await stores()
    root = tmp_path / "sessions"
    await store.create_session(SessionRecord(session_id="s", workspace_id="w"))
    path = await _inbound(store, root, "ancient", 1.0)
    assert await MediaRetention(store, root, 0, clock=lambda: NOW).run_once() == 0
    assert path.exists()


@pytest.mark.parametrize(
    ("media", "stored", "reason"),
    [
        ({"file": "media/in/x.png"}, True, None),
        ({"file": None, "reason": "too_large"}, False, "too_large"),
        ({"file": None, "reason": "expired"}, False, "expired"),
        # Records written before `reason` existed said it in `error`.
        ({"file": None, "error": "download failed"}, False, "unavailable"),
        ({"file": None, "error": "could not be saved"}, False, "not_saved"),
        ({"file": None, "reason": "made up"}, False, "unavailable"),
    ],
)
def test_the_message_record_says_whether_its_media_is_kept_and_why(
    media: dict[str, Any], stored: bool, reason: str | None
) -> None:
    messenger = Messenger(
        None,  # type: ignore[arg-type]  # views read nothing
        None,  # type: ignore[arg-type]
        Path("/nonexistent"),
        fetcher=None,  # type: ignore[arg-type]
        links=media_links("k", "http://x"),
        pacing=PacingPolicy.off(),
        max_media_bytes=1,
    )
    content = {"media": {"mimetype": "image/png", "size": 3} | media}
    record = MessageRecord(
        id="msg_1", session_id="s", workspace_id="w", direction="in", chat_id="1@c.us",
        type="image", content=json.dumps(content), status="received",
    )  # fmt: skip
    view = messenger.view(record).json_dict()["media"]
    assert (view["stored"], view["reason"], view["url"] is not None) == (stored, reason, stored)
    outbound = dataclasses.replace(record, direction="out", status="queued")
    assert "stored" not in messenger.view(outbound).json_dict()["media"]


# --- end to end on the sandbox: the cap, then the cleanup ----------------------------------


@pytest.fixture
def phone() -> Iterator[Phone]:
    with sandbox_process() as p:
        yield p


def _received(car: Sidecar, count: int) -> list[dict[str, Any]]:
    def messages() -> list[dict[str, Any]] | None:
        found = [e["data"]["message"] for e in car.events("m1", "message_received")]
        return found if len(found) >= count else None

    return eventually(messages, 60, f"{count} message_received events")


@pytest.mark.browser
def test_inbound_media_past_the_cap_is_not_kept_and_expired_media_answers_410(
    tmp_path: Path, phone: Phone
) -> None:
    storage = tmp_path / "storage"
    env = {
        "WA_WEB_URL": phone.base + "/",
        "SIDECAR_PACING": "off",
        "SIDECAR_INBOUND_MEDIA_MAX_BYTES": str(CAP),
        "SIDECAR_MEDIA_RETENTION_DAYS": "7",
    }
    car = Sidecar(storage, **env).start()
    try:
        created = car.api.post("/api/sessions", json={"workspace_id": "acme", "session_id": "m1"})
        assert created.status_code == 201, created.text
        car.wait_status("m1", "qr_required")
        assert phone.scan(car.api.get("/api/sessions/m1/qr").json()["qr"], ME).status_code == 200
        car.wait_status("m1", "connected")

        small = {"mimetype": "image/png", "data": base64.b64encode(PNG).decode()}
        big = {
            "mimetype": "application/pdf",
            "data": base64.b64encode(BIG).decode(),
            "filename": "report.pdf",
            "caption": "the report",
        }
        assert phone.inbound(to=ME, **{"from": FRIEND}, media=small).status_code == 200
        assert phone.inbound(to=ME, **{"from": FRIEND}, media=big).status_code == 200
        image, document = _received(car, 2)

        assert image["media"]["stored"] is True and image["media"]["reason"] is None
        assert httpx.get(image["media"]["url"]).content == PNG
        # Too large: not downloaded, yet the message and what WhatsApp said of it arrive.
        assert (document["type"], document["text"]) == ("document", "the report")
        assert document["media"] == {
            "mimetype": "application/pdf", "filename": "report.pdf", "size": len(BIG),
            "url": None, "stored": False, "reason": "too_large",
        }  # fmt: skip
        media_in = storage / "sessions" / "acme" / "m1" / "media" / "in"
        assert [p.name for p in media_in.iterdir()] == [f"{image['id']}.png"]
        assert car.terminate() == 0

        # Eight days pass for the stored file.
        with sqlite3.connect(storage / "sidecar.sqlite3") as db:
            db.execute(
                "UPDATE wa_messages SET media_stored_at = ? WHERE id = ?",
                (time.time() - 8 * DAY, image["id"]),
            )
        car.start()  # the first pass runs at start

        def expired() -> dict[str, Any] | None:
            record: dict[str, Any] = car.api.get(f"/api/sessions/m1/messages/{image['id']}").json()
            return record if record["media"]["stored"] is False else None

        record = eventually(expired, 60, "the image to expire")
        assert record["media"] == {
            "mimetype": "image/png", "filename": None, "size": len(PNG), "url": None,
            "stored": False, "reason": "expired",
        }  # fmt: skip
        assert list(media_in.iterdir()) == []
        gone = httpx.get(image["media"]["url"])  # the link handed out before
        assert gone.status_code == 410
        assert gone.json()["error"]["code"] == "media_expired"
    finally:
        car.close()


# --- the Cloud API: Meta's file_size decides before a byte is fetched ----------------------


PNID, TOKEN, APP_SECRET = "109876543210", "EAAG-test-token", "app-secret-x"


@pytest.fixture
def graph() -> Iterator[GraphStandIn]:
    with graph_standin() as g:
        g.add_number(PNID, TOKEN)
        yield g


def test_cloud_api_media_past_the_cap_is_not_downloaded(
    tmp_path: Path, graph: GraphStandIn
) -> None:
    car = Sidecar(
        tmp_path / "storage",
        META_GRAPH_URL=graph.base,
        SIDECAR_INBOUND_MEDIA_MAX_BYTES=str(CAP),
    ).start()
    try:
        meta = {"phone_number_id": PNID, "access_token": TOKEN, "app_secret": APP_SECRET,
                "verify_token": "verify-me"}  # fmt: skip
        session = {"workspace_id": "acme", "session_id": "m1", "provider_mode": "meta"}
        created = car.api.post("/api/sessions", json=session | {"meta": meta})
        assert created.status_code == 201, created.text
        for data, caption in ((PNG, "small"), (BIG, "big")):
            body = json.dumps(
                graph.inbound_image(PNID, "15550000000", FRIEND, data, "image/png", caption)
            ).encode()
            answer = httpx.post(
                f"{car.base}/webhooks/meta",
                content=body,
                headers={"Content-Type": "application/json",
                         "X-Hub-Signature-256": sign(body, APP_SECRET)},
            )  # fmt: skip
            assert answer.status_code == 200, answer.text
        small, big = _received(car, 2)
        assert (small["text"], small["media"]["stored"]) == ("small", True)
        assert httpx.get(small["media"]["url"]).content == PNG
        assert big["text"] == "big"
        assert (big["media"]["stored"], big["media"]["reason"], big["media"]["size"]) == (
            False,
            "too_large",
            len(BIG),
        )
        assert len(graph.downloads) == 1  # the big one was never fetched
    finally:
        car.close()
