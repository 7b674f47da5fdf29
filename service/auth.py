"""Inbound request guard: the body limit for every route and HMAC auth for `/api/*`.

A pure ASGI middleware. On `/api/*` it checks the signature headers first (present,
well-formed, timestamp in the window), so an unsigned body is never read; then it reads the raw
body once (never more than the limit, never slower than the time limit), verifies the signature
over those exact bytes, and hands the same bytes to the route. Signatures of state-changing
requests are kept in the store for the window, so a replay is refused after a restart and by
every process that shares the store.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import error_json
from service.signing import verify_request

STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# ASCII digits only: str.isdigit() also accepts characters such as '²' that int() refuses.
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_DIGITS = re.compile(r"[0-9]{1,20}")
_SIGNATURE = re.compile(r"[0-9a-fA-F]{64}")


# Records a signature for ttl seconds; False when it was seen and has not expired.
FirstSighting = Callable[[str, float, float], Awaitable[bool]]


class RequestGuard:
    """Body limit (413) everywhere; X-Timestamp + X-HMAC-Signature (401) on `/api/*`."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        secrets: tuple[str, ...],
        tolerance: int,
        max_body_bytes: int,
        first_sighting: FirstSighting,
        body_timeout: float = 30.0,
        clock: Callable[[], float] = time.time,
        prefix: str = "/api",
    ) -> None:
        self.app = app
        # The paths it signs: `/api` (the public API) or `/internal` (a worker's RPC).
        self.prefix = prefix
        self.secrets = secrets
        self.tolerance = tolerance
        self.max_body_bytes = max_body_bytes
        self.first_sighting = first_sighting
        self.body_timeout = body_timeout
        self.clock = clock
        # A signature stays replayable for as long as its timestamp could still pass.
        self.replay_ttl = float(2 * tolerance + 1)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        declared = headers.get("content-length", "")
        if _DIGITS.fullmatch(declared) and int(declared) > self.max_body_bytes:
            await self._too_large(scope, receive, send)
            return
        path = scope["path"]
        protected = path == self.prefix or path.startswith(self.prefix + "/")
        if protected:
            failure = self._check_headers(headers)
            if failure is not None:
                await self._unauthorized(scope, receive, send, failure)
                return
        try:
            body = await asyncio.wait_for(self._read_body(receive), self.body_timeout)
        except TimeoutError:
            await self._timed_out(scope, receive, send)
            return
        if body is None:
            await self._too_large(scope, receive, send)
            return
        if protected:
            failure = await self._authenticate(scope, headers, body)
            if failure is not None:
                await self._unauthorized(scope, receive, send, failure)
                return

        replayed = False

        async def replay_body() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay_body, send)

    async def _read_body(self, receive: Receive) -> bytes | None:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    @staticmethod
    async def _unauthorized(
        scope: Scope, receive: Receive, send: Send, failure: tuple[str, str]
    ) -> None:
        code, message = failure
        # The body may be unread: close the connection rather than drain it.
        response = error_json(401, code, message, headers={"Connection": "close"})
        await response(scope, receive, send)

    async def _timed_out(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_json(
            408,
            "request_timeout",
            f"the request body did not arrive within {self.body_timeout:.0f} s",
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_json(
            413,
            "payload_too_large",
            f"request body exceeds {self.max_body_bytes} bytes",
            {"limit": self.max_body_bytes},
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)

    def _check_headers(self, headers: dict[str, str]) -> tuple[str, str] | None:
        """What can be checked before the body: both headers, their form, the window."""
        timestamp = headers.get("x-timestamp", "").strip()
        signature = headers.get("x-hmac-signature", "").strip()
        if not timestamp or not signature:
            return "invalid_signature", "X-Timestamp and X-HMAC-Signature headers are required"
        if not _TIMESTAMP.fullmatch(timestamp):
            return "invalid_signature", "X-Timestamp must be Unix seconds"
        if not _SIGNATURE.fullmatch(signature):
            return "invalid_signature", "X-HMAC-Signature must be 64 hex digits"
        if abs(self.clock() - int(timestamp)) > self.tolerance:
            return (
                "stale_timestamp",
                f"X-Timestamp is more than {self.tolerance} s away from the server clock",
            )
        return None

    async def _authenticate(
        self, scope: Scope, headers: dict[str, str], body: bytes
    ) -> tuple[str, str] | None:
        timestamp = headers.get("x-timestamp", "").strip()
        signature = headers.get("x-hmac-signature", "").strip()
        # The path exactly as sent: raw (still percent-encoded) path plus the query string.
        path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
        query = scope.get("query_string", b"").decode("latin-1")
        if query:
            path = f"{path}?{query}"
        method = scope["method"]
        if not verify_request(self.secrets, signature, timestamp, method, path, body):
            return "invalid_signature", "signature does not match"
        if method in STATE_CHANGING and not await self.first_sighting(
            signature.lower(), self.clock(), self.replay_ttl
        ):
            return "replayed_request", "this signed request was already received"
        return None
