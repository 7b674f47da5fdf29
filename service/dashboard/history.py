"""The dashboard's recent past: a bounded, in-process history of what the charts draw.

Every `interval` seconds one `Sample` is read from the store (so in a cluster it covers
every node's sessions and messages, whichever api process serves the page); the last hour
is kept in a ring, and nothing is written anywhere. A restart starts a new history.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from service.store import SESSION_STATUSES, Store

log = logging.getLogger("service.dashboard")

# How far back the charts look.
WINDOW_S = 3600.0


@dataclass(frozen=True)
class Sample:
    """What the store said at `at` (Unix seconds)."""

    at: float
    # Sessions by observed status (every status, zeros included).
    sessions: dict[str, int]
    # The highest message seq: its growth between samples is how many messages were
    # stored (in and out) in between.
    message_mark: int
    pending: int
    dead: int
    # Seconds the oldest pending delivery has waited (0 with none pending).
    backlog_age: float


@dataclass(frozen=True)
class Point:
    """One point of a chart's series."""

    at: float
    value: float


class History:
    """A ring of the last `window` seconds of samples, taken every `interval` seconds.

    `memory` gives the last browser memory sample of this process (session id -> bytes;
    empty where no browser runs here, as on a cluster's api process)."""

    def __init__(
        self,
        store: Store,
        memory: Callable[[], dict[str, int]],
        interval: float,
        window: float = WINDOW_S,
    ) -> None:
        self.store = store
        self.memory = memory
        self.interval = interval
        self.samples: deque[Sample] = deque(maxlen=int(window // interval) + 1)
        self._task: asyncio.Task[None] | None = None

    async def sample(self, now: float | None = None) -> Sample:
        """Read one sample from the store and keep it."""
        now = time.time() if now is None else now
        counts = dict.fromkeys(SESSION_STATUSES, 0)
        for session in await self.store.list_sessions():
            counts[session.status] = counts.get(session.status, 0) + 1
        stats = await self.store.outbox_stats()
        oldest = stats["oldest_pending_at"]
        taken = Sample(
            at=now,
            sessions=counts,
            message_mark=await self.store.message_mark(),
            pending=int(stats["pending"]),
            dead=int(stats["dead"]),
            backlog_age=max(now - oldest, 0.0) if oldest else 0.0,
        )
        self.samples.append(taken)
        return taken

    def sessions_by_status(self) -> dict[str, list[Point]]:
        """One series per status that had a session at any time in the window."""
        seen = [s for s in SESSION_STATUSES if any(x.sessions.get(s) for x in self.samples)]
        return {s: [Point(x.at, x.sessions.get(s, 0)) for x in self.samples] for s in seen}

    def messages_per_minute(self) -> list[Point]:
        """Messages stored per minute between consecutive samples (at the later one). A
        deleted session takes its messages along, so a mark that went down counts 0."""
        pairs = zip(list(self.samples), list(self.samples)[1:], strict=False)
        return [
            Point(b.at, max(b.message_mark - a.message_mark, 0) * 60.0 / (b.at - a.at))
            for a, b in pairs
            if b.at > a.at
        ]

    def backlog_age(self) -> list[Point]:
        """Seconds the oldest pending webhook delivery had waited, at each sample."""
        return [Point(x.at, x.backlog_age) for x in self.samples]

    def memory_by_session(self, limit: int = 20) -> list[tuple[str, int]]:
        """The `limit` sessions whose browsers use the most memory now, largest first (this
        process's last measurement)."""
        return sorted(self.memory().items(), key=lambda item: (-item[1], item[0]))[:limit]

    def latest(self) -> Sample | None:
        return self.samples[-1] if self.samples else None

    def start(self) -> None:
        """Sample now and then every `interval` seconds until `stop`."""

        async def loop() -> None:
            while True:
                try:
                    await self.sample()
                except Exception:  # the store may be restarting: try again next round
                    log.exception("dashboard sampling failed")
                await asyncio.sleep(self.interval)

        self._task = asyncio.create_task(loop(), name="dashboard-history")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
