"""`/webhooks/meta`: the Cloud API's verify handshake and its inbound events.

The Meta engine turns inbound messages and statuses into the same neutral records a web
session produces, so Laravel gets one shape of `message_received` and
`message_status_updated`.
"""

from __future__ import annotations

import hmac
import json
import logging
from typing import Annotated

from pydantic import StringConstraints
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from adapters.meta import MetaConfig, MetaEngine
from adapters.meta_inbound import MetaBatch, parse, phone_number_ids, verify_signature
from service.api.routing import Header, Operation, Raw, Resource, reply
from service.errors import error_json
from service.models import requests as rq
from service.models import responses as rs
from service.sessions.manager import SessionManager
from service.store import SessionRecord, Store

log = logging.getLogger("service.meta")


def _forbidden(code: str, message: str, status: int) -> Response:
    return error_json(status, code, message)


async def verify_handshake(request: Request) -> Response:
    """GET: echo `hub.challenge` when `hub.verify_token` is one a session was given."""
    # Strings only, and anything else Meta adds is ignored: this never fails validation.
    params = rq.MetaHandshake.model_validate(dict(request.query_params))
    token = params.verify_token or ""
    if params.mode != "subscribe" or not token:
        return _forbidden("verification_failed", "not a subscribe request", 403)
    manager: SessionManager = request.app.state.sessions
    store: Store = request.app.state.store
    matched = False
    for session in await store.list_sessions():
        config = manager.meta_config(session)
        if config is not None and config.verify_token:
            matched |= hmac.compare_digest(config.verify_token.encode(), token.encode())
    if not matched:
        return _forbidden("verification_failed", "hub.verify_token does not match", 403)
    return PlainTextResponse(params.challenge or "")


async def inbound(request: Request) -> Response:
    """POST: verify X-Hub-Signature-256 on the raw body, then record what Meta reports."""
    body = await request.body()
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        return _forbidden("malformed_json", "request body is not valid JSON", 400)
    store: Store = request.app.state.store
    manager: SessionManager = request.app.state.sessions
    signature = request.headers.get("x-hub-signature-256")
    sessions: dict[str, tuple[SessionRecord, MetaConfig]] = {}
    for pnid in sorted(phone_number_ids(payload)):
        for session in await store.list_sessions(meta_phone_number_id=pnid):
            config = manager.meta_config(session)
            if config is not None:
                sessions.setdefault(pnid, (session, config))
                break
        else:
            log.warning("Meta webhook names phone_number_id %s, which no session has", pnid)
    # Every number the body speaks for must be one whose own app secret signed it: a body
    # signed by one tenant can never carry messages into another's session.
    if not sessions or not all(
        config.app_secret and verify_signature(body, signature, [config.app_secret])
        for _, config in sessions.values()
    ):
        # Nothing is stored from a request that does not verify.
        return _forbidden("invalid_signature", "X-Hub-Signature-256 does not verify", 401)
    engine: MetaEngine | None = request.app.state.meta_provider
    if engine is None:
        return _forbidden("runtime_disabled", "this instance runs no providers", 409)
    batch = parse(payload)
    for pnid, (session, _) in sessions.items():
        await engine.receive(
            session,
            MetaBatch(
                messages=[m for m in batch.messages if m.phone_number_id == pnid],
                statuses=[s for s in batch.statuses if s.phone_number_id == pnid],
            ),
        )
    return reply(rs.Accepted(ok=True))


routes = [
    Resource(
        "/webhooks/meta",
        get=Operation(
            "Meta's verify handshake: hub.challenge back when hub.verify_token matches",
            verify_handshake,
            {200: Raw("text/plain", "the challenge")},
            errors=(403,),
            query=rq.MetaHandshake,
            signed=False,
        ),
        post=Operation(
            "Cloud API events, verified by X-Hub-Signature-256 (the app secret)",
            inbound,
            {200: rs.Accepted},
            errors=(400, 401, 408, 409, 413),
            raw_body={"type": "object", "description": "a Cloud API webhook notification"},
            headers=(
                Header(
                    "X-Hub-Signature-256",
                    "sha256= and the HMAC-SHA256 of the raw body with the app's secret",
                    Annotated[str, StringConstraints(pattern=r"^sha256=[0-9a-f]{64}$")],
                    required=True,
                ),
            ),
            signed=False,
            description="Every phone number id the body names must belong to a session whose "
            "own app secret signed it; ids no session owns are ignored and logged.",
        ),
    ),
]
