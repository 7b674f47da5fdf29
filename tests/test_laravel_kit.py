"""The Laravel kit (clients/laravel) on Debian's Laravel framework, against the real thing.

PHP scripts under tests/php/laravel boot a Foundation Application with the kit's service
provider (config from the kit's config file and SIDECAR_* variables, the Http facade's
factory over Guzzle): client.php runs SidecarClient calls against a live sidecar on the
sandbox, and receiver.php is a Laravel-routed webhook endpoint behind the kit's middleware,
under `php -S`, set as the sidecar's SIDECAR_WEBHOOK_URL.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import hashlib
import hmac
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.doctor import FAIL, OK, Check, check_webhook_url
from service.errors import ERRORS, registered
from service.models.events import EVENTS
from service.settings import Settings
from tests.conftest import API_SECRET, WEBHOOK_SECRET
from tests.support.sandbox import Phone, eventually, sandbox_process
from tests.support.server import ROOT, free_port, wait_http
from tests.support.sidecar import Sidecar

PHP = shutil.which("php")
SCRIPTS = Path(__file__).parent / "php" / "laravel"

pytestmark = pytest.mark.php

ME = "5511999990001"
HOOKS_PHONE = "5511999990003"
WAIT_PHONE = "5511999990004"
FRIEND = "5511988880002"


@functools.cache
def require_php() -> str:
    """php-cli, with Debian's Laravel framework and Guzzle (its HTTP client's transport)."""
    assert PHP is not None, "php-cli is required (scripts/test installs it)"
    probe = "exit(stream_resolve_include_path('{}') ? 0 : 1);"
    for path, package in (
        ("Illuminate/autoload.php", "php-laravel-framework"),
        ("GuzzleHttp/autoload.php", "php-guzzlehttp-guzzle"),
    ):
        found = subprocess.run([PHP, "-r", probe.format(path)], check=False).returncode == 0
        assert found, f"{package} is required: apt-get install {package}"
    return PHP


def run_kit(
    base: str, *ops: dict[str, Any], secret: str = API_SECRET, timeout: float = 60
) -> dict[str, Any]:
    """client.php: each op is a SidecarClient call with named args; returns what happened."""
    env = {**os.environ, "SIDECAR_URL": base, "SIDECAR_API_SECRET": secret}
    result = subprocess.run(
        [require_php(), str(SCRIPTS / "client.php"), json.dumps({"ops": list(ops)})],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    output: dict[str, Any] = json.loads(result.stdout)
    return output


def call(name: str, **args: Any) -> dict[str, Any]:
    return {"call": name, "args": args}


def values(output: dict[str, Any], *ok: bool) -> list[Any]:
    """The value of each call, or its error (class, code, status, details, ...), after
    checking which calls succeeded (`ok`, one flag per call; all of them when omitted)."""
    results = output["results"]
    assert [r["ok"] for r in results] == list(ok or [True] * len(results)), results
    return [r["value"] if r["ok"] else r["error"] for r in results]


class LaravelReceiver:
    """receiver.php under `php -S`: what its controller handled, and a way to post to it."""

    def __init__(self, base: str, directory: Path) -> None:
        self.url = f"{base}/webhooks/whatsapp"
        self.dir = directory
        self.http = httpx.Client(timeout=30)

    def handled(self, session_id: str | None = None) -> list[dict[str, Any]]:
        log = self.dir / "handled.jsonl"
        lines = [json.loads(x) for x in log.read_text().splitlines() if x] if log.exists() else []
        return [x for x in lines if session_id is None or x["session_id"] == session_id]

    def post(self, body: bytes, headers: dict[str, str]) -> httpx.Response:
        return self.http.post(
            self.url, content=body, headers={"Content-Type": "application/json", **headers}
        )


@contextmanager
def laravel_receiver(directory: Path) -> Iterator[LaravelReceiver]:
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {**os.environ, "SIDECAR_WEBHOOK_SECRET": WEBHOOK_SECRET, "RECEIVER_DIR": str(directory)}
    proc = subprocess.Popen(
        [require_php(), "-S", f"127.0.0.1:{port}", str(SCRIPTS / "receiver.php")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(directory / "php-server.log").open("wb"),
    )
    receiver = LaravelReceiver(f"http://127.0.0.1:{port}", directory)
    try:
        wait_http(f"http://127.0.0.1:{port}/", proc=proc)
        yield receiver
    finally:
        receiver.http.close()
        proc.terminate()
        proc.wait(timeout=10)


def webhook(event_id: str, data: dict[str, Any] | None = None, session_id: str = "py") -> bytes:
    """A body shaped like the sidecar's, escaped as PHP would not (the bytes are what count)."""
    body = {
        "id": event_id,
        "event": "session_status_changed",
        "timestamp": int(time.time()),
        "workspace_id": "acme",
        "session_id": session_id,
        "data": data or {"status": "connected", "previous": "authenticating"},
    }
    return json.dumps(body).encode()


def signed(
    body: bytes, event_id: str, timestamp: int | None = None, spatie: bool = True
) -> dict[str, str]:
    """The headers the sidecar sends (docs/webhooks.md), signed with the webhook secret."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    key = WEBHOOK_SECRET.encode()
    headers = {
        "X-Timestamp": ts,
        "X-HMAC-Signature": hmac.new(key, ts.encode() + body, hashlib.sha256).hexdigest(),
        "X-Webhook-Id": event_id,
        "X-Webhook-Event": "session_status_changed",
    }
    if spatie:
        headers["Signature"] = hmac.new(key, body, hashlib.sha256).hexdigest()
    return headers


@pytest.fixture(scope="module")
def receiver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LaravelReceiver]:
    with laravel_receiver(tmp_path_factory.mktemp("laravel-receiver")) as r:
        yield r


@pytest.fixture(scope="module")
def phone() -> Iterator[Phone]:
    with sandbox_process() as p:
        yield p


@pytest.fixture(scope="module")
def car(
    tmp_path_factory: pytest.TempPathFactory, phone: Phone, receiver: LaravelReceiver
) -> Iterator[Sidecar]:
    sidecar = Sidecar(
        tmp_path_factory.mktemp("laravel-sidecar") / "storage",
        WA_WEB_URL=phone.base + "/",
        SIDECAR_PACING="off",
        SIDECAR_WEBHOOK_URL=receiver.url,
        SIDECAR_WEBHOOK_RETRY_BASE_MS="100",
        SIDECAR_WEBHOOK_RETRY_CAP_S="1",
    ).start()
    try:
        yield sidecar
    finally:
        sidecar.close()


def test_middleware_rejects_forgeries_and_handles_each_event_once(
    receiver: LaravelReceiver,
) -> None:
    now = int(time.time())

    # A correctly signed event is handled, once; the Signature header is optional.
    body = webhook("evt_py_ok")
    first = receiver.post(body, signed(body, "evt_py_ok"))
    assert first.status_code == 200, first.text
    assert first.json() == {"ok": True, "handled": "evt_py_ok"}
    again = receiver.post(body, signed(body, "evt_py_ok", spatie=False))
    assert again.status_code == 200
    assert again.json()["duplicate"] is True
    assert [h["id"] for h in receiver.handled("py")] == ["evt_py_ok"]

    def rejected(body: bytes, headers: dict[str, str]) -> str:
        response = receiver.post(body, headers)
        assert response.status_code == 401, response.text
        code: str = response.json()["error"]["code"]
        return code

    fresh = webhook("evt_py_forged")
    good = signed(fresh, "evt_py_forged")
    tampered = fresh.replace(b"connected", b"connectex")
    assert rejected(tampered, good) == "invalid_signature"
    assert rejected(fresh, signed(fresh, "evt_py_forged", now - 301)) == "stale_timestamp"
    # PHP reads its clock after this one: taken just before the call, and a second beyond the
    # window's edge, so a second ticking over between the two cannot bring it back inside.
    ahead = int(time.time()) + 302
    assert rejected(fresh, signed(fresh, "evt_py_forged", ahead)) == "stale_timestamp"
    assert rejected(fresh, {**good, "Signature": "0" * 64}) == "invalid_signature"
    upper = {**good, "X-HMAC-Signature": good["X-HMAC-Signature"].upper()}
    assert rejected(fresh, upper) == "invalid_signature"
    no_ts = {k: v for k, v in good.items() if k != "X-Timestamp"}
    assert rejected(fresh, no_ts) == "stale_timestamp"
    no_sig = {k: v for k, v in good.items() if k != "X-HMAC-Signature"}
    assert rejected(fresh, no_sig) == "invalid_signature"
    # X-Webhook-Id is not signed: it must name the signed body's id, or a replay with a new
    # header would slip past the dedupe.
    relabelled = {**signed(body, "evt_py_ok"), "X-Webhook-Id": "evt_other"}
    assert rejected(body, relabelled) == "invalid_signature"
    assert [h["id"] for h in receiver.handled("py")] == ["evt_py_ok"]

    # Still within the window, the untampered event goes through.
    assert receiver.post(fresh, good).status_code == 200

    # A handler that fails does not burn the id: the sidecar's retry is handled.
    flaky = webhook("evt_py_flaky", {"status": "connected", "fail_once": True})
    headers = signed(flaky, "evt_py_flaky")
    assert receiver.post(flaky, headers).status_code == 500
    assert receiver.post(flaky, headers).json() == {"ok": True, "handled": "evt_py_flaky"}
    assert receiver.post(flaky, headers).json()["duplicate"] is True
    assert [h["id"] for h in receiver.handled("py")] == [
        "evt_py_ok",
        "evt_py_forged",
        "evt_py_flaky",
    ]


@pytest.mark.browser
def test_client_drives_a_session_on_a_live_sidecar(car: Sidecar, phone: Phone) -> None:
    cafe = "https://crm.example.test/hooks/wa?tenant=café"
    setup = run_kit(
        car.base,
        call("createSession", workspaceId="acme", sessionId="kit-1"),
        # Byte-identical to the first: in the same second the kit re-signs it; then 409.
        call("createSession", workspaceId="acme", sessionId="kit-1"),
        call("getSession", sessionId="nope"),
        call(
            "createSession",
            workspaceId="acme",
            sessionId="kit-draft",
            options={"start": False, "webhook_url": cafe},
        ),
        call("updateSession", sessionId="kit-draft", changes={"provider_mode": "webjs"}),
        call("listSessions", workspaceId="acme", status="stopped"),
        call("listSessions", workspaceId="other"),
        call("deleteSession", sessionId="kit-draft", keepDevice=True),
        call("getSession", sessionId="kit-draft"),
    )
    assert setup["bootstrap"] == {
        "singleton": True,
        "middleware": "WaSidecar\\Laravel\\Http\\Middleware\\VerifySidecarWebhook",
        "url": car.base,
        "tolerance": 300,
    }
    created, dup, unknown, draft, updated, stopped, other, deleted, gone = values(
        setup, True, False, False, True, True, True, True, True, False
    )
    assert (created["session_id"], created["workspace_id"]) == ("kit-1", "acme")
    assert (dup["class"], dup["code"], dup["status"]) == (
        "ConflictException",
        "session_exists",
        409,
    )
    assert (unknown["class"], unknown["code"], unknown["status"]) == (
        "NotFoundException",
        "session_not_found",
        404,
    )
    assert draft["webhook_url"] == cafe  # json_encode's \/ and \u00e9 were signed as sent
    assert updated["provider_mode"] == "webjs"
    assert [s["session_id"] for s in stopped] == ["kit-draft"]  # a signed ?query
    assert other == []
    assert deleted is None
    assert gone["class"] == "NotFoundException"

    car.wait_status("kit-1", "qr_required")
    linking = run_kit(
        car.base,
        call("qr", sessionId="kit-1"),
        call("qrPng", sessionId="kit-1"),
        call("sendText", sessionId="kit-1", to=FRIEND, text="too early"),
    )
    qr, png, early = values(linking, True, True, False)
    assert set(qr) == {"qr", "expires_at", "image_url"}
    assert base64.b64decode(png["base64"]).startswith(b"\x89PNG\r\n\x1a\n")
    assert (early["class"], early["code"], early["session_status"]) == (
        "ConflictException",
        "session_not_connected",
        "qr_required",
    )

    assert phone.scan(qr["qr"], ME).status_code == 200

    def kit_status() -> dict[str, Any] | None:
        (record,) = values(run_kit(car.base, call("getSession", sessionId="kit-1")), True)
        return record if record["status"] == "connected" else None

    connected = eventually(kit_status, 60, "the kit to see kit-1 connected")
    assert connected["phone_number"] == ME

    # Contacts: one call per endpoint, a contact given in each of its forms.
    phone.contact(FRIEND, about="Available")
    friend_lid = phone.lid(FRIEND)
    contacts = run_kit(
        car.base,
        call("checkContacts", sessionId="kit-1", phones=[f"+{FRIEND}", "5511977770004"]),
        call("contactAbout", sessionId="kit-1", contact=f"+{FRIEND}"),
        call("contactPicture", sessionId="kit-1", contact=FRIEND),
        call("blockContact", sessionId="kit-1", contact=f"{FRIEND}@c.us"),
        call("unblockContact", sessionId="kit-1", contact=f"{FRIEND}@c.us"),
        call("contactIds", sessionId="kit-1", contact=friend_lid),
        call("contactAbout", sessionId="kit-1", contact="not-a-phone"),
    )
    checked, about, picture, blocked, unblocked, ids, bad = values(
        contacts, True, True, True, True, True, True, False
    )
    assert checked == [
        {"phone": FRIEND, "exists": True, "wid": f"{FRIEND}@c.us", "lid": friend_lid},
        {"phone": "5511977770004", "exists": False},
    ]
    assert (about, picture, blocked, unblocked) == ("Available", None, True, False)
    assert ids == {"contact_id": friend_lid, "phone": FRIEND, "lid": friend_lid}
    assert (bad["class"], bad["field"], bad["status"]) == ("ValidationException", "contact_id", 422)
    assert phone.blocklist(ME) == []

    # Groups: create one, then read, manage and leave it through the kit.
    member = "5511988880009"
    phone.contact(member)
    (created,) = values(
        run_kit(
            car.base, call("createGroup", sessionId="kit-1", subject="Kit", participants=[FRIEND])
        ),
        True,
    )
    gid = created["id"]
    assert created["participants"] == [{"id": f"{FRIEND}@c.us", "code": 200}]
    managing = run_kit(
        car.base,
        call("addGroupParticipants", sessionId="kit-1", groupId=gid, participants=[f"+{member}"]),
        call("promoteGroupParticipants", sessionId="kit-1", groupId=gid, participants=[member]),
        call("setGroupSubject", sessionId="kit-1", groupId=gid, subject="Kit 2"),
        call("group", sessionId="kit-1", groupId=gid),
        call("groupInviteCode", sessionId="kit-1", groupId=gid),
        call("groups", sessionId="kit-1"),
        call("leaveGroup", sessionId="kit-1", groupId=gid),
        call("group", sessionId="kit-1", groupId=gid),
        call("group", sessionId="kit-1", groupId="not-a-group"),
    )
    added, promoted, renamed, info, invite, listed, left, gone_group, bad_group = values(
        managing, True, True, True, True, True, True, True, False, False
    )
    assert added == [{"id": f"{member}@c.us", "code": 200}]
    assert promoted == {"group_id": gid, "action": "promote", "participants": [member]}
    assert renamed == {"group_id": gid, "subject": "Kit 2"}
    assert info["subject"] == "Kit 2"
    assert {p["id"]: p["is_admin"] for p in info["participants"]} == {
        f"{ME}@c.us": True,
        f"{FRIEND}@c.us": False,
        f"{member}@c.us": True,
    }
    assert invite["url"] == f"https://chat.whatsapp.com/{invite['code']}"
    assert gid in [g["id"] for g in listed]
    assert left is True
    assert (gone_group["class"], gone_group["code"], gone_group["status"]) == (
        "ConflictException",
        "page_refused",
        409,
    )
    assert (bad_group["class"], bad_group["field"], bad_group["status"]) == (
        "ValidationException",
        "group_id",
        422,
    )

    key = "order-77-shipped"
    sending = run_kit(
        car.base,
        {"call": "alignSecond"},
        call("sendText", sessionId="kit-1", to=FRIEND, text="shipped", idempotencyKey=key),
        call("sendText", sessionId="kit-1", to=FRIEND, text="shipped", idempotencyKey=key),
        call("sendText", sessionId="kit-1", to="not a number", text="x"),
    )
    _, first, second, invalid = values(sending, True, True, True, False)
    assert first["id"] and first["id"] == second["id"]
    assert (first["replayed"], second["replayed"]) == (False, True)
    assert (invalid["class"], invalid["field"], invalid["status"]) == (
        "ValidationException",
        "to",
        422,
    )
    # The second send was byte-identical in the same second: the sidecar took it for a
    # replay, and the kit signed it again in the next second.
    posts = [w for w in sending["wire"] if w["url"].endswith("/api/sessions/kit-1/messages")]
    assert [(w["status"], w["code"]) for w in posts] == [
        (202, None),
        (401, "replayed_request"),
        (202, None),
        (422, "validation_failed"),
    ]
    assert posts[0]["timestamp"] == posts[1]["timestamp"] < posts[2]["timestamp"]

    def sent_status() -> dict[str, Any] | None:
        (record,) = values(
            run_kit(car.base, call("getMessage", sessionId="kit-1", messageId=first["id"]))
        )
        return record if record["status"] == "sent" else None

    eventually(sent_status, 60, "the message to be sent")
    assert [m["text"] for m in phone.sent(ME)] == ["shipped"]

    # Scheduled sends (a DateTimeInterface, or an RFC 3339 string) and cancelling them.
    hour = time.time() + 3600
    in_an_hour = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(hour))
    scheduling = run_kit(
        car.base,
        call(
            "sendText", sessionId="kit-1", to=FRIEND, text="later", sendAt={"datetime": in_an_hour}
        ),
        call(
            "sendMessage",
            sessionId="kit-1",
            message={"to": FRIEND, "type": "text", "text": "later too", "send_at": in_an_hour},
        ),
        call("sendText", sessionId="kit-1", to=FRIEND, text="naive", sendAt="2030-01-01T09:00:00"),
    )
    later, later_too, naive = values(scheduling, True, True, False)
    assert later["record"]["status"] == later_too["record"]["status"] == "scheduled"
    assert later["record"]["send_at"] == in_an_hour.replace("+00:00", "Z")
    assert (naive["class"], naive["field"]) == ("ValidationException", "send_at")
    cancelling = run_kit(
        car.base,
        call("cancelMessage", sessionId="kit-1", messageId=later["id"]),
        call("cancelMessage", sessionId="kit-1", messageId=later["id"]),
        call("cancelMessage", sessionId="kit-1", messageId=first["id"]),
    )
    cancelled, twice, gone = values(cancelling, True, False, False)
    assert cancelled["status"] == "cancelled"
    assert (twice["class"], twice["code"], twice["details"]["status"]) == (
        "ConflictException",
        "message_not_cancellable",
        "cancelled",
    )
    assert (gone["code"], gone["details"]["status"]) == ("message_not_cancellable", "sent")

    # Message actions: react, take it back, edit the text; a reaction with no emoji is 422.
    actions = run_kit(
        car.base,
        call("react", sessionId="kit-1", messageId=first["id"], emoji="👍"),
        call("removeReaction", sessionId="kit-1", messageId=first["id"]),
        call("editMessage", sessionId="kit-1", messageId=first["id"], text="shipped today"),
        call("react", sessionId="kit-1", messageId=first["id"], emoji=""),
        call("forwardMessage", sessionId="kit-1", messageId=first["id"], to=WAIT_PHONE),
    )
    reacted, unreacted, edited, no_emoji, forwarded = values(actions, True, True, True, False, True)
    assert (reacted["message_id"], reacted["emoji"]) == (first["id"], "👍")
    assert unreacted["emoji"] is None
    assert (edited["text"], bool(edited["edited_at"])) == ("shipped today", True)
    assert (no_emoji["class"], no_emoji["field"], no_emoji["status"]) == (
        "ValidationException",
        "emoji",
        422,
    )
    assert [r["reaction"] for r in phone.reactions(ME)] == ["👍", ""]
    assert forwarded == {
        "message_id": first["id"],
        "provider_message_id": reacted["provider_message_id"],
        "to": f"{WAIT_PHONE}@c.us",
        "forwarded": True,
    }
    # The edit rewrote the text in place; the forward is a copy in the other chat.
    assert [(m["to"], m["text"], m["forwarded"]) for m in phone.sent(ME)] == [
        (f"{FRIEND}@c.us", "shipped today", False),
        (f"{WAIT_PHONE}@c.us", "shipped today", True),
    ]

    # Chats: one call per endpoint, on the chat the send opened.
    chat = f"{FRIEND}@c.us"
    chats = run_kit(
        car.base,
        call("chats", sessionId="kit-1", limit=10),
        call("chatMessages", sessionId="kit-1", chat=chat, limit=5),
        call("markChatRead", sessionId="kit-1", chat=chat),
        call("archiveChat", sessionId="kit-1", chat=chat),
        call("unarchiveChat", sessionId="kit-1", chat=chat),
        call("setChatPresence", sessionId="kit-1", chat=chat, state="typing", durationMs=100),
        call("subscribePresence", sessionId="kit-1", contact=chat),
        call("deleteChat", sessionId="kit-1", chat=chat),
        call("chats", sessionId="kit-1", limit=0),
    )
    listed, history, unread, archived, unarchived, _, followed, deleted, bad = values(
        chats, True, True, True, True, True, True, True, True, False
    )
    # The group made and left above is a chat too, and the forward opened one (newest first).
    assert [c["id"] for c in listed if not c["is_group"]] == [f"{WAIT_PHONE}@c.us", chat]
    # The message actions above edited it: WhatsApp Web shows the new text.
    assert [(m["body"], m["from_me"]) for m in history] == [("shipped today", True)]
    assert (unread, archived, unarchived, followed, deleted) == (0, True, False, True, True)
    assert (bad["class"], bad["field"], bad["status"]) == ("ValidationException", "limit", 422)
    # Calls and polls: a ringing call rejected, one that no longer rings, and a poll.
    ringing = phone.call(ME, FRIEND)
    eventually(
        lambda: [
            e for e in car.events("kit-1", "call_received") if e["data"]["call_id"] == ringing["id"]
        ],
        30,
        "the page to see the call",
    )
    poll_args = {"sessionId": "kit-1", "to": FRIEND, "name": "Lunch?", "options": ["a", "b"]}
    calls_and_polls = run_kit(
        car.base,
        call("rejectCall", sessionId="kit-1", callId=ringing["id"]),
        call("rejectCall", sessionId="kit-1", callId=ringing["id"]),
        {"call": "sendPoll", "args": poll_args},
    )
    rejected, again, poll = values(calls_and_polls, True, False, True)
    assert rejected is True
    assert (again["class"], again["code"], again["details"]) == (
        "ConflictException",
        "page_refused",
        {"wa_code": "call_is_not_incoming_ring"},
    )
    assert (poll["record"]["type"], poll["record"]["poll"]) == (
        "poll",
        {"name": "Lunch?", "options": ["a", "b"], "selectable_count": 0},
    )

    # Campaigns: one due in a month (a start_at may be up to a year away), so nothing is
    # sent while the kit drives it.
    due = (datetime.now(UTC) + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    later = {"start_at": due, "rate": {"per_minute": 10, "jitter": 0.5}}
    recipients = [{"to": FRIEND, "variables": {"name": "Ana"}, "key": "c-1"}, {"to": ME}]

    def create_campaign(name: str, to: list[dict[str, Any]], **more: Any) -> dict[str, Any]:
        # `name` is also call()'s own parameter: this op is written out.
        text = {"type": "text", "text": "Hi {{name}}"}
        args = {"sessionId": "kit-1", "name": name, "message": text, "recipients": to, **more}
        return {"call": "createCampaign", "args": args}

    made = run_kit(
        car.base,
        create_campaign("Promo", recipients[:1], options=later),
        create_campaign("Bad", recipients),
    )
    campaign, bad = values(made, True, False)
    assert (campaign["status"], campaign["total"], campaign["rate"]["per_minute"]) == (
        "scheduled",
        1,
        10,
    )
    assert (bad["code"], bad["details"]["field"]) == ("validation_failed", "recipients.1.variables")
    cid = campaign["id"]
    driven = run_kit(
        car.base,
        call("campaigns", sessionId="kit-1"),
        call("pauseCampaign", sessionId="kit-1", campaignId=cid),
        call("resumeCampaign", sessionId="kit-1", campaignId=cid),
        call("campaignRecipients", sessionId="kit-1", campaignId=cid, status="pending"),
        call("campaignRecipientsCsv", sessionId="kit-1", campaignId=cid),
        call("cancelCampaign", sessionId="kit-1", campaignId=cid),
        call("resumeCampaign", sessionId="kit-1", campaignId=cid),
        call("campaign", sessionId="kit-1", campaignId="cmp_nope"),
    )
    listed, paused, resumed, page, csv, cancelled, refused, missing = values(
        driven, True, True, True, True, True, True, False, False
    )
    assert [c["id"] for c in listed] == [cid]
    assert (paused["status"], resumed["status"]) == ("paused", "scheduled")
    assert [(r["to"], r["key"], r["status"]) for r in page["data"]] == [
        (f"{FRIEND}@c.us", "c-1", "pending")
    ]
    assert page["next_after"] is None
    assert csv.splitlines()[1].split(",")[1:4] == [f"{FRIEND}@c.us", "c-1", "pending"]
    assert (cancelled["status"], cancelled["counts"]["cancelled"]) == ("cancelled", 1)
    assert (refused["class"], refused["code"]) == ("ConflictException", "campaign_state")
    assert (missing["class"], missing["code"]) == ("NotFoundException", "campaign_not_found")

    wrong = run_kit(car.base, call("getSession", sessionId="kit-1"), secret="not-the-secret")
    (denied,) = values(wrong, False)
    assert (denied["class"], denied["code"], denied["status"]) == (
        "AuthenticationException",
        "invalid_signature",
        401,
    )
    (down,) = values(run_kit(f"http://127.0.0.1:{free_port()}", call("listSessions")), False)
    assert (down["class"], down["status"]) == ("ConnectionException", 0)

    # Every webhook so far reached the Laravel receiver and was accepted there.
    delivered = eventually(
        lambda: values(
            run_kit(car.base, call("deliveries", status="delivered", sessionId="kit-1"))
        )[0],
        30,
        "delivered webhooks",
    )
    (dead, replay, replayed, replayed_all, nodes, stopped_now) = values(
        run_kit(
            car.base,
            call("deliveries", status="dead"),
            call("retryDelivery", deliveryId=delivered[0]["id"]),
            call("retryDeadDeliveries", sessionId="kit-1", event="message_received"),
            call("retryDeadDeliveries"),
            call("clusterNodes"),
            call("stopSession", sessionId="kit-1"),
        ),
        True,
        False,
        True,
        True,
        True,
        True,
    )
    assert dead == [] and replayed == replayed_all == 0
    assert nodes == []  # one process, not a cluster: no node heartbeats
    assert (replay["code"], replay["session_status"]) == ("delivery_not_dead", "delivered")
    assert stopped_now["desired_state"] == "stopped"  # a signed POST with no body


@pytest.mark.browser
def test_middleware_accepts_the_sidecars_real_webhooks(
    car: Sidecar, phone: Phone, receiver: LaravelReceiver
) -> None:
    created = car.api.post("/api/sessions", json={"workspace_id": "acme", "session_id": "hooks"})
    assert created.status_code == 201, created.text
    car.wait_status("hooks", "qr_required")
    qr = car.api.get("/api/sessions/hooks/qr").json()["qr"]
    assert phone.scan(qr, HOOKS_PHONE).status_code == 200
    car.wait_status("hooks", "connected")
    assert phone.inbound(to=HOOKS_PHONE, **{"from": FRIEND}, text="hi Laravel").status_code == 200
    sent = car.api.post(
        "/api/sessions/hooks/messages", json={"to": FRIEND, "type": "text", "text": "hello"}
    )
    assert sent.status_code == 202, sent.text

    def kinds() -> set[str]:
        return {e["event"] for e in car.events("hooks")}

    eventually(
        lambda: {"message_received", "message_status_updated"} <= kinds(), 60, "inbound and ack"
    )
    outbox = [e["id"] for e in car.events("hooks")]
    eventually(
        lambda: set(outbox) <= {h["id"] for h in receiver.handled("hooks")},
        60,
        "every webhook handled by the Laravel receiver",
    )
    handled = receiver.handled("hooks")
    ids = [h["id"] for h in handled]
    assert ids[: len(outbox)] == outbox  # in order, each once
    assert len(set(ids)) == len(ids)
    labels = [h["handled_as"] for h in handled]
    assert "unknown" not in labels  # Events:: names every event the sidecar sent
    for label in ("status:qr_required", "qr", "status:connected", "inbound:hi Laravel", "ack:sent"):
        assert label in labels
    assert all(h["headers"]["X-Webhook-Id"] == h["id"] for h in handled)

    # The sidecar's own bytes, replayed as they were (within the window): 200, not handled.
    real = next(h for h in handled if h["handled_as"] == "status:connected")
    body = real["body"].encode()
    headers = {k: v for k, v in real["headers"].items() if v is not None}
    replay = receiver.post(body, headers)
    assert replay.status_code == 200
    assert replay.json() == {"ok": True, "duplicate": True, "id": real["id"]}
    tampered = receiver.post(body.replace(b'"connected"', b'"failed"'), headers)
    assert tampered.status_code == 401
    assert [h["id"] for h in receiver.handled("hooks")].count(real["id"]) == 1


@pytest.mark.browser
def test_the_kit_waits_for_a_qr_and_a_status_and_gives_up_clearly(
    car: Sidecar, phone: Phone, receiver: LaravelReceiver
) -> None:
    metadata = {"account_id": 42, "team": "sales"}
    options = {"metadata": metadata, "webhook_events": ["session_status_changed"]}
    linking = run_kit(
        car.base,
        call("createSession", workspaceId="acme", sessionId="kit-wait", options=options),
        # Right after the create: the QR comes a few seconds later, and the kit waits for it.
        call("waitForQr", sessionId="kit-wait", timeoutSeconds=90),
        call("waitForStatus", sessionId="kit-wait", status="connected", timeoutSeconds=1),
        call("createSession", workspaceId="acme", sessionId="kit-idle", options={"start": False}),
        call("waitForQr", sessionId="kit-idle", timeoutSeconds=30),
        call("deleteSession", sessionId="kit-idle"),
        timeout=150,
    )
    created, qr, late, idle, stopped, _ = values(linking, True, True, False, True, False, True)
    assert (created["metadata"], created["webhook_events"]) == (
        metadata,
        ["session_status_changed"],
    )
    assert set(qr) == {"qr", "expires_at", "image_url"}
    assert (late["class"], late["code"], late["status"], late["session_status"]) == (
        "TimeoutException",
        "wait_timeout",
        0,
        "qr_required",
    )
    assert idle["desired_state"] == "stopped"
    # A stopped session gets no QR: the sidecar's own 409, at once rather than at the timeout.
    assert (stopped["class"], stopped["code"], stopped["session_status"]) == (
        "ConflictException",
        "no_qr",
        "stopped",
    )

    assert phone.scan(qr["qr"], WAIT_PHONE).status_code == 200
    (connected,) = values(
        run_kit(
            car.base,
            call("waitForStatus", sessionId="kit-wait", status=["connected", "failed"]),
            timeout=90,
        )
    )
    assert (connected["status"], connected["phone_number"]) == ("connected", WAIT_PHONE)

    # Only the events the session asked for reached Laravel, each with its metadata.
    eventually(
        lambda: [h for h in receiver.handled("kit-wait") if h["handled_as"] == "status:connected"],
        30,
        "the connected webhook at Laravel",
    )
    handled = receiver.handled("kit-wait")
    assert {h["event"] for h in handled} == {"session_status_changed"}
    assert all(h["metadata"] == metadata for h in handled)

    after, cleared, _ = values(
        run_kit(
            car.base,
            call("waitForQr", sessionId="kit-wait", timeoutSeconds=30),
            call(
                "updateSession",
                sessionId="kit-wait",
                changes={"metadata": None, "webhook_events": None},
            ),
            call("deleteSession", sessionId="kit-wait"),
        ),
        False,
        True,
        True,
    )
    assert (after["class"], after["code"], after["session_status"]) == (
        "ConflictException",
        "no_qr",
        "connected",
    )
    assert (cleared["metadata"], cleared["webhook_events"]) == (None, None)


def test_the_kit_names_every_event_and_only_codes_the_sidecar_answers() -> None:
    """The kit's event list is the sidecar's registry, and its README and exception mapping
    name no error code or status the sidecar never answers (a 429 once was one)."""
    kit = ROOT / "clients" / "laravel"
    events = kit / "src" / "Events.php"
    source = f"require '{events}'; echo json_encode(WaSidecar\\Laravel\\Events::WEBHOOKS);"
    listed = subprocess.run(
        [require_php(), "-r", source], capture_output=True, text=True, check=True, timeout=30
    )
    assert json.loads(listed.stdout) == list(EVENTS)
    statuses = {e.status for e in ERRORS}
    mapped = re.findall(r"\$status === (\d{3})", (kit / "src" / "SidecarClient.php").read_text())
    assert mapped and {int(s) for s in mapped} <= statuses
    readme = (kit / "README.md").read_text()
    table = readme[readme.index("| exception | when |") :].split("\n\n")[0]
    codes = set(re.findall(r"`([a-z]+(?:_[a-z]+)+)`", table))
    assert {"session_not_connected", "at_capacity"} <= codes
    # The kit's own codes (status 0: no answer from the sidecar at all) are the only others.
    client = (kit / "src" / "SidecarClient.php").read_text()
    own = {c for c in codes if not registered(c)}
    assert own <= {"wait_timeout", "connection_failed"}
    assert all(f"'{c}'" in client for c in own)
    assert {int(s) for s in re.findall(r"\b([45]\d\d)\b", table)} <= statuses


def test_doctor_pings_the_kit_and_names_a_secret_mismatch(receiver: LaravelReceiver) -> None:
    """`python -m service doctor` posts a signed `ping`: the kit's middleware lets it through
    and a controller that switches on the event passes it by with a 2xx."""
    settings = Settings.from_mapping(
        {"SIDECAR_WEBHOOK_URL": receiver.url, "SIDECAR_WEBHOOK_SECRET": WEBHOOK_SECRET}
    )
    where = receiver.url.split("//")[1].split("/")[0]
    assert check_webhook_url(settings) == Check(
        "webhook url", OK, f"{where} answered HTTP 200 to a signed test event"
    )
    (ping,) = [h for h in receiver.handled() if h["event"] == "ping"]
    assert ping["handled_as"] == "unknown" and ping["session_id"] is None

    wrong = check_webhook_url(dataclasses.replace(settings, webhook_secret="y" * 64))
    assert wrong.status == FAIL
    assert wrong.detail.startswith(
        f"{where} answered HTTP 401 invalid_signature: the signed test event was refused, a "
        "secret mismatch"
    )
    assert len([h for h in receiver.handled() if h["event"] == "ping"]) == 1
