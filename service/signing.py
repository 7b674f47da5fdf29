"""HMAC-SHA256 request signing (DESIGN.md §2), shared by the verifier and the CLI.

The signed message is the exact bytes `"{ts}\\n{METHOD}\\n{path}\\n" + raw body`, where path
includes `?query` when there is one, exactly as sent.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable


def request_message(timestamp: str, method: str, path: str, body: bytes) -> bytes:
    return f"{timestamp}\n{method.upper()}\n{path}\n".encode() + body


def sign_request(secret: str, timestamp: str, method: str, path: str, body: bytes) -> str:
    """Lowercase hex HMAC-SHA256 of the request, as Laravel's hash_hmac computes it."""
    return hmac.new(
        secret.encode(), request_message(timestamp, method, path, body), hashlib.sha256
    ).hexdigest()


def verify_request(
    secrets: Iterable[str], signature: str, timestamp: str, method: str, path: str, body: bytes
) -> bool:
    """True when any of `secrets` produced `signature`; every comparison is constant-time."""
    given = signature.strip().lower().encode()
    ok = False
    # No early exit: the time taken does not depend on which secret matched.
    for secret in secrets:
        expected = sign_request(secret, timestamp, method, path, body).encode()
        ok |= hmac.compare_digest(expected, given)
    return ok
