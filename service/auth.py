"""Inbound request guard: the body limit for every route and HMAC auth for `/api/*`.

A pure ASGI middleware: it reads the raw body once (never more than the limit), verifies the
signature over those exact bytes, and hands the same bytes to the route.
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from collections.abc import Callable

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import error_body
from service.signing import verify_request

STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# ASCII digits only: str.isdigit() also accepts characters such as '²' that int() refuses.
_TIMESTAMP = re.compile(r"[0-9]{1,12}")


class ReplayCache:
    """Signatures of state-changing requests seen inside the timestamp window.

    In memory and per process: a restart forgets it, which the ±tolerance window bounds.
    """

    def __init__(self, ttl: float, max_entries: int = 200_000) -> None:
        self._ttl = ttl
        self._max = max_entries
        self._seen: OrderedDict[str, float] = OrderedDict()

    def seen(self, signature: str, now: float) -> bool:
        """Record `signature`; True when it was already recorded and not yet expired."""
        self._evict(now)
        expiry = self._seen.get(signature)
        if expiry is not None and expiry > now:
            return True
        self._seen[signature] = now + self._ttl
        self._seen.move_to_end(signature)
        return False

    def _evict(self, now: float) -> None:
        # Entries are inserted in expiry order, so expired ones sit at the front.
        while self._seen:
            first, expiry = next(iter(self._seen.items()))
            if expiry > now and len(self._seen) < self._max:
                break
            del self._seen[first]


def _is_protected(path: str) -> bool:
    return path == "/api" or path.startswith("/api/")


class RequestGuard:
    """Body limit (413) everywhere; X-Timestamp + X-HMAC-Signature (401) on `/api/*`."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        secrets: tuple[str, ...],
        tolerance: int,
        max_body_bytes: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.app = app
        self.secrets = secrets
        self.tolerance = tolerance
        self.max_body_bytes = max_body_bytes
        self.clock = clock
        # A signature stays replayable for as long as its timestamp could still pass.
        self.replays = ReplayCache(ttl=2 * tolerance + 1)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            await self._too_large(scope, receive, send)
            return
        body = await self._read_body(receive)
        if body is None:
            await self._too_large(scope, receive, send)
            return
        if _is_protected(scope["path"]):
            failure = self._authenticate(scope, headers, body)
            if failure is not None:
                code, message = failure
                await JSONResponse(error_body(code, message), status_code=401)(scope, receive, send)
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

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = JSONResponse(
            error_body(
                "payload_too_large",
                f"request body exceeds {self.max_body_bytes} bytes",
                {"limit": self.max_body_bytes},
            ),
            status_code=413,
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)

    def _authenticate(
        self, scope: Scope, headers: dict[str, str], body: bytes
    ) -> tuple[str, str] | None:
        timestamp = headers.get("x-timestamp", "").strip()
        signature = headers.get("x-hmac-signature", "").strip()
        if not timestamp or not signature:
            return "invalid_signature", "X-Timestamp and X-HMAC-Signature headers are required"
        if not _TIMESTAMP.fullmatch(timestamp):
            return "invalid_signature", "X-Timestamp must be Unix seconds"
        now = self.clock()
        if abs(now - int(timestamp)) > self.tolerance:
            return (
                "stale_timestamp",
                f"X-Timestamp is more than {self.tolerance} s away from the server clock",
            )
        # The path exactly as sent: raw (still percent-encoded) path plus the query string.
        path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
        query = scope.get("query_string", b"").decode("latin-1")
        if query:
            path = f"{path}?{query}"
        method = scope["method"]
        if not verify_request(self.secrets, signature, timestamp, method, path, body):
            return "invalid_signature", "signature does not match"
        if method in STATE_CHANGING and self.replays.seen(signature.lower(), now):
            return "replayed_request", "this signed request was already received"
        return None
