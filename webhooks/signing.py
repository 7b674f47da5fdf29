"""Webhook signatures (docs/webhooks.md): what Laravel middleware checks on our requests."""

from __future__ import annotations

from service import __version__
from service.signing import hmac_hex

USER_AGENT = f"wa-sidecar/{__version__}"


def webhook_headers(
    secret: str, body: bytes, timestamp: int, event_id: str, event: str
) -> dict[str, str]:
    """Headers for one delivery attempt of `body` (the exact bytes that are sent).

    X-HMAC-Signature = hex HMAC-SHA256(secret, "{timestamp}" + body), no separator: what
    `hash_hmac('sha256', $timestamp.$request->getContent(), $secret)` computes.
    Signature = hex HMAC-SHA256(secret, body): what spatie/laravel-webhook-client checks.
    """
    ts = str(timestamp)
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Timestamp": ts,
        "X-HMAC-Signature": hmac_hex(secret, ts.encode() + body),
        "Signature": hmac_hex(secret, body),
        "X-Webhook-Id": event_id,
        "X-Webhook-Event": event,
    }
