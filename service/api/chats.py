"""Chat endpoints: the chat list and a chat's messages (paginated, read from the page), mark
read (read receipts), archive and unarchive, delete, and typing or recording presence.

Each one is a page operation (`Engine.call`): the session's page asks WhatsApp Web, on this
process or, in a cluster, on the session's worker. A `meta` session has no page: the Cloud
API marks a chat read; everything else is 409 `not_supported_by_provider`.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from service.api.routing import Operation, Resource, body_of, page_call, path_param, query_of, reply
from service.errors import ValidationFailed
from service.models import requests as rq
from service.models import responses as rs
from service.store import Store

# Every chat endpoint may meet a session that is missing (404), not connected or of the
# wrong provider, or a page that refuses (409), a cluster worker that is away (502, 503),
# or a slow page (504).
ERRORS = (404, 409, 502, 503, 504)


def _message(found: dict[str, Any]) -> rs.ChatMessage:
    """A message as the page serialises it; fields the page adds later are left out here
    until the model names them (the bridge's serialiser is shared with inbound messages)."""
    names = [f.alias or name for name, f in rs.ChatMessage.model_fields.items()]
    return rs.ChatMessage.model_validate({name: found.get(name) for name in names})


def _one_anchor(before: str | None, after: str | None) -> None:
    if before is not None and after is not None:
        raise ValidationFailed("after", "cannot be given with before")


async def list_chats(request: Request) -> Response:
    query = query_of(request, rq.ChatListQuery)
    _one_anchor(query.before, query.after)
    if query.after is not None:
        # wa-js's `after` starts at the anchor itself: ask one more and drop it.
        args = {"count": query.limit + 1, "direction": "after", "id": query.after}
    elif query.before is not None:
        args = {"count": query.limit, "direction": "before", "id": query.before}
    else:
        args = {"count": query.limit, "direction": "after", "id": None}
    chats = [rs.Chat(**c) for c in await page_call(request, "chats.list", args)]
    if query.after is not None and chats and chats[0].id == query.after:
        chats = chats[1:]
    return reply(rs.ChatList(data=chats[: query.limit]))


async def messages(request: Request) -> Response:
    chat_id = path_param(request, "chat_id")
    query = query_of(request, rq.ChatMessagesQuery)
    _one_anchor(query.before, query.after)
    anchor = query.before or query.after
    if anchor is not None and anchor.split("_")[1] != chat_id:
        field = "before" if query.before else "after"
        raise ValidationFailed(field, "is a message of another chat")
    args = {
        "id": chat_id,
        "count": query.limit,
        "direction": "after" if query.after else "before",
        "anchor": anchor,
    }
    found = await page_call(request, "chats.messages", args)
    return reply(rs.ChatMessages(chat_id=chat_id, data=[_message(m) for m in found]))


async def read(request: Request) -> Response:
    chat_id = path_param(request, "chat_id")
    await body_of(request, rq.NoOptions, allow_empty=True)
    args: dict[str, Any] = {"id": chat_id}
    session = await request.app.state.sessions.get(path_param(request, "session_id"))
    if session.provider_mode == "meta":
        # The Cloud API marks a message read (and every earlier one of its chat): the
        # chat's newest that came in through it. The page marks the chat itself.
        store: Store = request.app.state.store
        newest = await store.newest_inbound(session.session_id, chat_id, "meta")
        args["message_id"] = newest.provider_message_id if newest else None
    answer = await page_call(request, "chats.read", args)
    unread = answer.get("unread_count")
    return reply(rs.ChatRead(chat_id=chat_id, unread_count=unread))


async def _archive(request: Request, archive: bool) -> Response:
    chat_id = path_param(request, "chat_id")
    answer = await page_call(request, "chats.archive", {"id": chat_id, "archive": archive})
    return reply(rs.ChatArchived(chat_id=chat_id, archived=bool(answer.get("archived"))))


async def archive(request: Request) -> Response:
    await body_of(request, rq.NoOptions, allow_empty=True)
    return await _archive(request, True)


async def unarchive(request: Request) -> Response:
    await body_of(request, rq.NoOptions, allow_empty=True)
    return await _archive(request, False)


async def delete(request: Request) -> Response:
    chat_id = path_param(request, "chat_id")
    answer = await page_call(request, "chats.delete", {"id": chat_id})
    # wa-js answers WhatsApp's status for the delete (200 when it went through).
    return reply(rs.ChatDeleted(chat_id=chat_id, deleted=answer.get("status") == 200))


async def presence(request: Request) -> Response:
    chat_id = path_param(request, "chat_id")
    body = await body_of(request, rq.ChatPresence)
    if body.state == "paused" and body.duration_ms is not None:
        raise ValidationFailed("duration_ms", "applies to typing and recording only")
    args = {"id": chat_id, "state": body.state, "ms": body.duration_ms}
    await page_call(request, "chats.state", args)
    return reply(rs.ChatPresenceSet(chat_id=chat_id, state=body.state))


async def subscribe(request: Request) -> Response:
    chat_id = path_param(request, "chat_id")
    if chat_id.endswith("@g.us"):
        raise ValidationFailed("chat_id", "must be a contact (<digits>@c.us or <digits>@lid)")
    await body_of(request, rq.NoOptions, allow_empty=True)
    answer = await page_call(request, "chats.subscribe", {"id": chat_id})
    return reply(rs.PresenceSubscribed(chat_id=chat_id, subscribed=bool(answer.get("subscribed"))))


_CHAT = "/api/sessions/{session_id}/chats/{chat_id}"

routes = [
    Resource(
        "/api/sessions/{session_id}/chats",
        get=Operation(
            "List chats",
            list_chats,
            {200: rs.ChatList},
            errors=ERRORS,
            query=rq.ChatListQuery,
            description="The chats WhatsApp Web holds, newest first. An `after` or `before` "
            "chat it does not hold is 409 `page_refused` (`chat_not_found`).",
        ),
    ),
    Resource(
        f"{_CHAT}/messages",
        get=Operation(
            "A chat's messages",
            messages,
            {200: rs.ChatMessages},
            errors=ERRORS,
            query=rq.ChatMessagesQuery,
            description="What WhatsApp Web holds of the chat, oldest first. A chat it does "
            "not hold is 409 `page_refused` (`chat_not_found`).",
        ),
    ),
    Resource(
        f"{_CHAT}/read",
        post=Operation(
            "Mark a chat read",
            read,
            {200: rs.ChatRead},
            errors=ERRORS,
            body=rq.NoOptions,
            body_required=False,
            description="Sends read receipts for its unread messages (blue ticks, when the "
            "account's privacy settings allow them). On a `meta` session the Cloud API marks "
            "the chat's newest inbound message read, and with it every earlier one; "
            "`unread_count` is then 0.",
        ),
    ),
    Resource(
        f"{_CHAT}/archive",
        post=Operation(
            "Archive a chat",
            archive,
            {200: rs.ChatArchived},
            errors=ERRORS,
            body=rq.NoOptions,
            body_required=False,
            description="A chat already archived is 409 `page_refused` (`archive_error`).",
        ),
        delete=Operation(
            "Unarchive a chat",
            unarchive,
            {200: rs.ChatArchived},
            errors=ERRORS,
            body=rq.NoOptions,
            body_required=False,
            description="A chat not archived is 409 `page_refused` (`unarchive_error`).",
        ),
    ),
    Resource(
        _CHAT,
        delete=Operation(
            "Delete a chat",
            delete,
            {200: rs.ChatDeleted},
            errors=ERRORS,
            description="Removes the chat and its messages from this account's devices.",
        ),
    ),
    Resource(
        f"{_CHAT}/presence",
        post=Operation(
            "Show typing or recording in a chat",
            presence,
            {200: rs.ChatPresenceSet},
            errors=ERRORS,
            body=rq.ChatPresence,
        ),
    ),
    Resource(
        f"{_CHAT}/presence/subscribe",
        post=Operation(
            "Follow a contact's presence",
            subscribe,
            {200: rs.PresenceSubscribed},
            errors=ERRORS,
            body=rq.NoOptions,
            body_required=False,
            description="From now on, each change of the contact's presence (online, "
            "offline, typing, recording) is a `presence_updated` event, for as long as the "
            "session stays connected: subscribe again after a reconnect.",
        ),
    ),
]
