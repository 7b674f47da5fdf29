"""Typed errors of the sandbox, mapped to the JSON error shape at the edge."""

from __future__ import annotations

from typing import Any


class SandboxError(Exception):
    """A request the sandbox refuses; carries the HTTP status and a snake_case code."""

    status_code = 400

    def __init__(self, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details

    def to_json(self) -> dict[str, Any]:
        """Render as `{"error": {"code", "message", "details"?}}` (docs/sandbox.md)."""
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            error["details"] = self.details
        return {"error": error}


class BadRequest(SandboxError):
    """Malformed request (bad JSON, not an object)."""

    status_code = 400


class Unauthorized(SandboxError):
    """The page presented no identity, or one the network no longer knows."""

    status_code = 401


class NotFound(SandboxError):
    """An unknown QR ref, pairing code, phone, device or message."""

    status_code = 404


class Conflict(SandboxError):
    """The thing exists but is in the wrong state (rotated QR, offline device, ...)."""

    status_code = 409


class TooLarge(SandboxError):
    """The request body is larger than the sandbox accepts."""

    status_code = 413


class Invalid(SandboxError):
    """A field is missing or has the wrong type or format."""

    status_code = 422
