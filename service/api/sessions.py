"""The session endpoints of DESIGN.md §2: parse and validate, call the manager, render."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from adapters.meta import MetaConfig
from service.clock import iso
from service.errors import ValidationFailed
from service.netguard import redact_url
from service.sessions.manager import SessionManager
from service.store import PROVIDER_MODES, SESSION_STATUSES, SessionRecord
from service.validation import (
    check_id,
    json_object,
    opt_bool,
    opt_choice,
    opt_object,
    opt_str,
    opt_url,
    query_choice,
    query_id,
    reject_unknown,
    req_str,
)

_CREATE_FIELDS = {"workspace_id", "session_id", "provider_mode", "start", "webhook_url", "meta"}
_PATCH_FIELDS = {"provider_mode", "webhook_url", "meta"}
_META_FIELDS = {"phone_number_id", "access_token", "app_secret", "verify_token"}


def session_view(record: SessionRecord) -> dict[str, Any]:
    """The public session record; Meta secrets never leave, only whether they are set,
    and credentials in webhook_url show as `***@`."""
    return {
        "session_id": record.session_id,
        "workspace_id": record.workspace_id,
        "provider_mode": record.provider_mode,
        "status": record.status,
        "desired_state": record.desired_state,
        "phone_number": record.phone_number,
        "webhook_url": redact_url(record.webhook_url) if record.webhook_url else None,
        "created_at": iso(record.created_at),
        "updated_at": iso(record.updated_at),
        "last_error": record.last_error,
        "qr_expires_at": iso(record.qr_expires_at),
        "meta": {
            "configured": record.meta_sealed is not None,
            "phone_number_id": record.meta_phone_number_id,
        },
    }


def _manager(request: Request) -> SessionManager:
    manager: SessionManager = request.app.state.sessions
    return manager


def _session_id(request: Request) -> str:
    return check_id(request.path_params["session_id"], "session_id")


def _meta(data: dict[str, Any]) -> MetaConfig | None:
    meta = opt_object(data, "meta")
    if meta is None:
        return None
    reject_unknown(meta, _META_FIELDS, prefix="meta.")
    return MetaConfig(
        phone_number_id=req_str(meta, "phone_number_id", max_len=64, prefix="meta."),
        access_token=req_str(meta, "access_token", max_len=4096, prefix="meta."),
        app_secret=opt_str(meta, "app_secret", max_len=512, prefix="meta."),
        verify_token=opt_str(meta, "verify_token", max_len=512, prefix="meta."),
    )


async def create_session(request: Request) -> Response:
    data = await json_object(request)
    reject_unknown(data, _CREATE_FIELDS)
    if "workspace_id" not in data:
        raise ValidationFailed("workspace_id", "is required")
    workspace_id = check_id(data["workspace_id"], "workspace_id")
    session_id = None
    if data.get("session_id") is not None:
        session_id = check_id(data["session_id"], "session_id")
    start = opt_bool(data, "start")
    record = await _manager(request).create(
        workspace_id=workspace_id,
        session_id=session_id,
        provider_mode=opt_choice(data, "provider_mode", PROVIDER_MODES) or "auto",
        start=True if start is None else start,
        webhook_url=opt_url(data, "webhook_url"),
        meta=_meta(data),
    )
    return JSONResponse(session_view(record), status_code=201)


async def list_sessions(request: Request) -> Response:
    workspace_id = query_id(request, "workspace_id")
    status = query_choice(request, "status", SESSION_STATUSES)
    records = await _manager(request).list(workspace_id=workspace_id, status=status)
    return JSONResponse({"data": [session_view(r) for r in records]})


async def get_session(request: Request) -> Response:
    return JSONResponse(session_view(await _manager(request).get(_session_id(request))))


async def patch_session(request: Request) -> Response:
    session_id = _session_id(request)
    data = await json_object(request)
    if "workspace_id" in data or "session_id" in data:
        field = "workspace_id" if "workspace_id" in data else "session_id"
        raise ValidationFailed(field, "cannot be changed; create a new session instead")
    reject_unknown(data, _PATCH_FIELDS)
    changes: dict[str, Any] = {}
    if "provider_mode" in data:
        changes["provider_mode"] = opt_choice(data, "provider_mode", PROVIDER_MODES)
    if "webhook_url" in data:
        changes["webhook_url"] = opt_url(data, "webhook_url")
    if "meta" in data:
        changes["meta"] = _meta(data)
    record = await _manager(request).update(session_id, **changes)
    return JSONResponse(session_view(record))


async def delete_session(request: Request) -> Response:
    await _manager(request).delete(_session_id(request))
    return Response(status_code=204)


async def _action(request: Request, action: str) -> Response:
    session_id = _session_id(request)
    # No options yet: a body, if any, must be empty so a typo is not silently ignored.
    reject_unknown(await json_object(request, allow_empty=True), set())
    manager = _manager(request)
    record = await getattr(manager, action)(session_id)
    return JSONResponse(session_view(record), status_code=202)


async def start_session(request: Request) -> Response:
    return await _action(request, "start")


async def stop_session(request: Request) -> Response:
    return await _action(request, "stop")


async def restart_session(request: Request) -> Response:
    return await _action(request, "restart")


async def logout_session(request: Request) -> Response:
    return await _action(request, "logout")


routes = [
    Route("/api/sessions", create_session, methods=["POST"]),
    Route("/api/sessions", list_sessions, methods=["GET"]),
    Route("/api/sessions/{session_id}", get_session, methods=["GET"]),
    Route("/api/sessions/{session_id}", patch_session, methods=["PATCH"]),
    Route("/api/sessions/{session_id}", delete_session, methods=["DELETE"]),
    Route("/api/sessions/{session_id}/start", start_session, methods=["POST"]),
    Route("/api/sessions/{session_id}/stop", stop_session, methods=["POST"]),
    Route("/api/sessions/{session_id}/restart", restart_session, methods=["POST"]),
    Route("/api/sessions/{session_id}/logout", logout_session, methods=["POST"]),
]
