"""An httpx Auth that signs requests the way docs/api.md (and the Laravel kit) does."""

from __future__ import annotations

import time
from collections.abc import Generator

import httpx

from service.signing import sign_request


class SidecarAuth(httpx.Auth):
    """Adds X-Timestamp and X-HMAC-Signature over the exact bytes httpx will send."""

    requires_request_body = True

    def __init__(self, secret: str, clock_offset: int = 0) -> None:
        self.secret = secret
        self.clock_offset = clock_offset

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        timestamp = str(int(time.time()) + self.clock_offset)
        path = request.url.raw_path.decode("ascii")
        request.headers["X-Timestamp"] = timestamp
        request.headers["X-HMAC-Signature"] = sign_request(
            self.secret, timestamp, request.method, path, request.content
        )
        yield request
