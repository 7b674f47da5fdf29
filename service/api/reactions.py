"""Message actions: put a reaction on a message of a session's chats, or take it back.

The message is named by the sidecar's id (one the session sent, or one it received); the
page reacts to it by the id WhatsApp Web gave it (`provider_message_id`). A page operation
(`Engine.call`), so it runs on the session's worker in a cluster; a `meta` session answers
409 `not_supported_by_provider`.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from adapters.base import not_supported_by_provider
from service.api.routing import Operation, Resource, body_of, path_param, reply
from service.errors import Conflict, NotFound
from service.models import requests as rq
from service.models import responses as rs
from service.sessions.manager import SessionManager
from service.store import MessageRecord, Store

# A missing session or message (404), a session not connected, of the wrong provider or a
# message WhatsApp does not have (409), a cluster worker away (502, 503), a slow page (504).
ERRORS = (404, 409, 502, 503, 504)


async def _message(request: Request) -> MessageRecord:
    """The path's message, which must have reached WhatsApp Web (it has its id there)."""
    session_id = path_param(request, "session_id")
    message_id = path_param(request, "message_id")
    manager: SessionManager = request.app.state.sessions
    session = await manager.get(session_id)
    if session.provider_mode == "meta":
        raise not_supported_by_provider("meta", "messages.react")
    store: Store = request.app.state.store
    record = await store.get_message(message_id)
    if record is None or record.session_id != session_id:
        raise NotFound(
            f"no message {message_id!r} in session {session_id!r}",
            code="message_not_found",
            details={"message_id": message_id},
        )
    if record.provider != "webjs" or not record.provider_message_id:
        # Queued, failed before leaving, or sent through the Cloud API: the page has no
        # such message to react to.
        raise Conflict(
            "the message has no WhatsApp Web id to react to",
            code="message_not_on_page",
            details={"message_id": record.id, "provider": record.provider},
        )
    return record


async def _react(request: Request, record: MessageRecord, emoji: str | None) -> Response:
    manager: SessionManager = request.app.state.sessions
    assert record.provider_message_id is not None  # checked by _message
    # wa-js removes the session's reaction when given a falsy one.
    await manager.call(
        record.session_id,
        "messages.react",
        {"id": record.provider_message_id, "reaction": emoji or ""},
    )
    return reply(
        rs.MessageReaction(
            message_id=record.id, provider_message_id=record.provider_message_id, emoji=emoji
        )
    )


async def react(request: Request) -> Response:
    body = await body_of(request, rq.ReactionInput)
    return await _react(request, await _message(request), body.emoji)


async def unreact(request: Request) -> Response:
    return await _react(request, await _message(request), None)


routes = [
    Resource(
        "/api/sessions/{session_id}/messages/{message_id}/reaction",
        post=Operation(
            "React to a message",
            react,
            {200: rs.MessageReaction},
            errors=ERRORS,
            body=rq.ReactionInput,
            description="Sent or received messages alike; a new reaction replaces the "
            "session's earlier one. 409 `message_not_on_page` while the message has no "
            "WhatsApp Web id (queued, failed, or sent through the Cloud API).",
        ),
        delete=Operation(
            "Remove the session's reaction from a message",
            unreact,
            {200: rs.MessageReaction},
            errors=ERRORS,
        ),
    ),
]
