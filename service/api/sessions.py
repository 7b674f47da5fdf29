"""The session endpoints: parse and validate, call the manager, render."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from adapters.meta import MetaConfig
from service.api.routing import Operation, Resource, body_of, path_param, query_of, reply
from service.clock import iso
from service.errors import ValidationFailed
from service.models import requests as rq
from service.models import responses as rs
from service.models.base import validate
from service.netguard import redact_url
from service.sessions.calls import CallPolicy, stored_policy
from service.sessions.manager import SessionManager
from service.sessions.proxy import ProxyConfig, proxy_view
from service.store import SessionRecord
from service.validation import json_object


def session_view(record: SessionRecord) -> rs.Session:
    """The public session record; Meta and proxy secrets never leave, only whether they are
    set, and credentials in webhook_url show as `***@`."""
    return rs.Session.model_validate(
        {
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
            "metadata": record.metadata_object(),
            "webhook_events": (
                None if record.webhook_events is None else json.loads(record.webhook_events)
            ),
            "proxy": proxy_view(record),
            "call_policy": (policy := stored_policy(record)) and policy.view(),
        }
    )


def _manager(request: Request) -> SessionManager:
    manager: SessionManager = request.app.state.sessions
    return manager


def _session_id(request: Request) -> str:
    return path_param(request, "session_id")


def _meta(meta: rq.MetaInput | None) -> MetaConfig | None:
    if meta is None:
        return None
    return MetaConfig(
        phone_number_id=meta.phone_number_id,
        access_token=meta.access_token,
        app_secret=meta.app_secret,
        verify_token=meta.verify_token,
    )


def _call_policy(policy: rq.CallPolicyInput | None) -> CallPolicy | None:
    if policy is None:
        return None
    if policy.message is not None and not policy.reject:
        raise ValidationFailed("call_policy.message", "needs reject: true")
    return CallPolicy(reject=policy.reject, message=policy.message)


def _proxy(proxy: rq.ProxyInput | None) -> ProxyConfig | None:
    if proxy is None:
        return None
    return ProxyConfig(url=proxy.url, username=proxy.username, password=proxy.password)


async def create_session(request: Request) -> Response:
    data = await body_of(request, rq.SessionCreate)
    record = await _manager(request).create(
        workspace_id=data.workspace_id,
        session_id=data.session_id,
        provider_mode=data.provider_mode or "auto",
        start=True if data.start is None else data.start,
        webhook_url=data.webhook_url,
        meta=_meta(data.meta),
        metadata=data.metadata,
        webhook_events=data.webhook_events,
        proxy=_proxy(data.proxy),
        call_policy=_call_policy(data.call_policy),
    )
    return reply(session_view(record), 201)


async def list_sessions(request: Request) -> Response:
    query = query_of(request, rq.SessionQuery)
    records = await _manager(request).list(workspace_id=query.workspace_id, status=query.status)
    return reply(rs.SessionList(data=[session_view(r) for r in records]))


async def get_session(request: Request) -> Response:
    return reply(session_view(await _manager(request).get(_session_id(request))))


async def patch_session(request: Request) -> Response:
    session_id = _session_id(request)
    data = await json_object(request)
    for field in ("workspace_id", "session_id"):
        if field in data:
            raise ValidationFailed(field, "cannot be changed; create a new session instead")
    patch = validate(rq.SessionPatch, data)
    changes: dict[str, Any] = {}
    if "provider_mode" in patch.model_fields_set:
        changes["provider_mode"] = patch.provider_mode
    if "webhook_url" in patch.model_fields_set:
        changes["webhook_url"] = patch.webhook_url
    if "meta" in patch.model_fields_set:
        changes["meta"] = _meta(patch.meta)
    if "proxy" in patch.model_fields_set:
        changes["proxy"] = _proxy(patch.proxy)
    if "call_policy" in patch.model_fields_set:
        changes["call_policy"] = _call_policy(patch.call_policy)
    for field in ("metadata", "webhook_events"):
        if field in patch.model_fields_set:
            changes[field] = getattr(patch, field)
    record = await _manager(request).update(session_id, **changes)
    return reply(session_view(record))


async def delete_session(request: Request) -> Response:
    session_id = _session_id(request)
    query = query_of(request, rq.SessionDeleteQuery)
    await _manager(request).delete(session_id, keep_device=query.keep_device)
    return Response(status_code=204)


def _action(action: str, summary: str) -> Operation:
    async def run(request: Request) -> Response:
        session_id = _session_id(request)
        # No options yet: a body, if any, must be empty so a typo is not silently ignored.
        await body_of(request, rq.NoOptions, allow_empty=True)
        record = await getattr(_manager(request), action)(session_id)
        return reply(session_view(record), 202)

    return Operation(
        summary,
        run,
        {202: rs.Session},
        errors=(404, 409, 502, 503),
        body=rq.NoOptions,
        body_required=False,
    )


routes = [
    Resource(
        "/api/sessions",
        post=Operation(
            "Create a session (starts it unless start is false)",
            create_session,
            {201: rs.Session},
            errors=(409, 503),
            body=rq.SessionCreate,
        ),
        get=Operation("List sessions", list_sessions, {200: rs.SessionList}, query=rq.SessionQuery),
    ),
    Resource(
        "/api/sessions/{session_id}",
        get=Operation("Read a session", get_session, {200: rs.Session}, errors=(404,)),
        patch=Operation(
            "Change provider_mode, webhook_url, Meta credentials, metadata, webhook_events, "
            "proxy or call_policy",
            patch_session,
            {200: rs.Session},
            errors=(404, 502, 503),
            body=rq.SessionPatch,
        ),
        delete=Operation(
            "Unlink the device (unless keep_device=true), stop the session, purge its "
            "profile and rows",
            delete_session,
            {204: None},
            errors=(404, 502, 503),
            query=rq.SessionDeleteQuery,
        ),
    ),
    Resource(
        "/api/sessions/{session_id}/start", post=_action("start", "Set desired_state running")
    ),
    Resource(
        "/api/sessions/{session_id}/stop",
        post=_action("stop", "Set desired_state stopped (keeps the login)"),
    ),
    Resource("/api/sessions/{session_id}/restart", post=_action("restart", "Restart the browser")),
    Resource(
        "/api/sessions/{session_id}/logout",
        post=_action("logout", "Unlink the device and wipe the profile"),
    ),
]
