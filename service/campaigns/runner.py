"""The campaign runner: on the process that runs a session (the single service, or the
worker holding its lease), feeds each running campaign's recipients into the session's
message queue, one at a time, at the campaign's rate, inside its window.

Each step is a transaction of the store: a recipient becomes a queued `bulk` message in the
same transaction that marks it taken (`CampaignStore.enqueue_next`), so after a crash,
kill -9 or failover every recipient is sent at most once and the rest keep their order.
A campaign has at most one message in the queue: the next is written only once the last
has settled, so a pause stops it after at most one more send, and the stop rule sees every
outcome before the next send goes. The sender's pacing applies to these messages like any
other, so a campaign never sends faster than the session's pacing policy.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from service.campaigns.plan import Window, gap, render
from service.messaging.media import guess_filename
from service.messaging.messenger import new_message_id
from service.models.events import (
    CampaignCompleted,
    CampaignCounts,
    CampaignPaused,
    CampaignProgress,
    CampaignStarted,
)
from service.sessions.layout import session_dir
from service.sessions.state import BLOCKED_REASONS
from service.store import AppendedEvent, LeaseLost, MessageRecord, NewEvent
from service.store.campaigns import ACTIVE, CampaignRecord, CampaignStore

log = logging.getLogger("service.campaigns")

# How often the runner looks for campaigns of sessions it runs (a cluster's api process
# cannot wake a worker's runner; a failover hands a session to a worker unannounced).
POLL = 2.0
IN_FLIGHT = ("queued", "sending")
# How often the runner removes campaigns a process died creating.
SWEEP = 600.0


def counts_of(raw: dict[str, int]) -> CampaignCounts:
    """Every status named, zeros too (a field left unset would be left out of the JSON)."""
    return CampaignCounts(**{k: raw.get(k, 0) for k in CampaignCounts.model_fields})


def campaign_event(
    kind: type[CampaignStarted | CampaignProgress],
    campaign: CampaignRecord,
    counts: dict[str, int],
) -> NewEvent:
    return kind(
        campaign_id=campaign.id, name=campaign.name, total=campaign.total, counts=counts_of(counts)
    ).new_event()


def paused_event(campaign: CampaignRecord, counts: dict[str, int], reason: str) -> NewEvent:
    return CampaignPaused(
        campaign_id=campaign.id,
        name=campaign.name,
        total=campaign.total,
        counts=counts_of(counts),
        reason=reason,
    ).new_event()


def completed_event(campaign: CampaignRecord, counts: dict[str, int]) -> NewEvent:
    return CampaignCompleted(
        campaign_id=campaign.id,
        name=campaign.name,
        total=campaign.total,
        counts=counts_of(counts),
        status="cancelled" if campaign.status == "cancelled" else "completed",
    ).new_event()


def campaign_media_path(sessions_root: Path, campaign: CampaignRecord) -> Path | None:
    """The campaign's own copy of its media file, if it has one."""
    media = json.loads(campaign.message).get("media")
    if not media or not media.get("file"):
        return None
    return session_dir(sessions_root, campaign.workspace_id, campaign.session_id) / media["file"]


class CampaignRunner:
    """Runs the campaigns of the sessions this process owns (`owns`), one task per session."""

    def __init__(
        self,
        campaigns: CampaignStore,
        *,
        sessions_root: Path,
        wake_sender: Callable[[str], None],
        progress_every: float,
        owns: Callable[[str], bool] | None = None,
        fence: Callable[[str], tuple[str, int]] | None = None,
        clock: Callable[[], float] = time.time,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.campaigns = campaigns
        self.store = campaigns.store
        self.sessions_root = sessions_root
        self.wake_sender = wake_sender
        self.progress_every = progress_every
        self.owns = owns
        self.fence = fence
        self.clock = clock
        self.rng = rng
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._wakes: dict[str, asyncio.Event] = {}
        self._poll = asyncio.Event()
        self._main: asyncio.Task[None] | None = None
        self._stopping = False
        self._sweep_at = 0.0

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        self.store.subscribe(self.on_events)
        self._main = asyncio.create_task(self._watch(), name="campaigns")

    async def stop(self) -> None:
        self._stopping = True
        tasks = [t for t in (self._main, *self._tasks.values()) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def wake(self, session_id: str) -> None:
        """Something changed for the session's campaigns: look now, not at the next poll."""
        event = self._wakes.get(session_id)
        if event is not None:
            event.set()
        else:
            self._poll.set()

    def on_events(self, appended: list[AppendedEvent]) -> None:
        """Store listener: a settled send lets its campaign move on; WhatsApp blocking the
        account pauses its campaigns."""
        for item in appended:
            name = item.event.event
            if name == "message_status_updated":
                event = self._wakes.get(item.session_id)
                if event is not None:
                    event.set()
            elif name == "session_status_changed":
                data = item.event.data
                if data.get("status") == "disconnected" and data.get("reason") in BLOCKED_REASONS:
                    # Look now; the block itself is read from the session's record.
                    self.wake(item.session_id)

    async def _watch(self) -> None:
        while not self._stopping:
            self._poll.clear()
            try:
                if time.monotonic() >= self._sweep_at:
                    self._sweep_at = time.monotonic() + SWEEP
                    await self.campaigns.drop_abandoned(self.clock())
                for campaign in await self.campaigns.find(statuses=ACTIVE):
                    self._ensure(campaign.session_id)
            except Exception:
                log.exception("listing campaigns failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._poll.wait(), POLL)

    def _ensure(self, session_id: str) -> None:
        if self.owns is not None and not self.owns(session_id):
            return
        task = self._tasks.get(session_id)
        if task is None or task.done():
            self._wakes[session_id] = asyncio.Event()
            self._tasks[session_id] = asyncio.create_task(
                self._run(session_id), name=f"campaigns:{session_id}"
            )

    async def _run(self, session_id: str) -> None:
        wake = self._wakes[session_id]
        try:
            while not self._stopping:
                if self.owns is not None and not self.owns(session_id):
                    return  # another worker runs the session now
                wake.clear()
                try:
                    delay = await self.step(session_id)
                except LeaseLost:
                    return
                except Exception:
                    log.exception("session %s: campaign step failed", session_id)
                    delay = POLL
                if delay is None:
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), delay)
        finally:
            if self._wakes.get(session_id) is wake:
                self._wakes.pop(session_id, None)
                self._tasks.pop(session_id, None)

    # -- one step -------------------------------------------------------------------------

    async def step(self, session_id: str) -> float | None:
        """Move each active campaign of the session as far as it may go now; seconds until
        something is due (None: no active campaign is left)."""
        active = await self.campaigns.find(session_id, ACTIVE)
        if not active:
            return None
        session = await self.store.get_session(session_id)
        if session is None:
            # The session was deleted: its campaigns go with it.
            await self.campaigns.delete_session(session_id)
            return None
        # Read before every send, from the record (durable, whoever wrote it): WhatsApp
        # blocked the account when its last disconnect said so, until it connects again.
        blocked = session.last_error if session.last_error in BLOCKED_REASONS else None
        waits = [POLL * 5]
        for campaign in active:
            wait = await self._advance(campaign, blocked)
            if wait is not None:
                waits.append(wait)
        return max(min(waits), 0.0)

    def _fence(self, session_id: str) -> tuple[str, int] | None:
        return self.fence(session_id) if self.fence is not None else None

    async def _advance(self, campaign: CampaignRecord, blocked: str | None) -> float | None:
        now = self.clock()
        options = json.loads(campaign.options)
        fence = self._fence(campaign.session_id)
        if campaign.status == "scheduled":
            if campaign.start_at is not None and campaign.start_at > now:
                return campaign.start_at - now
            counts = await self.campaigns.counts(campaign.id)
            started = await self.campaigns.update(
                campaign,
                {"status": "running", "started_at": campaign.started_at or now},
                lambda c: (
                    [] if campaign.started_at else [campaign_event(CampaignStarted, c, counts)]
                ),
                expect=("scheduled",),
                fence=fence,
            )
            if started is None:
                return 0.0
            campaign = started
        if blocked is not None:
            await self.pause(campaign, f"account_blocked: {blocked}", fence=fence)
            return None
        if campaign.last_message_id is not None:
            message = await self.store.get_message(campaign.last_message_id)
            if message is not None and message.status in IN_FLIGHT:
                return None  # its status change wakes us
            failed = message is None or message.status == "failed"
            settled = await self.campaigns.settle(campaign, campaign.last_message_id, failed)
            if settled is None:
                return 0.0
            campaign = settled
            # The rule judges the sends since the campaign last resumed, with a sample of
            # its own: a resume after it tripped is not paused again by the old failures.
            rule = options["stop_rule"]
            settled_since = campaign.settled - campaign.base_settled
            failed_since = campaign.failed - campaign.base_failed
            if (
                settled_since >= rule["min_sample"]
                and failed_since / settled_since > rule["failure_rate"]
            ):
                await self.pause(
                    campaign,
                    f"failure_rate: {failed_since} of {settled_since} sends failed",
                    fence=fence,
                )
                return None
            # Progress is news only when a send settled: none while it waits for its window.
            await self._progress(campaign, now, fence)
        if campaign.enqueued >= campaign.total and campaign.last_message_id is None:
            # Every recipient taken and settled: done now, not when the window next opens.
            await self._complete(campaign, fence)
            return None
        window = options.get("window")
        if window is not None:
            wait = Window.parse(window["start"], window["end"], window["timezone"]).wait(now)
            if wait > 0:
                return min(wait, 60.0)
        if campaign.next_send_at is not None and campaign.next_send_at > now:
            return campaign.next_send_at - now
        rate = options["rate"]
        next_at = now + gap(rate["per_minute"], rate["jitter"], self.rng)
        message = await self.campaigns.enqueue_next(
            campaign, lambda row: self._message(campaign, row), next_at, fence=fence
        )
        if message is not None:
            self.wake_sender(campaign.session_id)
            return None  # the send's status change wakes us
        current = await self.campaigns.get(campaign.id)
        if current is None or current.status != "running" or current.last_message_id:
            return 0.0 if current is not None and current.status == "running" else None
        await self._complete(current, fence)
        return None

    async def _progress(
        self, campaign: CampaignRecord, now: float, fence: tuple[str, int] | None
    ) -> None:
        if campaign.progress_at is not None and now - campaign.progress_at < self.progress_every:
            return
        if campaign.progress_at is None and campaign.started_at is not None:
            # campaign_started said where it stood; the first progress comes a period later.
            if now - campaign.started_at < self.progress_every:
                return
        counts = await self.campaigns.counts(campaign.id)
        await self.campaigns.update(
            campaign,
            {"progress_at": now},
            lambda c: [campaign_event(CampaignProgress, c, counts)],
            expect=("running",),
            fence=fence,
        )

    async def pause(
        self, campaign: CampaignRecord, reason: str, *, fence: tuple[str, int] | None = None
    ) -> CampaignRecord | None:
        """Pause a scheduled or running campaign with `reason` (and its event)."""
        counts = await self.campaigns.counts(campaign.id)
        return await self.campaigns.update(
            campaign,
            {"status": "paused", "reason": reason},
            lambda c: [paused_event(c, counts, reason)],
            expect=ACTIVE,
            fence=fence,
        )

    async def _complete(self, campaign: CampaignRecord, fence: tuple[str, int] | None) -> None:
        counts = await self.campaigns.counts(campaign.id)
        done = await self.campaigns.update(
            campaign,
            {"status": "completed", "finished_at": self.clock(), "reason": None},
            lambda c: [completed_event(c, counts)],
            expect=("running",),
            fence=fence,
        )
        if done is not None:
            drop_media(self.sessions_root, done)

    def _message(self, campaign: CampaignRecord, row: tuple[int, str, str | None]) -> MessageRecord:
        """The queued message for one recipient: the campaign's message with the
        recipient's variables filled in (runs inside the enqueue transaction)."""
        _, chat_id, variables = row
        values: dict[str, str] = json.loads(variables) if variables else {}
        spec: dict[str, Any] = json.loads(campaign.message)
        message_id = new_message_id()
        content: dict[str, Any] = {
            "text": render(spec.get("text"), values),
            "campaign_id": campaign.id,
        }
        if spec.get("template") is not None:
            content["template"] = render(spec["template"], values)
        media = spec.get("media")
        if media is not None:
            source = campaign_media_path(self.sessions_root, campaign)
            assert source is not None
            name = guess_filename(message_id, media["mimetype"] or "application/octet-stream")
            target = source.parent / name
            # One file per message: the sender deletes each message's file once it settles.
            with contextlib.suppress(FileExistsError):
                os.link(source, target)
            content["media"] = media | {"file": f"media/out/{name}"}
        return MessageRecord(
            id=message_id,
            session_id=campaign.session_id,
            workspace_id=campaign.workspace_id,
            direction="out",
            chat_id=chat_id,
            type=spec["type"],
            content=json.dumps(content, ensure_ascii=False),
            status="queued",
            priority="bulk",
        )


def drop_media(sessions_root: Path, campaign: CampaignRecord) -> None:
    """A finished campaign's own media copy is not needed any more."""
    path = campaign_media_path(sessions_root, campaign)
    if path is not None:
        path.unlink(missing_ok=True)
