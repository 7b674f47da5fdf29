"""The campaign runner on a real SQLite store with its clock given: the window defers the
first send, a blocked account pauses the campaign with the reason, and the stop rule's
arithmetic. No browser: the sender it wakes is a list here."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from service.campaigns.runner import CampaignRunner
from service.sessions.state import StatusWriter
from service.store import SessionRecord, SqlStore
from service.store.campaigns import CampaignRecord, CampaignStore, NewRecipient

MONDAY_8 = datetime(2026, 12, 7, 8, 0, tzinfo=UTC).timestamp()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqlStore]:
    opened = SqlStore(tmp_path / "s.sqlite3")
    await opened.open()
    await opened.create_session(SessionRecord(session_id="s", workspace_id="w"))
    yield opened
    await opened.close()


async def runner_on(
    store: SqlStore,
    now: list[float],
    window: dict[str, str] | None,
    woken: list[str],
    total: int = 3,
) -> tuple[CampaignRunner, CampaignRecord]:
    campaigns = CampaignStore(store)
    options = {
        "rate": {"per_minute": 60, "jitter": 0.0},
        "stop_rule": {"failure_rate": 0.5, "min_sample": 2},
        "window": window,
    }
    record = await campaigns.create(
        CampaignRecord(
            id="cmp_1", session_id="s", workspace_id="w", name="n", status="scheduled",
            message=json.dumps({"type": "text", "text": "hi {{n}}"}),
            options=json.dumps(options), start_at=None, reason=None, total=total,
        ),
        [NewRecipient(f"55119{i:08d}@c.us", json.dumps({"n": str(i)}), None) for i in range(total)],
    )  # fmt: skip
    runner = CampaignRunner(
        campaigns,
        sessions_root=store.path.parent if store.path else Path("."),
        wake_sender=woken.append,
        progress_every=30.0,
        clock=lambda: now[0],
    )
    return runner, record


async def test_a_closed_window_defers_the_first_send_until_it_opens(store: SqlStore) -> None:
    now, woken = [MONDAY_8], []
    window = {"start": "09:00", "end": "17:00", "timezone": "UTC"}
    runner, record = await runner_on(store, now, window, woken)
    # Started (its start time is now), but nothing goes before 09:00: it looks again later.
    delay = await runner.step("s")
    assert delay is not None and delay > 0
    campaigns = runner.campaigns
    current = await campaigns.get(record.id)
    assert current is not None and current.status == "running" and current.enqueued == 0
    assert woken == []
    now[0] = MONDAY_8 + 3600  # 09:00
    await runner.step("s")
    current = await campaigns.get(record.id)
    assert current is not None and current.enqueued == 1 and woken == ["s"]
    message = await store.get_message(current.last_message_id or "")
    assert message is not None and json.loads(message.content)["text"] == "hi 0"
    assert message.priority == "bulk"


async def test_an_account_whatsapp_blocks_pauses_its_campaigns(store: SqlStore) -> None:
    now, woken = [MONDAY_8], []
    first, record = await runner_on(store, now, None, woken)
    await first.step("s")
    # Cut off first, then blocked while still disconnected: that second move writes no
    # status event, only the session's record says it.
    writer = StatusWriter(store)
    session = await store.get_session("s")
    assert session is not None
    session = await writer.move(session, "initializing")
    session = await writer.move(session, "disconnected", reason="offline")
    session = await writer.move(session, "disconnected", reason="tos_block")
    assert (session.status, session.last_error) == ("disconnected", "tos_block")
    # A runner that never saw an event (a restart, another worker) still pauses it.
    runner = CampaignRunner(
        first.campaigns,
        sessions_root=Path("."),
        wake_sender=woken.append,
        progress_every=30.0,
        clock=lambda: now[0],
    )
    await runner.step("s")
    paused = await runner.campaigns.get(record.id)
    assert paused is not None and paused.status == "paused"
    assert paused.reason == "account_blocked: tos_block"
    events = [e for e in await store.list_events(limit=20) if e.event == "campaign_paused"]
    assert json.loads(events[-1].body)["data"]["reason"] == "account_blocked: tos_block"
    assert await runner.step("s") is None  # nothing active is left for the session
    # Connected again (the worker clears last_error then): a resumed campaign sends.
    await writer.move(session, "connected", changes={"last_error": None})
    assert await runner.campaigns.resume(paused, "running") is not None
    await runner.step("s")
    current = await runner.campaigns.get(record.id)
    assert current is not None and current.status == "running"


async def test_the_stop_rule_pauses_once_the_sample_fails_too_often(store: SqlStore) -> None:
    now, woken = [MONDAY_8], []
    runner, record = await runner_on(store, now, None, woken)
    for _ in range(2):
        await runner.step("s")
        current = await runner.campaigns.get(record.id)
        assert current is not None and current.last_message_id is not None
        await store.update_message(current.last_message_id, {"status": "failed"})
        now[0] += 2  # past the rate's gap
    await runner.step("s")
    paused = await runner.campaigns.get(record.id)
    assert paused is not None and paused.status == "paused"
    assert paused.reason == "failure_rate: 2 of 2 sends failed"
    assert (paused.enqueued, paused.settled, paused.failed) == (2, 2, 2)


async def test_the_last_send_settling_completes_the_campaign_even_outside_its_window(
    store: SqlStore,
) -> None:
    now, woken = [MONDAY_8 + 3600], []  # 09:00, the window is open
    window = {"start": "09:00", "end": "17:00", "timezone": "UTC"}
    runner, record = await runner_on(store, now, window, woken)
    for _ in range(3):
        await runner.step("s")
        current = await runner.campaigns.get(record.id)
        assert current is not None and current.last_message_id is not None
        await store.update_message(current.last_message_id, {"status": "sent"})
        now[0] += 2
    now[0] = MONDAY_8 + 10 * 3600  # 18:00: closed, and nothing is left to send
    await runner.step("s")
    done = await runner.campaigns.get(record.id)
    assert done is not None and done.status == "completed"
    events = [e.event for e in await store.list_events(limit=20)]
    assert "campaign_completed" in events


async def test_a_resumed_campaign_judges_its_stop_rule_on_the_sends_since(
    store: SqlStore, tmp_path: Path
) -> None:
    now, woken = [MONDAY_8], []
    runner, record = await runner_on(store, now, None, woken, total=6)

    async def send(status: str) -> None:
        await runner.step("s")
        current = await runner.campaigns.get(record.id)
        assert current is not None and current.last_message_id is not None
        await store.update_message(current.last_message_id, {"status": status})
        now[0] += 2

    await send("failed")
    await send("failed")
    await runner.step("s")
    paused = await runner.campaigns.get(record.id)
    assert paused is not None and paused.status == "paused"
    # Resumed (through a second store, as after a restart: the baseline is in the row).
    again = SqlStore(tmp_path / "s.sqlite3")
    await again.open()
    try:
        resumed = await CampaignStore(again).resume(paused, "running")
    finally:
        await again.close()
    assert resumed is not None and (resumed.base_settled, resumed.base_failed) == (2, 2)
    # One failure since is below the rule's own sample of 2: it goes on.
    await send("failed")
    await send("sent")
    current = await runner.campaigns.get(record.id)
    assert current is not None and current.status == "running" and current.settled == 3
    # 1 of 2 since the resume failed: not more than 0.5, so it still goes on.
    await send("failed")
    current = await runner.campaigns.get(record.id)
    assert current is not None and current.status == "running"
    await runner.step("s")
    paused = await runner.campaigns.get(record.id)
    assert paused is not None and paused.status == "paused"
    assert paused.reason == "failure_rate: 2 of 3 sends failed"
