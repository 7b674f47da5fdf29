"""HMAC-SHA256 request signing (docs/api.md, Signing), shared by the verifier and the CLI.

The signed message is the exact bytes `"{ts}\\n{METHOD}\\n{path}\\n" + raw body`, where path
includes `?query` when there is one, exactly as sent.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Generator, Iterable

import httpx


def request_message(timestamp: str, method: str, path: str, body: bytes) -> bytes:
    return f"{timestamp}\n{method.upper()}\n{path}\n".encode() + body


def hmac_hex(secret: str, message: bytes) -> str:
    """Lowercase hex HMAC-SHA256, what PHP's hash_hmac('sha256', ...) returns."""
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def hmac_matches(secrets: Iterable[str], message: bytes, signature: str) -> bool:
    """True when any of `secrets` signed `message` as `signature` (hex, any case).

    Compared as bytes in constant time, with no early exit: the time taken says neither
    whether nor which secret matched. Every signature check of the project goes through here.
    """
    given = signature.strip().lower().encode("utf-8", "replace")
    ok = False
    for secret in secrets:
        ok |= hmac.compare_digest(hmac_hex(secret, message).encode(), given)
    return ok


def sign_request(secret: str, timestamp: str, method: str, path: str, body: bytes) -> str:
    """The X-HMAC-Signature of an API request."""
    return hmac_hex(secret, request_message(timestamp, method, path, body))


def verify_request(
    secrets: Iterable[str], signature: str, timestamp: str, method: str, path: str, body: bytes
) -> bool:
    """True when any of `secrets` produced the request's `signature`."""
    return hmac_matches(secrets, request_message(timestamp, method, path, body), signature)


class HmacAuth(httpx.Auth):
    """X-Timestamp and X-HMAC-Signature over the exact path, query and body httpx sends."""

    requires_request_body = True

    def __init__(self, secret: str) -> None:
        self._secret = secret

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        timestamp = str(int(time.time()))
        path = request.url.raw_path.decode("ascii")
        request.headers["X-Timestamp"] = timestamp
        request.headers["X-HMAC-Signature"] = sign_request(
            self._secret, timestamp, request.method, path, request.content
        )
        yield request
