"""The event monitor: outbox rows as server-sent events, in the order they were written.

Each stream keeps its own cursor (the outbox seq) and reads the rows after it from the
store, at most `BATCH` at a time, so a stream holds no queue of its own and a slow client
costs nothing but its socket. This process's own commits wake the streams at once; rows
that other processes of a cluster write are found by polling every `POLL_S`. The SSE `id`
of each event is its seq: a browser that reconnects sends it back as `Last-Event-ID` and
resumes after it, as long as it is at most `RESUME_LIMIT` events behind (older ones are
skipped, with a `gap` event that says how many).

A server that is stopping waits for its open responses before the app's shutdown runs, so
`close()` (called when the stop signal arrives) ends every stream within a second, and a stream
also ends by itself after `LIFETIME_S` (the browser reconnects and resumes).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from service.clock import iso
from service.store import AppendedEvent, OutboxEvent, Store

# Rows read per query; the most a stream holds at once.
BATCH = 100
# How often a stream looks for rows other processes wrote.
POLL_S = 1.0
# An open stream sends a comment this often, so proxies keep it and a gone client is noticed.
KEEPALIVE_S = 15.0
LIFETIME_S = 120.0
# How far back a reconnecting client is caught up, and how many rows a fresh one starts with.
RESUME_LIMIT = 500
INITIAL = 20
# Streams served at once by this process; more are refused (each polls the store).
MAX_STREAMS = 16
# A body longer than this is announced with its size instead of shown.
MAX_SHOWN_BODY = 8192
# The browser's wait before reconnecting, in ms.
RETRY_MS = 2000


@dataclass(frozen=True)
class StreamFilter:
    """Which events a stream shows: every given field must match."""

    session_id: str | None = None
    event: str | None = None

    def takes(self, row: OutboxEvent) -> bool:
        return (self.session_id is None or row.session_id == self.session_id) and (
            self.event is None or row.event == self.event
        )


def event_view(row: OutboxEvent) -> dict[str, Any]:
    """One outbox row as the monitor shows it: the webhook's own body, unless too long."""
    view: dict[str, Any] = {
        "seq": row.seq,
        "id": row.id,
        "event": row.event,
        "session_id": row.session_id,
        "workspace_id": row.workspace_id,
        "created_at": iso(row.created_at),
        "status": row.status,
    }
    if len(row.body) <= MAX_SHOWN_BODY:
        view["body"] = json.loads(row.body)
    else:
        view["body"] = None
        view["body_bytes"] = len(row.body.encode())
    return view


def sse(event: str | None, data: dict[str, Any], event_id: int | None = None) -> str:
    """One server-sent event (JSON data on one line)."""
    lines = [] if event_id is None else [f"id: {event_id}"]
    if event is not None:
        lines.append(f"event: {event}")
    lines.append(f"data: {json.dumps(data, separators=(',', ':'))}")
    return "\n".join(lines) + "\n\n"


class EventMonitor:
    """Serves the event streams of one app; `on_events` is its store listener."""

    def __init__(self, store: Store, *, lifetime: float = LIFETIME_S) -> None:
        self.store = store
        self.lifetime = lifetime
        self._wakers: set[asyncio.Event] = set()
        self._closing = False

    def close(self) -> None:
        """End every stream within `POLL_S` and refuse new ones: the server is stopping.
        Only a flag, so a signal handler may call it."""
        self._closing = True

    def on_events(self, events: list[AppendedEvent]) -> None:
        """Store listener: wake every stream (they read the rows themselves)."""
        for waker in self._wakers:
            waker.set()

    @property
    def full(self) -> bool:
        return self._closing or len(self._wakers) >= MAX_STREAMS

    async def stream(self, after: int | None, match: StreamFilter) -> AsyncIterator[str]:
        """The events after seq `after` (None: the last few), then each new one as it is
        written, until the stream's lifetime is over."""
        waker = asyncio.Event()
        self._wakers.add(waker)
        try:
            yield f"retry: {RETRY_MS}\n\n"
            mark = await self.store.outbox_mark()
            if after is None:
                cursor = max(mark - INITIAL, 0)
            elif mark - after > RESUME_LIMIT:
                cursor = mark - RESUME_LIMIT
                # The id moves the client's resume point past what it will never get.
                yield sse("gap", {"skipped": cursor - after}, cursor)
            else:
                cursor = after
            deadline = time.monotonic() + self.lifetime
            quiet_since = time.monotonic()
            while time.monotonic() < deadline and not self._closing:
                # Cleared before the read: a commit after it sets it again, none is missed.
                waker.clear()
                rows = await self.store.events_after(cursor, BATCH)
                for row in rows:
                    cursor = row.seq
                    if match.takes(row):
                        yield sse("outbox", event_view(row), row.seq)
                        quiet_since = time.monotonic()
                if len(rows) == BATCH:
                    continue
                if time.monotonic() - quiet_since >= KEEPALIVE_S:
                    yield ": keep-alive\n\n"
                    quiet_since = time.monotonic()
                try:
                    await asyncio.wait_for(waker.wait(), POLL_S)
                except TimeoutError:
                    pass
        finally:
            self._wakers.discard(waker)
