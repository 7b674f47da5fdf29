"""Typed domain errors, the registry of their codes, and the one place that renders them.

Domain code raises these; `error_response` renders
`{"error": {"code", "message", "details"}}` with the status each class carries. Every code
an answer can carry is in `ERRORS` with its status and meaning: an unregistered code is
refused where the error is built, and the docs' error table is generated from `ERRORS`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

log = logging.getLogger("service.errors")

T = TypeVar("T")


@dataclass(frozen=True)
class ErrorCode:
    """One code an error answer can carry, with its status and what it means to a client."""

    status: int
    code: str
    meaning: str


# The docs' error table is generated from this, in this order (`python -m service docs`).
# A code may be listed under two statuses when it means something different at each.
ERRORS: tuple[ErrorCode, ...] = (
    ErrorCode(
        400,
        "malformed_json",
        "the body is not JSON, not an object, nested too deeply or holds an unpaired UTF-16 "
        "surrogate",
    ),
    ErrorCode(
        401,
        "invalid_signature",
        "`X-Timestamp` or `X-HMAC-Signature` missing, malformed or wrong; on "
        "`POST /webhooks/meta`, `X-Hub-Signature-256`",
    ),
    ErrorCode(
        401,
        "stale_timestamp",
        "`X-Timestamp` is further than `SIDECAR_SIGNATURE_TOLERANCE` from the server clock",
    ),
    ErrorCode(
        401,
        "replayed_request",
        "a write whose signature was already received within the tolerance window",
    ),
    ErrorCode(
        401, "invalid_token", "`/metrics` without `Authorization: Bearer <SIDECAR_METRICS_TOKEN>`"
    ),
    ErrorCode(
        403,
        "verification_failed",
        "`GET /webhooks/meta`: not a subscribe request, or `hub.verify_token` is no session's",
    ),
    ErrorCode(
        401,
        "dashboard_signin_required",
        "a `/dashboard` page without a signed-in dashboard session (or with an expired one)",
    ),
    ErrorCode(
        403,
        "csrf_failed",
        "a `/dashboard` change without its session's CSRF token, or a sign-in posted from "
        "another site",
    ),
    ErrorCode(403, "dashboard_link_invalid", "the dashboard sign-in link is forged or mangled"),
    ErrorCode(403, "dashboard_link_expired", "the dashboard sign-in link has expired"),
    ErrorCode(403, "dashboard_link_used", "the dashboard sign-in link signed in once already"),
    ErrorCode(404, "not_found", "no such path"),
    ErrorCode(404, "session_not_found", "no session with this id"),
    ErrorCode(404, "message_not_found", "no message with this id in this session"),
    ErrorCode(404, "delivery_not_found", "no webhook delivery with this id"),
    ErrorCode(404, "qr_link_expired", "the QR image link is invalid or expired"),
    ErrorCode(404, "no_qr", "the QR image link's session shows no QR at the moment"),
    ErrorCode(404, "media_link_expired", "the media link is invalid or expired"),
    ErrorCode(404, "no_media", "the message has no stored media, or its file is gone"),
    ErrorCode(405, "method_not_allowed", "the path has no such method; `Allow` lists its methods"),
    ErrorCode(408, "request_timeout", "the request body did not arrive within 30 s"),
    ErrorCode(409, "session_exists", "a session with this `session_id` exists already"),
    ErrorCode(
        409,
        "no_qr",
        "the session is not `qr_required`, so there is no QR to scan; `details.status` says "
        "what it is",
    ),
    ErrorCode(
        409, "qr_not_ready", "the session waits for a scan but has no QR yet: retry in a moment"
    ),
    ErrorCode(409, "session_not_ready", "a pairing code needs the session in `qr_required`"),
    ErrorCode(409, "pairing_failed", "WhatsApp refused to give a pairing code for this phone"),
    ErrorCode(
        409,
        "session_not_connected",
        "no provider of the session can send now (or its browser is not running); "
        "`details.status` is the session's status",
    ),
    ErrorCode(
        409,
        "delivery_not_dead",
        "only a `dead` delivery can be replayed; `details.status` is its status",
    ),
    ErrorCode(409, "meta_not_configured", "the session has no Meta credentials"),
    ErrorCode(409, "media_unavailable", "the provider could not give this message's media"),
    ErrorCode(
        409,
        "not_supported_by_provider",
        "the session's provider has no such operation or thing (a `meta` session has no QR "
        "code and no contacts); `details.provider` names it",
    ),
    ErrorCode(
        409,
        "page_refused",
        "WhatsApp Web refused the operation; `details.wa_code` is wa-js's error code when it "
        "gave one",
    ),
    ErrorCode(409, "runtime_disabled", "this process runs no browsers"),
    ErrorCode(
        409,
        "dashboard_disabled",
        "the operator dashboard is off: set `SIDECAR_DASHBOARD_SECRET` to turn it on",
    ),
    ErrorCode(
        409,
        "message_not_on_page",
        "the message has no id at the session's provider to act on (still queued, failed "
        "before it left, or sent through the other provider)",
    ),
    ErrorCode(
        409,
        "provider_refused",
        "the Cloud API refused or could not take the operation; `details.error` is Meta's "
        "code and message, `details.kind` says whether a retry may help (`transient`)",
    ),
    ErrorCode(409, "message_not_own", "only a message the session sent can be edited or revoked"),
    ErrorCode(409, "message_not_editable", "only a text message can be edited"),
    # Campaigns.
    ErrorCode(404, "campaign_not_found", "no campaign with this id in this session"),
    ErrorCode(
        409,
        "campaign_state",
        "the campaign's status does not allow this (pause a scheduled or running one, "
        "resume a paused one, cancel one not finished); `details.status` is its status",
    ),
    ErrorCode(
        409,
        "message_not_cancellable",
        "only a message not yet sent (`queued` or `scheduled`) can be cancelled; "
        "`details.status` is where it is",
    ),
    ErrorCode(
        410,
        "media_expired",
        "the message's media was deleted after `SIDECAR_MEDIA_RETENTION_DAYS`; the message "
        "says `media.reason: expired`",
    ),
    ErrorCode(
        413,
        "payload_too_large",
        "the body is larger than `SIDECAR_MAX_BODY_BYTES` (16 MiB by default)",
    ),
    ErrorCode(413, "media_too_large", "the media is larger than `SIDECAR_MEDIA_MAX_BYTES`"),
    ErrorCode(
        422,
        "validation_failed",
        "`details.field` names the field (`meta.access_token`, ...); `details.errors` lists "
        "every problem when there are several",
    ),
    ErrorCode(500, "internal_error", "a bug: the log has the stack trace"),
    ErrorCode(
        502,
        "worker_error",
        "cluster mode: the session's worker answered an error of its own (its log says why)",
    ),
    ErrorCode(503, "at_capacity", "`MAX_SESSIONS` sessions are running already"),
    ErrorCode(
        503, "docs_unavailable", "`/docs`: the API viewer's files are not installed (`npm ci`)"
    ),
    ErrorCode(
        503,
        "worker_unavailable",
        "cluster mode: the session's worker did not answer; retry in a few seconds",
    ),
    ErrorCode(
        503,
        "session_unassigned",
        "cluster mode: no worker holds the session at the moment; retry in a few seconds",
    ),
    ErrorCode(
        504,
        "page_timeout",
        "WhatsApp Web did not answer the operation in time (it may still take effect): retry",
    ),
    ErrorCode(
        400, "unknown_operation", "internal RPC (`/internal/*`): a session operation unknown here"
    ),
    # The dashboard's operations pages (nodes, event monitor).
    ErrorCode(404, "node_not_found", "dashboard: no cluster node with this id in the store"),
    ErrorCode(
        503,
        "too_many_streams",
        "dashboard: the event monitor serves as many streams as it takes; close one, or retry",
    ),
)

_REGISTERED = {(e.code, e.status) for e in ERRORS}


class UnregisteredError(LookupError):
    """An error code (or its status) that `ERRORS` does not list: a bug, caught by the tests."""


def registered(code: str, status: int | None = None) -> bool:
    """Whether `code` is in `ERRORS` (under `status`, when given)."""
    if status is None:
        return any(e.code == code for e in ERRORS)
    return (code, status) in _REGISTERED


def _check(code: str, status: int | None) -> None:
    if not registered(code, status):
        where = "" if status is None else f" with status {status}"
        raise UnregisteredError(f"error code {code!r}{where} is not in service.errors.ERRORS")


class ConfigError(Exception):
    """The service cannot start with this configuration."""


class ApiError(Exception):
    """An error with a stable snake_case code from `ERRORS`, a status and optional details.

    A class that names its own `code` is checked when it is defined; one that does not
    (`Conflict`) must be given a registered `code` when raised.
    """

    status = 400
    code = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "code" in cls.__dict__:
            _check(cls.code, cls.status)

    def __init__(
        self, message: str, *, code: str | None = None, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        _check(self.code, self.status)
        self.details = details or {}


class MalformedJson(ApiError):
    status = 400
    code = "malformed_json"


class NotFound(ApiError):
    status = 404
    code = "not_found"


class MediaExpired(ApiError):
    """410: the media was kept once, and the retention cleanup deleted it for good."""

    status = 410
    code = "media_expired"


class SessionNotFound(NotFound):
    code = "session_not_found"

    def __init__(self, session_id: str) -> None:
        super().__init__(f"no session with id {session_id!r}", details={"session_id": session_id})


class Conflict(ApiError):
    """409: each one names its own code."""

    status = 409


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


class PageTimeout(ApiError):
    """A session's page did not answer an operation in time; it may still take effect."""

    status = 504
    code = "page_timeout"


class AtCapacity(ApiError):
    status = 503
    code = "at_capacity"


def require_browsers(component: T | None) -> T:
    """A browser-side component, or 409 on an instance built without browsers."""
    if component is None:
        raise Conflict("this instance runs no browsers", code="runtime_disabled")
    return component


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON error shape; `code` must be registered."""
    _check(code, None)
    return {"error": {"code": code, "message": message, "details": details or {}}}


def error_json(
    status: int,
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """An error answer built outside an `ApiError` (middleware): `code` registered at `status`."""
    _check(code, status)
    return JSONResponse(error_body(code, message, details), status_code=status, headers=headers)


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
    code = _HTTP_CODES.get(exc.status_code)
    if code is None:
        # Routing raises only 404 and 405; anything else is a bug of ours.
        return await handle_unexpected(request, exc)
    message = exc.detail if isinstance(exc.detail, str) else code
    return error_json(exc.status_code, code, message, headers=exc.headers)


async def handle_unexpected(request: Request, exc: Exception) -> Response:
    """A bug, not bad input: log it with the stack, answer without one."""
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_json(500, "internal_error", "internal error")
