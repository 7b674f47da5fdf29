"""The store as a worker writes it: every write for a session fenced by the session's lease,
in the write's own transaction; one session's takeover settles exactly its own sends."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import pytest

from service.cluster.fencing import FencedStore
from service.messaging.status import status_event
from service.store import LeaseLost, MessageRecord, SessionRecord, SqlStore
from service.store.base import Lease, NewEvent
from tests.support.stores import Opener, opened_stores


@pytest.fixture
async def opener(db_url: str) -> AsyncIterator[Opener]:
    async for opener in opened_stores(db_url):
        yield opener


async def sending(store: SqlStore, session_id: str) -> str:
    await store.create_session(SessionRecord(session_id, "acme", desired_state="running"))
    message_id = f"msg_{session_id}"
    await store.enqueue_message(
        MessageRecord(
            message_id, session_id, "acme", "out", "5511988880002@c.us", "text", "{}", "queued"
        )
    )
    await store.update_message(message_id, {"status": "sending"})
    return message_id


async def test_takeovers_at_once_each_settle_their_own_sessions_sends(opener: Opener) -> None:
    first, second = await opener(), await opener()
    now = time.time()
    messages = {sid: await sending(first, sid) for sid in ("s1", "s2")}
    leases = {
        "s1": await first.acquire_lease("s1", "wb", now, 30.0),
        "s2": await first.acquire_lease("s2", "wc", now, 30.0),
    }
    assert all(leases.values())
    settled = await asyncio.gather(
        first.interrupt_sending(status_event, "s1", fence=("wb", leases["s1"].token)),  # type: ignore[union-attr]
        second.interrupt_sending(status_event, "s2", fence=("wc", leases["s2"].token)),  # type: ignore[union-attr]
    )
    assert [[m.id for m in part] for part in settled] == [[messages["s1"]], [messages["s2"]]]
    for message_id in messages.values():
        record = await first.get_message(message_id)
        assert record is not None and (record.status, record.error) == ("failed", "interrupted")


async def test_a_node_that_lost_the_lease_writes_nothing(opener: Opener) -> None:
    store = await opener()
    message_id = await sending(store, "s1")
    now = time.time()
    old = await store.acquire_lease("s1", "wa", now, 30.0)
    assert old is not None
    owned: dict[str, Lease] = {"s1": old}
    fenced = FencedStore.wrap(store, "wa", owned)
    # Another node takes the session (the lease ran out under a paused "wa").
    assert await store.acquire_lease("s1", "wb", now + 31, 30.0) is not None
    inbound = MessageRecord("msg_in", "s1", "acme", "in", "x@c.us", "text", "{}", "received")
    event = NewEvent("message_received", {"id": "msg_in"})
    for write in (
        fenced.update_session("s1", {"phone_number": "1"}),
        fenced.update_message(message_id, {"status": "sent"}),
        fenced.record_inbound(inbound, event),
        fenced.interrupt_sending(status_event, "s1"),
    ):
        with pytest.raises(LeaseLost):
            await write
    record = await store.get_message(message_id)
    assert record is not None and record.status == "sending"
    assert await store.get_message("msg_in") is None
    # A session the node never held is refused before the store is asked.
    with pytest.raises(LeaseLost):
        await fenced.update_session("other", {})


async def test_a_workers_events_carry_the_metadata_and_filter_the_api_wrote(
    opener: Opener,
) -> None:
    """The api role writes the session; the worker's fenced writes build the webhooks."""
    api, worker = await opener(), await opener()
    await api.create_session(SessionRecord("s1", "acme", desired_state="running"))
    lease = await worker.acquire_lease("s1", "wa", time.time(), 30.0)
    assert lease is not None
    fenced = FencedStore.wrap(worker, "wa", {"s1": lease})
    await api.update_session(
        "s1", {"metadata": '{"account_id":42}', "webhook_events": '["qr_code_generated"]'}
    )
    status = NewEvent("session_status_changed", {"status": "qr_required", "previous": "stopped"})
    qr = NewEvent("qr_code_generated", {"qr": "x"})
    await fenced.update_session("s1", {"status": "qr_required"}, [status, qr])
    (event,) = await api.list_events(session_id="s1")
    assert event.event == "qr_code_generated"
    assert json.loads(event.body)["metadata"] == {"account_id": 42}
