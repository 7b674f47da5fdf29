"""Live pages: server-sent events fed by snapshots of the store.

A stream does not trust events to arrive: it re-reads what it shows (a `Snapshot`) whenever
this process commits an event, and at least every `POLL` seconds (another process of a
cluster may have written it), and sends only what changed since it last looked. So a page is
right after a reconnect, after a missed wake-up, and in cluster mode alike.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from service.dashboard.markup import Html
from service.errors import ApiError
from service.store import AppendedEvent, Store

log = logging.getLogger("service.dashboard")

POLL = 1.0
# A burst of commits (a campaign sending) re-reads a page's snapshot at most this often.
MIN_GAP = 0.5
# A comment line now and then keeps proxies from closing an idle stream and finds closed ones.
KEEPALIVE = 15.0
# A stream ends after this long, and when its sign-in cookie expires: the browser reconnects
# (EventSource) through the sign-in check again, so a tab left open past its session, or
# signed out in another tab, stops receiving.
LIFETIME = 300.0
# Open page streams per process (the event monitor keeps its own, lower, limit).
MAX_STREAMS = 64
# key -> JSON-able payload (see `fragments`); a key gone since the last look is sent as
# `removed`.
Snapshot = Callable[[], Awaitable[dict[str, Any]]]


class TooManyStreams(ApiError):
    status = 503
    code = "too_many_streams"


class Changes:
    """Wakes every open stream when the store commits; ends them all when the service stops."""

    def __init__(self, store: Store) -> None:
        self._waiters: set[asyncio.Event] = set()
        self.closed = False
        store.subscribe(self.on_events)

    @property
    def open(self) -> int:
        """Streams open on this process."""
        return len(self._waiters)

    def on_events(self, events: list[AppendedEvent]) -> None:
        """Store listener (runs in the event loop after a commit)."""
        for waiter in self._waiters:
            waiter.set()

    def close(self) -> None:
        """The service is stopping: streams end so the shutdown does not wait for browsers."""
        self.closed = True
        for waiter in self._waiters:
            waiter.set()

    async def ticks(
        self, poll: float = POLL, *, until: float = float("inf")
    ) -> AsyncIterator[None]:
        """Yields at once, then after each commit (at most every MIN_GAP seconds) or `poll`
        seconds, until closed or the loop's clock passes `until`."""
        loop = asyncio.get_running_loop()
        waiter = asyncio.Event()
        self._waiters.add(waiter)
        try:
            while not self.closed and loop.time() < until:
                last = loop.time()
                yield
                waiter.clear()
                try:
                    await asyncio.wait_for(waiter.wait(), max(0.0, min(poll, until - last)))
                except TimeoutError:
                    pass
                rest = MIN_GAP - (loop.time() - last)
                if rest > 0 and not self.closed:
                    await asyncio.sleep(rest)
        finally:
            self._waiters.discard(waiter)


def fragments(parts: dict[str, Html]) -> dict[str, Any]:
    """A snapshot of page fragments, `{key: {"key", "html"}}`, each root element stamped
    with `data-v`, a digest of its markup: the page renders the same stamps, so the script
    leaves a fragment alone (what is typed in it, too) until its markup really changes."""
    return {key: {"key": key, "html": stamp(html)} for key, html in parts.items()}


def stamp(html: Html) -> Html:
    digest = hashlib.sha256(html.encode()).hexdigest()[:12]
    # Attribute values are escaped (`>` is `&gt;`), so the first `>` ends the root's tag.
    end = html.index(">")
    closing = end - 1 if html[end - 1] == "/" else end
    return Html(f'{html[:closing]} data-v="{digest}"{html[closing:]}')


def sse(event: str, data: Any) -> str:
    """One server-sent event (the data as one JSON line)."""
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


async def snapshot_events(
    changes: Changes, snapshot: Snapshot, event: str, *, lifetime: float = LIFETIME
) -> AsyncIterator[str]:
    """`event` for each key whose payload is new or changed, `removed` for each key gone,
    a keepalive comment when there was nothing to say for a while; for `lifetime` seconds."""
    last: dict[str, Any] = {}
    quiet = 0.0
    yield "retry: 2000\n\n"
    until = asyncio.get_running_loop().time() + lifetime
    async for _ in changes.ticks(until=until):
        try:
            current = await snapshot()
        except Exception:  # the store may be restarting: try again on the next tick
            log.exception("dashboard stream snapshot failed")
            continue
        chunks = [
            sse(event, payload) for key, payload in current.items() if last.get(key) != payload
        ]
        chunks += [sse("removed", {"key": key}) for key in last if key not in current]
        last = current
        if chunks:
            quiet = 0.0
            yield "".join(chunks)
        else:
            quiet += POLL
            if quiet >= KEEPALIVE:
                quiet = 0.0
                yield ": keepalive\n\n"


class EventStream(Response):
    """A `text/event-stream` answer that ends when the client leaves or the events end
    (the service stopping), whichever comes first."""

    media_type = "text/event-stream"

    def __init__(self, events: AsyncIterator[str]) -> None:
        super().__init__(headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
        # A stream has no length: keep Response's headers but the Content-Length: 0.
        self.raw_headers = [(k, v) for k, v in self.raw_headers if k != b"content-length"]
        self.events = events

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})

        async def pump() -> None:
            async for chunk in self.events:
                await send(
                    {"type": "http.response.body", "body": chunk.encode(), "more_body": True}
                )

        async def gone() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        tasks = [asyncio.create_task(pump()), asyncio.create_task(gone())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        try:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:
            pass  # the client is gone already


def stream(request: Request, snapshot: Snapshot, event: str) -> EventStream:
    """The SSE answer of a page: `event` with each changed snapshot entry (see module doc),
    until the operator's sign-in expires or LIFETIME passes, whichever is first."""
    changes: Changes = request.app.state.dashboard.changes
    if changes.open >= MAX_STREAMS:
        raise TooManyStreams(
            f"this process serves {MAX_STREAMS} live pages at once already: close one, or retry"
        )
    lifetime = LIFETIME
    operator = getattr(request.state, "operator", None)
    if operator is not None:
        lifetime = min(lifetime, operator.expires_at - time.time())
    return EventStream(snapshot_events(changes, snapshot, event, lifetime=max(lifetime, 0.0)))
