"""The WhatsApp Web engine's translation of wa-js into neutral records, without a browser.

The page is replaced by recorded bridge payloads shaped as bridge.js sends them; the
browser paths are covered end to end in test_fidelity.py.
"""

from __future__ import annotations

import base64
import dataclasses
from pathlib import Path
from typing import Any

import pytest

from adapters.base import (
    Edit,
    ErrorKind,
    InboundMessage,
    MediaTooLarge,
    Reaction,
    Revoke,
    StatusUpdate,
)
from adapters.webjs import WebJsEngine, result_failure, send_error
from service.browser.bridge import BridgeEvent
from service.store import MessageRecord, SessionRecord

SESSION = SessionRecord(session_id="s1", workspace_id="w", status="connected")


class Runtime:
    """The parts of the session runtime the engine reads."""

    def __init__(self, usable: bool = True) -> None:
        self._usable = usable
        self.page: object | None = object()

    def usable(self, session_id: str) -> bool:
        return self._usable

    def bridge(self, session_id: str) -> Any:
        return self.page


class Sink:
    def __init__(self) -> None:
        self.inbound: list[InboundMessage] = []
        self.updates: list[StatusUpdate] = []
        self.actions: list[Reaction | Edit | Revoke] = []

    async def on_inbound(self, session: SessionRecord, message: InboundMessage) -> None:
        self.inbound.append(message)

    async def on_status(self, session: SessionRecord, update: StatusUpdate) -> None:
        self.updates.append(update)

    async def on_reaction(self, session: SessionRecord, reaction: Reaction) -> None:
        self.actions.append(reaction)

    async def on_edited(self, session: SessionRecord, edit: Edit) -> None:
        self.actions.append(edit)

    async def on_revoked(self, session: SessionRecord, revoke: Revoke) -> None:
        self.actions.append(revoke)


def engine(runtime: Runtime | None = None) -> tuple[WebJsEngine, Sink]:
    web = WebJsEngine(runtime or Runtime(), Path("/nonexistent"))  # type: ignore[arg-type]
    sink = Sink()
    web.sink = sink
    return web, sink


def payload(**fields: Any) -> dict[str, Any]:
    """A `message` event as bridge.js builds it from a MsgModel."""
    base = {
        "id": "false_5511988880002@c.us_3EB0AAA",
        "ref": "3EB0AAA",
        "from_me": False,
        "from": "5511988880002@c.us",
        "to": "5511999990001@c.us",
        "author": None,
        "from_phone": None,
        "author_phone": None,
        "type": "chat",
        "subtype": None,
        "body": "hi",
        "caption": None,
        "timestamp": 1700000000,
        "notify_name": "Ana",
        "quoted_id": None,
        "quoted_ref": None,
    }
    return base | fields


def test_a_text_becomes_a_neutral_message() -> None:
    web, _ = engine()
    message = web.inbound(SESSION, payload())
    assert message is not None
    assert (message.kind, message.text, message.chat_id, message.ref) == (
        "text",
        "hi",
        "5511988880002@c.us",
        "3EB0AAA",
    )
    assert message.sender_phone == message.chat_phone == "5511988880002"


@pytest.mark.parametrize(
    "kind", ["e2e_notification", "notification_template", "gp2", "call_log", "protocol", "revoked"]
)
def test_system_messages_are_not_messages(kind: str) -> None:
    web, _ = engine()
    assert web.inbound(SESSION, payload(type=kind, body=None, subtype="x")) is None


def test_own_messages_are_not_inbound() -> None:
    web, _ = engine()
    assert web.inbound(SESSION, payload(from_me=True)) is None


def test_a_lid_chat_carries_the_phone_wa_js_resolved() -> None:
    web, _ = engine()
    message = web.inbound(
        SESSION, payload(**{"from": "123456789012345@lid", "from_phone": "5511988880002"})
    )
    assert message is not None
    assert message.chat_id == "123456789012345@lid"
    assert message.chat_phone == message.sender_phone == "5511988880002"
    unknown = web.inbound(SESSION, payload(**{"from": "123456789012345@lid"}))
    assert unknown is not None and unknown.chat_phone is None


def test_a_group_message_names_its_author_and_the_reply() -> None:
    web, _ = engine()
    message = web.inbound(
        SESSION,
        payload(
            **{"from": "120363000000000001@g.us"},
            author="98765432101234@lid",
            author_phone="5511977770003",
            quoted_id="true_120363000000000001@g.us_3EB0BBB",
            quoted_ref="3EB0BBB",
        ),
    )
    assert message is not None
    assert (message.chat_id, message.sender, message.sender_phone) == (
        "120363000000000001@g.us",
        "98765432101234@lid",
        "5511977770003",
    )
    assert message.chat_phone is None
    assert (message.reply_to_ref, message.reply_to_provider_id) == (
        "3EB0BBB",
        "true_120363000000000001@g.us_3EB0BBB",
    )


async def test_acks_become_status_updates_by_bare_id() -> None:
    web, sink = engine()
    ack = {"ack": 2, "refs": ["3EB0CCC"], "ids": ["true_123@lid_3EB0CCC"], "chat": "123@lid"}
    await web.on_bridge_event(SESSION, BridgeEvent("ack", ack))
    for level in (0, -1, 5):  # wa-js never sends these; ignore them if it ever did
        await web.on_bridge_event(SESSION, BridgeEvent("ack", ack | {"ack": level}))
    assert sink.updates == [StatusUpdate("webjs", "3EB0CCC", "delivered")]


async def test_a_late_send_result_settles_the_message() -> None:
    web, sink = engine()
    ok = {"ok": True, "id": "true_1@c.us_A1", "ref": "A1", "ack": 1, "result": "OK"}
    failed = {"ok": True, "id": "true_1@c.us_A2", "ref": "A2", "ack": -1, "result": "ERROR_UNKNOWN"}
    thrown = {"ok": False, "handed": True, "ref": "A3", "code": None, "message": "boom"}
    for result in (ok, failed, thrown):
        await web.on_bridge_event(SESSION, BridgeEvent("send_result", result))
    assert [(u.ref, u.status) for u in sink.updates] == [
        ("A1", "sent"),
        ("A2", "failed"),
        ("A3", "failed"),
    ]
    assert sink.updates[1].error == "FAILED: WhatsApp did not accept the message (ERROR_UNKNOWN)"


async def test_sends_still_held_by_a_closed_page_are_interrupted() -> None:
    web, sink = engine()
    web._pending["s1"] |= {"P1", "P2"}
    await web.on_page_closed(SESSION)
    assert sorted((u.ref, u.status, u.error) for u in sink.updates) == [
        ("P1", "failed", "interrupted"),
        ("P2", "failed", "interrupted"),
    ]
    await web.on_page_closed(SESSION)
    assert len(sink.updates) == 2


def test_failures_are_read_from_the_send_result() -> None:
    for ack in range(-7, 0):
        failure = result_failure({"ack": ack, "result": "ERROR_UNKNOWN"})
        assert failure is not None and failure.kind is ErrorKind.REQUEST
    assert result_failure({"ack": 0, "result": "ERROR_NETWORK"}) is not None
    assert result_failure({"ack": 1, "result": "OK"}) is None
    assert result_failure({"ack": 0, "result": None}) is None  # waitForAck off: no verdict


def test_send_errors_fail_over_only_when_nothing_was_handed() -> None:
    assert send_error({"code": "invalid_wid", "handed": False}).kind is ErrorKind.RECIPIENT
    assert send_error({"code": "msg_not_found", "handed": True}).kind is ErrorKind.REQUEST
    before = send_error({"code": None, "handed": False, "message": "Failed to find chat"})
    assert before.fails_over
    after = send_error({"code": None, "handed": True, "message": "rejected"})
    assert not after.fails_over and after.kind is ErrorKind.REQUEST


async def test_an_offline_page_is_down_before_anything_is_handed() -> None:
    web, _ = engine(Runtime(usable=False))
    assert not web.status(SESSION).available
    message = MessageRecord(
        id="m", session_id="s1", workspace_id="w", direction="out", chat_id="1@c.us",
        type="text", content='{"text": "x"}', status="sending",
    )  # fmt: skip
    with pytest.raises(Exception) as caught:
        await web.send(SESSION, message)
    assert getattr(caught.value, "kind", None) is ErrorKind.PROVIDER_DOWN


def test_the_cloud_api_is_never_planned_for_a_chat_it_cannot_address() -> None:
    from adapters.meta import MetaEngine
    from adapters.selector import ProviderSelector

    meta = MetaEngine(
        None,  # type: ignore[arg-type]  # planning sends nothing
        graph_url="http://graph.invalid",
        version="v25.0",
        sessions_root=Path("/nonexistent"),
        credentials=lambda record: None,
    )
    web, _ = engine(Runtime(usable=False))
    selector = ProviderSelector(None, web, meta)  # type: ignore[arg-type]
    auto = SessionRecord(
        session_id="s1", workspace_id="w", status="disconnected", meta_sealed="sealed"
    )

    def planned(chat_id: str, **fields: str) -> list[str]:
        message = MessageRecord(
            id="m", session_id="s1", workspace_id="w", direction="out", chat_id=chat_id,
            type="text", content='{"text": "x"}', status="queued",
        )  # fmt: skip
        return [e.name for e in selector.plan(auto, dataclasses.replace(message, **fields))]

    # WhatsApp Web is down: a phone number may fail over, a group or a linked id waits.
    assert planned("5511988880002@c.us") == ["meta"]
    # ...but not a campaign's free text (Meta refuses it outside the 24-hour window).
    campaign = '{"text": "x", "campaign_id": "cmp_1"}'
    assert planned("5511988880002@c.us", content=campaign, priority="bulk") == []
    assert planned("5511988880002@c.us", content='{"text": "x"}', priority="bulk") == ["meta"]
    assert planned("120363000000000001@g.us") == []
    assert planned("190256482017342@lid") == []
    meta_only = SessionRecord(session_id="s1", workspace_id="w", provider_mode="meta")
    assert selector.reaches(meta_only, "5511988880002@c.us")
    assert not selector.reaches(meta_only, "190256482017342@lid")
    assert selector.reaches(auto, "190256482017342@lid")


class Page:
    """A BrowserSession whose `evaluate` answers what a test gives, or never."""

    def __init__(self, answer: Any = None, hang: bool = False, fail: str | None = None) -> None:
        self.answer, self.hang, self.fail = answer, hang, fail
        self.calls: list[Any] = []

    async def evaluate(self, script: str, arg: Any) -> Any:
        import asyncio

        from playwright.async_api import Error as PlaywrightError

        self.calls.append(arg)
        if self.hang:
            await asyncio.Event().wait()
        if self.fail is not None:
            raise PlaywrightError(self.fail)
        return self.answer


async def test_page_operations_answer_clear_errors_and_never_hang() -> None:
    from service.browser.bridge import PageBridge
    from service.errors import ApiError

    runtime = Runtime()

    async def outcome(page: Page, op: str = "contacts.about") -> ApiError:
        runtime.page = PageBridge(page)  # type: ignore[arg-type]
        web = WebJsEngine(runtime, Path("/nonexistent"), page_timeout=0.05)  # type: ignore[arg-type]
        with pytest.raises(ApiError) as caught:
            await web.call(SESSION, op, {"id": "5511988880002@c.us"})
        return caught.value

    answered = Page({"ok": True, "value": "Available"})
    runtime.page = PageBridge(answered)  # type: ignore[arg-type]
    web = WebJsEngine(runtime, Path("/nonexistent"))  # type: ignore[arg-type]
    assert await web.call(SESSION, "contacts.about", {"id": "1@c.us"}) == "Available"
    assert answered.calls == [["op", ["contacts.about", {"id": "1@c.us"}]]]

    late = await outcome(Page(hang=True))
    assert (late.status, late.code) == (504, "page_timeout")
    # wa-js's own code is passed on; its message, which names the id, is not.
    refused = await outcome(
        Page({"ok": False, "code": "invalid_wid", "message": "Invalid WID value for 5511988880002"})
    )
    assert (refused.status, refused.code, refused.details) == (
        409,
        "page_refused",
        {"wa_code": "invalid_wid"},
    )
    assert "5511988880002" not in refused.message
    odd = await outcome(Page({"ok": False, "code": "Not A Code <x>", "message": "?"}))
    assert (odd.code, odd.details) == ("page_refused", {})
    gone = await outcome(Page(fail="Target page, context or browser has been closed"))
    assert (gone.status, gone.code) == (409, "session_not_connected")
    unknown = await outcome(Page({"ok": True, "value": None}), op="chat.sendTextMessage")
    assert (unknown.status, unknown.code) == (422, "validation_failed")
    runtime._usable = False
    down = await outcome(Page({"ok": True, "value": None}))
    assert (down.code, down.details) == ("session_not_connected", {"status": "connected"})


class MediaPage:
    """A page whose downloadMedia answers as bridge.js does, honouring the cap it is given."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.caps: list[int | None] = []

    async def download_media(self, message_id: str, max_bytes: int | None) -> dict[str, Any]:
        self.caps.append(max_bytes)
        if max_bytes is not None and len(self.data) > max_bytes:
            return {"tooLarge": len(self.data)}
        return {"data": base64.b64encode(self.data).decode()}


async def test_inbound_media_is_downloaded_only_within_the_cap() -> None:
    runtime = Runtime()
    page = runtime.page = MediaPage(b"x" * 100)
    web, _ = engine(runtime)
    message = web.inbound(SESSION, payload(type="image", mimetype="image/png", size=100))
    assert message is not None and message.load_media is not None
    assert await message.load_media(100) == b"x" * 100
    with pytest.raises(MediaTooLarge) as refused:
        await message.load_media(99)
    assert refused.value.size == 100 and page.caps == [100, 99]


async def test_message_actions_become_neutral_records_and_odd_ones_are_dropped() -> None:
    web, sink = engine()
    key = "true_5511988880002@c.us_3EB0BBB"
    events = [
        # chat.new_reaction: milliseconds become seconds, '' a removal.
        (
            "reaction",
            {
                "msg_id": key,
                "ref": "3EB0BBB",
                "reaction": "👍",
                "sender": "5511988880002@c.us",
                "timestamp": 1700000000123,
            },
        ),
        (
            "reaction",
            {"msg_id": key, "ref": "3EB0BBB", "reaction": "", "sender": None, "timestamp": None},
        ),
        ("edited", {"msg_id": key, "ref": "3EB0BBB", "text": "new", "edit_id": None}),
        (
            "revoked",
            {"msg_id": key, "ref": "3EB0BBB", "from": "5511988880002@c.us", "type": "revoke"},
        ),
        # Without the message's key there is nothing to name: dropped, never an error.
        ("reaction", {"msg_id": None, "ref": None, "reaction": "👍"}),
        ("edited", {"msg_id": 7, "ref": "3EB0BBB", "text": "x"}),
        ("revoked", {"ref": "3EB0BBB"}),
    ]
    for kind, data in events:
        await web.on_bridge_event(SESSION, BridgeEvent(kind, data))
    assert sink.actions == [
        Reaction("webjs", "3EB0BBB", key, "5511988880002@c.us", "👍", 1700000000),
        Reaction("webjs", "3EB0BBB", key, None, None, None),
        Edit("webjs", "3EB0BBB", key, "new"),
        Revoke("webjs", "3EB0BBB", key, "5511988880002@c.us"),
    ]
