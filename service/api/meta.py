"""`/webhooks/meta`: the Cloud API's verify handshake and its inbound events.

Inbound messages and statuses become the same `message_received` and
`message_status_updated` events a web session produces, so Laravel handles one shape.
"""

from __future__ import annotations

import hmac
import json
import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from adapters.meta import MetaProvider
from service.errors import error_body
from service.messaging.messenger import Messenger
from service.sessions.manager import MetaConfig, SessionManager
from service.store import SessionRecord, Store
from webhooks.meta_inbound import MetaMessage, parse, phone_number_ids, verify_signature

log = logging.getLogger("service.meta")


def _forbidden(code: str, message: str, status: int) -> Response:
    return JSONResponse(error_body(code, message), status_code=status)


async def verify_handshake(request: Request) -> Response:
    """GET: echo `hub.challenge` when `hub.verify_token` is one a session was given."""
    params = request.query_params
    token = params.get("hub.verify_token", "")
    if params.get("hub.mode") != "subscribe" or not token:
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
    return PlainTextResponse(params.get("hub.challenge", ""))


async def inbound(request: Request) -> Response:
    """POST: verify X-Hub-Signature-256 on the raw body, then record what Meta reports."""
    body = await request.body()
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        return _forbidden("malformed_json", "request body is not valid JSON", 400)
    store: Store = request.app.state.store
    manager: SessionManager = request.app.state.sessions
    sessions: dict[str, tuple[SessionRecord, MetaConfig]] = {}
    for pnid in phone_number_ids(payload):
        for session in await store.list_sessions(meta_phone_number_id=pnid):
            config = manager.meta_config(session)
            if config is not None:
                sessions.setdefault(pnid, (session, config))
    secrets = {config.app_secret for _, config in sessions.values() if config.app_secret}
    if not verify_signature(body, request.headers.get("x-hub-signature-256"), secrets):
        # Nothing is stored from a request that does not verify.
        return _forbidden("invalid_signature", "X-Hub-Signature-256 does not verify", 401)
    messenger: Messenger | None = request.app.state.messenger
    provider: MetaProvider | None = request.app.state.meta_provider
    if messenger is None or provider is None:
        return _forbidden("runtime_disabled", "this instance runs no providers", 409)
    batch = parse(payload)
    for message in batch.messages:
        if message.phone_number_id in sessions:
            session, config = sessions[message.phone_number_id]
            await _record(messenger, provider, session, config, message)
    for status in batch.statuses:
        if status.phone_number_id in sessions:
            session, _ = sessions[status.phone_number_id]
            await messenger.apply_status(session, status.wamid, status.status, status.error)
    return JSONResponse({"ok": True})


async def _record(
    messenger: Messenger,
    provider: MetaProvider,
    session: SessionRecord,
    config: MetaConfig,
    message: MetaMessage,
) -> None:
    chat_id = f"{message.sender}@c.us"
    content: dict[str, Any] = {
        "text": message.text,
        "from": chat_id,
        "author": None,
        "notify_name": message.notify_name,
        "timestamp": message.timestamp,
    }
    if message.reply_to:
        content["reply_to"] = message.reply_to
    if message.location is not None:
        content["location"] = message.location
    media_id = message.media_id

    async def load() -> bytes:
        if media_id is None:
            raise ValueError("no media id")
        data, _ = await provider.download(config, media_id)
        return data

    await messenger.record_inbound(
        session,
        provider="meta",
        provider_id=message.wamid,
        kind=message.kind,
        chat_id=chat_id,
        content=content,
        media=message.media,
        load_media=load if media_id else None,
    )


routes = [
    Route("/webhooks/meta", verify_handshake, methods=["GET"]),
    Route("/webhooks/meta", inbound, methods=["POST"]),
]
