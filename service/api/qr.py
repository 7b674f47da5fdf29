"""QR and pairing-code endpoints: how a phone gets linked to a session."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from service.api.routing import Operation, Raw, Resource, body_of, path_param, reply
from service.clock import iso
from service.errors import NotFound, ValidationFailed
from service.links import SignedLinks
from service.messaging.request import normalize_phone
from service.models import requests as rq
from service.models import responses as rs
from service.qr import qr_png
from service.sessions.manager import SessionManager
from service.store import Store

_NO_STORE = {"Cache-Control": "no-store"}
_PNG = Raw("image/png", "the QR as a PNG", {"type": "string", "format": "binary"})


def _sessions(request: Request) -> SessionManager:
    manager: SessionManager = request.app.state.sessions
    return manager


def _wants_png(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "image/png" in accept and "application/json" not in accept


async def get_qr(request: Request) -> Response:
    session_id = path_param(request, "session_id")
    code = await _sessions(request).qr(session_id)
    if _wants_png(request):
        return Response(qr_png(code.qr), media_type="image/png", headers=_NO_STORE)
    tokens: SignedLinks = request.app.state.qr_links
    answer = rs.Qr(qr=code.qr, expires_at=iso(code.expires_at), image_url=tokens.url(session_id))
    return reply(answer, headers=_NO_STORE)


async def qr_image(request: Request) -> Response:
    """The PNG behind a signed, short-lived token: for `<img src>` without API signing."""
    tokens: SignedLinks = request.app.state.qr_links
    session_id = tokens.read(path_param(request, "token"))
    if session_id is None:
        raise NotFound("this QR link is invalid or expired", code="qr_link_expired")
    store: Store = request.app.state.store
    record = await store.get_session(session_id)
    if record is None or record.qr is None:
        raise NotFound("no QR to show for this session right now", code="no_qr")
    return Response(qr_png(record.qr), media_type="image/png", headers=_NO_STORE)


async def pairing_code(request: Request) -> Response:
    session_id = path_param(request, "session_id")
    data = await body_of(request, rq.PairingCodeRequest)
    phone = normalize_phone(data.phone)
    if phone is None:
        raise ValidationFailed("phone", "must be an international number: digits, optional +")
    code = await _sessions(request).pairing_code(session_id, phone)
    return reply(rs.PairingCode(code=code))


routes = [
    Resource(
        "/api/sessions/{session_id}/qr",
        get=Operation(
            "The current QR: JSON, or the PNG with Accept: image/png",
            get_qr,
            {200: rs.Qr},
            errors=(404, 409, 502, 503),
            alternatives=(_PNG,),
            description="409 `no_qr` unless the session is `qr_required`. With "
            "`Accept: image/png` (and not application/json) the answer is the PNG.",
        ),
    ),
    Resource(
        "/api/sessions/{session_id}/pairing-code",
        post=Operation(
            "A link code to type on the phone instead of scanning",
            pairing_code,
            {200: rs.PairingCode},
            errors=(404, 409, 502, 503),
            body=rq.PairingCodeRequest,
        ),
    ),
    Resource(
        "/qr/{token}.png",
        get=Operation(
            "The QR as PNG behind a short-lived signed token (for <img src>)",
            qr_image,
            {200: _PNG},
            errors=(404,),
            signed=False,
        ),
    ),
]
