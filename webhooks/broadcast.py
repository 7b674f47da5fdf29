"""Broadcast QR and status events to Laravel Reverb or Pusher (docs/webhooks.md).

The Pusher HTTP API: `POST /apps/{app_id}/events?auth_key&auth_timestamp&auth_version=1.0&
body_md5&auth_signature`, where auth_signature = hex HMAC-SHA256(secret,
"POST\\n/apps/{app_id}/events\\n" + the other query parameters sorted by name). Best-effort and
real-time: a bounded queue, a few quick retries, never in the webhook outbox's way.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx

from service.signing import hmac_hex
from service.store import AppendedEvent

log = logging.getLogger("webhooks.broadcast")

# Reverb's default max request size; Pusher's own limit is larger.
MAX_REQUEST_BYTES = 10_000


@dataclass(frozen=True)
class PusherConfig:
    app_id: str
    key: str
    secret: str
    host: str
    port: int
    scheme: str

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"


def sign_query(config: PusherConfig, path: str, body: bytes, timestamp: int) -> dict[str, str]:
    """The query string parameters of a signed Pusher HTTP API request."""
    params = {
        "auth_key": config.key,
        "auth_timestamp": str(timestamp),
        "auth_version": "1.0",
        "body_md5": hashlib.md5(body, usedforsecurity=False).hexdigest(),
    }
    query = "&".join(f"{k}={params[k]}" for k in sorted(params))
    to_sign = f"POST\n{path}\n{query}"
    params["auth_signature"] = hmac_hex(config.secret, to_sign.encode())
    return params


def channel_for(workspace_id: str) -> str:
    return f"private-workspace.{workspace_id}"


def to_broadcast(appended: AppendedEvent) -> tuple[str, dict[str, Any]] | None:
    """The broadcast of an outbox event, when it has one: QR and status changes."""
    data = appended.event.data
    if appended.event.event == "qr_code_generated":
        return "qr-code-generated", {
            "session_id": appended.session_id,
            "qr": data.get("qr"),
            "expires_at": data.get("expires_at"),
            "image_url": data.get("image_url"),
        }
    if appended.event.event == "session_status_changed":
        return "session-status-changed", {
            "session_id": appended.session_id,
            "status": data.get("status"),
        }
    return None


class Broadcaster:
    """Publishes to one Pusher-compatible server from a bounded queue."""

    def __init__(
        self,
        config: PusherConfig,
        client: httpx.AsyncClient,
        *,
        queue_size: int = 1000,
        attempts: int = 3,
        timeout: float = 3.0,
    ) -> None:
        self.config = config
        self.client = client
        self.attempts = attempts
        self.timeout = timeout
        self.path = f"/apps/{config.app_id}/events"
        self.published = 0
        self.dropped = 0
        self._queue: asyncio.Queue[tuple[str, str, dict[str, Any]]] = asyncio.Queue(queue_size)
        self._task: asyncio.Task[None] | None = None

    def on_events(self, events: list[AppendedEvent]) -> None:
        """Store listener: queue what is worth broadcasting; a full queue drops, never waits."""
        for appended in events:
            item = to_broadcast(appended)
            if item is None:
                continue
            name, data = item
            try:
                self._queue.put_nowait((channel_for(appended.workspace_id), name, data))
            except asyncio.QueueFull:
                self.dropped += 1

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="broadcaster")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def request_body(self, channel: str, name: str, data: dict[str, Any]) -> bytes:
        # Pusher's `data` is a JSON string inside the JSON body.
        payload = {"name": name, "channels": [channel], "data": json.dumps(data)}
        return json.dumps(payload, separators=(",", ":")).encode()

    async def publish(self, channel: str, name: str, data: dict[str, Any]) -> bool:
        """One event, with a few quick retries; False when it could not be published."""
        body = self.request_body(channel, name, data)
        if len(body) > MAX_REQUEST_BYTES:
            log.warning("not broadcasting %s: %d bytes is over the limit", name, len(body))
            return False
        for attempt in range(self.attempts):
            params = sign_query(self.config, self.path, body, int(time.time()))
            url = f"{self.config.base_url}{self.path}?{urlencode(params)}"
            try:
                response = await self.client.post(
                    url,
                    content=body,
                    headers={"Content-Type": "application/json"},
                    timeout=self.timeout,
                )
            except httpx.HTTPError as exc:
                error = type(exc).__name__
            else:
                if response.status_code < 300:
                    self.published += 1
                    return True
                error = f"HTTP {response.status_code}"
                if response.status_code < 500 and response.status_code != 429:
                    break  # a rejected request will not improve by repeating it
            log.info("broadcast of %s failed (%s), attempt %d", name, error, attempt + 1)
            await asyncio.sleep(0.2 * 2**attempt)
        return False

    async def _run(self) -> None:
        while True:
            channel, name, data = await self._queue.get()
            try:
                await self.publish(channel, name, data)
            except Exception:
                log.exception("broadcast failed")
