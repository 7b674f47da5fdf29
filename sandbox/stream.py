"""Server-Sent Events from the network to one page: the "socket" of the sandbox."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from sandbox.network import Device, Event, Network

# A comment line this often lets a dead connection surface as a failed write.
KEEPALIVE_SECONDS = 10.0
# Streams end after this long and EventSource reconnects (with Last-Event-ID, so nothing is
# lost); it bounds how long any server can wait on a stream it does not know how to end.
MAX_STREAM_SECONDS = 30.0
RETRY_MS = 500


def format_event(event: Event) -> str:
    """One SSE frame: the seq as the event id, `{kind, data}` as JSON on one line."""
    payload = json.dumps({"kind": event.kind, "data": event.data}, separators=(",", ":"))
    return f"id: {event.seq}\ndata: {payload}\n\n"


async def event_stream(
    network: Network,
    device: Device,
    since: int,
    *,
    keepalive: float = KEEPALIVE_SECONDS,
    max_lifetime: float = MAX_STREAM_SECONDS,
) -> AsyncIterator[str]:
    """Yield the device's events after `since`, then wait for more until the network
    closes, the lifetime runs out or the client goes away (Starlette cancels us)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max_lifetime
    device.streams += 1
    try:
        yield f"retry: {RETRY_MS}\n\n"
        while not network.closed:
            # Take the signal before reading the log, so a publish in between still wakes us.
            signal = device.signal
            batch = device.events_after(since)
            if batch:
                for event in batch:
                    yield format_event(event)
                    since = event.seq
                continue
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                await asyncio.wait_for(signal.wait(), timeout=min(keepalive, remaining))
            except TimeoutError:
                yield ": keepalive\n\n"
    finally:
        device.streams -= 1
