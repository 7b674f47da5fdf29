"""Message endpoints: send (202, idempotent, optionally scheduled), read one, cancel one
not yet sent, and signed media downloads."""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response

from service.api.routing import Header, Operation, Raw, Resource, header_of, path_param, reply
from service.errors import MediaExpired, NotFound, require_browsers
from service.links import SignedLinks
from service.messaging.messenger import Messenger
from service.messaging.request import parse_send_request
from service.models import requests as rq
from service.models import responses as rs
from service.sessions.layout import session_dir
from service.store import Store
from service.validation import json_object

IDEMPOTENCY_KEY = Header(
    "Idempotency-Key", "instead of idempotency_key in the body", rq.IdempotencyKey
)


def _messenger(request: Request) -> Messenger:
    messenger: Messenger = require_browsers(request.app.state.messenger)
    return messenger


async def send_message(request: Request) -> Response:
    session_id = path_param(request, "session_id")
    data = await json_object(request)
    outgoing = parse_send_request(data, header_of(request, IDEMPOTENCY_KEY))
    messenger = _messenger(request)
    record, created = await messenger.accept(session_id, outgoing)
    headers = {} if created else {"Idempotent-Replayed": "true"}
    return reply(messenger.view(record), 202, headers)


async def get_message(request: Request) -> Response:
    session_id = path_param(request, "session_id")
    message_id = path_param(request, "message_id")
    messenger = _messenger(request)
    return reply(messenger.view(await messenger.get(session_id, message_id)))


async def cancel_message(request: Request) -> Response:
    session_id = path_param(request, "session_id")
    message_id = path_param(request, "message_id")
    messenger = _messenger(request)
    return reply(messenger.view(await messenger.cancel(session_id, message_id)))


async def media_file(request: Request) -> Response:
    """A message's media behind a signed, expiring token (no API signature needed)."""
    links: SignedLinks = request.app.state.media_links
    message_id = links.read(path_param(request, "token"))
    store: Store = request.app.state.store
    record = await store.get_message(message_id) if message_id else None
    session = await store.get_session(record.session_id) if record else None
    if record is None or session is None:
        raise NotFound("this media link is invalid or expired", code="media_link_expired")
    media = _messenger(request).media_info(record)
    if media is not None and not media.get("file") and media.get("reason") == "expired":
        raise MediaExpired(
            "this media was deleted after the retention period",
            details={"message_id": record.id},
        )
    if media is None or not media.get("file"):
        raise NotFound("this message has no stored media", code="no_media")
    root = session_dir(
        request.app.state.settings.sessions_dir, session.workspace_id, session.session_id
    )
    path = (root / media["file"]).resolve()
    if root not in path.parents or not Path(path).is_file():
        raise NotFound("the media file is gone", code="no_media")
    return FileResponse(
        path,
        media_type=media.get("mimetype") or "application/octet-stream",
        filename=media.get("filename") or path.name,
        headers={"Cache-Control": "private, max-age=300"},
    )


routes = [
    Resource(
        "/api/sessions/{session_id}/messages",
        post=Operation(
            "Queue a message",
            send_message,
            {202: rs.Message},
            errors=(404, 409),
            body=rq.SendMessage,
            headers=(IDEMPOTENCY_KEY,),
            description="The same idempotency key in the workspace answers with the first "
            "record (and the header `Idempotent-Replayed: true`) and never sends twice.",
        ),
    ),
    Resource(
        "/api/sessions/{session_id}/messages/{message_id}",
        get=Operation(
            "One message and its status", get_message, {200: rs.Message}, errors=(404, 409)
        ),
        delete=Operation(
            "Cancel a message not yet sent",
            cancel_message,
            {200: rs.Message},
            errors=(404, 409),
            description="A `queued` or `scheduled` message becomes `cancelled` and is never "
            "sent; one already `sending` or further is 409 `message_not_cancellable`.",
        ),
    ),
    Resource(
        "/media/{token}",
        get=Operation(
            "A message's media behind a signed link valid one hour (media.url)",
            media_file,
            {200: Raw("application/octet-stream", "the file, with its own Content-Type")},
            errors=(404, 409, 410),
            signed=False,
        ),
    ),
]
