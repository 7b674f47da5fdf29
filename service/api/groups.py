"""Group endpoints: the session's groups, creating one, its info and members, adding,
removing, promoting and demoting members, its subject and description, its invite code,
joining by invite and leaving.

Each one is a page operation (`Engine.call`) on wa-js's group functions, on this process or,
in a cluster, on the session's worker. A group is one this account is in: any other answers
409 `page_refused` with wa-js's code (`chat_not_found`, `group_you_are_not_admin`, ...). A
`meta` session has no page: 409 `not_supported_by_provider`.
"""

from __future__ import annotations

from typing import Any, Literal

from starlette.requests import Request
from starlette.responses import Response

from service.api.routing import Operation, Resource, body_of, page_call, path_param, reply
from service.messaging.request import normalize_phone
from service.models import requests as rq
from service.models import responses as rs
from service.models.events import GroupUpdated
from service.store import Store

# Every group endpoint may meet a session that is missing (404), not connected, of the
# wrong provider or refused by WhatsApp (409), a cluster worker away (502, 503), or a slow
# page (504).
ERRORS = (404, 409, 502, 503, 504)
INVITE_URL = "https://chat.whatsapp.com/"


def _wid(participant: str) -> str:
    """A participant as a WhatsApp id: a number becomes `<digits>@c.us`."""
    if "@" in participant:
        return participant
    phone = normalize_phone(participant)
    assert phone is not None  # the model's pattern admits only numbers here
    return f"{phone}@c.us"


def _wids(participants: list[str]) -> list[str]:
    # A member named twice is asked for once.
    return list(dict.fromkeys(_wid(p) for p in participants))


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _group(answer: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": str(answer.get("id")),
        "subject": _text(answer.get("subject")),
        "description": _text(answer.get("description")),
        "owner": _text(answer.get("owner")),
        "created_at": _int(answer.get("created_at")),
    }


def _members(answer: object) -> list[rs.GroupParticipant]:
    items = answer if isinstance(answer, list) else []
    return [
        rs.GroupParticipant(
            id=str(p.get("id")),
            is_admin=bool(p.get("is_admin")),
            is_super_admin=bool(p.get("is_super_admin")),
        )
        for p in items
        if isinstance(p, dict)
    ]


def _results(answer: object) -> list[rs.GroupParticipantResult]:
    items = answer if isinstance(answer, list) else []
    return [
        rs.GroupParticipantResult(id=str(p.get("id")), code=_int(p.get("code")))
        for p in items
        if isinstance(p, dict)
    ]


async def list_groups(request: Request) -> Response:
    answer = await page_call(request, "groups.list", {})
    items = answer if isinstance(answer, list) else []
    return reply(rs.GroupList(data=[rs.Group(**_group(g)) for g in items if isinstance(g, dict)]))


async def create(request: Request) -> Response:
    body = await body_of(request, rq.GroupCreate)
    args = {"subject": body.subject, "participants": _wids(body.participants)}
    answer = await page_call(request, "groups.create", args)
    created = rs.GroupCreated(
        id=str(answer.get("id")), participants=_results(answer.get("participants"))
    )
    return reply(created, status=201)


async def info(request: Request) -> Response:
    group_id = path_param(request, "group_id")
    answer = await page_call(request, "groups.info", {"id": group_id})
    return reply(rs.GroupInfo(**_group(answer), participants=_members(answer.get("participants"))))


async def participants(request: Request) -> Response:
    group_id = path_param(request, "group_id")
    answer = await page_call(request, "groups.participants", {"id": group_id})
    return reply(rs.GroupParticipantList(group_id=group_id, data=_members(answer)))


async def add(request: Request) -> Response:
    group_id = path_param(request, "group_id")
    body = await body_of(request, rq.GroupParticipants)
    args = {"id": group_id, "participants": _wids(body.participants)}
    answer = await page_call(request, "groups.add", args)
    return reply(rs.GroupParticipantsAdded(group_id=group_id, participants=_results(answer)))


def _change(action: Literal["remove", "promote", "demote"]) -> Any:
    async def handler(request: Request) -> Response:
        group_id = path_param(request, "group_id")
        body = await body_of(request, rq.GroupParticipants)
        wids = _wids(body.participants)
        await page_call(request, f"groups.{action}", {"id": group_id, "participants": wids})
        return reply(
            rs.GroupParticipantsChangedReply(
                group_id=group_id, action=action, participants=body.participants
            )
        )

    handler.__name__ = action
    return handler


async def _updated(request: Request, event: GroupUpdated) -> None:
    # wa-js has no event for these; the session's own change is told from here.
    store: Store = request.app.state.store
    await store.update_session(path_param(request, "session_id"), {}, [event.new_event()])


async def subject(request: Request) -> Response:
    group_id = path_param(request, "group_id")
    body = await body_of(request, rq.GroupSubject)
    await page_call(request, "groups.subject", {"id": group_id, "subject": body.subject})
    await _updated(request, GroupUpdated(group_id=group_id, subject=body.subject))
    return reply(rs.GroupSubjectReply(group_id=group_id, subject=body.subject))


async def description(request: Request) -> Response:
    group_id = path_param(request, "group_id")
    body = await body_of(request, rq.GroupDescription)
    args = {"id": group_id, "description": body.description}
    await page_call(request, "groups.description", args)
    await _updated(request, GroupUpdated(group_id=group_id, description=body.description))
    return reply(rs.GroupDescriptionReply(group_id=group_id, description=body.description or None))


def _invite(op: str) -> Any:
    async def handler(request: Request) -> Response:
        group_id = path_param(request, "group_id")
        code = _text(await page_call(request, op, {"id": group_id})) or ""
        return reply(rs.GroupInvite(group_id=group_id, code=code, url=INVITE_URL + code))

    handler.__name__ = op.replace(".", "_")
    return handler


async def join(request: Request) -> Response:
    body = await body_of(request, rq.GroupJoin)
    code = body.code.removeprefix(INVITE_URL)
    answer = await page_call(request, "groups.join", {"code": code})
    return reply(
        rs.GroupJoinResult(
            group_id=str(answer.get("id")),
            pending_approval=bool(answer.get("pending_approval")),
        )
    )


async def leave(request: Request) -> Response:
    group_id = path_param(request, "group_id")
    await body_of(request, rq.NoOptions, allow_empty=True)
    await page_call(request, "groups.leave", {"id": group_id})
    return reply(rs.GroupLeft(group_id=group_id, left=True))


_GROUPS = "/api/sessions/{session_id}/groups"
_GROUP = f"{_GROUPS}/{{group_id}}"
_ADMIN = "This account must be an admin of the group."


def _member_op(summary: str, action: Literal["remove", "promote", "demote"]) -> Operation:
    return Operation(
        summary,
        _change(action),
        {200: rs.GroupParticipantsChangedReply},
        errors=ERRORS,
        body=rq.GroupParticipants,
        description=_ADMIN,
    )


routes = [
    Resource(
        _GROUPS,
        get=Operation(
            "The groups this account is in",
            list_groups,
            {200: rs.GroupList},
            errors=ERRORS,
            description="As WhatsApp Web knows them; each with its subject and description.",
        ),
        post=Operation(
            "Create a group",
            create,
            {201: rs.GroupCreated},
            errors=ERRORS,
            body=rq.GroupCreate,
            description="This account becomes its super admin. A number not on WhatsApp "
            "makes the whole call 409 `page_refused` (`participant_not_exists`).",
        ),
    ),
    Resource(
        f"{_GROUPS}/join",
        post=Operation(
            "Join a group by invite code",
            join,
            {200: rs.GroupJoinResult},
            errors=ERRORS,
            body=rq.GroupJoin,
            description="A code no group has is 409 `page_refused` (`invalid_invite_code`).",
        ),
    ),
    Resource(
        _GROUP,
        get=Operation("A group and its members", info, {200: rs.GroupInfo}, errors=ERRORS),
    ),
    Resource(
        f"{_GROUP}/participants",
        get=Operation(
            "A group's members", participants, {200: rs.GroupParticipantList}, errors=ERRORS
        ),
        post=Operation(
            "Add members",
            add,
            {200: rs.GroupParticipantsAdded},
            errors=ERRORS,
            body=rq.GroupParticipants,
            description=f"{_ADMIN} Each member gets WhatsApp's own answer (`code`).",
        ),
    ),
    Resource(
        f"{_GROUP}/participants/remove",
        post=_member_op("Remove members", "remove"),
    ),
    Resource(
        f"{_GROUP}/participants/promote",
        post=_member_op("Make members admins", "promote"),
    ),
    Resource(
        f"{_GROUP}/participants/demote",
        post=_member_op("Make admins plain members", "demote"),
    ),
    Resource(
        f"{_GROUP}/subject",
        put=Operation(
            "Change a group's subject",
            subject,
            {200: rs.GroupSubjectReply},
            errors=ERRORS,
            body=rq.GroupSubject,
        ),
    ),
    Resource(
        f"{_GROUP}/description",
        put=Operation(
            "Change a group's description",
            description,
            {200: rs.GroupDescriptionReply},
            errors=ERRORS,
            body=rq.GroupDescription,
        ),
    ),
    Resource(
        f"{_GROUP}/invite",
        get=Operation(
            "A group's invite code",
            _invite("groups.invite"),
            {200: rs.GroupInvite},
            errors=ERRORS,
            description=_ADMIN,
        ),
        delete=Operation(
            "Revoke a group's invite code",
            _invite("groups.revoke"),
            {200: rs.GroupInvite},
            errors=ERRORS,
            description=f"{_ADMIN} The old code stops working; the answer is the new one.",
        ),
    ),
    Resource(
        f"{_GROUP}/leave",
        post=Operation(
            "Leave a group",
            leave,
            {200: rs.GroupLeft},
            errors=ERRORS,
            body=rq.NoOptions,
            body_required=False,
        ),
    ),
]
