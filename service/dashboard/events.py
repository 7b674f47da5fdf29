"""The Events page: the event monitor, outbox rows as server-sent events in the order they
were written.

Each stream keeps only its cursor (the outbox seq) and reads the rows after it from the
store, at most `BATCH` at a time, so a stream holds no queue and a slow client costs
nothing but its socket. It reads when this process commits (the dashboard's `Changes`) and
at least every second (rows other processes of a cluster wrote). The SSE `id` of each event
is its seq: a browser that reconnects sends it back as `Last-Event-ID` and resumes after
it, as long as it is at most `RESUME_LIMIT` rows behind (older ones are skipped, and a `gap`
event says how many). A stream ends when the service stops (`Changes.close`), and by
itself after `LIFETIME_S` (the browser reconnects and resumes).
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from service.clock import iso
from service.dashboard.live import Changes, EventStream
from service.dashboard.markup import fmt
from service.dashboard.routing import NavEntry, Page, Refused, dashboard_of, page, view
from service.digits import ascii_int
from service.errors import ValidationFailed
from service.models import requests as rq
from service.models.base import Input, validate
from service.store import OutboxEvent, Store

# Rows read per query: the most a stream holds at once.
BATCH = 100
# An idle stream sends a comment this often (proxies keep it, a gone client is noticed).
KEEPALIVE_S = 15.0
LIFETIME_S = 300.0
# How far back a reconnecting client is caught up; how many rows a fresh one starts with.
RESUME_LIMIT = 500
INITIAL = 20
# Streams one process serves at once (each reads the store every second).
MAX_STREAMS = 16
# A body longer than this is shown by its size only.
MAX_SHOWN_BODY = 8192
RETRY_MS = 2000


class StreamFilter(Input):
    """Which events a stream shows: every given field must match."""

    session_id: rq.Id | None = None
    event: rq.EventName | None = None

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


def sse(event: str, data: dict[str, Any], event_id: int | None = None) -> str:
    """One server-sent event, its data one JSON line, with an id when given."""
    head = "" if event_id is None else f"id: {event_id}\n"
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


@dataclass
class EventMonitor:
    """The event streams of one process: how many are open, and what they read."""

    store: Store
    changes: Changes
    lifetime: float = LIFETIME_S
    open: int = 0

    @property
    def full(self) -> bool:
        return self.open >= MAX_STREAMS

    async def stream(self, after: int | None, match: StreamFilter) -> AsyncIterator[str]:
        """The rows after seq `after` (None: the last few), then each new one as it is
        written, until the service stops or the stream's lifetime is over."""
        self.open += 1
        try:
            yield f"retry: {RETRY_MS}\n\n"
            mark = await self.store.outbox_mark()
            if after is None:
                cursor = max(mark - INITIAL, 0)
            elif mark - after > RESUME_LIMIT:
                cursor = mark - RESUME_LIMIT
                # Its id moves the client's resume point past what it will never get.
                yield sse("gap", {"skipped": cursor - after}, cursor)
            else:
                cursor = after
            deadline = time.monotonic() + self.lifetime
            quiet_since = time.monotonic()
            async for _ in self.changes.ticks():
                if time.monotonic() >= deadline:
                    break
                while True:
                    rows = await self.store.events_after(cursor, BATCH)
                    for row in rows:
                        cursor = row.seq
                        if match.takes(row):
                            yield sse("outbox", event_view(row), row.seq)
                            quiet_since = time.monotonic()
                    if len(rows) < BATCH:
                        break
                if time.monotonic() - quiet_since >= KEEPALIVE_S:
                    yield ": keepalive\n\n"
                    quiet_since = time.monotonic()
        finally:
            self.open -= 1


def monitor_of(request: Request) -> EventMonitor:
    monitor: EventMonitor = dashboard_of(request).ops.monitor
    return monitor


def _filter(request: Request) -> StreamFilter:
    given = {k: v for k, v in request.query_params.items() if v != "" and k != "after"}
    return validate(StreamFilter, given)


async def events_page(request: Request) -> Response:
    match = _filter(request)
    query = urlencode(match.model_dump(exclude_none=True))
    body = fmt(
        '<link rel="stylesheet" href="/dashboard/static/ops.css">'
        '<div class="head"><h1>Events</h1><span class="live" data-live>live</span>'
        '<div class="actions"><button type="button" class="secondary" data-pause>Pause'
        "</button></div></div>"
        '<form class="filters" method="get" action="/dashboard/events">'
        '<label>Session<input name="session_id" value="{session}"></label>'
        '<label>Event<input name="event" value="{event}" placeholder="message_received">'
        '</label><label>&nbsp;<button type="submit">Filter</button></label></form>'
        '<p class="muted">Events as they are written to the outbox, newest first (the last '
        "{shown} are kept on the page). Open a row for the webhook's body.</p>"
        '<div id="flash" class="flash" hidden></div>'
        '<table class="sessions compact events"><thead><tr><th>Seq</th><th>Written</th>'
        "<th>Event</th><th>Session</th><th>Workspace</th><th>Delivery</th></tr></thead>"
        '<tbody data-monitor="/dashboard/stream/events?{query}"></tbody></table>'
        '<p class="empty muted" data-monitor-empty>Waiting for events…</p>'
        '<script src="/dashboard/static/ops.js" defer></script>',
        session=match.session_id or "",
        event=match.event or "",
        shown=200,
        query=query,
    )
    return page(request, "Events", body, active="/events")


async def events_stream(request: Request) -> Response:
    match = _filter(request)
    # A reconnecting EventSource sends the last id it saw; a first visit may pass `after`.
    raw = request.headers.get("last-event-id") or request.query_params.get("after")
    after = ascii_int(raw) if raw else None
    if raw and after is None:
        raise ValidationFailed("Last-Event-ID", "must be an outbox seq (ASCII digits)")
    monitor = monitor_of(request)
    if monitor.full:
        raise Refused(
            503,
            "too_many_streams",
            "Too many monitors",
            f"This process serves {MAX_STREAMS} event streams at once already: close one "
            "and try again.",
        )
    return EventStream(monitor.stream(after, match))


PAGE = Page(
    nav=NavEntry("Events", "/events"),
    routes=[view("/events", events_page), view("/stream/events", events_stream)],
)
