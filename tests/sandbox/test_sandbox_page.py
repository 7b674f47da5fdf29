"""The sandbox page in real Chromium: its WPP surface, login flows, messages and acks."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import re
import socket
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from sandbox.app import create_app
from sandbox.server import serve_in_thread

if TYPE_CHECKING:
    from tests.sandbox.conftest import Launch, Link, Sandbox

pytestmark = pytest.mark.browser

B64 = re.compile(r"^[A-Za-z0-9+/]+={0,2}$")
MSG_ID = r"3EB0[0-9A-F]{16}"
PEER = "4915112345678"
PEER_CHAT = f"{PEER}@c.us"
GROUP_CHAT = "120363000000000001@g.us"
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(range(200))).decode()
PDF = base64.b64encode(b"%PDF-1.4\n" + b"x" * 1000).decode()
# Reads one key of the page's IndexedDB store, where it keeps the device identity.
STORED = """(key) => new Promise((resolve, reject) => {
  const open = indexedDB.open('wa-sandbox');
  open.onerror = () => reject(open.error);
  open.onsuccess = () => {
    const get = open.result.transaction('kv').objectStore('kv').get(key);
    get.onsuccess = () => resolve(get.result === undefined ? null : get.result);
    get.onerror = () => reject(get.error);
  };
})"""
WA_JS = Path(__file__).parents[2] / "node_modules/@wppconnect/wa-js/dist/wppconnect-wa.js"


async def test_qr_rotates_then_goes_idle_until_refresh(
    start_sandbox: Callable[..., str], launch: Launch
) -> None:
    url = start_sandbox(qr_interval=0.5, qr_max_rotations=3)
    wa = await launch(url)
    await wa.wait_event("conn.qrcode_idle")

    codes = [e["payload"] for e in await wa.events("conn.auth_code_change")]
    assert len(codes) == 3
    assert len({c["ref"] for c in codes}) == 3, "each rotation shows a new ref"
    for code in codes:
        assert code["type"] == "multidevice"
        assert code["ref"].startswith("2@") and "," not in code["ref"]
        for key in ("staticKeyPair", "identityKeyPair", "secretKey"):
            assert B64.match(code[key]), key
            assert code[key] == codes[0][key], "keys are stable, only the ref rotates"
        assert code["fullCode"] == ",".join(
            [code["ref"], code["staticKeyPair"], code["identityKeyPair"], code["secretKey"]]
        )
    names = await wa.names()
    assert names[:2] == ["conn.main_ready", "conn.require_auth"], "main_ready fires on the QR"
    assert names[-1] == "conn.qrcode_idle"
    assert await wa.js("WPP.conn.getAuthCode()") is None
    assert await wa.js("WPP.conn.isIdle()") is True
    assert await wa.js("WPP.conn.isAuthenticated()") is False

    async with httpx.AsyncClient(base_url=url) as client:
        stale = await client.post(
            "/control/scan", json={"qr": codes[-1]["fullCode"], "phone": "15550000001"}
        )
        assert stale.status_code == 409
        assert stale.json()["error"]["code"] == "qr_expired"

        fresh = await wa.js("WPP.conn.refreshQR()")
        assert fresh["ref"] not in {c["ref"] for c in codes}
        assert fresh["staticKeyPair"] == codes[0]["staticKeyPair"]
        assert await wa.js("WPP.conn.isIdle()") is False
        assert (await wa.wait_event("conn.auth_code_change", 4))["payload"]["ref"] == fresh["ref"]

        # The bare ref works as well as the full code. Refs rotate every 0.5 s here, so a
        # slow machine may see one rotate away under it: then scan the current one.
        for _attempt in range(5):
            current = await wa.js("WPP.conn.getAuthCode()")
            linked = await client.post(
                "/control/scan", json={"qr": current["ref"], "phone": "15550000001"}
            )
            if linked.status_code != 409:
                break
        assert linked.status_code == 200, linked.text
    await wa.wait_event("conn.authenticated")


async def test_scan_links_and_the_profile_comes_back_logged_in(
    sandbox: Sandbox, launch: Launch, tmp_path: Path
) -> None:
    profile = tmp_path / "kept-profile"
    wa = await launch(sandbox.url, profile)
    assert await wa.js("WPP.isReady") is True
    assert await wa.js("WPP.isFullReady && WPP.isInjected && WPP.loader.isReady") is True
    assert await wa.js("WPP.version") == "4.6.0"
    assert await wa.js("WPP.conn.getMyUserId()") is None
    code = await wa.js("WPP.conn.getAuthCode()")
    assert code is not None
    [device] = (await sandbox.control("GET", "/control/devices")).json()["devices"]
    assert (device["qr"], device["linked"], device["connected"]) == (code["ref"], False, True)
    assert device["device_id"] == (await wa.js(STORED, "device"))["device_id"]
    shown = await sandbox.client.get("/control/qr", params={"device": device["device_id"]})
    assert shown.json()["full_code"] == code["fullCode"]

    response = await sandbox.control(
        "POST", "/control/scan", {"qr": code["fullCode"], "phone": "+1 555 000 0002"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["ok"] is True and body["phone"] == "15550000002"
    assert body["device_id"].startswith("dev_")
    await wa.wait_mode("MAIN")

    assert await wa.names() == [
        "conn.main_ready",
        "conn.require_auth",
        "conn.auth_code_change",
        "conn.auth_code_change",
        "conn.authenticated",
    ]
    assert (await wa.events("conn.auth_code_change"))[1]["payload"] is None
    assert await wa.js("WPP.conn.isAuthenticated() && WPP.conn.isMainReady()") is True
    assert await wa.js("WPP.conn.getAuthCode()") is None
    assert (await wa.js(STORED, "auth"))["phone"] == "15550000002"
    me = await wa.js("WPP.conn.getMyUserId()")
    assert me == {"server": "c.us", "user": "15550000002", "_serialized": "15550000002@c.us"}
    assert await wa.js("String(WPP.conn.getMyUserId())") == "15550000002@c.us"
    assert await wa.js("JSON.stringify(WPP.conn.getMyUserId())") == '"15550000002@c.us"'

    devices = (await sandbox.control("GET", "/control/devices")).json()["devices"]
    assert [(d["device_id"], d["phone"], d["linked"]) for d in devices] == [
        (body["device_id"], "15550000002", True)
    ]
    again = await sandbox.control(
        "POST", "/control/scan", {"qr": code["fullCode"], "phone": "15550000002"}
    )
    assert again.status_code == 409

    await wa.page.context.close()
    restored = await launch(sandbox.url, profile)
    await restored.wait_mode("MAIN")
    assert await restored.names() == ["conn.main_ready"], "a restored session shows no QR"
    assert await restored.js("WPP.conn.isAuthenticated()") is True
    assert (await restored.js("WPP.conn.getMyUserId()"))["user"] == "15550000002"
    assert await restored.js("WPP.conn.getAuthCode()") is None


async def test_sends_are_recorded_with_their_fields(sandbox: Sandbox, link: Link) -> None:
    wa = await link("15550000003")
    text = await wa.js("(c) => WPP.chat.sendTextMessage(c, 'hello there')", PEER_CHAT)
    assert re.fullmatch(f"true_{PEER_CHAT}_{MSG_ID}", text["id"])
    assert text["ack"] == 1
    assert text["from"] == "15550000003@c.us" and text["to"] == PEER_CHAT
    assert text["sendMsgResult"]["messageSendResult"] == "OK"

    image = await wa.js(
        "([c, png]) => WPP.chat.sendFileMessage(c, 'data:image/png;base64,' + png,"
        " {type: 'image', caption: 'a picture'})",
        [PEER_CHAT, PNG],
    )
    document = await wa.js(
        "([c, pdf]) => WPP.chat.sendFileMessage(c, 'data:application/pdf;base64,' + pdf,"
        " {type: 'document', filename: 'report.pdf'})",
        [PEER_CHAT, PDF],
    )
    audio = await wa.js(
        "(c) => WPP.chat.sendFileMessage(c, 'data:audio/ogg;base64,T2dnUw==',"
        " {type: 'auto-detect'})",
        PEER_CHAT,
    )
    place = await wa.js(
        "(c) => WPP.chat.sendLocationMessage(c, {lat: 52.52, lng: '13.405', name: 'Berlin',"
        " address: 'Pariser Platz'})",
        PEER_CHAT,
    )
    group = await wa.js("(c) => WPP.chat.sendTextMessage(c, 'hi all')", GROUP_CHAT)
    my_lid = await wa.js("WPP.conn.getMyUserLid().toString()")
    assert re.fullmatch(r"[1-9][0-9]{14}@lid", my_lid)
    # wa-js: in groups we write as our LID, which is also the key's participant.
    assert group["id"].endswith(f"_{my_lid}") and group["from"] == my_lid
    assert set(image) == {"id", "ack", "sendMsgResult"}, "sendFileMessage has no from/to"

    sent = await sandbox.sent("15550000003")
    assert [m["message_id"] for m in sent] == [
        r["id"] for r in (text, image, document, audio, place, group)
    ]
    assert [m["type"] for m in sent] == ["text", "image", "document", "audio", "location", "text"]
    first, img, doc, aud, loc, grp = sent
    assert first["to"] == PEER_CHAT and first["text"] == "hello there"
    assert first["caption"] is None and first["size"] is None
    assert isinstance(first["timestamp"], int)
    assert img["caption"] == "a picture" and img["mimetype"] == "image/png"
    assert img["size"] == len(base64.b64decode(PNG)) and img["text"] is None
    assert doc["filename"] == "report.pdf" and doc["mimetype"] == "application/pdf"
    assert doc["size"] == len(base64.b64decode(PDF))
    assert aud["mimetype"] == "audio/ogg" and aud["size"] == 4
    assert (loc["lat"], loc["lng"], loc["name"], loc["address"]) == (
        52.52,
        13.405,
        "Berlin",
        "Pariser Platz",
    )
    assert grp["to"] == GROUP_CHAT and grp["to_phone"] is None
    assert first["to_phone"] == PEER and first["quoted"] is None and first["result"] == "OK"
    own_image = await wa.js(
        "async (id) => WPP.util.blobToBase64(await WPP.chat.downloadMedia(id))", image["id"]
    )
    assert own_image == f"data:image/png;base64,{PNG}"

    # wa-js also reports our own sends as new messages, with id.fromMe set.
    own = [e["payload"] for e in await wa.events("chat.new_message")]
    assert [m["id"]["_serialized"] for m in own] == [m["message_id"] for m in sent]
    assert all(m["id"]["fromMe"] is True for m in own)
    assert own[0]["type"] == "chat" and own[0]["body"] == "hello there"
    assert own[4]["loc"] == "Berlin\nPariser Platz", "wa-js joins name and address"
    sticker = await wa.js(
        "(c) => WPP.chat.sendFileMessage(c, 'data:image/webp;base64,UklGRg==', {type: 'sticker'})",
        PEER_CHAT,
    )
    assert sticker["ack"] == 1
    assert (await sandbox.sent("15550000003"))[-1]["type"] == "sticker"


async def test_a_callers_message_id_makes_sends_idempotent(sandbox: Sandbox, link: Link) -> None:
    wa = await link("15550000004")
    results = await wa.js(
        """async (chat) => {
             const key = await WPP.chat.generateMessageID(chat);
             const a = await WPP.chat.sendTextMessage(chat, 'once', {messageId: key});
             const b = await WPP.chat.sendTextMessage(chat, 'once',
                                                      {messageId: key._serialized});
             return [key._serialized, a.id, b.id];
           }""",
        PEER_CHAT,
    )
    assert results[0] == results[1] == results[2]
    assert len(await sandbox.sent("15550000004")) == 1
    # The store already holds that key: no second chat.new_message, no second SENT ack.
    assert len(await wa.events("chat.new_message")) == 1
    assert len(await wa.events("chat.msg_ack_change")) == 1


async def test_sends_are_rejected_for_bad_chats_and_when_logged_out(
    sandbox: Sandbox, launch: Launch, link: Link, tmp_path: Path
) -> None:
    unlinked = await launch(sandbox.url)
    refused = await unlinked.attempt("(c) => WPP.chat.sendTextMessage(c, 'x')", PEER_CHAT)
    # Not logged in is no wa-js code: a plain Error.
    assert refused["ok"] is False and refused["has_code"] is False and refused["wpp"] is False

    wa = await link("15550000005", tmp_path / "linked")
    for bad in ("12345", "abc@c.us", "12345678@s.whatsapp.net", "", "x@lid"):
        outcome = await wa.attempt("(c) => WPP.chat.sendTextMessage(c, 'x')", bad)
        assert outcome == {
            "ok": False,
            "code": "invalid_wid",
            "name": "Error",  # a WPPError keeps Error's name, as in wa-js
            "message": f"Invalid WID value for {bad}",
            "wpp": True,
            "has_code": True,
        }, bad
    not_a_file = await wa.attempt(
        "(c) => WPP.chat.sendFileMessage(c, 'not base64 nor a URL!', {type: 'image'})", PEER_CHAT
    )
    assert not_a_file == {"ok": False, "thrown": "invalid_data_url"}, "wa-js throws the string"
    relative = await wa.attempt(
        "(c) => WPP.chat.sendFileMessage(c, '/static/x.png?', {type: 'image'})", PEER_CHAT
    )
    assert relative == {"ok": False, "thrown": "invalid_data_url"}, "only http(s) URLs"
    bad_location = await wa.attempt(
        "(c) => WPP.chat.sendLocationMessage(c, {lat: 95, lng: 0})", PEER_CHAT
    )
    assert bad_location["ok"] is False and bad_location["has_code"] is False
    assert await sandbox.sent("15550000005") == []
    assert await wa.events("chat.new_message") == [], "refused before anything was added"


async def test_inbound_messages_have_the_wa_js_shape(sandbox: Sandbox, link: Link) -> None:
    wa = await link("15550000006")
    text = await sandbox.control(
        "POST",
        "/control/inbound",
        {"to": "15550000006", "from": PEER, "text": "hi!", "notify_name": "Ana"},
    )
    assert text.status_code == 200, text.text
    message_id = text.json()["message_id"]
    assert re.fullmatch(f"false_{PEER_CHAT}_{MSG_ID}", message_id)
    assert text.json()["queued"] is False

    msg = (await wa.wait_event("chat.new_message"))["payload"]
    assert msg["id"] == {
        "fromMe": False,
        "remote": {"server": "c.us", "user": PEER, "_serialized": PEER_CHAT},
        "id": message_id.rsplit("_", 1)[1],
        "_serialized": message_id,
    }
    assert msg["from"]["_serialized"] == PEER_CHAT
    assert msg["to"]["_serialized"] == "15550000006@c.us"
    assert (msg["type"], msg["body"], msg["notifyName"]) == ("chat", "hi!", "Ana")
    assert msg["isNewMsg"] is True and isinstance(msg["t"], int) and msg["ack"] == 1
    assert "author" not in msg
    # Wids and keys stringify like the real ones.
    assert await wa.js(
        """() => { const m = window.__events.find((e) => e.name === 'chat.new_message').payload;
                   return [String(m.id), String(m.from), m.from.isUser()]; }"""
    ) == [message_id, PEER_CHAT, True]

    media = await sandbox.control(
        "POST",
        "/control/inbound",
        {
            "to": "15550000006",
            "from": PEER,
            "media": {"mimetype": "image/png", "data": PNG, "caption": "look"},
        },
    )
    assert media.status_code == 200, media.text
    image = (await wa.wait_event("chat.new_message", 2))["payload"]
    assert (image["type"], image["body"], image["caption"]) == ("image", "look", "look")
    assert image["mimetype"] == "image/png" and image["size"] == len(base64.b64decode(PNG))
    assert image["isMedia"] is True
    downloaded = await wa.js(
        """async (id) => { const blob = await WPP.chat.downloadMedia(id);
                           return [blob.type, await WPP.util.blobToBase64(blob)]; }""",
        media.json()["message_id"],
    )
    assert downloaded == ["image/png", f"data:image/png;base64,{PNG}"]
    no_media = await wa.attempt("(id) => WPP.chat.downloadMedia(id)", message_id)
    assert no_media["code"] == "message_not_contains_media" and no_media["wpp"] is True
    unknown = f"false_{PEER_CHAT}_3EB0000000000000DEAD"
    missing = await wa.attempt("(id) => WPP.chat.downloadMedia(id)", unknown)
    assert (missing["code"], missing["message"]) == (
        "msg_not_found",
        f"Message {unknown} not found",
    )

    await sandbox.control(
        "POST",
        "/control/inbound",
        {
            "to": "15550000006",
            "from": PEER,
            "media": {"mimetype": "application/pdf", "data": PDF, "filename": "cv.pdf"},
        },
    )
    doc = (await wa.wait_event("chat.new_message", 3))["payload"]
    assert (doc["type"], doc["filename"], doc["body"]) == ("document", "cv.pdf", "")

    await sandbox.control(
        "POST",
        "/control/inbound",
        {
            "to": "15550000006",
            "from": PEER,
            "location": {"lat": -22.95, "lng": -43.21, "name": "Rio", "address": "Brazil"},
        },
    )
    loc = (await wa.wait_event("chat.new_message", 4))["payload"]
    assert (loc["type"], loc["lat"], loc["lng"]) == ("location", -22.95, -43.21)
    assert loc["loc"] == "Rio\nBrazil" and "address" not in loc, "MsgModel has loc, not address"

    in_group = await sandbox.control(
        "POST",
        "/control/inbound",
        {"to": "15550000006", "from": PEER, "group": GROUP_CHAT, "text": "to everyone"},
    )
    grp = (await wa.wait_event("chat.new_message", 5))["payload"]
    assert grp["from"]["_serialized"] == GROUP_CHAT
    assert grp["author"]["_serialized"] == PEER_CHAT
    assert grp["id"]["_serialized"] == in_group.json()["message_id"]
    assert grp["id"]["_serialized"].endswith(f"_{PEER_CHAT}")


async def test_acks_reach_the_page_as_msg_ack_change(sandbox: Sandbox, link: Link) -> None:
    wa = await link("15550000007")
    sent = await wa.js("(c) => WPP.chat.sendTextMessage(c, 'ack me')", PEER_CHAT)
    # wa-js's SENT path: the server's ack (1) comes with the send itself.
    server_ack = (await wa.wait_event("chat.msg_ack_change"))["copy"]
    assert server_ack == {"ack": 1, "chat": PEER_CHAT, "ids": [server_ack["ids"][0]]}
    assert server_ack["ids"][0]["_serialized"] == sent["id"]
    for number, ack in enumerate((2, 3, 2), start=2):
        response = await sandbox.control(
            "POST", "/control/ack", {"message_id": sent["id"], "ack": ack}
        )
        assert response.status_code == 200, response.text
        event = (await wa.wait_event("chat.msg_ack_change", number))["payload"]
        assert event["ack"] == ack, "acks are forwarded as raised, even out of order"
        assert event["chat"] == {"server": "c.us", "user": PEER, "_serialized": PEER_CHAT}
        assert [k["_serialized"] for k in event["ids"]] == [sent["id"]]
        assert event["ids"][0]["fromMe"] is True
    records = await sandbox.sent("15550000007")
    assert records[0]["ack"] == 2
    # A receipt of 1 is accepted but wa-js's receipt path drops it (ack < 2).
    one = await sandbox.control("POST", "/control/ack", {"message_id": sent["id"], "ack": 1})
    assert one.status_code == 200
    await sandbox.control("POST", "/control/ack", {"message_id": sent["id"], "ack": 4})
    played = (await wa.wait_event("chat.msg_ack_change", 5))["payload"]
    assert played["ack"] == 4, "the ack of 1 never became an event"


async def test_disconnect_holds_inbound_traffic_until_reconnect(
    sandbox: Sandbox, link: Link
) -> None:
    wa = await link("15550000008")
    response = await sandbox.control("POST", "/control/devices/15550000008/disconnect")
    assert response.status_code == 200, response.text
    assert (await wa.wait_event("conn.online"))["payload"] is False
    assert await wa.js("WPP.conn.isOnline()") is False
    assert await wa.js("WPP.conn.getStreamData()") == {"mode": "MAIN", "info": "OFFLINE"}

    held = await sandbox.control(
        "POST", "/control/inbound", {"to": "15550000008", "from": PEER, "text": "while away"}
    )
    assert held.status_code == 200 and held.json()["queued"] is True
    [device] = (await sandbox.control("GET", "/control/devices")).json()["devices"]
    assert device["pending_events"] == 1

    response = await sandbox.control("POST", "/control/devices/15550000008/reconnect")
    assert response.status_code == 200
    assert (await wa.wait_event("conn.online", 2))["payload"] is True
    arrived = (await wa.wait_event("chat.new_message"))["payload"]
    assert arrived["body"] == "while away"
    # Offline, then back: CONNECTING until the network handed over what it held; the mode
    # stays MAIN throughout.
    await wa.wait_event("conn.stream_info_changed", 6)
    log = await wa.stream_log()
    assert log[log.index("mode:MAIN") :] == [
        "mode:MAIN",
        "info:NORMAL",
        "conn.online",
        "info:OFFLINE",
        "conn.online",
        "info:CONNECTING",
        "info:NORMAL",
    ]


async def test_phone_logout_unlinks_and_shows_a_new_qr(sandbox: Sandbox, link: Link) -> None:
    wa = await link("15550000009")
    first_keys = (await wa.events("conn.auth_code_change"))[0]["payload"]["staticKeyPair"]
    response = await sandbox.control("POST", "/control/devices/15550000009/logout")
    assert response.status_code == 200, response.text
    await wa.wait_event("conn.logout")
    code = (await wa.wait_event("conn.auth_code_change", 3))["payload"]
    assert code["type"] == "multidevice"
    assert code["staticKeyPair"] != first_keys, "a new login gets new keys"
    assert await wa.js("WPP.conn.isAuthenticated()") is False
    assert await wa.js("WPP.conn.getMyUserId()") is None
    assert await wa.js(STORED, "auth") is None
    refused = await wa.attempt("(c) => WPP.chat.sendTextMessage(c, 'x')", PEER_CHAT)
    assert refused["ok"] is False and refused["has_code"] is False
    inbound = await sandbox.control(
        "POST", "/control/inbound", {"to": "15550000009", "from": PEER, "text": "anyone?"}
    )
    assert inbound.status_code == 404
    # The new QR links again.
    again = await sandbox.control(
        "POST", "/control/scan", {"qr": code["fullCode"], "phone": "15550000009"}
    )
    assert again.status_code == 200
    await wa.wait_mode("MAIN", 2)
    assert len(await wa.events("conn.main_ready")) == 1, "main_ready fires once per page load"
    assert await wa.js("WPP.conn.isMainReady()") is True


async def test_page_logout(sandbox: Sandbox, link: Link) -> None:
    wa = await link("15550000010")
    assert await wa.js("WPP.conn.logout()") is True
    await wa.wait_event("conn.auth_code_change", 3)
    assert len(await wa.events("conn.logout")) == 1
    assert await wa.js("WPP.conn.isAuthenticated()") is False
    devices = (await sandbox.control("GET", "/control/devices")).json()["devices"]
    assert devices[0]["linked"] is False and devices[0]["qr"] is not None
    assert await wa.js("WPP.conn.logout()") is False


async def test_pairing_code_links_without_a_camera(sandbox: Sandbox, launch: Launch) -> None:
    wa = await launch(sandbox.url)
    code = await wa.js("WPP.conn.genLinkDeviceCodeForPhoneNumber('+49 151 1111 2222')")
    assert re.fullmatch(r"[0-9A-Z]{4}-[0-9A-Z]{4}", code)
    assert await wa.js("WPP.conn.getAuthCode()") is None, "the page shows the code, not a QR"

    unknown = await sandbox.control("POST", "/control/pairing", {"code": "ZZZZ-ZZZZ"})
    assert unknown.status_code == 404
    response = await sandbox.control(
        "POST", "/control/pairing", {"code": code.replace("-", "").lower()}
    )
    assert response.status_code == 200, response.text
    assert response.json()["phone"] == "4915111112222"
    await wa.wait_mode("MAIN")
    assert await wa.events("conn.authenticated")
    assert (await wa.events("conn.auth_code_change"))[-1]["payload"] is None
    again = await wa.attempt("() => WPP.conn.genLinkDeviceCodeForPhoneNumber('4915111112222')")
    assert again["code"] == "cannot_get_code_for_already_authenticated" and again["wpp"]
    assert (await wa.js("WPP.conn.getMyUserId()"))["user"] == "4915111112222"
    reused = await sandbox.control("POST", "/control/pairing", {"code": code})
    assert reused.status_code == 404


async def test_a_profile_unlinked_while_closed_logs_out_on_start(
    sandbox: Sandbox, launch: Launch, link: Link, tmp_path: Path
) -> None:
    profile = tmp_path / "p"
    wa = await link("15550000011", profile)
    await wa.page.context.close()
    assert (await sandbox.control("POST", "/control/devices/15550000011/logout")).status_code == 200

    restored = await launch(sandbox.url, profile)
    await restored.wait_event("conn.auth_code_change")
    # Stored credentials: the page starts as a restored session, then learns it is out.
    assert (await restored.stream_log())[:7] == [
        "mode:SYNCING",
        "info:OPENING",
        "conn.logout",
        "mode:QR",
        "conn.main_ready",
        "info:PAIRING",
        "conn.require_auth",
    ]
    assert await restored.js("WPP.conn.isAuthenticated()") is False


async def test_messages_sent_while_the_browser_was_closed_arrive_after_restore(
    sandbox: Sandbox, launch: Launch, link: Link, tmp_path: Path
) -> None:
    profile = tmp_path / "p"
    wa = await link("15550000012", profile)
    sent = await wa.js("(c) => WPP.chat.sendTextMessage(c, 'before the crash')", PEER_CHAT)
    await wa.page.context.close()

    inbound = await sandbox.control(
        "POST", "/control/inbound", {"to": "15550000012", "from": PEER, "text": "while closed"}
    )
    assert inbound.status_code == 200 and inbound.json()["queued"] is True
    await sandbox.control("POST", "/control/ack", {"message_id": sent["id"], "ack": 3})

    restored = await launch(sandbox.url, profile)
    await restored.wait_event("chat.msg_ack_change")
    assert await restored.names() == ["conn.main_ready", "chat.new_message", "chat.msg_ack_change"]
    assert (await restored.events("chat.new_message"))[0]["payload"]["body"] == "while closed"


async def test_wa_js_injected_before_the_page_is_replaced_and_its_listeners_kept(
    sandbox: Sandbox, launch: Launch
) -> None:
    # The sidecar injects the real wa-js before navigation; here it cannot find WhatsApp's
    # modules, so the page's WPP takes over and keeps the listeners registered on wa-js.
    early_listener = """
      window.__early = [];
      WPP.on('conn.auth_code_change', (code) => window.__early.push(code && code.ref));
    """
    wa = await launch(sandbox.url, None, [WA_JS.read_text(), early_listener])
    code = await wa.js("WPP.conn.getAuthCode()")
    await wa.page.wait_for_function("window.__early.length >= 1")
    assert await wa.js("window.__early") == [code["ref"]]
    assert await wa.js("WPP.version") == "4.6.0"


async def test_the_page_defines_only_names_wa_js_declares(sandbox: Sandbox, launch: Launch) -> None:
    dist = WA_JS.parent
    wa = await launch(sandbox.url)
    surface: dict[str, list[str]] = await wa.js(
        """() => { const out = {'': Object.keys(WPP)};
                   for (const [k, v] of Object.entries(WPP)) {
                     if (v && typeof v === 'object' && !Array.isArray(v)) out[k] = Object.keys(v);
                   }
                   return out; }"""
    )

    def declared(name: str, files: list[Path]) -> bool:
        pattern = re.compile(
            rf"export (declare )?(function|const|let|class|\* as) {name}\b"
            rf"|export \{{[^}}]*\b{name}\b[^}}]*\}}"
            rf"|export \* as {name}\b",
            re.S,
        )
        return any(pattern.search(f.read_text()) for f in files)

    top = [dist / "index.d.ts", dist / "loader/index.d.ts"]
    for name in surface.pop(""):
        assert declared(name, top), f"WPP.{name} is not declared by wa-js"
    for namespace, names in surface.items():
        files = list((dist / namespace).rglob("*.d.ts"))
        assert files, f"WPP.{namespace} is not a wa-js namespace"
        for name in names:
            assert declared(name, files), f"WPP.{namespace}.{name} is not declared by wa-js"


async def test_events_survive_the_stream_ending_and_reconnecting(
    start_sandbox: Callable[..., str], launch: Launch, tmp_path: Path
) -> None:
    url = start_sandbox(stream_lifetime=0.3)
    wa = await launch(url)
    code = await wa.js("WPP.conn.getAuthCode()")
    async with httpx.AsyncClient(base_url=url) as client:
        scanned = await client.post(
            "/control/scan", json={"qr": code["fullCode"], "phone": "15550000013"}
        )
        assert scanned.status_code == 200
        await wa.wait_mode("MAIN")
        # Streams now end every 0.3 s; each message may land in a reconnect gap.
        for number in range(8):
            await client.post(
                "/control/inbound",
                json={"to": "15550000013", "from": PEER, "text": f"m{number}"},
            )
            await asyncio.sleep(0.1)
    await wa.wait_event("chat.new_message", 8)
    bodies = [e["payload"]["body"] for e in await wa.events("chat.new_message")]
    assert bodies == [f"m{n}" for n in range(8)], "nothing lost, nothing twice"


async def test_a_restarted_sandbox_forgets_links_and_the_page_starts_over(
    launch: Launch,
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with contextlib.ExitStack() as first:
        url = first.enter_context(serve_in_thread(create_app(main_ready_delay=0.1), port=port))
        wa = await launch(url)
        code = await wa.js("WPP.conn.getAuthCode()")
        async with httpx.AsyncClient(base_url=url) as client:
            await client.post(
                "/control/scan", json={"qr": code["fullCode"], "phone": "15550000014"}
            )
        await wa.wait_mode("MAIN")

    # Same port, new process state: the page's stream is refused, it says hello again,
    # its token is unknown, so it logs out and shows a QR, as after an unlink.
    with serve_in_thread(create_app(main_ready_delay=0.1), port=port):
        await wa.wait_event("conn.logout", timeout=10000)
        fresh = await wa.wait_event("conn.auth_code_change", 3)
        assert fresh["payload"]["ref"] != code["ref"]
        assert await wa.js("WPP.conn.isAuthenticated()") is False


async def test_listeners_attached_in_on_ready_hear_the_first_events(
    sandbox: Sandbox, launch: Launch, link: Link, tmp_path: Path
) -> None:
    # The sidecar's bridge attaches from WPP.loader.onReady at DOMContentLoaded; a profile
    # found unlinked emits conn.logout right as the page becomes ready.
    profile = tmp_path / "p"
    wa = await link("15550000015", profile)
    await wa.page.context.close()
    await sandbox.control("POST", "/control/devices/15550000015/logout")
    on_ready = """
      window.__fromReady = [];
      document.addEventListener('DOMContentLoaded', () => WPP.loader.onReady(() => {
        ['conn.logout', 'conn.require_auth', 'conn.auth_code_change'].forEach((name) =>
          WPP.on(name, () => window.__fromReady.push(name)));
      }));
    """
    restored = await launch(sandbox.url, profile, [on_ready])
    await restored.wait_event("conn.auth_code_change")
    heard = await restored.js("window.__fromReady")
    assert heard == ["conn.logout", "conn.require_auth", "conn.auth_code_change"]
