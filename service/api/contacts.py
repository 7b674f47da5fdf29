"""Contact endpoints: who is on WhatsApp, a contact's picture and about text, blocking, and
the phone number behind a linked id (`@lid`) and back.

Each one is a page operation (`Engine.call`): the session's page asks WhatsApp Web, on this
process or, in a cluster, on the session's worker. A `meta` session has no page: 409
`not_supported_by_provider`.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from service.api.routing import Operation, Resource, body_of, page_call, path_param, reply
from service.messaging.request import normalize_phone
from service.models import requests as rq
from service.models import responses as rs

# Every contact endpoint may meet a session that is missing (404), not connected or of the
# wrong provider (409), a cluster worker that is away (502, 503), or a slow page (504).
ERRORS = (404, 409, 502, 503, 504)


def _contact(request: Request) -> tuple[str, str]:
    """The path's contact as given, and as a WhatsApp id (`<digits>@c.us` for a number)."""
    given = path_param(request, "contact_id")
    if "@" in given:
        return given, given
    phone = normalize_phone(given)
    assert phone is not None  # the path pattern admits only numbers here
    return given, f"{phone}@c.us"


def _digits(wid: object) -> str | None:
    """The phone number of a `<digits>@c.us` id the page gave, else None."""
    if isinstance(wid, str) and wid.endswith("@c.us") and wid[:-5].isdigit():
        return wid[:-5]
    return None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


async def check(request: Request) -> Response:
    body = await body_of(request, rq.ContactCheck)
    phones = [normalize_phone(p) for p in body.phones]
    # A number asked twice is looked up once.
    ids = list(dict.fromkeys(f"{p}@c.us" for p in phones if p is not None))
    answers = await page_call(request, "contacts.exists", {"ids": ids})
    found = {a.get("id"): a for a in answers if isinstance(a, dict)} if answers else {}
    data = []
    for phone in phones:
        assert phone is not None  # the model's pattern is the phone's
        answer = found.get(f"{phone}@c.us") or {}
        fields: dict[str, Any] = {"phone": phone, "exists": bool(answer.get("exists"))}
        if fields["exists"]:
            # Only what the page knows is set: an unset field is left out of the answer.
            fields |= {k: answer[k] for k in ("wid", "lid") if isinstance(answer.get(k), str)}
        data.append(rs.ContactExists(**fields))
    return reply(rs.ContactChecks(data=data))


async def picture(request: Request) -> Response:
    given, wid = _contact(request)
    url = await page_call(request, "contacts.picture", {"id": wid})
    return reply(rs.ContactPicture(contact_id=given, url=_text(url)))


async def about(request: Request) -> Response:
    given, wid = _contact(request)
    text = await page_call(request, "contacts.about", {"id": wid})
    return reply(rs.ContactAbout(contact_id=given, about=_text(text)))


async def block(request: Request) -> Response:
    given, wid = _contact(request)
    # No options yet: a body, if any, must be empty so a typo is not silently ignored.
    await body_of(request, rq.NoOptions, allow_empty=True)
    answer = await page_call(request, "contacts.block", {"id": wid})
    return reply(rs.ContactBlocked(contact_id=given, blocked=bool(answer.get("blocked"))))


async def unblock(request: Request) -> Response:
    given, wid = _contact(request)
    answer = await page_call(request, "contacts.unblock", {"id": wid})
    return reply(rs.ContactBlocked(contact_id=given, blocked=bool(answer.get("blocked"))))


async def ids(request: Request) -> Response:
    given, wid = _contact(request)
    answer = await page_call(request, "contacts.ids", {"id": wid})
    lid = _text(answer.get("lid"))
    return reply(
        rs.ContactIds(
            contact_id=given,
            phone=_digits(answer.get("phone")),
            lid=lid if lid and lid.endswith("@lid") else None,
        )
    )


_CONTACT = "/api/sessions/{session_id}/contacts/{contact_id}"

routes = [
    Resource(
        "/api/sessions/{session_id}/contacts/check",
        post=Operation(
            "Which numbers are on WhatsApp",
            check,
            {200: rs.ContactChecks},
            errors=ERRORS,
            body=rq.ContactCheck,
            description="Up to 50 numbers at once. WhatsApp Web caches each answer (5 min; "
            "15 s for a number it does not know, or could not look up).",
        ),
    ),
    Resource(
        f"{_CONTACT}/picture",
        get=Operation(
            "A contact's profile picture URL", picture, {200: rs.ContactPicture}, errors=ERRORS
        ),
    ),
    Resource(
        f"{_CONTACT}/about",
        get=Operation("A contact's about text", about, {200: rs.ContactAbout}, errors=ERRORS),
    ),
    Resource(
        f"{_CONTACT}/block",
        post=Operation(
            "Block a contact",
            block,
            {200: rs.ContactBlocked},
            errors=ERRORS,
            body=rq.NoOptions,
            body_required=False,
        ),
        delete=Operation("Unblock a contact", unblock, {200: rs.ContactBlocked}, errors=ERRORS),
    ),
    Resource(
        f"{_CONTACT}/ids",
        get=Operation(
            "The phone number behind a linked id, or the linked id of a number",
            ids,
            {200: rs.ContactIds},
            errors=ERRORS,
            description="A `@lid` id's number is known only once WhatsApp told it to this "
            "account (a message from it, a lookup); otherwise `phone` is null.",
        ),
    ),
]
