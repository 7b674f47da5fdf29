"""The group endpoints end to end: a signed API call, the session's page in Chromium, the
sandbox's wa-js group functions, and back; the group events as signed webhooks. One linked
session for the whole module; the sandbox's control API plays the other members."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import WEBHOOK_SECRET
from tests.support.receivers import Receiver, python_receiver
from tests.support.sandbox import Phone, eventually, sandbox_process
from tests.support.sidecar import Sidecar

pytestmark = pytest.mark.browser

ME = "5511999990001"
FRIEND = "5511988880002"
BOB = "5511988880003"
CAROL = "5511988880004"  # another account: creates groups and adds this one
DAVE = "5511988880005"
NOBODY = "5511977770006"  # not on WhatsApp
META = {"phone_number_id": "109876543210", "access_token": "EAAG-test", "app_secret": "s"}
API = "/api/sessions/g1/groups"


@pytest.fixture(scope="module")
def phone() -> Iterator[Phone]:
    with sandbox_process() as p:
        for number in (FRIEND, BOB, CAROL, DAVE):
            p.contact(number)
        p.contact(NOBODY, exists=False)
        yield p


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with python_receiver() as r:
        yield r


@pytest.fixture(scope="module")
def car(
    tmp_path_factory: pytest.TempPathFactory, phone: Phone, receiver: Receiver
) -> Iterator[Sidecar]:
    """A sidecar on the sandbox with session g1 linked as ME, its webhooks to `receiver`."""
    sidecar = Sidecar(
        tmp_path_factory.mktemp("groups") / "storage",
        WA_WEB_URL=phone.base + "/",
        SIDECAR_WEBHOOK_URL=receiver.url,
        SIDECAR_WEBHOOK_RETRY_BASE_MS="100",
    ).start()
    try:
        created = sidecar.api.post(
            "/api/sessions", json={"workspace_id": "acme", "session_id": "g1"}
        )
        assert created.status_code == 201, created.text
        sidecar.wait_status("g1", "qr_required")
        qr = sidecar.api.get("/api/sessions/g1/qr").json()["qr"]
        assert phone.scan(qr, ME).status_code == 200
        sidecar.wait_status("g1", "connected")
        yield sidecar
    finally:
        sidecar.close()


def ok(response: Any, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


def error(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()["error"]
    return body


def refused(response: Any) -> str:
    """wa-js's code of a 409 `page_refused`."""
    body = error(response, 409)
    assert body["code"] == "page_refused", body
    return str(body["details"]["wa_code"])


def hooks(receiver: Receiver, event: str, group_id: str) -> list[dict[str, Any]]:
    return [
        e["data"]
        for e in receiver.events()
        if e["event"] == event and e["data"]["group_id"] == group_id
    ]


def wait_hooks(receiver: Receiver, event: str, group_id: str, count: int) -> list[dict[str, Any]]:
    return eventually(
        lambda: (found := hooks(receiver, event, group_id)) and len(found) >= count and found,
        30,
        f"{count} {event} webhooks",
    )


def cus(*phones: str) -> list[str]:
    return [f"{p}@c.us" for p in phones]


def role(phone: Phone, gid: str, member: str) -> str | None:
    """The member's role in the sandbox's group: member, admin, superadmin or None."""
    for p in phone.group(gid)["participants"]:
        if p["id"] == f"{member}@c.us":
            return "superadmin" if p["isSuperAdmin"] else "admin" if p["isAdmin"] else "member"
    return None


def test_create_then_list_info_and_members(car: Sidecar, phone: Phone) -> None:
    created = ok(
        car.api.post(API, json={"subject": "Team", "participants": [f"+{FRIEND}", BOB]}), 201
    )
    gid = created["id"]
    assert gid.endswith("@g.us")
    assert created["participants"] == [
        {"id": f"{FRIEND}@c.us", "code": 200},
        {"id": f"{BOB}@c.us", "code": 200},
    ]
    # The network has it, with this account as its super admin.
    assert [role(phone, gid, m) for m in (ME, FRIEND, BOB)] == ["superadmin", "member", "member"]

    listed = ok(car.api.get(API))["data"]
    (mine,) = [g for g in listed if g["id"] == gid]
    assert mine["subject"] == "Team" and mine["owner"] == f"{ME}@c.us"
    assert isinstance(mine["created_at"], int)

    info = ok(car.api.get(f"{API}/{gid}"))
    assert (info["id"], info["subject"], info["description"]) == (gid, "Team", None)
    assert info["participants"] == [
        {"id": f"{ME}@c.us", "is_admin": True, "is_super_admin": True},
        {"id": f"{FRIEND}@c.us", "is_admin": False, "is_super_admin": False},
        {"id": f"{BOB}@c.us", "is_admin": False, "is_super_admin": False},
    ]
    members = ok(car.api.get(f"{API}/{gid}/participants"))
    assert members == {"group_id": gid, "data": info["participants"]}

    # A number not on WhatsApp: wa-js refuses the whole creation.
    nobody = car.api.post(API, json={"subject": "X", "participants": [FRIEND, NOBODY]})
    assert refused(nobody) == "participant_not_exists"


def test_add_promote_demote_remove_members_with_their_webhooks(
    car: Sidecar, phone: Phone, receiver: Receiver
) -> None:
    gid = ok(car.api.post(API, json={"subject": "Ops", "participants": [FRIEND]}), 201)["id"]
    members = f"{API}/{gid}/participants"

    added = ok(car.api.post(members, json={"participants": [BOB, FRIEND]}))
    # WhatsApp's own answer per member: BOB added, FRIEND already in.
    assert added == {
        "group_id": gid,
        "participants": [{"id": f"{BOB}@c.us", "code": 200}, {"id": f"{FRIEND}@c.us", "code": 409}],
    }
    assert role(phone, gid, BOB) == "member"
    promoted = ok(car.api.post(f"{members}/promote", json={"participants": [BOB]}))
    assert promoted == {"group_id": gid, "action": "promote", "participants": [BOB]}
    assert role(phone, gid, BOB) == "admin"
    # (Another body than the last call's: the same signed write twice is a replay.)
    assert refused(car.api.post(f"{members}/promote", json={"participants": [f"+{BOB}"]})) == (
        "group_participant_is_already_a_group_admin"
    )
    ok(car.api.post(f"{members}/demote", json={"participants": [f"{BOB}@c.us"]}))
    assert role(phone, gid, BOB) == "member"
    ok(car.api.post(f"{members}/remove", json={"participants": [BOB]}))
    assert role(phone, gid, BOB) is None
    assert refused(car.api.post(f"{members}/remove", json={"participants": [f"+{BOB}"]})) == (
        "group_participant_is_not_a_group_member"
    )

    # Each change this session made comes back as wa-js's group.participant_changed.
    changes = wait_hooks(receiver, "group_participants_changed", gid, 4)
    assert [(c["action"], c["operation"], c["participants"]) for c in changes] == [
        ("add", "add", cus(BOB)),
        ("promote", "promote", cus(BOB)),
        ("demote", "demote", cus(BOB)),
        ("remove", "remove", cus(BOB)),
    ]
    assert all(c["author"] == f"{ME}@c.us" and not c["includes_me"] for c in changes)
    assert hooks(receiver, "group_joined", gid) == []


def test_subject_and_description_with_group_updated(
    car: Sidecar, phone: Phone, receiver: Receiver
) -> None:
    gid = ok(car.api.post(API, json={"subject": "Old", "participants": [FRIEND]}), 201)["id"]
    assert ok(car.api.put(f"{API}/{gid}/subject", json={"subject": "New name"})) == {
        "group_id": gid,
        "subject": "New name",
    }
    described = ok(car.api.put(f"{API}/{gid}/description", json={"description": "Rules: none"}))
    assert described == {"group_id": gid, "description": "Rules: none"}
    sandboxed = phone.group(gid)
    assert (sandboxed["subject"], sandboxed["description"]) == ("New name", "Rules: none")
    info = ok(car.api.get(f"{API}/{gid}"))
    assert (info["subject"], info["description"]) == ("New name", "Rules: none")
    cleared = ok(car.api.put(f"{API}/{gid}/description", json={"description": ""}))
    assert cleared["description"] is None
    assert ok(car.api.get(f"{API}/{gid}"))["description"] is None

    updates = wait_hooks(receiver, "group_updated", gid, 3)
    assert updates == [
        {"group_id": gid, "subject": "New name"},
        {"group_id": gid, "description": "Rules: none"},
        {"group_id": gid, "description": ""},
    ]

    # Another member's change: the page reads it, but wa-js has no event for it.
    assert phone.group_subject(gid, FRIEND, subject="Theirs").status_code == 200
    assert ok(car.api.get(f"{API}/{gid}"))["subject"] == "Theirs"
    assert len(hooks(receiver, "group_updated", gid)) == 3


def test_invite_code_get_revoke_and_someone_joining(
    car: Sidecar, phone: Phone, receiver: Receiver
) -> None:
    gid = ok(car.api.post(API, json={"subject": "Open", "participants": [FRIEND]}), 201)["id"]
    invite = ok(car.api.get(f"{API}/{gid}/invite"))
    code = invite["code"]
    assert invite == {"group_id": gid, "code": code, "url": f"https://chat.whatsapp.com/{code}"}
    assert ok(car.api.get(f"{API}/{gid}/invite"))["code"] == code  # stable until revoked

    assert phone.join_group(DAVE, code).status_code == 200
    assert role(phone, gid, DAVE) == "member"
    (joined,) = wait_hooks(receiver, "group_participants_changed", gid, 1)
    assert joined["action"] == "join" and joined["operation"] == "add"
    assert (joined["author"], joined["participants"]) == (f"{DAVE}@c.us", cus(DAVE))

    revoked = ok(car.api.delete(f"{API}/{gid}/invite"))
    assert revoked["group_id"] == gid and revoked["code"] != code
    assert phone.join_group(BOB, code).status_code == 404  # the old code is dead
    assert phone.join_group(BOB, revoked["code"]).status_code == 200


def test_added_by_another_member_joined_then_removed(
    car: Sidecar, phone: Phone, receiver: Receiver
) -> None:
    gid = phone.create_group(CAROL, "Carol's", DAVE)["id"]
    # Not a member yet: the group is not in this account's chats.
    assert refused(car.api.get(f"{API}/{gid}")) == "chat_not_found"

    assert phone.group_members(gid, CAROL, "add", ME).status_code == 200
    (joined,) = wait_hooks(receiver, "group_joined", gid, 1)
    assert joined == {"group_id": gid, "action": "add", "author": f"{CAROL}@c.us"}
    (added,) = hooks(receiver, "group_participants_changed", gid)
    assert added["includes_me"] and added["participants"] == cus(ME)
    assert any(g["id"] == gid for g in ok(car.api.get(API))["data"])
    assert ok(car.api.get(f"{API}/{gid}"))["subject"] == "Carol's"

    # A plain member cannot manage members or read the invite code.
    not_admin = car.api.post(f"{API}/{gid}/participants", json={"participants": [BOB]})
    assert refused(not_admin) == "group_you_are_not_admin"
    assert refused(car.api.get(f"{API}/{gid}/invite")) == "group_you_are_not_admin"

    assert phone.group_members(gid, CAROL, "remove", ME).status_code == 200
    changes = wait_hooks(receiver, "group_participants_changed", gid, 2)
    assert (changes[1]["action"], changes[1]["includes_me"]) == ("remove", True)
    assert len(hooks(receiver, "group_joined", gid)) == 1
    assert refused(car.api.get(f"{API}/{gid}")) == "chat_not_found"


def test_join_by_invite_link_then_leave(car: Sidecar, phone: Phone, receiver: Receiver) -> None:
    gid = phone.create_group(CAROL, "By link", DAVE)["id"]
    code = phone.invite(gid, CAROL)
    answer = ok(car.api.post(f"{API}/join", json={"code": f"https://chat.whatsapp.com/{code}"}))
    assert answer == {"group_id": gid, "pending_approval": False}
    assert role(phone, gid, ME) == "member"
    (joined,) = wait_hooks(receiver, "group_joined", gid, 1)
    assert joined == {"group_id": gid, "action": "join", "author": f"{ME}@c.us"}

    assert ok(car.api.post(f"{API}/{gid}/leave")) == {"group_id": gid, "left": True}
    assert role(phone, gid, ME) is None
    changes = wait_hooks(receiver, "group_participants_changed", gid, 2)
    assert [(c["action"], c["operation"], c["includes_me"]) for c in changes] == [
        ("join", "add", True),
        ("leave", "remove", True),
    ]
    unknown = car.api.post(f"{API}/join", json={"code": "A" * 22})
    assert refused(unknown) == "invalid_invite_code"


def test_group_webhooks_are_signed(car: Sidecar, receiver: Receiver) -> None:
    gid = ok(car.api.post(API, json={"subject": "Signed", "participants": [FRIEND]}), 201)["id"]
    ok(car.api.put(f"{API}/{gid}/subject", json={"subject": "Signed 2"}))
    wait_hooks(receiver, "group_updated", gid, 1)
    (request,) = [
        r
        for r in receiver.requests
        if r["json"]["event"] == "group_updated" and r["json"]["data"]["group_id"] == gid
    ]
    body, headers = request["body"], request["headers"]
    expected = hmac.new(
        WEBHOOK_SECRET.encode(), headers["x-timestamp"].encode() + body, hashlib.sha256
    ).hexdigest()
    assert headers["x-hmac-signature"] == expected
    assert headers["x-webhook-event"] == "group_updated"
    assert request["json"]["session_id"] == "g1"


def test_bad_input_is_refused_before_the_page(car: Sidecar) -> None:
    secret = "5511-secret-group"
    for gid in (secret, "5511988880002@c.us", "abc@g.us", "123@g.us"):
        rejected = error(car.api.get(f"{API}/{gid}"), 422)
        assert rejected["details"]["field"] == "group_id"
        assert gid not in rejected["message"]
    gid = "120363000000000001@g.us"
    for participants in ([], ["not a phone"], [f"{secret}@c.us"], [FRIEND] * 51, [5511988880002]):
        rejected = error(
            car.api.post(f"{API}/{gid}/participants", json={"participants": participants}), 422
        )
        assert rejected["details"]["field"].startswith("participants")
        assert "not a phone" not in rejected["message"] and secret not in rejected["message"]
    for subject in ("", "   ", "x" * 101):
        rejected = error(car.api.put(f"{API}/{gid}/subject", json={"subject": subject}), 422)
        assert rejected["details"]["field"] == "subject"
    for code in ("short", "https://evil.example/AAAAAAAAAAAAAAAAAAAAAA", f"{secret}-code-x"):
        rejected = error(car.api.post(f"{API}/join", json={"code": code}), 422)
        assert rejected["details"]["field"] == "code" and secret not in rejected["message"]
    extra = car.api.post(f"{API}/{gid}/leave", json={"reason": "bored"})
    assert error(extra, 422)["details"]["field"] == "reason"
    # Well formed, but not a group this account is in.
    assert refused(car.api.get(f"{API}/{gid}")) == "chat_not_found"
    missing = error(car.api.get("/api/sessions/nope/groups"), 404)
    assert missing["code"] == "session_not_found"


def test_a_session_without_a_page_answers_409(car: Sidecar) -> None:
    stopped = car.api.post(
        "/api/sessions", json={"workspace_id": "acme", "session_id": "idle", "start": False}
    )
    assert stopped.status_code == 201, stopped.text
    idle = error(car.api.get("/api/sessions/idle/groups"), 409)
    assert (idle["code"], idle["details"]["status"]) == ("session_not_connected", "stopped")

    meta = car.api.post(
        "/api/sessions",
        json={
            "workspace_id": "acme",
            "session_id": "cloud",
            "provider_mode": "meta",
            "meta": META,
            "start": False,
        },
    )
    assert meta.status_code == 201, meta.text
    gid = "120363000000000001@g.us"
    for response in (
        car.api.get("/api/sessions/cloud/groups"),
        car.api.post("/api/sessions/cloud/groups", json={"subject": "S", "participants": [BOB]}),
        car.api.post(f"/api/sessions/cloud/groups/{gid}/leave"),
    ):
        rejected = error(response, 409)
        assert (rejected["code"], rejected["details"]) == (
            "not_supported_by_provider",
            {"provider": "meta"},
        )
