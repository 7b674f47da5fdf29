"""Short-lived signed links for things an `<img src>` or a download must reach unsigned
(QR images, media files). The token is the credential; it names one resource and expires.
"""

from __future__ import annotations

import logging
import re

from itsdangerous import BadSignature, URLSafeTimedSerializer

from service.signing import hmac_hex


class SignedLinks:
    """Issues `{base_url}{prefix}{token}{suffix}` links and reads their tokens back."""

    def __init__(
        self,
        api_secret: str,
        base_url: str,
        *,
        purpose: str,
        prefix: str,
        suffix: str = "",
        max_age: int,
    ) -> None:
        # A key per purpose, derived from the API secret: a QR token never opens media, and
        # no token is a signature that means anything elsewhere.
        key = hmac_hex(api_secret, f"wa-sidecar {purpose} link".encode())
        self._serializer = URLSafeTimedSerializer(key, salt=purpose)
        self.base_url = base_url
        self.prefix = prefix
        self.suffix = suffix
        self.max_age = max_age

    def url(self, value: str) -> str:
        return f"{self.base_url}{self.prefix}{self._serializer.dumps(value)}{self.suffix}"

    def read(self, token: str) -> str | None:
        """The value a token names, or None when it is forged, for another purpose or expired."""
        try:
            value = self._serializer.loads(token, max_age=self.max_age)
        except BadSignature:
            return None
        return value if isinstance(value, str) else None


_LINK_TOKEN = re.compile(r"(/(?:qr|media|dashboard/login)/)[^\s/?\"]+")
# Meta's webhook handshake carries the session's verify token in the query string.
_VERIFY_TOKEN = re.compile(r"((?:\?|&)hub\.verify_token=)[^\s&\"]*")


class RedactLinkTokens(logging.Filter):
    """Keeps credentials in URLs out of access logs: signed-link tokens (a credential while
    valid) and Meta's `hub.verify_token`."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_redact(a) if isinstance(a, str) else a for a in record.args)
        return True


def _redact(text: str) -> str:
    return _VERIFY_TOKEN.sub(r"\1[redacted]", _LINK_TOKEN.sub(r"\1[redacted]", text))


def redact_access_log() -> None:
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactLinkTokens) for f in access.filters):
        access.addFilter(RedactLinkTokens())
