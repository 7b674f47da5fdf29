"""One sender per session: drains its queue in order, paced, through the provider selector."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from adapters.base import Engine, ErrorKind, ProviderError
from adapters.selector import ProviderSelector
from service.messaging.pacing import Pacer
from service.messaging.status import change_status
from service.store import LeaseLost, MessageRecord, SessionRecord, StaleMessage, Store

log = logging.getLogger("service.messaging")

# How long a sender with queued messages sleeps before re-checking a session that cannot
# send now, when nothing wakes it earlier.
IDLE_RECHECK = 5.0
# The longest a sender sleeps towards a scheduled message's send_at before looking again:
# a wall clock set forward (or back) meanwhile is noticed within this.
SCHEDULE_RECHECK = 60.0
# Rounds in which every provider failed at the provider level before a message is failed.
MAX_ROUNDS = 5


class Sender:
    """Sends one session's queued messages one at a time, oldest first, `normal` before `bulk`;
    a scheduled message joins them once its `send_at` has come.

    A message is marked `sending` in the store before it goes to a provider and `sent` (or
    `failed`) after: a crash in between leaves it `sending`, which the next boot turns into
    `failed/interrupted` instead of sending it again.
    """

    def __init__(
        self,
        session_id: str,
        *,
        store: Store,
        selector: ProviderSelector,
        pacer: Pacer,
        session_dir: Callable[[], Awaitable[Path | None]],
        on_settled: Callable[[MessageRecord], Awaitable[None]] | None = None,
        observe: Callable[[str, float], None] | None = None,
        may_send: Callable[[str], bool] | None = None,
    ) -> None:
        self.session_id = session_id
        # In a cluster: whether this worker still holds the session's lease, by its own
        # clock (a worker paused past its lease must not send before a renewal tells it).
        self.may_send = may_send
        # Every line this session logs carries its id (a field of the JSON log line).
        self.log = logging.LoggerAdapter(log, {"session_id": session_id})
        self.store = store
        self.selector = selector
        self.pacer = pacer
        self.session_dir = session_dir
        self.on_settled = on_settled
        self.observe = observe
        self.task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._stopping = False
        self._rounds: dict[str, int] = {}

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name=f"sender:{self.session_id}")

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        """Finish the message in flight, then end."""
        self._stopping = True
        self._wake.set()

    async def _sleep(self, seconds: float | None) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)
        self._wake.clear()

    async def _run(self) -> None:
        while not self._stopping:
            # Cleared before looking, so a wake during the look is not lost.
            self._wake.clear()
            message = await self.store.next_queued(self.session_id)
            if message is None:
                # Nothing due: sleep until the earliest scheduled message's time, or until
                # an enqueue (which may bring an earlier one) wakes us.
                await self._sleep(await self._until_due())
                continue
            session = await self.store.get_session(self.session_id)
            if session is None:
                return
            plan = self.selector.plan(session, message)
            if not plan:
                # Nothing can send now. A stopped web session without Meta only changes with
                # a status change (which wakes us); anything else is worth a re-check.
                idle = session.status in ("stopped", "failed") and session.meta_sealed is None
                await self._sleep(None if idle else IDLE_RECHECK)
                continue
            # Pacing protects web accounts from bans; the Cloud API has its own limits.
            delay = self.pacer.delay(message.chat_id, paced=plan[0].name == "webjs")
            if delay > 0:
                await self._sleep(delay)
                continue  # re-check: a more urgent message or a disconnect may have come
            try:
                await self._send(message, session, plan)
            except LeaseLost:
                # Another worker holds the session now: it sends the rest.
                self.log.warning(
                    "session %s: lease lost; this worker stops sending", self.session_id
                )
                return
            except Exception as exc:
                # A bug must not stop the queue, nor leave the message `sending` until a
                # reboot: it fails, with the error named, and the next one goes.
                self.log.exception("session %s: sending %s failed", self.session_id, message.id)
                await self._fail_unexpectedly(message, exc)

    async def _until_due(self) -> float | None:
        """Seconds until the session's next scheduled message is due (bounded), or None."""
        due = await self.store.next_send_at(self.session_id)
        if due is None:
            return None
        return min(max(due - time.time(), 0.0), SCHEDULE_RECHECK)

    async def _fail_unexpectedly(self, message: MessageRecord, exc: Exception) -> None:
        self._rounds.pop(message.id, None)
        with contextlib.suppress(Exception):
            current = await self.store.get_message(message.id)
            # A message a provider already holds (it has a ref) is that provider's to settle.
            if (
                current is not None
                and current.status in ("queued", "scheduled", "sending")
                and current.provider_ref is None
            ):
                await change_status(
                    self.store,
                    current,
                    {"status": "failed", "error": f"internal error: {type(exc).__name__}"},
                )

    async def _send(
        self, message: MessageRecord, session: SessionRecord, plan: list[Engine]
    ) -> None:
        try:
            # The claim: only a message still queued (or scheduled and due) is sent, and only
            # by whoever moved it; a cancel that came first wins.
            await self.store.update_message(
                message.id, {"status": "sending"}, expect_status=message.status
            )
        except StaleMessage:
            return
        changes: dict[str, Any]
        started = time.monotonic()
        try:
            outgoing = await self._resolve_reply(message)
            if self.may_send is not None and not self.may_send(self.session_id):
                # Claimed, not sent: the session's next owner settles it as interrupted.
                raise LeaseLost(self.session_id, 0)
            provider, result = await self.selector.send(session, outgoing, plan)
        except ProviderError as exc:
            self.pacer.record(message.chat_id)
            if exc.recipient_backoff:
                self.pacer.block(message.chat_id, exc.recipient_backoff)
            if exc.fails_over and await self._requeue(message, exc):
                return
            error = "interrupted" if exc.kind is ErrorKind.UNKNOWN_DELIVERY else exc.describe()
            changes = {"status": "failed", "error": error[:500]}
        else:
            if self.observe is not None:
                self.observe(provider, time.monotonic() - started)
            self.pacer.record(message.chat_id)
            changes = {
                # Pending: the provider holds it and will report how it ends.
                "status": "sending" if result.pending else "sent",
                "provider": provider,
                "provider_message_id": result.provider_message_id,
                "provider_ref": result.ref,
                "error": None,
            }
        self._rounds.pop(message.id, None)
        if changes["status"] == "sending":
            final = await self.store.update_message(message.id, changes)
        else:
            final = await change_status(self.store, message, changes)
        await self._drop_media(message)
        if self.on_settled is not None:
            await self.on_settled(final)

    async def _resolve_reply(self, message: MessageRecord) -> MessageRecord:
        """`reply_to` names our message id or a provider's: give the engine the provider id
        of the message answered, and which provider it belongs to."""
        content = json.loads(message.content)
        reply_to = content.get("reply_to")
        if not reply_to:
            return message
        if reply_to.startswith("msg_"):
            quoted = await self.store.get_message(reply_to)
            if quoted is not None and quoted.session_id != message.session_id:
                quoted = None
        else:
            quoted = await self.store.find_message(message.session_id, provider_message_id=reply_to)
        if quoted is not None:
            content["reply_to_provider_id"] = quoted.provider_message_id
            content["reply_to_provider"] = quoted.provider
        elif not reply_to.startswith("msg_"):
            # Not ours to know: each engine quotes only ids of its own provider.
            content["reply_to_provider_id"] = reply_to
        return dataclasses.replace(message, content=json.dumps(content, ensure_ascii=False))

    async def _requeue(self, message: MessageRecord, exc: ProviderError) -> bool:
        """Every provider failed at the provider level: keep the message queued and try
        again later, unless that has happened too often already."""
        rounds = self._rounds.get(message.id, 0) + 1
        if rounds >= MAX_ROUNDS:
            return False
        self._rounds[message.id] = rounds
        await self.store.update_message(message.id, {"status": "queued", "error": exc.describe()})
        self.log.info(
            "session %s: no provider delivered %s (%s); retrying",
            self.session_id,
            message.id,
            exc.describe(),
        )
        await self._sleep(min(2.0 * rounds, IDLE_RECHECK))
        return True

    async def _drop_media(self, message: MessageRecord) -> None:
        """An outgoing file is only needed until its message is settled."""
        media = json.loads(message.content).get("media")
        directory = await self.session_dir() if media else None
        if media and directory is not None:
            (directory / media["file"]).unlink(missing_ok=True)
