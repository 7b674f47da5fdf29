"""The send request, the pacer and the message queue in the store: logic without a browser."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from service.errors import ValidationFailed
from service.messaging.pacing import Pacer, PacingPolicy
from service.messaging.request import normalize_recipient, parse_send_request
from service.messaging.status import status_event
from service.store import MessageRecord, NewEvent, SessionRecord, SQLiteStore


@pytest.mark.parametrize(
    ("raw", "chat"),
    [
        ("+5511999990001", "5511999990001@c.us"),
        ("5511999990001", "5511999990001@c.us"),
        ("+55 11 99999-0001", "5511999990001@c.us"),
        ("5511999990001@c.us", "5511999990001@c.us"),
        ("120363025246125486@g.us", "120363025246125486@g.us"),
        ("5511999990001-1596491234@g.us", "5511999990001-1596491234@g.us"),
        # Current WhatsApp names many chats by a linked id (LID) instead of a phone number.
        ("190256482017342@lid", "190256482017342@lid"),
    ],
)
def test_recipients_normalize_to_chat_ids(raw: str, chat: str) -> None:
    assert normalize_recipient(raw) == chat


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "abc",
        "123",
        "+0511999990001",
        "5511999990001@s.whatsapp.net",
        "x@g.us",
        "x@lid",
        "../1@lid",
        5511,
        None,
    ],
)
def test_bad_recipients_name_the_field(raw: object) -> None:
    with pytest.raises(ValidationFailed) as info:
        normalize_recipient(raw)
    assert info.value.field == "to"


def field_of(data: dict[str, Any], header: str | None = None) -> str:
    with pytest.raises(ValidationFailed) as info:
        parse_send_request(data, header)
    return info.value.field


def test_validation_names_each_problem() -> None:
    ok = {"to": "+5511999990001"}
    png = base64.b64encode(b"\x89PNG....").decode()
    assert field_of({**ok, "type": "text"}) == "text"
    assert field_of({**ok, "type": "text", "text": "   "}) == "text"
    assert field_of({**ok, "type": "hologram"}) == "type"
    assert field_of({**ok, "type": "image"}) == "media"
    assert field_of({**ok, "type": "image", "media": {"url": "ftp://x/y.png"}}) == "media.url"
    assert field_of({**ok, "type": "image", "media": {"url": "file:///etc/passwd"}}) == "media.url"
    assert field_of({**ok, "type": "image", "media": {"base64": "!!notb64"}}) == "media.base64"
    assert field_of({**ok, "type": "image", "media": {"base64": png}}) == "media.mimetype"
    both = {"base64": png, "url": "http://x/y", "mimetype": "image/png"}
    assert field_of({**ok, "type": "image", "media": both}) == "media"
    bad_name = {"base64": png, "mimetype": "image/png", "filename": "../x"}
    assert field_of({**ok, "type": "document", "media": bad_name}) == "media.filename"
    assert field_of({**ok, "type": "location", "location": {"latitude": 91, "longitude": 0}}) == (
        "location.latitude"
    )
    assert field_of({**ok, "type": "location", "location": {"latitude": 0, "longitude": -181}}) == (
        "location.longitude"
    )
    assert field_of({**ok, "type": "location", "location": {"latitude": "1", "longitude": 0}}) == (
        "location.latitude"
    )
    huge = {"latitude": 10**400, "longitude": 0}
    assert field_of({**ok, "type": "location", "location": huge}) == "location.latitude"
    injected = {"base64": "data:text/html\r\nX-Injected: 1;base64,QUJD"}
    assert field_of({**ok, "type": "document", "media": injected}) == "media.base64"
    assert field_of({**ok, "type": "text", "text": "x" * 65_537}) == "text"
    assert field_of({**ok, "type": "text", "text": "hi", "priority": "urgent"}) == "priority"
    assert (
        field_of({**ok, "type": "text", "text": "hi", "idempotency_key": ""}) == "idempotency_key"
    )
    assert field_of({**ok, "type": "text", "text": "hi", "idempotency_key": "a"}, "b") == (
        "idempotency_key"
    )
    assert field_of({**ok, "type": "text", "text": "hi", "colour": "red"}) == "colour"


def test_a_valid_request_parses() -> None:
    png = base64.b64encode(b"\x89PNG....").decode()
    message = parse_send_request(
        {
            "to": "+5511999990001",
            "type": "image",
            "text": "look",
            "media": {"base64": f"data:image/png;base64,{png}", "filename": "a.png"},
            "priority": "bulk",
        },
        "key-1",
    )
    assert message.to == "5511999990001@c.us"
    assert message.media is not None and message.media.data == b"\x89PNG...."
    assert message.media.mimetype == "image/png"  # taken from the data URL
    assert (message.priority, message.idempotency_key, message.text) == ("bulk", "key-1", "look")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_pacer_enforces_interval_and_jitter() -> None:
    clock = FakeClock()
    pacer = Pacer(PacingPolicy(min_interval=2.0, jitter=1.0), clock=clock, rng=lambda: 0.5)
    assert pacer.delay("a") == 0
    pacer.record("a")
    assert pacer.delay("b") == pytest.approx(2.5)
    clock.now += 2.5
    assert pacer.delay("b") == 0


def test_pacer_limits_each_recipient_per_minute() -> None:
    clock = FakeClock()
    pacer = Pacer(PacingPolicy(min_interval=0, jitter=0, per_recipient_per_minute=3), clock=clock)
    for _ in range(3):
        assert pacer.delay("a") == 0
        pacer.record("a")
        clock.now += 1
    assert pacer.delay("a") == pytest.approx(57)  # the first of the three leaves the window
    assert pacer.delay("b") == 0
    clock.now += 57
    assert pacer.delay("a") == 0


def test_pacing_off_never_waits() -> None:
    pacer = Pacer(PacingPolicy.off())
    for _ in range(100):
        pacer.record("a")
    assert pacer.delay("a") == 0


def queued(message_id: str, priority: str = "normal", key: str | None = None) -> MessageRecord:
    return MessageRecord(
        id=message_id,
        session_id="s",
        workspace_id="w",
        direction="out",
        chat_id="1234567@c.us",
        type="text",
        content='{"text":"hi"}',
        status="queued",
        priority=priority,
        idempotency_key=key,
    )


async def test_queue_order_idempotency_and_interruption(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "db.sqlite3")
    await store.open()
    await store.create_session(SessionRecord(session_id="s", workspace_id="w"))
    await store.enqueue_message(queued("m1", "bulk"))
    await store.enqueue_message(queued("m2"))
    await store.enqueue_message(queued("m3", "bulk"))
    first = await store.next_queued("s")
    assert first is not None and first.id == "m2"  # normal before bulk, then oldest first

    _, created = await store.enqueue_message(queued("m4", key="k"))
    assert created
    again, created = await store.enqueue_message(queued("m5", key="k"))
    assert not created and again.id == "m4"
    assert await store.get_message("m5") is None

    await store.update_message("m2", {"status": "sending"})
    failed = await store.interrupt_sending(status_event)
    assert [m.id for m in failed] == ["m2"]
    m2 = await store.get_message("m2")
    assert m2 is not None and (m2.status, m2.error) == ("failed", "interrupted")
    (event,) = [e for e in await store.list_events("s") if e.event == "message_status_updated"]
    assert '"error":"interrupted"' in event.body

    inbound = MessageRecord(
        id="in1",
        session_id="s",
        workspace_id="w",
        direction="in",
        chat_id="1@c.us",
        type="text",
        content="{}",
        status="received",
        provider_message_id="false_1@c.us_X",
        provider_ref="X",
    )
    assert await store.record_inbound(inbound, NewEvent("message_received", {})) is not None
    copy = MessageRecord(**{**inbound.__dict__, "id": "in2"})
    assert await store.record_inbound(copy, NewEvent("message_received", {})) is None
    await store.close()


async def test_an_ack_that_beats_its_send_record_is_applied_after_it(tmp_path: Path) -> None:
    from adapters.base import StatusUpdate
    from service.messaging.media import MediaFetcher, media_links
    from service.messaging.messenger import Messenger
    from service.messaging.status import change_status

    store = SQLiteStore(tmp_path / "db.sqlite3")
    await store.open()
    session = await store.create_session(SessionRecord(session_id="s", workspace_id="w"))
    messenger = Messenger(
        store,
        None,  # type: ignore[arg-type]  # acks do not touch the selector
        tmp_path,
        fetcher=MediaFetcher(None, 1, 1),  # type: ignore[arg-type]
        links=media_links("k", "http://x"),
        pacing=PacingPolicy.off(),
        max_media_bytes=1,
    )
    await store.enqueue_message(queued("m1"))
    sending = await store.get_message("m1")
    assert sending is not None
    # The provider reports "read" before the sender has written the provider ref down.
    await messenger.on_status(session, StatusUpdate("webjs", "ABC", "read"))
    sent = await change_status(
        store,
        sending,
        {
            "status": "sent",
            "provider": "webjs",
            "provider_message_id": "true_1234567@c.us_ABC",
            "provider_ref": "ABC",
        },
    )
    await messenger._apply_early(sent)
    final = await store.get_message("m1")
    assert final is not None and final.status == "read"
    statuses = [e.body for e in await store.list_events("s")]
    assert '"status":"read"' in statuses[-1]
    await store.close()


async def test_a_sender_that_hits_a_bug_fails_that_message_and_goes_on(tmp_path: Path) -> None:
    import asyncio

    from adapters.base import SendResult
    from service.messaging.pacing import Pacer
    from service.messaging.sender import Sender

    class Engine:
        name = "webjs"

    class Selector:
        """Raises a bug on the first message, delivers the second."""

        def plan(self, session: SessionRecord, message: MessageRecord) -> list[Engine]:
            return [Engine()]

        async def send(
            self, session: SessionRecord, message: MessageRecord, plan: list[Engine]
        ) -> tuple[str, SendResult]:
            if message.id == "m1":
                raise KeyError("a bug")
            return "webjs", SendResult(f"true_1234567@c.us_{message.id}", message.id)

    store = SQLiteStore(tmp_path / "db.sqlite3")
    await store.open()
    await store.create_session(SessionRecord(session_id="s", workspace_id="w"))
    await store.enqueue_message(queued("m1"))
    await store.enqueue_message(queued("m2"))

    async def no_dir() -> Path | None:
        return None

    sender = Sender(
        "s",
        store=store,
        selector=Selector(),  # type: ignore[arg-type]
        pacer=Pacer(PacingPolicy.off()),
        session_dir=no_dir,
    )
    sender.start()
    try:
        for _ in range(200):
            m2 = await store.get_message("m2")
            if m2 is not None and m2.status == "sent":
                break
            await asyncio.sleep(0.02)
        m1, m2 = await store.get_message("m1"), await store.get_message("m2")
        assert m1 is not None and (m1.status, m1.error) == ("failed", "internal error: KeyError")
        assert m2 is not None and (m2.status, m2.provider_ref) == ("sent", "m2")
        assert sender.task is not None and not sender.task.done()
    finally:
        sender.stop()
        assert sender.task is not None
        await asyncio.wait_for(sender.task, 5)
        await store.close()


def test_a_template_language_may_carry_metas_policy() -> None:
    template = {"name": "hello_world", "language": {"code": "en_US", "policy": "deterministic"}}
    parsed = parse_send_request(
        {"to": "+5511999990001", "type": "template", "template": template}, None
    )
    assert parsed.template == {"name": "hello_world", "language": {"code": "en_US"}}
    assert parsed.priority == "normal"


def test_null_priority_is_the_default() -> None:
    data = {"to": "+5511999990001", "type": "text", "text": "hi", "priority": None}
    assert parse_send_request(data, None).priority == "normal"


def test_a_string_latitude_is_said_to_need_a_number() -> None:
    data = {
        "to": "+5511999990001",
        "type": "location",
        "location": {"latitude": "x", "longitude": 1},
    }
    with pytest.raises(ValidationFailed) as info:
        parse_send_request(data, None)
    assert (info.value.field, info.value.message) == (
        "location.latitude",
        "location.latitude: must be a number",
    )


def test_a_message_with_odd_provider_values_still_has_a_view() -> None:
    """What a provider reported is stored as it came; its view never fails on it."""
    import json
    from types import SimpleNamespace

    from service.messaging.media import media_links
    from service.messaging.messenger import Messenger

    record = MessageRecord(
        id="msg_1",
        session_id="s",
        workspace_id="w",
        direction="in",
        chat_id="5511999990001@c.us",
        type="location",
        content=json.dumps(
            {
                "location": {"latitude": "abc", "longitude": 10**400, "name": 5, "extra": 1},
                "media": {"size": 1.5, "mimetype": None, "file": None},
                "timestamp": 17.5,
                "notify_name": ["x"],
                "from": "5511999990001@c.us",
            }
        ),
        status="received",
        provider="webjs",
    )
    fake = SimpleNamespace(links=media_links("secret", "http://127.0.0.1"))
    view = Messenger.view(fake, record).json_dict()  # type: ignore[arg-type]
    assert view["location"] == {"latitude": None, "longitude": None, "name": None}
    assert view["media"]["size"] is None
    assert view["timestamp"] is None and view["notify_name"] is None
    assert view["from"] == "5511999990001@c.us"


NOW = 1_900_000_000.0  # 2030-03-17T17:46:40Z


@pytest.mark.parametrize(
    ("send_at", "expected"),
    [
        ("2030-03-17T17:50:00Z", NOW + 200),
        ("2030-03-17t14:50:00-03:00", NOW + 200),  # RFC 3339 allows lower case t and z
        ("2030-03-17T17:50:00.123456789z", NOW + 200.123456),  # nanoseconds: to micro
        ("2030-03-17T17:50:00-00:00", NOW + 200),  # -00:00: UTC, its local offset unknown
        ("2030-03-17T17:46:00Z", None),  # 40 s ago: just passed means now
        ("2030-03-17T17:46:40Z", None),
        ("2030-04-16T17:46:40Z", NOW + 30 * 86_400),  # the horizon itself
    ],
)
def test_send_at_is_an_offset_time_and_just_passed_means_now(
    send_at: str, expected: float | None
) -> None:
    body = {"to": "5511999990001", "type": "text", "text": "hi", "send_at": send_at}
    parsed = parse_send_request(body, None, now=NOW).send_at
    assert parsed == (pytest.approx(expected) if expected is not None else None)


@pytest.mark.parametrize(
    ("send_at", "says"),
    [
        ("2030-03-17T17:50:00", "has no offset"),
        ("2030-03-17 17:50:00Z", "RFC 3339"),
        ("2030-02-30T17:50:00Z", "RFC 3339"),
        ("2030-03-17T17:50:00+24:00", "RFC 3339"),
        ("2030-03-17T17:50Z", "RFC 3339"),
        (1_900_000_200, "RFC 3339"),
        ("", "RFC 3339"),
        ("2030-03-17T17:45:39Z", "seconds in the past"),  # 61 s ago
        ("2030-04-16T17:46:41Z", "days ahead"),
    ],
)
def test_send_at_refusals_name_the_field_and_why(send_at: object, says: str) -> None:
    body = {"to": "5511999990001", "type": "text", "text": "hi", "send_at": send_at}
    with pytest.raises(ValidationFailed) as failure:
        parse_send_request(body, None, now=NOW)
    assert failure.value.details["field"] == "send_at"
    assert says in str(failure.value)


async def test_a_sender_sleeps_until_the_earliest_send_at_and_an_enqueue_wakes_it(
    tmp_path: Path,
) -> None:
    """No polling: the sender looks at its queue once per wake-up (a due time, an enqueue),
    and a message scheduled earlier than the one it sleeps towards wakes it."""
    import asyncio
    import time

    from adapters.base import SendResult
    from service.messaging.pacing import Pacer
    from service.messaging.sender import Sender

    class Engine:
        name = "webjs"

    class Selector:
        def plan(self, session: SessionRecord, message: MessageRecord) -> list[Engine]:
            return [Engine()]

        async def send(
            self, session: SessionRecord, message: MessageRecord, plan: list[Engine]
        ) -> tuple[str, SendResult]:
            return "webjs", SendResult(f"true_1234567@c.us_{message.id}", message.id)

    class CountingStore(SQLiteStore):
        looks = 0

        async def next_queued(
            self, session_id: str, now: float | None = None
        ) -> MessageRecord | None:
            CountingStore.looks += 1
            return await super().next_queued(session_id, now)

    def scheduled(message_id: str, send_at: float) -> MessageRecord:
        return MessageRecord(
            **(queued(message_id).__dict__ | {"status": "scheduled", "send_at": send_at})
        )

    store = CountingStore(tmp_path / "db.sqlite3")
    await store.open()
    await store.create_session(SessionRecord(session_id="s", workspace_id="w"))
    await store.enqueue_message(scheduled("far", time.time() + 3600))

    async def no_dir() -> Path | None:
        return None

    sender = Sender(
        "s",
        store=store,
        selector=Selector(),  # type: ignore[arg-type]
        pacer=Pacer(PacingPolicy.off()),
        session_dir=no_dir,
    )
    sender.start()
    try:
        for _ in range(100):
            if CountingStore.looks:
                break
            await asyncio.sleep(0.01)
        soon = time.time() + 1.0
        await store.enqueue_message(scheduled("soon", soon))
        sender.wake()  # what Messenger.accept does after an enqueue
        for _ in range(500):
            sent = await store.get_message("soon")
            if sent is not None and sent.status == "sent":
                break
            await asyncio.sleep(0.02)
        assert sent is not None and sent.status == "sent"
        assert sent.updated_at >= soon
        far = await store.get_message("far")
        assert far is not None and far.status == "scheduled"
        assert await store.next_send_at("s") == far.send_at
        # Looked: at the start; after the wake (nothing due yet); at soon's time; after
        # sending it. A loop polling every 100 ms would have looked ten times in that second.
        assert CountingStore.looks <= 5, CountingStore.looks
    finally:
        sender.stop()
        assert sender.task is not None
        await asyncio.wait_for(sender.task, 5)
        await store.close()
