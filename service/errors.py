"""Typed domain errors and the one place that turns them into the JSON error shape.

Domain code raises these; `error_response` renders
`{"error": {"code", "message", "details"}}` with the status each class carries.
"""

from __future__ import annotations

import logging
from typing import Any, TypeVar

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

log = logging.getLogger("service.errors")

T = TypeVar("T")


class ConfigError(Exception):
    """The service cannot start with this configuration."""


class ApiError(Exception):
    """An error with a stable snake_case code, a status and optional details."""

    status = 400
    code = "bad_request"

    def __init__(
        self, message: str, *, code: str | None = None, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details or {}


class MalformedJson(ApiError):
    status = 400
    code = "malformed_json"


class NotFound(ApiError):
    status = 404
    code = "not_found"


class SessionNotFound(NotFound):
    code = "session_not_found"

    def __init__(self, session_id: str) -> None:
        super().__init__(f"no session with id {session_id!r}", details={"session_id": session_id})


class Conflict(ApiError):
    status = 409
    code = "conflict"


class NoQr(Conflict):
    code = "no_qr"

    def __init__(self, status: str) -> None:
        super().__init__(f"session is {status}; there is no QR to scan", details={"status": status})


class PayloadTooLarge(ApiError):
    status = 413
    code = "payload_too_large"


class ValidationFailed(ApiError):
    """422 naming the offending field in `details.field`."""

    status = 422
    code = "validation_failed"

    def __init__(
        self, field: str, message: str, *, errors: list[dict[str, str]] | None = None
    ) -> None:
        details: dict[str, Any] = {"field": field}
        if errors and len(errors) > 1:
            details["errors"] = errors
        super().__init__(f"{field}: {message}", details=details)
        self.field = field


class AtCapacity(ApiError):
    status = 503
    code = "at_capacity"


def require_browsers(component: T | None) -> T:
    """A browser-side component, or 409 on an instance built without browsers."""
    if component is None:
        raise Conflict("this instance runs no browsers", code="runtime_disabled")
    return component


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def error_response(exc: ApiError) -> JSONResponse:
    return JSONResponse(error_body(exc.code, exc.message, exc.details), status_code=exc.status)


async def handle_api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc)


_HTTP_CODES = {
    404: "not_found",
    405: "method_not_allowed",
}


async def handle_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else code
    return JSONResponse(error_body(code, message), status_code=exc.status_code, headers=exc.headers)


async def handle_unexpected(request: Request, exc: Exception) -> Response:
    """A bug, not bad input: log it with the stack, answer without one."""
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return JSONResponse(error_body("internal_error", "internal error"), status_code=500)
