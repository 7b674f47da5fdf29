"""One sender per session: drains its queue in order, paced, through the session's page."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from service.browser import BridgeError, PageBridge
from service.messaging.media import StoredMedia
from service.messaging.pacing import Pacer
from service.messaging.status import change_status
from service.store import MessageRecord, Store

log = logging.getLogger("service.messaging")

BridgeLookup = Callable[[str], PageBridge | None]
# How long a sender with queued messages sleeps before re-checking a session that is not
# connected, when nothing wakes it earlier.
IDLE_RECHECK = 5.0


class Sender:
    """Sends one session's queued messages one at a time, oldest first, `normal` before `bulk`.

    A message is marked `sending` in the store before it goes to the page and `sent` (or
    `failed`) after: a crash in between leaves it `sending`, which the next boot turns into
    `failed/interrupted` instead of sending it again.
    """

    def __init__(
        self,
        session_id: str,
        *,
        store: Store,
        bridge_for: BridgeLookup,
        pacer: Pacer,
        session_dir: Callable[[], Awaitable[Path | None]],
        on_settled: Callable[[MessageRecord], Awaitable[None]] | None = None,
    ) -> None:
        self.session_id = session_id
        self.store = store
        self.bridge_for = bridge_for
        self.pacer = pacer
        self.session_dir = session_dir
        self.on_settled = on_settled
        self.task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._stopping = False

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
                await self._sleep(None)
                continue
            session = await self.store.get_session(self.session_id)
            if session is None:
                return
            bridge = self.bridge_for(self.session_id)
            if session.status in ("stopped", "failed"):
                await self._sleep(None)  # nothing to do until it connects (on_status wakes)
                continue
            if bridge is None or session.status != "connected":
                await self._sleep(IDLE_RECHECK)
                continue
            delay = self.pacer.delay(message.chat_id)
            if delay > 0:
                await self._sleep(delay)
                continue  # re-check: a more urgent message or a disconnect may have come
            await self._send(bridge, message)

    async def _send(self, bridge: PageBridge, message: MessageRecord) -> None:
        await self.store.update_message(message.id, {"status": "sending"})
        changes: dict[str, Any]
        try:
            result = await self._transmit(bridge, message)
        except BridgeError as exc:
            # A timeout or a page that went away mid-call may still have sent it: say
            # "interrupted" (delivery unknown) rather than a failure Laravel would resend.
            ambiguous = exc.ambiguous or bridge.browser.closed.is_set()
            error = "interrupted" if ambiguous else str(exc)[:500]
            changes = {"status": "failed", "error": error, "provider": "webjs"}
        except (OSError, ValueError) as exc:
            changes = {"status": "failed", "error": f"media unavailable: {exc}"[:500]}
        else:
            changes = {
                "status": "sent",
                "provider": "webjs",
                "provider_message_id": result.get("id"),
                "error": None,
            }
        self.pacer.record(message.chat_id)
        final = await change_status(self.store, message, changes)
        await self._drop_media(message)
        if self.on_settled is not None:
            await self.on_settled(final)

    async def _drop_media(self, message: MessageRecord) -> None:
        """An outgoing file is only needed until its message is settled."""
        media = json.loads(message.content).get("media")
        directory = await self.session_dir() if media else None
        if media and directory is not None:
            (directory / media["file"]).unlink(missing_ok=True)

    async def _transmit(self, bridge: PageBridge, message: MessageRecord) -> dict[str, Any]:
        content = json.loads(message.content)
        options: dict[str, Any] = {"createChat": True}
        if content.get("reply_to"):
            options["quotedMsg"] = content["reply_to"]
        if message.type == "text":
            return await bridge.send_text(message.chat_id, content["text"], options)
        if message.type == "location":
            loc = content["location"]
            options |= {"lat": loc["latitude"], "lng": loc["longitude"]}
            if loc.get("name"):
                options["name"] = loc["name"]
            return await bridge.send_location(message.chat_id, options)
        media = content["media"]
        directory = await self.session_dir()
        if directory is None:
            raise ValueError("the session directory is gone")
        stored = StoredMedia(
            path=directory / media["file"],
            mimetype=media["mimetype"],
            filename=media.get("filename"),
            size=media["size"],
        )
        data_url = await asyncio.to_thread(stored.data_url)
        options |= {"type": message.type, "mimetype": stored.mimetype}
        if stored.filename:
            options["filename"] = stored.filename
        if content.get("text"):
            options["caption"] = content["text"]
        return await bridge.send_file(message.chat_id, data_url, options)
