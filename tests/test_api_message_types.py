"""Mentions, link previews, voice notes and stickers end to end. A signed send goes through
the queue and the page's wa-js (`sendTextMessage` with `mentionedList` and `linkPreview`,
`sendFileMessage` with `type: 'audio', isPtt: true` or `type: 'sticker'`); the sandbox
network records what arrived. One linked session for the whole module; the Cloud API side
runs against the Graph API stand-in."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.meta import MetaConfig, MetaEngine
from service.store import MessageRecord, SessionRecord
from tests.support.graph import graph_standin
from tests.support.sandbox import Phone, eventually, sandbox_process
from tests.support.sidecar import Sidecar

pytestmark = pytest.mark.browser

ME = "5511999990001"
FRIEND = "5511988880002"
OTHER = "5511988880003"
META = {"phone_number_id": "109876543210", "access_token": "EAAG-test", "app_secret": "s"}
OGG = base64.b64encode(b"OggS\x00\x02voice-note-bytes").decode()
WEBP = base64.b64encode(b"RIFF\x10\x00\x00\x00WEBPVP8 sticker").decode()
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n caption-photo").decode()


@pytest.fixture(scope="module")
def phone() -> Iterator[Phone]:
    with sandbox_process() as p:
        yield p


@pytest.fixture(scope="module")
def car(tmp_path_factory: pytest.TempPathFactory, phone: Phone) -> Iterator[Sidecar]:
    """A sidecar on the sandbox with session t1 linked as ME; previews through a server
    the operator named (the sandbox fetches none)."""
    sidecar = Sidecar(
        tmp_path_factory.mktemp("types") / "storage",
        WA_WEB_URL=phone.base + "/",
        WA_LINK_PREVIEW_SERVERS="http://127.0.0.1:9/",
    ).start()
    try:
        created = sidecar.api.post(
            "/api/sessions", json={"workspace_id": "acme", "session_id": "t1"}
        )
        assert created.status_code == 201, created.text
        sidecar.wait_status("t1", "qr_required")
        qr = sidecar.api.get("/api/sessions/t1/qr").json()["qr"]
        assert phone.scan(qr, ME).status_code == 200
        sidecar.wait_status("t1", "connected")
        yield sidecar
    finally:
        sidecar.close()


def sent(car: Sidecar, phone: Phone, body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Queue a message to FRIEND, wait until WhatsApp took it: its record, and what the
    network got."""
    queued = car.api.post("/api/sessions/t1/messages", json={"to": FRIEND, **body})
    assert queued.status_code == 202, queued.text
    message_id = queued.json()["id"]

    def done() -> dict[str, Any] | None:
        record: dict[str, Any] = car.api.get(f"/api/sessions/t1/messages/{message_id}").json()
        assert record["status"] != "failed", record
        return record if record["status"] == "sent" else None

    record = eventually(done, 30, f"{message_id} to be sent")
    arrived = [m for m in phone.sent(ME) if m["message_id"] == record["provider_message_id"]]
    assert len(arrived) == 1
    return record, arrived[0]


def refused(car: Sidecar, body: dict[str, Any], status: int = 422) -> dict[str, Any]:
    answer = car.api.post("/api/sessions/t1/messages", json={"to": FRIEND, **body})
    assert answer.status_code == status, answer.text
    error: dict[str, Any] = answer.json()["error"]
    return error


def test_a_text_mentions_users_by_number_and_lid(car: Sidecar, phone: Phone) -> None:
    lid = phone.lid(OTHER)
    record, arrived = sent(
        car,
        phone,
        {
            "type": "text",
            "text": f"hi @{FRIEND} and @{lid.split('@')[0]}",
            # a number and its @c.us form name one user: mentioned once.
            "mentions": [f"+{FRIEND}", f"{FRIEND}@c.us", lid],
        },
    )
    assert record["mentions"] == [f"{FRIEND}@c.us", lid]
    assert arrived["mentioned"] == [f"{FRIEND}@c.us", lid]
    assert arrived["text"].startswith("hi @")
    # Without mentions the record has none, and wa-js got no mentionedList.
    plain, plain_arrived = sent(car, phone, {"type": "text", "text": "no one"})
    assert "mentions" not in plain and plain_arrived["mentioned"] == []
    # A caption mentions the same way (wa-js's sendFileMessage reads mentionedList too).
    photo, photo_arrived = sent(
        car,
        phone,
        {
            "type": "image",
            "media": {"base64": PNG, "mimetype": "image/png"},
            "text": f"look @{FRIEND}",
            "mentions": [FRIEND],
        },
    )
    assert photo["mentions"] == [f"{FRIEND}@c.us"]
    assert (photo_arrived["type"], photo_arrived["mentioned"]) == ("image", [f"{FRIEND}@c.us"])


def test_link_previews_follow_the_request(car: Sidecar, phone: Phone) -> None:
    _, default = sent(car, phone, {"type": "text", "text": "see https://example.org"})
    assert default["link_preview"] is True  # WA_LINK_PREVIEW_SERVERS is set
    _, off = sent(
        car, phone, {"type": "text", "text": "see https://example.org", "link_preview": False}
    )
    assert off["link_preview"] is False


def test_voice_notes_and_stickers_are_their_own_types(car: Sidecar, phone: Phone) -> None:
    voice, voice_arrived = sent(
        car,
        phone,
        {"type": "voice", "media": {"base64": OGG, "mimetype": "audio/ogg"}},
    )
    assert (voice["type"], voice["text"]) == ("voice", None)
    # wa-js's audio with isPtt is WhatsApp's push-to-talk message.
    assert (voice_arrived["type"], voice_arrived["mimetype"]) == ("ptt", "audio/ogg")
    assert voice_arrived["size"] == len(base64.b64decode(OGG))
    sticker, sticker_arrived = sent(
        car, phone, {"type": "sticker", "media": {"base64": WEBP, "mimetype": "image/webp"}}
    )
    assert sticker["type"] == "sticker"
    assert (sticker_arrived["type"], sticker_arrived["mimetype"]) == ("sticker", "image/webp")
    # Plain audio stays audio.
    _, audio = sent(
        car, phone, {"type": "audio", "media": {"base64": OGG, "mimetype": "audio/ogg"}}
    )
    assert audio["type"] == "audio"


def test_bad_mentions_and_types_are_refused_and_nothing_is_sent(car: Sidecar, phone: Phone) -> None:
    before = len(phone.sent(ME))
    image = {"base64": WEBP, "mimetype": "image/webp"}
    for body, field in (
        ({"type": "text", "text": "x", "mentions": ["120363025246125888@g.us"]}, "mentions.0"),
        ({"type": "text", "text": "x", "mentions": ["12"]}, "mentions.0"),
        ({"type": "text", "text": "x", "mentions": []}, "mentions"),
        ({"type": "text", "text": "x", "mentions": [FRIEND] * 51}, "mentions"),
        # A caption shows mentions; without one there is nowhere to show them.
        ({"type": "image", "media": image, "mentions": [FRIEND]}, "mentions"),
        ({"type": "sticker", "media": image, "mentions": [FRIEND]}, "mentions"),
        ({"type": "sticker", "media": image, "link_preview": True}, "link_preview"),
        ({"type": "voice", "media": {"base64": OGG, "mimetype": "audio/ogg"}, "text": "x"}, "text"),
        ({"type": "sticker", "media": image, "text": "caption"}, "text"),
        ({"type": "voice"}, "media"),
    ):
        error = refused(car, body)
        assert error["details"]["field"] == field, (body, error)
    assert len(phone.sent(ME)) == before


def test_a_meta_session_refuses_mentions(car: Sidecar) -> None:
    created = car.api.post(
        "/api/sessions",
        json={
            "workspace_id": "acme",
            "session_id": "cloud-types",
            "provider_mode": "meta",
            "meta": META,
            "start": False,
        },
    )
    assert created.status_code == 201, created.text
    body = {"to": FRIEND, "type": "text", "text": "hi", "mentions": [FRIEND]}
    answer = car.api.post("/api/sessions/cloud-types/messages", json=body)
    assert answer.status_code == 409, answer.text
    assert answer.json()["error"]["code"] == "not_supported_by_provider"


async def test_the_cloud_api_sends_voice_as_audio_stickers_and_previews(tmp_path: Path) -> None:
    pnid, token = META["phone_number_id"], META["access_token"]
    config = MetaConfig(phone_number_id=pnid, access_token=token, app_secret="s")
    session = SessionRecord(session_id="m1", workspace_id="acme", meta_sealed="x")

    def message(kind: str, **content: Any) -> MessageRecord:
        return MessageRecord(
            id="msg_1",
            session_id="m1",
            workspace_id="acme",
            direction="out",
            chat_id=f"{FRIEND}@c.us",
            type=kind,
            content=json.dumps(content),
            status="sending",
        )

    link = "https://files.test/"
    with graph_standin() as graph:
        graph.add_number(pnid, token)
        async with httpx.AsyncClient() as client:
            engine = MetaEngine(
                client,
                graph_url=graph.base,
                version="v25.0",
                sessions_root=tmp_path,
                credentials=lambda _record: config,
            )
            for kind, file in (("voice", "v.ogg"), ("sticker", "s.webp")):
                media = {"file": f"media/out/{file}", "mimetype": "x/y", "url": link + file}
                await engine.send(session, message(kind, media=media))
            await engine.send(session, message("text", text="https://x.test", link_preview=True))
            await engine.send(session, message("text", text="https://x.test"))
        bodies = [s["body"] for s in graph.sent]
    assert [b["type"] for b in bodies] == ["audio", "sticker", "text", "text"]
    assert bodies[0]["audio"] == {"link": link + "v.ogg"}
    assert bodies[1]["sticker"] == {"link": link + "s.webp"}
    assert [b["text"]["preview_url"] for b in bodies[2:]] == [True, False]


def test_a_message_is_forwarded_through_whatsapp_web(car: Sidecar, phone: Phone) -> None:
    original, _ = sent(car, phone, {"type": "text", "text": "pass it on"})
    path = f"/api/sessions/t1/messages/{original['id']}/forward"
    answer = car.api.post(path, json={"to": f"+{OTHER}"})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "message_id": original["id"],
        "provider_message_id": original["provider_message_id"],
        "to": f"{OTHER}@c.us",
        "forwarded": True,
    }

    def copies() -> list[dict[str, Any]]:
        return [m for m in phone.sent(ME) if m["to"] == f"{OTHER}@c.us" and m["forwarded"]]

    copy = eventually(copies, 30, "the forwarded copy")
    assert [(c["type"], c["text"]) for c in copy] == [("text", "pass it on")]
    # A received voice note goes on with its bytes; it is WhatsApp's message, not a record.
    inbound = phone.inbound(
        to=ME, **{"from": FRIEND}, media={"data": OGG, "mimetype": "audio/ogg", "type": "ptt"}
    )
    assert inbound.status_code == 200, inbound.text

    def received() -> dict[str, Any] | None:
        for event in car.events("t1", "message_received"):
            if event["data"]["message"]["provider_message_id"] == inbound.json()["message_id"]:
                message: dict[str, Any] = event["data"]["message"]
                return message
        return None

    voice = eventually(received, 30, "the voice note")
    forwarded = car.api.post(
        f"/api/sessions/t1/messages/{voice['id']}/forward", json={"to": f"{OTHER}@c.us"}
    )
    assert forwarded.status_code == 200, forwarded.text
    media = eventually(lambda: copies()[1:], 30, "the forwarded voice note")
    assert (media[0]["type"], media[0]["size"]) == ("ptt", len(base64.b64decode(OGG)))


def test_forwarding_what_cannot_be_forwarded(car: Sidecar, phone: Phone) -> None:
    def forward(message_id: str, to: object, session: str = "t1") -> httpx.Response:
        path = f"/api/sessions/{session}/messages/{message_id}/forward"
        response: httpx.Response = car.api.post(path, json={"to": to})
        return response

    original, _ = sent(car, phone, {"type": "text", "text": "once"})
    before = len(phone.sent(ME))
    bad = forward(original["id"], "120363")
    assert bad.status_code == 422 and bad.json()["error"]["details"]["field"] == "to"
    assert forward("msg_000000000000000000000000", FRIEND).status_code == 404
    # A poll is one WhatsApp Web hands back as not forwarded.
    poll = {"name": "Lunch?", "options": ["a", "b"]}
    polled, _ = sent(car, phone, {"type": "poll", "poll": poll})
    refused = forward(polled["id"], OTHER)
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"]["code"] == "page_refused"
    assert len(phone.sent(ME)) == before + 1  # the poll only
    # The Cloud API has no forwarding.
    created = car.api.post(
        "/api/sessions",
        json={
            "workspace_id": "acme",
            "session_id": "cloud-fwd",
            "provider_mode": "meta",
            "meta": META,
            "start": False,
        },
    )
    assert created.status_code == 201, created.text
    meta = forward(original["id"], OTHER, "cloud-fwd")
    assert meta.status_code == 409 and meta.json()["error"]["code"] == "not_supported_by_provider"


def test_an_inbound_message_names_whom_it_mentions(car: Sidecar, phone: Phone) -> None:
    lid = phone.lid(OTHER)
    mentioned = [f"{ME}@c.us", lid]
    delivered = phone.inbound(to=ME, **{"from": FRIEND}, text=f"@{ME} look", mentioned=mentioned)
    assert delivered.status_code == 200, delivered.text
    plain = phone.inbound(to=ME, **{"from": FRIEND}, text="nobody")
    assert plain.status_code == 200, plain.text

    def received(key: str) -> dict[str, Any] | None:
        for event in car.events("t1", "message_received"):
            if event["data"]["message"]["provider_message_id"] == key:
                message: dict[str, Any] = event["data"]["message"]
                return message
        return None

    message = eventually(lambda: received(delivered.json()["message_id"]), 30, "the mention")
    assert message["mentions"] == mentioned
    record = car.api.get(f"/api/sessions/t1/messages/{message['id']}").json()
    assert record["mentions"] == mentioned
    other = eventually(lambda: received(plain.json()["message_id"]), 30, "the plain text")
    assert "mentions" not in other
    refused = phone.inbound(to=ME, **{"from": FRIEND}, text="x", mentioned=["1@g.us"])
    assert refused.status_code == 422
