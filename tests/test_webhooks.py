"""Signed webhooks from the durable outbox (docs/webhooks.md), against real receivers on
127.0.0.1."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from service import __version__
from service.store import (
    NO_WEBHOOK_URL,
    RETRY_WINDOW,
    NewEvent,
    OutboxEvent,
    SessionRecord,
    Store,
    open_store,
)
from tests.conftest import ENGINES, WEBHOOK_SECRET
from tests.support.receivers import Receiver, php_receiver, python_receiver
from tests.support.sandbox import Phone, eventually, sandbox_process
from tests.support.server import free_port
from tests.support.sidecar import Sidecar
from webhooks.dispatcher import Dispatcher, RetryPolicy

FAST_RETRY = RetryPolicy(base=0.05, cap=0.2)


class Line:
    """A real store and dispatcher in this test's loop, delivering to `url`."""

    def __init__(self, store: Store, dispatcher: Dispatcher) -> None:
        self.store = store
        self.dispatcher = dispatcher

    async def emit(self, session_id: str, n: int, event: str = "test_event") -> None:
        record = await self.store.get_session(session_id)
        if record is None:
            await self.store.create_session(SessionRecord(session_id=session_id, workspace_id="w"))
        for i in range(n):
            await self.store.update_session(session_id, {}, [NewEvent(event, {"n": i})])

    async def statuses(self) -> dict[str, str]:
        return {e.id: e.status for e in await self.store.list_events(limit=10_000)}

    async def exactly(self, status: str, count: int = 1) -> bool:
        """Whether the outbox holds `count` events, every one `status`."""
        return list((await self.statuses()).values()) == [status] * count


@pytest.fixture
async def line_factory(
    tmp_path: Path, database: Callable[[str], dict[str, str]]
) -> AsyncIterator[Any]:
    made: list[tuple[Store, Dispatcher, httpx.AsyncClient]] = []

    async def make(url: str, **options: Any) -> Line:
        where = database(f"outbox_{len(made)}").get("SIDECAR_DATABASE_URL")
        store = open_store(where or str(tmp_path / f"outbox-{len(made)}.sqlite3"))
        await store.open()
        client = httpx.AsyncClient()
        dispatcher = Dispatcher(
            store,
            client,
            secret=WEBHOOK_SECRET,
            default_url=url,
            retry=FAST_RETRY,
            idle_poll=0.05,
            **options,
        )
        store.subscribe(dispatcher.on_events)
        await dispatcher.start()
        made.append((store, dispatcher, client))
        return Line(store, dispatcher)

    yield make
    for store, dispatcher, client in made:
        await dispatcher.stop()
        await client.aclose()
        await store.close()


async def until(check: Any, timeout: float = 30.0) -> Any:
    for _ in range(int(timeout / 0.02)):
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with python_receiver() as r:
        yield r


async def test_headers_and_signatures(line_factory: Any, receiver: Receiver) -> None:
    line = await line_factory(receiver.url)
    await line.emit("s1", 1, "qr_code_generated")
    await until(lambda: receiver.requests)
    (request,) = receiver.requests
    headers, body = request["headers"], request["body"]
    (stored,) = await line.store.list_events()
    assert body == stored.body.encode()  # the frozen bytes, not a re-encoding
    ts = headers["x-timestamp"]
    assert (
        headers["x-hmac-signature"]
        == hmac.new(WEBHOOK_SECRET.encode(), ts.encode() + body, hashlib.sha256).hexdigest()
    )
    assert (
        headers["signature"] == hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
    )
    assert headers["x-webhook-id"] == stored.id == request["json"]["id"]
    assert headers["x-webhook-event"] == "qr_code_generated"
    assert headers["user-agent"] == f"wa-sidecar/{__version__}"
    assert headers["content-type"] == "application/json"
    payload = request["json"]
    assert set(payload) == {
        "id", "event", "timestamp", "workspace_id", "session_id", "metadata", "data"
    }  # fmt: skip
    assert payload["metadata"] is None  # the session has none

    await until(lambda: line.exactly("delivered"))


async def test_order_per_session_with_sessions_in_parallel(
    line_factory: Any, receiver: Receiver
) -> None:
    receiver.delay = 0.02
    line = await line_factory(receiver.url)
    for session in ("a", "b", "c"):
        await line.emit(session, 15)
    await until(lambda: len(receiver.requests) >= 45)
    for session in ("a", "b", "c"):
        seen = [e["data"]["n"] for e in receiver.events() if e["session_id"] == session]
        assert seen == list(range(15))
    assert receiver.max_active >= 2, "sessions were delivered one at a time"


@pytest.mark.parametrize("status", [400, 401, 404, 410, 422])
async def test_other_4xx_are_dead_at_once(
    line_factory: Any, receiver: Receiver, status: int
) -> None:
    receiver.status = status
    line = await line_factory(receiver.url)
    await line.emit("s1", 1)
    await until(lambda: line.store.list_events(status="dead"))
    (dead,) = await line.store.list_events(status="dead")
    assert (dead.attempts, dead.last_status_code) == (1, status)
    # A dead event does not block its session's line.
    receiver.status = 200
    await line.emit("s1", 1)
    await until(lambda: line.store.list_events(status="delivered"))
    assert len(receiver.requests) == 2


@pytest.mark.parametrize("status", [408, 425, 429, 500, 503])
async def test_retryable_answers_are_retried(
    line_factory: Any, receiver: Receiver, status: int
) -> None:
    receiver.status = status
    line = await line_factory(receiver.url)
    await line.emit("s1", 3)
    await until(lambda: len(receiver.requests) >= 4)
    # Nothing after the head went out while the head was failing.
    assert {r["json"]["data"]["n"] for r in receiver.requests} == {0}
    receiver.status = 200
    await until(lambda: len(receiver.events()) >= 4 + 2 and receiver.events()[-1]["data"]["n"] == 2)
    ns = [e["data"]["n"] for e in receiver.events()]
    assert ns[-3:] == [0, 1, 2] and set(ns[:-3]) == {0}
    await until(lambda: line.store.list_events(status="delivered"))

    await until(lambda: line.exactly("delivered", 3))
    assert (await line.store.list_events())[0].attempts >= 4


@pytest.mark.parametrize("engine", ENGINES)
async def test_receiver_down_then_back_loses_nothing(line_factory: Any) -> None:
    port = free_port()
    line = await line_factory(f"http://127.0.0.1:{port}/hook")
    for session in ("a", "b"):
        await line.emit(session, 10)

    async def failed_while_down() -> bool:
        heads = await line.store.list_events(status="pending", limit=1)
        return bool(heads) and all(e.attempts >= 1 for e in heads)

    await until(failed_while_down)  # attempts failed while nothing listened
    with python_receiver(port=port) as receiver:
        await until(lambda: len(receiver.requests) >= 20)
        for session in ("a", "b"):
            seen = [e["data"]["n"] for e in receiver.events() if e["session_id"] == session]
            assert seen == list(range(10))

    async def all_delivered() -> bool:
        return set((await line.statuses()).values()) == {"delivered"}

    await until(all_delivered)


async def parked(line: Line, count: int) -> list[OutboxEvent]:
    """Wait until the outbox holds `count` events, none dead and every head waiting for a
    URL (nothing sent, `last_error` says why, due again at its 24 h horizon)."""

    async def settled() -> list[OutboxEvent] | None:
        events = await line.store.list_events(limit=10_000)
        heads = {e.session_id: e for e in reversed(events)}.values()
        if len(events) != count or any(e.last_error != NO_WEBHOOK_URL for e in heads):
            return None
        return events

    events: list[OutboxEvent] = await until(settled)
    for event in events:
        assert event.status == "pending" and event.attempts == 0
    for head in {e.session_id: e for e in reversed(events)}.values():
        assert head.next_attempt_at == head.give_up_at
    return events


@pytest.mark.parametrize("engine", ENGINES)
async def test_with_no_url_events_wait_then_go_out_in_order_once_a_url_is_set(
    line_factory: Any, receiver: Receiver
) -> None:
    line = await line_factory("")
    await line.emit("s1", 3)
    await line.emit("s2", 2)
    await parked(line, 5)
    assert not receiver.requests

    # What PATCH /api/sessions/s1 {"webhook_url"} writes: only that session's line moves.
    await line.store.update_session("s1", {"webhook_url": receiver.url})
    await until(lambda: len(receiver.requests) >= 3)
    assert [(e["session_id"], e["data"]["n"]) for e in receiver.events()] == [
        ("s1", 0),
        ("s1", 1),
        ("s1", 2),
    ]
    s1 = await line.store.list_events(session_id="s1")
    await until(lambda: line.store.list_events(session_id="s1", status="delivered"))
    assert all(e.url == receiver.url for e in s1)
    # s2 still waits, and its events since keep waiting behind its head.
    await line.emit("s2", 1)
    await parked_line(line, "s2", 3)
    assert len(receiver.requests) == 3


async def parked_line(line: Line, session_id: str, count: int) -> None:
    """Wait until the session's line holds `count` pending events behind a parked head."""

    async def settled() -> bool:
        events = await line.store.list_events(session_id=session_id)
        return (
            len(events) == count
            and all(e.status == "pending" for e in events)
            and events[0].last_error == NO_WEBHOOK_URL
        )

    await until(settled)


@pytest.mark.parametrize("engine", ENGINES)
async def test_waiting_events_are_dead_at_the_horizon(line_factory: Any) -> None:
    shift = [0.0]
    line = await line_factory("", clock=lambda: time.time() + shift[0])
    await line.emit("s1", 2)
    await parked(line, 2)

    shift[0] = RETRY_WINDOW + 1  # the dispatcher's clock a day on: the heads are due again
    await until(lambda: line.exactly("dead", 2))
    for dead in await line.store.list_events():
        assert dead.attempts == 0 and dead.last_status_code is None
        assert dead.last_error is not None
        assert dead.last_error.startswith(NO_WEBHOOK_URL)
        assert "SIDECAR_WEBHOOK_URL" in dead.last_error and "retry window" in dead.last_error


async def test_a_dispatcher_that_starts_with_a_url_delivers_what_waited(
    line_factory: Any, receiver: Receiver
) -> None:
    line = await line_factory("")
    await line.emit("s1", 2)
    await parked(line, 2)
    await line.dispatcher.stop()

    # The same store, after a restart with SIDECAR_WEBHOOK_URL set.
    async with httpx.AsyncClient() as client:
        dispatcher = Dispatcher(
            line.store,
            client,
            secret=WEBHOOK_SECRET,
            default_url=receiver.url,
            retry=FAST_RETRY,
            idle_poll=0.05,
        )
        line.store.subscribe(dispatcher.on_events)
        await dispatcher.start()
        try:
            await until(lambda: line.exactly("delivered", 2))
        finally:
            await dispatcher.stop()
    assert [e["data"]["n"] for e in receiver.events()] == [0, 1]


def test_retry_delay_is_full_jitter_doubling_to_the_cap() -> None:
    policy = RetryPolicy(base=1.0, cap=600.0)
    assert [policy.delay(a, rng=lambda: 1.0) for a in range(12)] == [
        1,
        2,
        4,
        8,
        16,
        32,
        64,
        128,
        256,
        512,
        600,
        600,
    ]
    assert policy.delay(5, rng=lambda: 0.0) == 0
    assert policy.delay(10_000, rng=lambda: 0.5) == 300


# End to end: a whole sidecar, the sandbox and Chromium.

ME = "5511999990001"
FRIEND = "5511988880002"


@pytest.fixture
def phone() -> Iterator[Phone]:
    with sandbox_process() as p:
        yield p


def flow(car: Sidecar, phone: Phone, session_id: str = "w1") -> None:
    assert (
        car.api.post(
            "/api/sessions", json={"workspace_id": "acme", "session_id": session_id}
        ).status_code
        == 201
    )
    car.wait_status(session_id, "qr_required")
    qr = car.api.get(f"/api/sessions/{session_id}/qr").json()["qr"]
    assert phone.scan(qr, ME).status_code == 200
    car.wait_status(session_id, "connected")


@pytest.mark.browser
@pytest.mark.php
def test_php_receiver_gets_a_full_session_flow_verified_and_in_order(
    tmp_path: Path, phone: Phone
) -> None:
    with php_receiver(tmp_path, WEBHOOK_SECRET) as php:
        car = Sidecar(
            tmp_path / "storage",
            WA_WEB_URL=phone.base + "/",
            SIDECAR_PACING="off",
            SIDECAR_WEBHOOK_URL=php.url,
            SIDECAR_WEBHOOK_RETRY_BASE_MS="100",
            SIDECAR_WEBHOOK_RETRY_CAP_S="1",
        ).start()
        try:
            flow(car, phone)
            assert phone.inbound(to=ME, **{"from": FRIEND}, text="hi there").status_code == 200
            sent = car.api.post(
                "/api/sessions/w1/messages", json={"to": FRIEND, "type": "text", "text": "hello"}
            ).json()

            def provider_id() -> str | None:
                record = car.api.get(f"/api/sessions/w1/messages/{sent['id']}").json()
                return record["provider_message_id"] if record["status"] == "sent" else None

            pid = eventually(provider_id, 60, "the message to be sent")
            phone.ack(pid, 2)
            phone.ack(pid, 3)
            eventually(
                lambda: [
                    e
                    for e in car.events("w1", "message_status_updated")
                    if e["data"]["status"] == "read"
                ],
                60,
                "the read ack",
            )
            outbox = car.events("w1")
            eventually(lambda: len(php.received()) >= len(outbox), 60, "every webhook at PHP")
            got = php.received()
            assert all(r["hmac_ok"] and r["signature_ok"] and r["fresh"] for r in got)
            assert all(r["user_agent"] == f"wa-sidecar/{__version__}" for r in got)
            assert [r["payload"]["id"] for r in got] == [e["id"] for e in outbox]
            assert all(r["webhook_id"] == r["payload"]["id"] for r in got)
            assert all(r["event_header"] == r["payload"]["event"] for r in got)
            kinds = [r["payload"]["event"] for r in got]
            for kind in (
                "session_status_changed",
                "qr_code_generated",
                "message_received",
                "message_status_updated",
            ):
                assert kind in kinds
            statuses = [
                r["payload"]["data"]["status"]
                for r in got
                if r["payload"]["event"] == "session_status_changed"
            ]
            assert statuses[-1] == "connected" and statuses.index("qr_required") < len(statuses) - 1

            # 410 -> dead at once; the replay endpoint delivers it again, same id.
            php.answer(410)
            car.api.post(
                "/api/sessions/w1/messages", json={"to": FRIEND, "type": "text", "text": "later"}
            )
            dead = eventually(
                lambda: car.api.get("/api/webhooks/deliveries", params={"status": "dead"}).json()[
                    "data"
                ],
                60,
                "a dead delivery",
            )
            assert dead[0]["last_status_code"] == 410 and dead[0]["attempts"] == 1
            php.answer(200)
            replay = car.api.post(f"/api/webhooks/deliveries/{dead[0]['id']}/retry")
            assert replay.status_code == 202, replay.text
            eventually(
                lambda: [
                    r for r in php.received() if r["webhook_id"] == dead[0]["id"] and r["hmac_ok"]
                ][1:],
                60,
                "the replayed delivery",
            )
            eventually(
                lambda: (
                    car.api.get(
                        "/api/webhooks/deliveries", params={"status": "delivered", "limit": "1000"}
                    ).json()["data"][-1]["id"]
                    == dead[0]["id"]
                ),
                30,
                "the replay to be recorded as delivered",
            )
            # Only dead deliveries replay. (A body, so this is not the same signed request.)
            again = car.api.post(f"/api/webhooks/deliveries/{dead[0]['id']}/retry", json={})
            assert again.status_code == 409
            assert again.json()["error"]["code"] == "delivery_not_dead"
        finally:
            car.close()


@pytest.mark.browser
@pytest.mark.parametrize("engine", ENGINES)
def test_kill_9_mid_delivery_loses_nothing(
    tmp_path: Path, phone: Phone, database: Callable[[str], dict[str, str]]
) -> None:
    port = free_port()
    with python_receiver(port=port) as receiver:
        receiver.delay = 1.0  # slow enough that a kill lands mid-request
        car = Sidecar(
            tmp_path / "storage",
            WA_WEB_URL=phone.base + "/",
            SIDECAR_WEBHOOK_URL=receiver.url,
            SIDECAR_WEBHOOK_RETRY_BASE_MS="100",
            SIDECAR_WEBHOOK_RETRY_CAP_S="1",
            **database("kill_mid_delivery"),
        ).start()
        try:
            for sid in ("k1", "k2"):
                car.api.post("/api/sessions", json={"workspace_id": "acme", "session_id": sid})
            # Kill while a delivery is in flight: the receiver holds each answer 1 s.
            eventually(lambda: receiver.holding, 30, "a delivery in flight")
            in_flight = receiver.holding[0]
            car.kill9()
            receiver.delay = 0
            car.start()
            outbox = {sid: [e["id"] for e in car.events(sid)] for sid in ("k1", "k2")}
            expected = {i for ids in outbox.values() for i in ids}
            eventually(
                lambda: expected <= {r["json"]["id"] for r in receiver.requests},
                60,
                "every event at the receiver",
            )
            final = {sid: [e["id"] for e in car.events(sid)] for sid in ("k1", "k2")}
        finally:
            car.close()
    by_id: dict[str, set[bytes]] = {}
    for r in receiver.requests:
        assert r["headers"]["x-webhook-id"] == r["json"]["id"]
        by_id.setdefault(r["json"]["id"], set()).add(r["body"])
    # The event in flight at the kill was never recorded as delivered, so it came again...
    assert sum(r["json"]["id"] == in_flight for r in receiver.requests) >= 2
    # ...and a repeat carries the same id and the same bytes.
    assert all(len(bodies) == 1 for bodies in by_id.values())
    # And each session's events first arrived in the order they were produced.
    received = set(by_id)
    for sid, ids in final.items():
        first_seen = list(
            dict.fromkeys(
                r["json"]["id"] for r in receiver.requests if r["json"]["session_id"] == sid
            )
        )
        assert first_seen == [i for i in ids if i in received]


def scripted_receiver(answers: list[tuple[int, dict[str, str], bytes]]) -> Any:
    """A receiver that gives `answers` in turn (then 200), recording each request."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    seen: list[bytes] = []

    async def hook(request: Request) -> Response:
        seen.append(await request.body())
        status, headers, body = answers.pop(0) if answers else (200, {}, b"ok")
        response = Response(body, status_code=status)
        # Raw bytes, so a header may carry what a hostile receiver sends (UTF-8 digits).
        response.raw_headers += [(k.encode(), v.encode()) for k, v in headers.items()]
        return response

    app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
    return app, seen


async def test_a_redirect_is_retried_never_followed_and_says_where(line_factory: Any) -> None:
    from tests.support.server import serve_app

    elsewhere = "https://user:pw@other.example/hook"
    app, seen = scripted_receiver([(302, {"location": elsewhere}, b"")])
    with serve_app(app) as base:
        line = await line_factory(f"{base}/hook")
        await line.emit("s1", 1)

        await until(lambda: line.exactly("delivered"))
        (event,) = await line.store.list_events()
        # The redirect cost one attempt and was not followed (it could lead anywhere).
        assert event.attempts == 2 and len(seen) == 2


async def test_a_redirect_leaves_the_event_pending_with_its_target(line_factory: Any) -> None:
    from tests.support.server import serve_app

    app, seen = scripted_receiver(
        [(301, {"location": "https://user:pw@app.example/hook"}, b"")] * 50
    )
    with serve_app(app) as base:
        line = await line_factory(f"{base}/hook")
        await line.emit("s1", 1)
        await until(lambda: len(seen) >= 2)
        (event,) = await line.store.list_events()
        assert event.status == "pending" and event.last_status_code == 301
        assert event.last_error is not None
        assert "redirect to https://***@app.example/hook" in event.last_error
        assert "pw" not in event.last_error


async def test_a_refusal_keeps_the_start_of_the_receivers_answer(line_factory: Any) -> None:
    from tests.support.server import serve_app

    why = b'{"message":"The given data was invalid.","errors":{"event":["unknown"]}}'
    app, _ = scripted_receiver([(422, {"content-type": "application/json"}, why + b"x" * 2000)])
    with serve_app(app) as base:
        line = await line_factory(f"{base}/hook")
        await line.emit("s1", 1)
        await until(lambda: line.store.list_events(status="dead"))
        (dead,) = await line.store.list_events(status="dead")
        assert dead.last_error is not None
        assert dead.last_error.startswith('HTTP 422: {"message":"The given data was invalid."')
        assert len(dead.last_error) <= len("HTTP 422: ") + 512


@pytest.mark.parametrize("retry_after", ["²", "①", "١٢", "Wed, 21 Oct 2015 07:28:00 GMT"])
async def test_an_odd_retry_after_falls_back_to_the_backoff(
    line_factory: Any, retry_after: str
) -> None:
    from tests.support.server import serve_app

    app, seen = scripted_receiver([(503, {"retry-after": retry_after}, b"busy")] * 3)
    with serve_app(app) as base:
        line = await line_factory(f"{base}/hook")
        await line.emit("s1", 1)

        await until(lambda: line.exactly("delivered"))
        (event,) = await line.store.list_events()
        # Each refusal counted as one attempt; no hot loop around a header int() refuses.
        assert event.attempts == 4 and len(seen) == 4


async def test_a_webhook_host_that_resolves_to_a_metadata_address_is_refused(
    line_factory: Any, receiver: Receiver
) -> None:
    lookups: list[str] = []

    async def resolver(host: str, port: int) -> list[str]:
        lookups.append(host)
        return {"hooks.example": ["169.254.169.254"], "localhost": ["127.0.0.1"]}[host]

    bad = await line_factory("http://hooks.example:9/hook", resolver=resolver)
    await bad.emit("s1", 2)
    await until(lambda: bad.store.list_events(status="dead"))
    await until(lambda: len(lookups) >= 1)
    dead = await bad.store.list_events(status="dead")
    assert dead and dead[0].last_error is not None
    assert "resolves to a link-local address (169.254.169.254 for hooks.example)" in (
        dead[0].last_error
    )
    # A name that resolves somewhere allowed is delivered (and looked up once, not per event).
    port = receiver.url.rsplit(":", 1)[1]
    good = await line_factory(f"http://localhost:{port}", resolver=resolver)
    await good.emit("s2", 3)
    await until(lambda: len(receiver.requests) >= 3)
    assert lookups.count("localhost") == 1
