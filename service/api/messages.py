"""Message endpoints: send (202, idempotent), read one, and signed media downloads."""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from service.errors import NotFound, require_browsers
from service.links import SignedLinks
from service.messaging.messenger import Messenger
from service.messaging.request import parse_send_request
from service.sessions.layout import session_dir
from service.store import Store
from service.validation import check_id, json_object


def _messenger(request: Request) -> Messenger:
    messenger: Messenger = require_browsers(request.app.state.messenger)
    return messenger


async def send_message(request: Request) -> Response:
    session_id = check_id(request.path_params["session_id"], "session_id")
    data = await json_object(request)
    outgoing = parse_send_request(data, request.headers.get("idempotency-key"))
    messenger = _messenger(request)
    record, created = await messenger.accept(session_id, outgoing)
    headers = {} if created else {"Idempotent-Replayed": "true"}
    return JSONResponse(messenger.view(record), status_code=202, headers=headers)


async def get_message(request: Request) -> Response:
    session_id = check_id(request.path_params["session_id"], "session_id")
    message_id = check_id(request.path_params["message_id"], "message_id")
    messenger = _messenger(request)
    return JSONResponse(messenger.view(await messenger.get(session_id, message_id)))


async def media_file(request: Request) -> Response:
    """A message's media behind a signed, expiring token (no API signature needed)."""
    links: SignedLinks = request.app.state.media_links
    message_id = links.read(request.path_params["token"])
    store: Store = request.app.state.store
    record = await store.get_message(message_id) if message_id else None
    session = await store.get_session(record.session_id) if record else None
    if record is None or session is None:
        raise NotFound("this media link is invalid or expired", code="media_link_expired")
    media = _messenger(request).media_info(record)
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
    Route("/api/sessions/{session_id}/messages", send_message, methods=["POST"]),
    Route("/api/sessions/{session_id}/messages/{message_id}", get_message, methods=["GET"]),
    Route("/media/{token}", media_file, methods=["GET"]),
]
