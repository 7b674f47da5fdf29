"""Messages in real Chromium the way wa-js reports them: local-first sends that wait for
the network, failed sends, message keys, quotes, LIDs, replies, ciphertext, own and system
messages."""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from tests.sandbox.conftest import Link, Sandbox, WaPage

pytestmark = pytest.mark.browser

PEER = "4915112345678"
PEER_CHAT = f"{PEER}@c.us"
GROUP_CHAT = "120363000000000002@g.us"
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(range(64))).decode()
# Starts a call in the page without awaiting it; window.__calls[i] records how it ended.
START = """([source, arg]) => {
  window.__calls = window.__calls || [];
  const entry = {done: false};
  window.__calls.push(entry);
  Promise.resolve().then(() => (eval(source))(arg)).then(
    (value) => Object.assign(entry, {done: true, value}),
    (error) => Object.assign(entry, {done: true, error: String(error), code: error.code}));
  return window.__calls.length - 1;
}"""


async def start(wa: WaPage, source: str, arg: Any = None) -> int:
    """Start an async call in the page; returns its index in window.__calls."""
    index: int = await wa.js(START, [source, arg])
    return index


async def outcome(wa: WaPage, index: int) -> dict[str, Any]:
    """Wait for a started call to settle; returns {done, value} or {done, error, code}."""
    await wa.page.wait_for_function("(i) => window.__calls[i].done", arg=index)
    result: dict[str, Any] = await wa.js("(i) => window.__calls[i]", index)
    return result


async def pending(wa: WaPage) -> list[bool]:
    """Which started calls have not settled."""
    found: list[bool] = await wa.js("window.__calls.map((c) => !c.done)")
    return found


async def lid_of(sandbox: Sandbox, phone: str) -> str:
    response = await sandbox.control("GET", f"/control/lid?phone={phone}")
    assert response.status_code == 200, response.text
    lid: str = response.json()["lid"]
    return lid


async def inbound(sandbox: Sandbox, **body: Any) -> dict[str, Any]:
    response = await sandbox.control("POST", "/control/inbound", body)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def test_a_send_is_added_at_once_and_waits_out_a_stalled_network(
    sandbox: Sandbox, link: Link
) -> None:
    wa = await link("15550000201")
    stalled = await sandbox.control("POST", "/control/devices/15550000201/stall")
    assert stalled.status_code == 200, stalled.text
    call = await start(wa, "(c) => WPP.chat.sendTextMessage(c, 'are you there?')", PEER_CHAT)

    # wa-js adds our message to the store (and reports it) before the network answers.
    event = await wa.wait_event("chat.new_message")
    mine = event["copy"]
    assert mine["id"]["fromMe"] is True and mine["id"]["remote"] == PEER_CHAT
    assert (mine["self"], mine["local"], mine["ack"], mine["isNewMsg"]) == ("out", True, 0, True)
    assert mine["from"] == "15550000201@c.us" and mine["to"] == PEER_CHAT
    [device] = (await sandbox.control("GET", "/control/devices")).json()["devices"]
    assert (device["online"], device["stalled"], device["held_sends"]) == (True, True, 1)
    assert await pending(wa) == [True]
    assert await sandbox.sent("15550000201") == []
    assert await wa.js("WPP.conn.isOnline()") is True, "a stall is invisible to the page"

    reconnected = await sandbox.control("POST", "/control/devices/15550000201/reconnect")
    assert reconnected.status_code == 200
    result = (await outcome(wa, call))["value"]
    assert result["id"] == mine["id"]["_serialized"] and result["ack"] == 1
    assert result["sendMsgResult"]["messageSendResult"] == "OK"
    ack = (await wa.wait_event("chat.msg_ack_change"))["copy"]
    assert ack == {"ack": 1, "chat": PEER_CHAT, "ids": [mine["id"]]}
    assert [m["message_id"] for m in await sandbox.sent("15550000201")] == [result["id"]]
    assert await wa.events("conn.online") == []
    # The model itself moved on to ack 1.
    assert (
        await wa.js("() => window.__events.find((e) => e.name === 'chat.new_message').payload.ack")
        == 1
    )


async def test_sends_made_offline_stay_pending_and_go_out_once_in_order(
    sandbox: Sandbox, link: Link
) -> None:
    wa = await link("15550000202")
    await sandbox.control("POST", "/control/devices/15550000202/disconnect")
    await wa.wait_event("conn.online")
    key = await wa.js("(c) => WPP.chat.generateMessageID(c).then((k) => k._serialized)", PEER_CHAT)
    calls = [
        await start(wa, "(c) => WPP.chat.sendTextMessage(c, 'one')", PEER_CHAT),
        await start(
            wa, "([c, k]) => WPP.chat.sendTextMessage(c, 'two', {messageId: k})", [PEER_CHAT, key]
        ),
        # The same key again: the network must not record it twice.
        await start(
            wa, "([c, k]) => WPP.chat.sendTextMessage(c, 'two', {messageId: k})", [PEER_CHAT, key]
        ),
        await start(wa, "(c) => WPP.chat.sendLocationMessage(c, {lat: 1, lng: 2})", PEER_CHAT),
    ]
    await wa.wait_event("chat.new_message", 3)
    assert await pending(wa) == [True, True, True, True], "no send fails while offline"
    assert await sandbox.sent("15550000202") == []

    await sandbox.control("POST", "/control/devices/15550000202/reconnect")
    results = [(await outcome(wa, call))["value"] for call in calls]
    assert [r["ack"] for r in results] == [1, 1, 1, 1]
    assert {r["sendMsgResult"]["messageSendResult"] for r in results} == {"OK"}
    assert results[1]["id"] == results[2]["id"] == key
    sent = await sandbox.sent("15550000202")
    assert [(m["type"], m["text"]) for m in sent] == [
        ("text", "one"),
        ("text", "two"),
        ("location", None),
    ], "in the order they were made, the repeated key once"
    await wa.wait_event("chat.msg_ack_change", 3)
    acks = await wa.copies("chat.msg_ack_change")
    assert [(a["ack"], a["ids"][0]["_serialized"]) for a in acks] == [
        (1, sent[0]["message_id"]),
        (1, key),
        (1, sent[2]["message_id"]),
    ]
    assert len(await wa.events("chat.new_message")) == 3


async def test_a_failed_send_resolves_with_a_negative_ack_and_no_ack_event(
    sandbox: Sandbox, link: Link
) -> None:
    wa = await link("15550000203")
    armed = await sandbox.control("POST", "/control/devices/15550000203/fail-sends", {})
    assert armed.status_code == 200, armed.text
    armed = await sandbox.control(
        "POST",
        "/control/devices/15550000203/fail-sends",
        {"ack": -5, "result": "ERROR_UPLOAD"},
    )
    assert armed.status_code == 200, armed.text

    first = await wa.js("(c) => WPP.chat.sendTextMessage(c, 'doomed')", PEER_CHAT)
    second = await wa.js(
        "([c, png]) => WPP.chat.sendFileMessage(c, png, {type: 'image'})", [PEER_CHAT, PNG]
    )
    third = await wa.js("(c) => WPP.chat.sendTextMessage(c, 'fine')", PEER_CHAT)
    assert (first["ack"], first["sendMsgResult"]) == (-1, {"messageSendResult": "ERROR_UNKNOWN"})
    assert (second["ack"], second["sendMsgResult"]) == (-5, {"messageSendResult": "ERROR_UPLOAD"})
    assert third["ack"] == 1 and third["sendMsgResult"]["messageSendResult"] == "OK"
    models = await wa.js(
        "() => window.__events.filter((e) => e.name === 'chat.new_message')"
        ".map((e) => e.payload.ack)"
    )
    assert models == [-1, -5, 1]
    await wa.wait_event("chat.msg_ack_change")
    acks = await wa.copies("chat.msg_ack_change")
    assert [a["ids"][0]["_serialized"] for a in acks] == [third["id"]], "none for acks <= 0"

    sent = await sandbox.sent("15550000203")
    assert [(m["ack"], m["result"]) for m in sent] == [
        (-1, "ERROR_UNKNOWN"),
        (-5, "ERROR_UPLOAD"),
        (1, "OK"),
    ]
    receipt = await sandbox.control("POST", "/control/ack", {"message_id": first["id"], "ack": 2})
    assert receipt.status_code == 409


async def test_message_keys_and_chats_follow_wa_js(sandbox: Sandbox, link: Link) -> None:
    wa = await link("15550000204")
    chat = await wa.js("(c) => WPP.chat.find(c)", PEER_CHAT)
    assert chat["id"] == {"server": "c.us", "user": PEER, "_serialized": PEER_CHAT}
    # A chat found before any message: in ChatStore, nothing unread, not archived.
    assert (chat["unreadCount"], chat["archive"]) == (0, False)
    keys = await wa.js(
        """async (c) => {
             const chat = await WPP.chat.find(c);
             return Promise.all([WPP.chat.generateMessageID(chat),
                                 WPP.chat.generateMessageID(chat.id),
                                 WPP.chat.generateMessageID(c)]);
           }""",
        PEER_CHAT,
    )
    assert {k["remote"]["_serialized"] for k in keys} == {PEER_CHAT}
    assert all(k["fromMe"] is True and "participant" not in k for k in keys)
    assert len({k["id"] for k in keys}) == 3

    used = await wa.js(
        """async (c) => {
             const key = await WPP.chat.generateMessageID(c);
             const sent = await WPP.chat.sendTextMessage(c, 'x', {messageId: key});
             return [key._serialized, sent.id];
           }""",
        PEER_CHAT,
    )
    assert used[0] == used[1]
    assert (await sandbox.sent("15550000204"))[0]["message_id"] == used[0]

    with_key = "([c, k]) => WPP.chat.sendTextMessage(c, 'x', {messageId: k})"
    not_mine = await wa.attempt(with_key, [PEER_CHAT, f"false_{PEER_CHAT}_3EB0AAAAAAAAAAAAAAAA"])
    assert not_mine["code"] == "message_key_is_not_from_me" and not_mine["wpp"]
    elsewhere = await wa.attempt(
        with_key, [PEER_CHAT, "true_15550009999@c.us_3EB0AAAAAAAAAAAAAAAA"]
    )
    assert elsewhere["code"] == "message_key_remote_id_is_not_same_of_chat"
    junk = await wa.attempt(
        "(c) => WPP.chat.sendTextMessage(c, 'x', {messageId: 'not a key'})", PEER_CHAT
    )
    assert junk["ok"] is False and junk["has_code"] is False
    group_key = await wa.js("(g) => WPP.chat.generateMessageID(g)", GROUP_CHAT)
    assert group_key["participant"]["_serialized"] == await wa.js(
        "WPP.conn.getMyUserLid()._serialized"
    )
    assert len(await sandbox.sent("15550000204")) == 1


async def test_quoted_messages_must_be_known(sandbox: Sandbox, link: Link) -> None:
    wa = await link("15550000205")
    received = await inbound(sandbox, to="15550000205", **{"from": PEER}, text="quote me")
    await wa.wait_event("chat.new_message")

    by_string = await wa.js(
        "([c, q]) => WPP.chat.sendTextMessage(c, 'answer', {quotedMsg: q})",
        [PEER_CHAT, received["message_id"]],
    )
    by_key = await wa.js(
        """(c) => { const m = window.__events.find((e) => e.name === 'chat.new_message');
                    return WPP.chat.sendTextMessage(c, 'again', {quotedMsg: m.payload.id}); }""",
        PEER_CHAT,
    )
    mine = (await wa.events("chat.new_message"))[1]["copy"]
    assert mine["id"]["_serialized"] == by_string["id"]
    assert mine["quotedStanzaID"] == received["id"]
    assert (mine["quotedParticipant"], mine["quotedRemoteJid"]) == (PEER_CHAT, PEER_CHAT)
    sent = await sandbox.sent("15550000205")
    assert [m["quoted"] for m in sent] == [received["id"], received["id"]]
    assert by_key["ack"] == 1

    unknown = f"false_{PEER_CHAT}_3EB0FFFFFFFFFFFFFFFF"
    missing = await wa.attempt(
        "([c, q]) => WPP.chat.sendTextMessage(c, 'x', {quotedMsg: q})", [PEER_CHAT, unknown]
    )
    assert (missing["code"], missing["message"]) == (
        "msg_not_found",
        f"Message {unknown} not found",
    )
    assert len(await sandbox.sent("15550000205")) == 2
    assert len(await wa.events("chat.new_message")) == 3, "nothing added for the refused send"

    # After a reload the page's store is empty; the device's history still knows it.
    await wa.page.reload()
    await wa.page.wait_for_function("window.WPP && WPP.isReady")
    await wa.wait_mode("MAIN")
    later = await wa.js(
        "([c, q]) => WPP.chat.sendTextMessage(c, 'later', {quotedMsg: q})",
        [PEER_CHAT, by_string["id"]],
    )
    assert (await sandbox.sent("15550000205"))[-1]["quoted"] == by_string["id"].split("_")[2]
    assert later["ack"] == 1


async def test_lids_for_sends_and_receipts(sandbox: Sandbox, link: Link) -> None:
    wa = await link("15550000206")
    peer_lid = await lid_of(sandbox, PEER)
    assert peer_lid.endswith("@lid") and peer_lid[:-4].isdigit()
    assert await lid_of(sandbox, f"+{PEER}") == peer_lid, "stable"

    to_lid = await wa.js("(c) => WPP.chat.sendTextMessage(c, 'via lid')", peer_lid)
    my_lid = await wa.js("WPP.conn.getMyUserLid()._serialized")
    assert to_lid["from"] == my_lid and to_lid["to"] == peer_lid
    stranger = await wa.js("(c) => WPP.chat.sendTextMessage(c, 'who?')", "123456789012345@lid")
    to_phone = await wa.js("(c) => WPP.chat.sendTextMessage(c, 'by number')", PEER_CHAT)
    sent = await sandbox.sent("15550000206")
    assert [(m["to"], m["to_phone"]) for m in sent] == [
        (peer_lid, PEER),
        ("123456789012345@lid", None),
        (PEER_CHAT, PEER),
    ]
    assert stranger["ack"] == 1

    # A receipt from the recipient's LID: wa-js rebuilds the keys on the receipt's chat.
    receipt = await sandbox.control(
        "POST", "/control/ack", {"message_id": to_phone["id"], "ack": 3, "lid": True}
    )
    assert receipt.status_code == 200, receipt.text
    await wa.page.wait_for_function(
        "() => window.__events.filter((e) => e.name === 'chat.msg_ack_change'"
        " && e.payload.ack === 3).length === 1"
    )
    read = next(a for a in await wa.copies("chat.msg_ack_change") if a["ack"] == 3)
    assert read["chat"] == peer_lid
    assert read["ids"][0]["remote"] == peer_lid and read["ids"][0]["fromMe"] is True
    assert read["ids"][0]["id"] == to_phone["id"].split("_")[2], "the bare id stays"
    in_group = await wa.js("(g) => WPP.chat.sendTextMessage(g, 'hi')", GROUP_CHAT)
    refused = await sandbox.control(
        "POST", "/control/ack", {"message_id": in_group["id"], "ack": 3, "lid": True}
    )
    assert refused.status_code == 422


async def test_ciphertext_is_emitted_twice_as_the_same_object(sandbox: Sandbox, link: Link) -> None:
    wa = await link("15550000207")
    answer = await inbound(
        sandbox,
        to="15550000207",
        **{"from": PEER},
        media={"mimetype": "image/png", "data": PNG, "caption": "secret"},
        ciphertext=True,
    )
    await wa.wait_event("chat.new_message", 2)
    first, second = await wa.copies("chat.new_message")
    assert first["id"]["_serialized"] == second["id"]["_serialized"] == answer["message_id"]
    assert first["type"] == "ciphertext"
    assert not {"body", "caption", "mimetype", "size"} & set(first)
    assert (second["type"], second["caption"], second["mimetype"]) == (
        "image",
        "secret",
        "image/png",
    )
    assert await wa.js(
        """() => { const [a, b] = window.__events.filter((e) => e.name === 'chat.new_message');
                   return a.payload === b.payload; }"""
    ), "wa-js emits the SAME model again"


async def test_lid_inbound_and_get_pn_lid_entry(sandbox: Sandbox, link: Link) -> None:
    wa = await link("15550000208")
    peer_lid = await lid_of(sandbox, PEER)
    answer = await inbound(
        sandbox, to="15550000208", **{"from": PEER}, text="hi", notify_name="Ana", lid=True
    )
    msg = (await wa.wait_event("chat.new_message"))["copy"]
    assert msg["from"] == peer_lid and msg["id"]["remote"] == peer_lid
    assert answer["message_id"] == f"false_{peer_lid}_{answer['id']}"

    entry = await wa.js("(id) => WPP.contact.getPnLidEntry(id)", peer_lid)
    assert entry == {
        "lid": {"id": peer_lid[:-4], "server": "lid", "_serialized": peer_lid},
        "phoneNumber": {"id": PEER, "server": "c.us", "_serialized": PEER_CHAT},
        "contact": {"pushname": "Ana"},
    }
    assert (await wa.js("(id) => WPP.contact.getPnLidEntry(id)", PEER))["lid"] == entry["lid"]
    unknown = await wa.js("() => WPP.contact.getPnLidEntry('15559990000@c.us')")
    assert unknown["phoneNumber"]["_serialized"] == "15559990000@c.us"
    assert unknown.get("lid") is None and unknown.get("contact") is None
    group = await wa.attempt("(g) => WPP.contact.getPnLidEntry(g)", GROUP_CHAT)
    assert group["code"] == "invalid_wid"
    assert group["message"] == (
        f"Invalid WID value for {GROUP_CHAT} - getPnLidEntry only supports @c.us and @lid."
    )

    await inbound(
        sandbox, to="15550000208", **{"from": PEER}, text="all", group=GROUP_CHAT, lid=True
    )
    in_group = (await wa.wait_event("chat.new_message", 2))["copy"]
    assert in_group["from"] == GROUP_CHAT and in_group["author"] == peer_lid
    assert in_group["id"]["participant"] == peer_lid


async def test_replies_carry_the_quoted_message_and_quoted_msg_id(
    sandbox: Sandbox, link: Link
) -> None:
    wa = await link("15550000209")
    mine = await wa.js("(c) => WPP.chat.sendTextMessage(c, 'question')", PEER_CHAT)
    first = await inbound(sandbox, to="15550000209", **{"from": PEER}, text="first")
    reply = await inbound(
        sandbox, to="15550000209", **{"from": PEER}, text="answer", reply_to=mine["id"]
    )
    to_theirs = await inbound(
        sandbox, to="15550000209", **{"from": PEER}, text="me too", reply_to=first["id"]
    )
    await wa.wait_event("chat.new_message", 4)
    models = await wa.copies("chat.new_message")
    assert models[2]["id"]["_serialized"] == reply["message_id"]
    assert models[2]["quotedStanzaID"] == mine["id"].split("_")[2]
    assert models[2]["quotedParticipant"] == "15550000209@c.us"
    assert models[2]["quotedRemoteJid"] == PEER_CHAT
    assert to_theirs["id"] != first["id"]

    read = """(n) => { const msg = window.__events.filter((e) => e.name === 'chat.new_message')[n]
                         .payload;
                       try { return {key: msg.quotedMsgId}; }
                       catch (err) {
                         return {code: err.code, wpp: err instanceof WPP.util.WPPError};
                       } }"""
    assert (await wa.js(read, 2))["key"]["_serialized"] == mine["id"]
    theirs = (await wa.js(read, 3))["key"]
    assert (theirs["fromMe"], theirs["id"]) == (False, first["id"])
    assert await wa.js(read, 1) == {"code": "message_not_have_a_reply", "wpp": True}
    # A getter on the prototype, as wa-js defines it; not an own enumerable property.
    assert await wa.js(
        """() => { const msg = window.__events.find((e) => e.name === 'chat.new_message').payload;
                   const proto = Object.getOwnPropertyDescriptor(Object.getPrototypeOf(msg),
                                                                 'quotedMsgId');
                   return [typeof proto.get, Object.keys(msg).includes('quotedMsgId')]; }"""
    ) == ["function", False]

    # After a reload the quoted message is not in the store: the getter rebuilds the key.
    await wa.page.reload()
    await wa.page.wait_for_function("window.WPP && WPP.isReady")
    await wa.wait_mode("MAIN")
    await inbound(sandbox, to="15550000209", **{"from": PEER}, text="again", reply_to=mine["id"])
    await wa.wait_event("chat.new_message")
    rebuilt = (await wa.js(read, 0))["key"]
    assert (rebuilt["fromMe"], rebuilt["id"]) == (True, mine["id"].split("_")[2])
    assert rebuilt["remote"]["_serialized"] == PEER_CHAT

    unknown = await sandbox.control(
        "POST",
        "/control/inbound",
        {"to": "15550000209", "from": PEER, "text": "?", "reply_to": "3EB0000000000000BEEF"},
    )
    assert unknown.status_code == 404


async def test_own_messages_from_the_phone_and_system_messages(
    sandbox: Sandbox, link: Link
) -> None:
    wa = await link("15550000210")
    own = await inbound(
        sandbox, to="15550000210", **{"from": PEER}, text="from my phone", from_me=True
    )
    assert own["message_id"] == f"true_{PEER_CHAT}_{own['id']}"
    msg = (await wa.wait_event("chat.new_message"))["copy"]
    assert msg["id"]["fromMe"] is True and msg["id"]["_serialized"] == own["message_id"]
    assert (msg["from"], msg["to"], msg["body"]) == ("15550000210@c.us", PEER_CHAT, "from my phone")
    assert await sandbox.sent("15550000210") == [], "the phone sent it, not this device"

    subtypes = {}
    for number, kind in enumerate(
        ["e2e_notification", "notification_template", "call_log", "protocol", "gp2"], start=2
    ):
        await inbound(sandbox, to="15550000210", **{"from": PEER}, system=kind)
        system = (await wa.wait_event("chat.new_message", number))["copy"]
        assert (system["type"], system["body"]) == (kind, "")
        assert system["id"]["fromMe"] is False and system["from"] == PEER_CHAT
        subtypes[kind] = system["subtype"]
    assert all(subtypes.values()) and "revoke" not in subtypes.values()
    await inbound(sandbox, to="15550000210", **{"from": PEER}, system="gp2", group=GROUP_CHAT)
    in_group = (await wa.wait_event("chat.new_message", 7))["copy"]
    assert (in_group["from"], in_group["author"], in_group["type"]) == (
        GROUP_CHAT,
        PEER_CHAT,
        "gp2",
    )
    assert await wa.events("chat.msg_ack_change") == []
