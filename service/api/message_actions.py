"""Message actions: react to a message (and take it back), edit a text the session sent,
delete a sent message for everyone, forward a message to another chat.

The message is named by the sidecar's id (one the session sent, or one it received); the
page acts on it by the id WhatsApp Web gave it (`provider_message_id`). Each is a page
operation (`Engine.call`), so it runs on the session's worker in a cluster. A `meta` session
reacts through the Cloud API (its engine's `call`) and answers edits and deletes with 409
`not_supported_by_provider`.
"""

from __future__ import annotations

import json
import time

from starlette.requests import Request
from starlette.responses import Response

from adapters.base import not_supported_by_provider
from service.api.routing import Operation, Resource, body_of, path_param, reply
from service.errors import Conflict, NotFound, require_browsers
from service.messaging.messenger import Messenger
from service.messaging.request import normalize_recipient
from service.models import requests as rq
from service.models import responses as rs
from service.sessions.manager import SessionManager
from service.store import MessageRecord, Store

# A missing session or message (404), a session not connected, of the wrong provider or a
# message WhatsApp does not have (409), a cluster worker away (502, 503), a slow page (504).
ERRORS = (404, 409, 502, 503, 504)


async def _message(request: Request, op: str = "messages.react") -> MessageRecord:
    """The path's message, which must have reached the session's provider (it has its id
    there): WhatsApp Web, or the Cloud API for a `meta` session."""
    session_id = path_param(request, "session_id")
    message_id = path_param(request, "message_id")
    manager: SessionManager = request.app.state.sessions
    session = await manager.get(session_id)
    # The Cloud API reacts; it has no edit or delete for everyone.
    provider = "meta" if session.provider_mode == "meta" else "webjs"
    if provider == "meta" and op != "messages.react":
        raise not_supported_by_provider("meta", op)
    store: Store = request.app.state.store
    record = await store.get_message(message_id)
    if record is None or record.session_id != session_id:
        raise NotFound(
            f"no message {message_id!r} in session {session_id!r}",
            code="message_not_found",
            details={"message_id": message_id},
        )
    if record.provider != provider or not record.provider_message_id:
        # Queued, failed before leaving, or sent through the other provider: the session's
        # engine has no such message to act on.
        raise Conflict(
            f"the message has no {provider} id to act on",
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
        # `to`: the Cloud API names the chat in each request; the page ignores it.
        {"id": record.provider_message_id, "reaction": emoji or "", "to": record.chat_id},
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


def _own(record: MessageRecord, what: str) -> None:
    """Only the session's own messages can be edited or deleted for everyone."""
    if record.direction != "out":
        raise Conflict(
            f"only a message the session sent can be {what}",
            code="message_not_own",
            details={"message_id": record.id},
        )


async def edit(request: Request) -> Response:
    body = await body_of(request, rq.EditInput)
    record = await _message(request, "messages.edit")
    _own(record, "edited")
    if record.type != "text":
        raise Conflict(
            "only a text message can be edited",
            code="message_not_editable",
            details={"message_id": record.id, "type": record.type},
        )
    manager: SessionManager = request.app.state.sessions
    await manager.call(
        record.session_id, "messages.edit", {"id": record.provider_message_id, "text": body.text}
    )
    store: Store = request.app.state.store
    content = json.loads(record.content) | {"text": body.text, "edited_at": time.time()}
    # The page reports the edit as well (message_edited): this write makes GET show it now.
    updated = await store.update_message(
        record.id, {"content": json.dumps(content, ensure_ascii=False)}
    )
    return reply(_messenger(request).view(updated))


async def forward(request: Request) -> Response:
    body = await body_of(request, rq.ForwardInput)
    to = normalize_recipient(body.to)
    record = await _message(request, "messages.forward")
    assert record.provider_message_id is not None  # checked by _message
    manager: SessionManager = request.app.state.sessions
    answer = await manager.call(
        record.session_id, "messages.forward", {"to": to, "id": record.provider_message_id}
    )
    # wa-js answers the messages it could not forward; WhatsApp collects them, never throws.
    if not (isinstance(answer, dict) and answer.get("forwarded")):
        raise Conflict(
            "WhatsApp Web did not forward the message",
            code="page_refused",
            details={"wa_code": None},
        )
    return reply(
        rs.MessageForward(
            message_id=record.id,
            provider_message_id=record.provider_message_id,
            to=to,
            forwarded=True,
        )
    )


async def revoke(request: Request) -> Response:
    record = await _message(request, "messages.revoke")
    _own(record, "deleted for everyone")
    assert record.provider_message_id is not None  # checked by _message
    # A key reads `true_<chat>_<id>[_<participant>]`: deleteMessage wants that chat (which
    # may be the @lid chat WhatsApp Web chose rather than the number it was sent to).
    parts = record.provider_message_id.split("_")
    chat = parts[1] if len(parts) >= 3 else record.chat_id
    manager: SessionManager = request.app.state.sessions
    answer = await manager.call(
        record.session_id, "messages.revoke", {"chat": chat, "id": record.provider_message_id}
    )
    if not (isinstance(answer, dict) and answer.get("revoked")):
        raise Conflict(
            "WhatsApp Web did not delete the message for everyone",
            code="page_refused",
            details={"wa_code": None},
        )
    messenger = _messenger(request)
    await messenger.mark_revoked(record)
    store: Store = request.app.state.store
    updated = await store.get_message(record.id)
    assert updated is not None
    return reply(messenger.view(updated))


def _messenger(request: Request) -> Messenger:
    messenger: Messenger = require_browsers(request.app.state.messenger)
    return messenger


routes = [
    Resource(
        "/api/sessions/{session_id}/messages/{message_id}/reaction",
        post=Operation(
            "React to a message",
            react,
            {200: rs.MessageReaction},
            errors=ERRORS,
            body=rq.ReactionInput,
            description="Sent or received messages alike, on WhatsApp Web or the Cloud API; a "
            "new reaction replaces the session's earlier one. 409 `message_not_on_page` while "
            "the message has no id at the session's provider (queued, failed, or sent "
            "through the other one).",
        ),
        delete=Operation(
            "Remove the session's reaction from a message",
            unreact,
            {200: rs.MessageReaction},
            errors=ERRORS,
        ),
    ),
]

_MESSAGE = "/api/sessions/{session_id}/messages/{message_id}"
routes += [
    Resource(
        f"{_MESSAGE}/edit",
        post=Operation(
            "Edit a text the session sent",
            edit,
            {200: rs.Message},
            errors=ERRORS,
            body=rq.EditInput,
            description="WhatsApp allows it for about 15 minutes after sending (else 409 "
            "`page_refused`, wa_code `edit_message_error`). The record takes the new text "
            "and `edited_at`; a `message_edited` webhook follows.",
        ),
    ),
    Resource(
        f"{_MESSAGE}/revoke",
        post=Operation(
            "Delete a message the session sent, for everyone",
            revoke,
            {200: rs.Message},
            errors=ERRORS,
            description="The record keeps its content and gets `revoked_at`.",
        ),
    ),
    Resource(
        f"{_MESSAGE}/forward",
        post=Operation(
            "Forward a message to another chat",
            forward,
            {200: rs.MessageForward},
            errors=ERRORS,
            body=rq.ForwardInput,
            description="Any message the session sent or received, through WhatsApp Web's "
            "own forwarding (marked forwarded). It is not queued or paced, and the copy gets "
            "no record here. A `meta` session: 409 `not_supported_by_provider`.",
        ),
    ),
]
