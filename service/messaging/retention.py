"""Inbound media retention: files older than SIDECAR_MEDIA_RETENTION_DAYS are deleted.

The message stays; its record says the media is no longer stored (`reason: "expired"`), and
its signed link answers 410 `media_expired`. The file is deleted before the record says so:
a crash in between leaves a row the next pass finishes, never a file nothing points to.
One process runs it: the single service, or in a cluster the first live worker (workers
mount the shared storage). Each write is a compare-and-set, so a pass repeated by a second
process, in the moment two workers' views differ, writes nothing twice.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from service.sessions.layout import session_dir
from service.store import MessageRecord, Store

log = logging.getLogger("service.messaging")

DAY = 86400.0
# How often the cleanup looks; the first pass runs at start.
INTERVAL = 3600.0
BATCH = 200


class MediaRetention:
    """Deletes inbound media files kept longer than `days` and records them as expired."""

    def __init__(
        self,
        store: Store,
        sessions_root: Path,
        days: int,
        *,
        clock: Callable[[], float] = time.time,
        may_run: Callable[[], Awaitable[bool]] | None = None,
        interval: float = INTERVAL,
    ) -> None:
        self.store = store
        self.sessions_root = sessions_root
        self.days = days
        self.clock = clock
        # In a cluster: whether this process is the one that cleans up now.
        self.may_run = may_run
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Run a pass now and every `interval` after (nothing when retention is off)."""
        if self.days > 0 and self._task is None:
            self._task = asyncio.create_task(self._loop(), name="media-retention")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _loop(self) -> None:
        while True:
            try:
                if self.may_run is None or await self.may_run():
                    expired = await self.run_once()
                    if expired:
                        log.info("media retention: deleted %d expired media files", expired)
            except Exception as exc:  # the store may be restarting: try again next time
                log.warning("media retention pass failed: %s", exc)
            await asyncio.sleep(self.interval)

    async def run_once(self) -> int:
        """One pass over every file past the retention; how many were expired."""
        if self.days <= 0:
            return 0
        cutoff = self.clock() - self.days * DAY
        expired = 0
        while True:
            batch = await self.store.stored_media_before(cutoff, BATCH)
            done = 0
            for record in batch:
                if await self._expire(record):
                    done += 1
            expired += done
            # A short batch was the last; one where nothing could be expired (files that
            # will not delete) is left for the next pass rather than read again now.
            if len(batch) < BATCH or done == 0:
                return expired

    async def _expire(self, record: MessageRecord) -> bool:
        assert record.media_stored_at is not None
        content = json.loads(record.content)
        media = content.get("media")
        if not isinstance(media, dict):
            media = content["media"] = {}
        file = media.get("file")
        if isinstance(file, str):
            try:
                await asyncio.to_thread(self._delete, record, file)
            except OSError as exc:
                # Recording it gone would leave a file nothing points to: try again later.
                log.error("media retention: could not delete %s's file: %s", record.id, exc)
                return False
        media |= {"file": None, "reason": "expired"}
        return await self.store.forget_media(
            record.id, record.media_stored_at, json.dumps(content, ensure_ascii=False)
        )

    def _delete(self, record: MessageRecord, file: str) -> None:
        try:
            root = session_dir(self.sessions_root, record.workspace_id, record.session_id)
        except ValueError:
            return  # not an id this service wrote: no file of ours to delete
        path = (root / file).resolve()
        if root in path.parents:
            path.unlink(missing_ok=True)
