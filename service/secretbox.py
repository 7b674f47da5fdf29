"""AES-256-GCM sealing of secrets at rest (Meta tokens, app secrets).

The key is SIDECAR_ENCRYPTION_KEY: 32 bytes, in base64 (also Laravel's `base64:...`) or hex.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from service.errors import ConfigError

_VERSION = b"\x01"


# Laravel writes its APP_KEY as `base64:` and the base64 of the key; such a key works as is.
LARAVEL_PREFIX = "base64:"
KEY_FORMATS = "base64 (as `keygen` prints it, or Laravel's `base64:...`) or 64 hex characters"


def parse_key(raw: str) -> bytes:
    """A 32-byte key from base64 (what `keygen` prints), Laravel's `base64:<base64>` (its
    APP_KEY format, what `php artisan key:generate --show` prints) or 64 hex characters."""
    raw = raw.strip()
    laravel = raw.startswith(LARAVEL_PREFIX)
    encoded = raw[len(LARAVEL_PREFIX) :] if laravel else raw
    refused = ConfigError(f"SIDECAR_ENCRYPTION_KEY must be 32 bytes in {KEY_FORMATS}")
    try:
        if not laravel and len(encoded) == 64:
            key = bytes.fromhex(encoded)
        else:
            key = base64.b64decode(encoded, validate=True)
    except (ValueError, binascii.Error):
        raise refused from None
    if len(key) != 32:
        raise refused
    return key


class SecretBox:
    """Seals JSON values; the session id is bound in as associated data so sealed blobs
    cannot be swapped between sessions."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def seal(self, value: dict[str, Any], context: str) -> str:
        nonce = os.urandom(12)
        plaintext = json.dumps(value, separators=(",", ":")).encode()
        sealed = _VERSION + nonce + self._aead.encrypt(nonce, plaintext, context.encode())
        return base64.b64encode(sealed).decode()

    def open(self, sealed: str, context: str) -> dict[str, Any]:
        blob = base64.b64decode(sealed)
        if blob[:1] != _VERSION:
            raise ValueError("unknown sealed secret version")
        try:
            plaintext = self._aead.decrypt(blob[1:13], blob[13:], context.encode())
        except InvalidTag:
            raise ValueError("sealed secret does not open with this key") from None
        value = json.loads(plaintext)
        if not isinstance(value, dict):
            raise ValueError("sealed secret is not an object")
        return value
