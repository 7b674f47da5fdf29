"""The campaign tables on both engines: a recipient becomes a queued message in one
transaction, at most once and in order; cancel, counts and pages."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from service.store import MessageRecord, NewEvent, SessionRecord, SqlStore
from service.store.campaigns import CampaignRecord, CampaignStore, NewRecipient
from tests.support.stores import Opener, opened_stores


@pytest.fixture
async def stores(db_url: str) -> AsyncIterator[Opener]:
    async for opener in opened_stores(db_url):
        yield opener


def campaign(campaign_id: str = "cmp_1", total: int = 5) -> CampaignRecord:
    return CampaignRecord(
        id=campaign_id, session_id="s", workspace_id="w", name="n", status="running",
        message=json.dumps({"type": "text", "text": "hi"}), options="{}", start_at=None,
        reason=None, total=total,
    )  # fmt: skip


def recipients(count: int) -> list[NewRecipient]:
    return [
        NewRecipient(f"55119{i:08d}@c.us", json.dumps({"i": str(i)}), f"k{i}") for i in range(count)
    ]


def build(row: tuple[int, str, str | None]) -> MessageRecord:
    seq, chat_id, _ = row
    return MessageRecord(
        id=f"msg_{seq}", session_id="s", workspace_id="w", direction="out", chat_id=chat_id,
        type="text", content='{"text":"hi","campaign_id":"cmp_1"}', status="queued",
        priority="bulk",
    )  # fmt: skip


async def opened(stores: Opener) -> tuple[SqlStore, CampaignStore]:
    store = await stores()
    await store.create_session(SessionRecord(session_id="s", workspace_id="w"))
    return store, CampaignStore(store)


async def test_each_recipient_becomes_one_queued_message_in_order(stores: Opener) -> None:
    store, campaigns = await opened(stores)
    record = await campaigns.create(campaign(total=5), recipients(5))
    assert (await campaigns.get("cmp_1")) == record
    sent = []
    for _ in range(5):
        message = await campaigns.enqueue_next(record, build, 0.0)
        assert message is not None and message.priority == "bulk"
        # One message in flight at a time: the next waits for this one's outcome.
        assert await campaigns.enqueue_next(record, build, 0.0) is None
        await store.update_message(message.id, {"status": "sent"})
        current = await campaigns.get("cmp_1")
        assert current is not None and current.last_message_id == message.id
        settled = await campaigns.settle(current, message.id, failed=False)
        assert settled is not None and settled.last_message_id is None
        # Settling twice counts once.
        assert (await campaigns.settle(current, message.id, failed=True)).failed == 0  # type: ignore[union-attr]
        sent.append(message.chat_id)
    assert sent == [r.chat_id for r in recipients(5)]
    assert await campaigns.enqueue_next(record, build, 0.0) is None
    assert await campaigns.counts("cmp_1") == {"sent": 5}
    final = await campaigns.get("cmp_1")
    assert final is not None and (final.enqueued, final.settled, final.failed) == (5, 5, 0)


async def test_two_runners_racing_take_each_recipient_once(stores: Opener) -> None:
    _, campaigns = await opened(stores)
    other = CampaignStore(await stores())
    record = await campaigns.create(campaign(total=40), recipients(40))
    taken: list[str] = []
    while True:
        results = await asyncio.gather(
            campaigns.enqueue_next(record, build, 0.0), other.enqueue_next(record, build, 0.0)
        )
        made = [m for m in results if m is not None]
        if not made:
            break
        assert len(made) == 1, "two messages in flight"
        taken.append(made[0].chat_id)
        current = await campaigns.get("cmp_1")
        assert current is not None and current.last_message_id is not None
        await campaigns.settle(current, current.last_message_id, failed=False)
    assert taken == [r.chat_id for r in recipients(40)]


async def test_cancel_pages_and_filters(stores: Opener) -> None:
    store, campaigns = await opened(stores)
    record = await campaigns.create(campaign(total=7), recipients(7))
    first = await campaigns.enqueue_next(record, build, 0.0)
    assert first is not None
    await store.update_message(first.id, {"status": "failed", "error": "boom"})
    done = await campaigns.cancel(record, lambda c: [NewEvent("campaign_completed", {"id": c.id})])
    assert done is not None and done.status == "cancelled" and done.finished_at
    assert await campaigns.cancel(done, lambda c: []) is None  # final already
    assert await campaigns.enqueue_next(done, build, 0.0) is None
    assert await campaigns.counts("cmp_1") == {"failed": 1, "cancelled": 6}
    page = await campaigns.recipients("cmp_1", status=None, after=0, limit=4)
    assert [r.status for r in page] == ["failed", "cancelled", "cancelled", "cancelled"]
    assert page[0].error == "boom" and page[0].message_id == first.id and page[0].key == "k0"
    rest = await campaigns.recipients("cmp_1", status=None, after=page[-1].seq, limit=4)
    assert len(rest) == 3
    failed = await campaigns.recipients("cmp_1", status="failed", after=0, limit=10)
    assert [r.chat_id for r in failed] == [first.chat_id]
    assert len(await campaigns.recipients("cmp_1", status="cancelled", after=0, limit=10)) == 6
    await campaigns.delete_session("s")
    assert await campaigns.get("cmp_1") is None
    assert await campaigns.recipients("cmp_1", status=None, after=0, limit=10) == []


async def test_resume_starts_the_stop_rule_over_from_the_sends_so_far(stores: Opener) -> None:
    _, campaigns = await opened(stores)
    record = await campaigns.create(campaign(total=3), recipients(3))
    message = await campaigns.enqueue_next(record, build, 0.0)
    assert message is not None
    settled = await campaigns.settle(record, message.id, failed=True)
    assert settled is not None
    assert await campaigns.resume(settled, "running") is None  # only a paused one resumes
    paused = await campaigns.update(settled, {"status": "paused", "reason": "x"})
    assert paused is not None
    resumed = await campaigns.resume(paused, "running")
    assert resumed is not None and (resumed.status, resumed.reason) == ("running", None)
    assert (resumed.base_settled, resumed.base_failed) == (1, 1)


async def test_long_variables_are_kept_whole(stores: Opener) -> None:
    _, campaigns = await opened(stores)
    # 20 values of 1,024 characters of 4 bytes each: more than MySQL's TEXT takes.
    variables = json.dumps({f"v{i}": "\U0001f600" * 1024 for i in range(20)}, ensure_ascii=False)
    assert len(variables.encode()) > 65_535
    await campaigns.create(campaign(total=1), [NewRecipient("5511900000001@c.us", variables, None)])
    rows = await campaigns.recipients("cmp_1", status=None, after=0, limit=10)
    assert [r.variables for r in rows] == [variables]


async def test_a_create_that_fails_leaves_nothing_behind(
    stores: Opener, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, campaigns = await opened(stores)
    monkeypatch.setattr("service.store.campaigns.INSERT_BATCH", 2)
    # The second batch fails (a recipient without a chat id) after the first was written.
    bad = [*recipients(3), NewRecipient(None, None, None)]  # type: ignore[arg-type]
    with pytest.raises(Exception):  # noqa: B017 - the engine's own integrity error
        await campaigns.create(campaign(total=4), bad)
    assert await campaigns.get("cmp_1") is None
    assert await campaigns.find("s") == []
    assert await campaigns.recipients("cmp_1", status=None, after=0, limit=10) == []
    # The id is free again, and a create that works is seen whole.
    made = await campaigns.create(campaign(total=3), recipients(3))
    assert made.status == "running" and await campaigns.get("cmp_1") == made
    assert len(await campaigns.recipients("cmp_1", status=None, after=0, limit=10)) == 3


async def test_a_campaign_left_creating_is_hidden_then_removed(stores: Opener) -> None:
    store, campaigns = await opened(stores)
    record = await campaigns.create(campaign(total=2), recipients(2))
    # As a process that died mid-create leaves it.
    await campaigns.update(record, {"status": "creating"})
    assert await campaigns.get("cmp_1") is None and await campaigns.find("s") == []
    await campaigns.drop_abandoned(record.created_at + 60)
    assert len(await campaigns.recipients("cmp_1", status=None, after=0, limit=10)) == 2
    await campaigns.drop_abandoned(record.created_at + 7200)
    assert await campaigns.recipients("cmp_1", status=None, after=0, limit=10) == []
    assert await store.list_events("s") == []
