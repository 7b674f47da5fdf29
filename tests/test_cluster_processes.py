"""Cluster mode as separate processes on one machine: an api process and session workers
over one real MariaDB and one storage directory, driving the sandbox in real Chromium.

A worker killed -9 loses its sessions to the others, which restore them from their profiles
with no new QR; a worker stopped past its lease neither writes nor sends for what it lost;
nothing queued is lost or sent twice, and webhooks arrive complete and in order.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.cluster import Cluster, running_cluster, with_signal
from tests.support.mariadb import PrivateMariaDB
from tests.support.proxy import forward_proxy
from tests.support.receivers import Receiver
from tests.support.sandbox import Phone, eventually, sandbox_process
from tests.support.server import ROOT
from tests.support.sidecar import chromium_processes

pytestmark = pytest.mark.browser

FRIEND = "5511988880002"
TTL = 6


@pytest.fixture
def phone() -> Iterator[Phone]:
    with sandbox_process() as p:
        yield p


@pytest.fixture
def cluster(tmp_path: Path, phone: Phone, mariadb_server: PrivateMariaDB) -> Iterator[Cluster]:
    with running_cluster(tmp_path / "storage", phone, mariadb_server, "cluster", ttl=TTL) as group:
        yield group


def send(cluster: Cluster, session_id: str, text: str) -> str:
    response = cluster.api.api.post(
        f"/api/sessions/{session_id}/messages", json={"to": FRIEND, "type": "text", "text": text}
    )
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def settled(cluster: Cluster, session_id: str, message_ids: list[str]) -> dict[str, str]:
    def check() -> dict[str, str] | None:
        statuses = {}
        for message_id in message_ids:
            answer = cluster.api.api.get(f"/api/sessions/{session_id}/messages/{message_id}")
            statuses[message_id] = answer.json()["status"]
        done = all(s in ("sent", "delivered", "read", "failed") for s in statuses.values())
        return statuses if done else None

    return eventually(check, 120, f"the messages of {session_id} to settle")


def texts_at_phone(phone: Phone, number: str) -> list[str]:
    return [str(m["text"]) for m in phone.sent(number)]


def test_sessions_spread_and_a_killed_worker_loses_nothing(cluster: Cluster, phone: Phone) -> None:
    cluster.start("w1", "w2")
    numbers = {f"s{i}": f"55119999900{i:02d}" for i in range(1, 5)}
    for session_id, number in numbers.items():
        cluster.link(session_id, number)
    owners = cluster.owners()
    assert set(owners) == set(numbers)
    assert set(owners.values()) == {"w1", "w2"}, owners  # spread over both workers

    # Sends in flight on every session, then the owner of s1 dies without a word.
    sent: dict[str, list[str]] = {sid: [] for sid in numbers}
    texts: dict[str, str] = {}
    for round_ in range(4):
        for session_id in numbers:
            text = f"{session_id} message {round_}"
            message_id = send(cluster, session_id, text)
            sent[session_id].append(message_id)
            texts[message_id] = text
    qr_before = {sid: len(cluster.api.events(sid, "qr_code_generated")) for sid in numbers}
    victim = owners["s1"]
    cluster.workers[victim].kill9()
    survivor = "w2" if victim == "w1" else "w1"
    # More sends while the victim's sessions have no owner: they wait in the queue.
    for session_id in numbers:
        text = f"{session_id} after the kill"
        message_id = send(cluster, session_id, text)
        sent[session_id].append(message_id)
        texts[message_id] = text

    # The survivor takes every session, restored from its profile: connected, no new QR.
    eventually(
        lambda: set(cluster.owners().values()) == {survivor} and len(cluster.owners()) == 4,
        60,
        "the survivor to hold every session",
    )
    for session_id in numbers:
        cluster.api.wait_status(session_id, "connected", timeout=90)
    for session_id, number in numbers.items():
        statuses = settled(cluster, session_id, sent[session_id])
        at_phone = texts_at_phone(phone, number)
        for message_id, status in statuses.items():
            count = at_phone.count(texts[message_id])
            if status in ("sent", "delivered", "read"):
                assert count == 1, (texts[message_id], status, at_phone)
            else:
                # Only a send caught mid-flight by the kill fails, as interrupted.
                answer = cluster.api.api.get(f"/api/sessions/{session_id}/messages/{message_id}")
                assert answer.json()["error"] == "interrupted", answer.json()
                assert count <= 1
        # The message sent after the kill went out from the new owner.
        assert statuses[sent[session_id][-1]] in ("sent", "delivered", "read")
    # No session showed a new QR: each was restored from its profile.
    assert {sid: len(cluster.api.events(sid, "qr_code_generated")) for sid in numbers} == (
        qr_before
    )

    # Every webhook event reaches the receiver, first arrivals in each session's order.
    receiver: Receiver = cluster.receiver
    for session_id in numbers:
        ids = [e["id"] for e in cluster.api.events(session_id)]
        eventually(
            lambda ids=ids: set(ids) <= {r["json"]["id"] for r in receiver.requests},
            60,
            f"every event of {session_id} at the receiver",
        )
        first_seen = list(
            dict.fromkeys(
                r["json"]["id"] for r in receiver.requests if r["json"]["session_id"] == session_id
            )
        )
        assert first_seen == ids


def test_a_worker_paused_past_its_lease_neither_writes_nor_sends(
    cluster: Cluster, phone: Phone
) -> None:
    cluster.start("w1")
    number = "5511999990101"
    cluster.link("p1", number)
    assert cluster.owners() == {"p1": "w1"}
    cluster.add_worker("w2")
    paused = cluster.workers["w1"]
    with_signal(paused, signal.SIGSTOP)
    try:
        eventually(lambda: cluster.owners().get("p1") == "w2", 60, "w2 to take p1")
        # (Its status may still read `connected` from w1 until w2 moves it: a send is
        # refused with 409 while the session restores, and retried, as a client would.)
        first = [send_retrying(cluster, "p1", f"while paused {i}") for i in range(3)]
        settled(cluster, "p1", first)
        events_before = [e["id"] for e in cluster.api.events("p1")]
    finally:
        with_signal(paused, signal.SIGCONT)
    # Awake again: w1 finds its lease gone at its next round and lets the session be.
    eventually(
        lambda: cluster.query("SELECT sessions FROM wa_nodes WHERE node_id = 'w1'") == [(0,)],
        30,
        "w1 to report that it holds nothing",
    )
    second = [send(cluster, "p1", f"after resume {i}") for i in range(3)]
    statuses = settled(cluster, "p1", second)
    assert set(statuses.values()) <= {"sent", "delivered", "read"}
    at_phone = texts_at_phone(phone, number)
    for i in range(3):
        assert at_phone.count(f"while paused {i}") == 1
        assert at_phone.count(f"after resume {i}") == 1
    assert cluster.session("p1")["status"] == "connected"
    # Nothing w1 might have said about p1 after it woke: only the new sends' events.
    later = [e for e in cluster.api.events("p1") if e["id"] not in events_before]
    assert {e["event"] for e in later} <= {"message_status_updated"}, later
    assert cluster.owners() == {"p1": "w2"}


def send_retrying(cluster: Cluster, session_id: str, text: str) -> str:
    """A send as a Laravel job makes it: a 409 or 503 while the session moves is retried."""

    def attempt() -> str | None:
        response = cluster.api.api.post(
            f"/api/sessions/{session_id}/messages",
            json={"to": FRIEND, "type": "text", "text": text},
        )
        if response.status_code in (409, 503):
            return None
        if response.status_code == 401 and "replayed_request" in response.text:
            return None  # the same request again within its second: sign it anew
        assert response.status_code == 202, response.text
        return str(response.json()["id"])

    return eventually(attempt, 90, f"{session_id} to accept {text!r}")


def test_a_rolling_restart_of_every_worker_loses_nothing(cluster: Cluster, phone: Phone) -> None:
    cluster.start("w1", "w2")
    numbers = {"r1": "5511999990201", "r2": "5511999990202", "r3": "5511999990203"}
    for session_id, number in numbers.items():
        cluster.link(session_id, number)
    accepted: dict[str, list[str]] = {sid: [] for sid in numbers}
    for name, other in (("w1", "w2"), ("w2", "w1")):
        # Sends still queued or in flight when the worker is told to stop.
        for i in range(3):
            for session_id in numbers:
                text = f"{session_id} {name} {i}"
                accepted[session_id].append(send_retrying(cluster, session_id, text))
        worker = cluster.workers[name]
        assert worker.terminate() == 0
        # It handed everything over on its way out: the other holds every session now.
        assert set(cluster.owners().values()) <= {other}
        eventually(lambda other=other: cluster.owners() == dict.fromkeys(numbers, other), 30, other)
        for session_id in numbers:
            cluster.api.wait_status(session_id, "connected", timeout=90)
            text = f"{session_id} while {name} restarts"
            accepted[session_id].append(send_retrying(cluster, session_id, text))
        worker.start()
        eventually(
            lambda name=name: set(cluster.owners().values()) == {"w1", "w2"},
            60,
            f"{name} to take a share again",
        )
        for session_id in numbers:
            cluster.api.wait_status(session_id, "connected", timeout=90)
    for session_id, number in numbers.items():
        statuses = settled(cluster, session_id, accepted[session_id])
        assert set(statuses.values()) <= {"sent", "delivered", "read"}, statuses
        at_phone = texts_at_phone(phone, number)
        assert len(at_phone) == len(set(at_phone)) == len(accepted[session_id]), at_phone
    # No session needed a new QR on the way.
    for session_id in numbers:
        assert len(cluster.api.events(session_id, "qr_code_generated")) == 1


def test_every_session_call_reaches_its_worker(cluster: Cluster, phone: Phone) -> None:
    cluster.start("w1")
    api = cluster.api.api
    cluster.link("l1", "5511999990301")
    # A page operation runs on the worker's page: the linked number is on WhatsApp, and a
    # number nobody linked or declared is not.
    checked = api.post(
        "/api/sessions/l1/contacts/check", json={"phones": ["5511999990301", "5511977770009"]}
    )
    assert checked.status_code == 200, checked.text
    assert [(c["phone"], c["exists"]) for c in checked.json()["data"]] == [
        ("5511999990301", True),
        ("5511977770009", False),
    ]
    # A call: rejected through the api (an RPC to the worker's page), then by the policy the
    # api stored, which the worker reads from MariaDB and answers through its send queue.
    ringing = phone.call("5511999990301", FRIEND)

    def seen(call_id: str) -> dict[str, Any] | None:
        found = [e["data"] for e in cluster.api.events("l1", "call_received")]
        return next((d for d in found if d["call_id"] == call_id), None)

    assert eventually(lambda: seen(ringing["id"]), 60, "the call")["rejected"] is False
    rejected = api.post(f"/api/sessions/l1/calls/{ringing['id']}/reject")
    assert rejected.json() == {"call_id": ringing["id"], "rejected": True}, rejected.text
    policy = {"reject": True, "message": "no calls, please write"}
    assert api.patch("/api/sessions/l1", json={"call_policy": policy}).status_code == 200
    second = phone.call("5511999990301", FRIEND)
    assert eventually(lambda: seen(second["id"]), 60, "the second call")["rejected"] is True
    eventually(
        lambda: texts_at_phone(phone, "5511999990301") == [policy["message"]], 60, "the reply"
    )
    # A scheduled send: stored by the api, sent at its time by the worker that owns the
    # session; one cancelled through the api (queued ahead of it) never leaves.
    send_at = int(time.time()) + 3
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(send_at))
    dropped, later = (
        api.post(
            "/api/sessions/l1/messages",
            json={"to": FRIEND, "type": "text", "text": text, "send_at": when},
        ).json()
        for text in ("cancelled", "at its time")
    )
    assert later["status"] == dropped["status"] == "scheduled"
    cancelled = api.delete(f"/api/sessions/l1/messages/{dropped['id']}")
    assert cancelled.json()["status"] == "cancelled", cancelled.text
    assert settled(cluster, "l1", [later["id"]]) == {later["id"]: "sent"}
    at_phone = {m["text"]: m for m in phone.sent("5511999990301")}
    assert at_phone["at its time"]["timestamp"] >= send_at
    assert "cancelled" not in at_phone
    # Restart: the worker restarts the browser; the login is kept.
    assert api.post("/api/sessions/l1/restart").status_code == 202
    cluster.api.wait_status("l1", "connected", timeout=90)
    # Stop: the worker closes the browser and says so, then lets the lease go.
    stopped = api.post("/api/sessions/l1/stop")
    assert stopped.status_code == 202, stopped.text
    cluster.api.wait_status("l1", "stopped", timeout=60)
    eventually(lambda: "l1" not in cluster.owners(), 30, "the lease of l1 to be released")
    eventually(lambda: not chromium_for(cluster.storage, "l1"), 30, "l1's browser to close")
    # Start: placed again, restored from its profile.
    assert api.post("/api/sessions/l1/start").status_code == 202
    cluster.api.wait_status("l1", "connected", timeout=90)
    assert len(cluster.api.events("l1", "qr_code_generated")) == 1
    # Logout: unlinked on the worker, which shows a new QR.
    assert api.post("/api/sessions/l1/logout").status_code == 202
    cluster.api.wait_status("l1", "qr_required", timeout=90)
    assert api.get("/api/sessions/l1/qr").status_code == 200
    # Delete: the worker lets go of the profile, the api purges it; the id is free again.
    # (Logged out already: keep_device has nothing to keep, but reaches the worker as a flag.)
    assert api.delete("/api/sessions/l1", params={"keep_device": "true"}).status_code == 204
    assert not (cluster.storage / "sessions" / "acme" / "l1").exists()
    eventually(lambda: not chromium_for(cluster.storage, "l1"), 30, "l1's browser to close")
    cluster.link("l1", "5511999990302")
    # Delete of a connected session: its worker's page unlinks the device first.
    assert phone.linked("5511999990302")
    assert api.delete("/api/sessions/l1").status_code == 204
    assert not phone.linked("5511999990302")
    eventually(lambda: not chromium_for(cluster.storage, "l1"), 30, "l1's browser to close")


def test_a_qr_timeout_on_a_worker_stops_the_session_for_good(
    cluster: Cluster, phone: Phone
) -> None:
    cluster.start()
    cluster.add_worker("w1", SIDECAR_QR_TIMEOUT="10")
    api = cluster.api.api
    created = api.post("/api/sessions", json={"workspace_id": "acme", "session_id": "t1"})
    assert created.status_code == 201, created.text
    cluster.api.wait_status("t1", "qr_required", timeout=90)
    assert api.get("/api/sessions/t1/qr").status_code == 200  # answered by the worker
    record = cluster.api.wait_status("t1", "stopped", timeout=90)
    assert record["desired_state"] == "stopped"
    last = cluster.api.events("t1", "session_status_changed")[-1]["data"]
    assert last == {"status": "stopped", "previous": "qr_required", "reason": "qr_timeout"}
    eventually(lambda: "t1" not in cluster.owners(), 30, "the lease of t1 to be released")
    eventually(lambda: not chromium_for(cluster.storage, "t1"), 30, "t1's browser to close")
    no_qr = api.get("/api/sessions/t1/qr")
    assert no_qr.status_code == 409 and no_qr.json()["error"]["code"] == "no_qr"


def test_a_worker_browses_through_the_proxy_the_api_stored(cluster: Cluster, phone: Phone) -> None:
    password = "cluster-proxy-pa55"
    with forward_proxy("ops", password) as proxy:
        cluster.start("w1")
        created = cluster.api.api.post(
            "/api/sessions",
            json={
                "workspace_id": "acme",
                "session_id": "p1",
                "proxy": {"url": proxy.url, "username": "ops", "password": password},
            },
        )
        assert created.status_code == 201, created.text
        cluster.api.wait_status("p1", "qr_required", timeout=90)
        assert cluster.owners() == {"p1": "w1"}
        # The api only wrote it; the worker read it from the store and opened the login.
        assert proxy.forwarded(phone.base + "/"), proxy.seen
        ((url, sealed),) = cluster.query(
            "SELECT proxy_url, proxy_sealed FROM wa_sessions WHERE session_id = %s", "p1"
        )
        assert url == proxy.url and password not in sealed


def chromium_for(storage: Path, session_id: str) -> list[Any]:
    profile = str((storage / "sessions" / "acme" / session_id / "profile").resolve())
    return [p for p in chromium_processes(storage) if f"--user-data-dir={profile}" in p.cmdline()]


def test_drain_moves_a_workers_sessions_away_while_the_api_answers(
    cluster: Cluster, phone: Phone
) -> None:
    cluster.start("w1", "w2")
    numbers = {"d1": "5511999990401", "d2": "5511999990402"}
    for session_id, number in numbers.items():
        cluster.link(session_id, number)
    assert set(cluster.owners().values()) == {"w1", "w2"}
    queued = {sid: [send(cluster, sid, f"{sid} before the drain")] for sid in numbers}
    drained = subprocess.run(
        [sys.executable, "-m", "service", "drain", "w1", "--timeout", "120"],
        cwd=ROOT,
        env={**cluster.api.env, "SIDECAR_ROLE": "all"},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert drained.returncode == 0, drained.stdout + drained.stderr
    assert "w1" not in cluster.owners().values()
    eventually(lambda: cluster.owners() == dict.fromkeys(numbers, "w2"), 30, "w2 to take both")
    # The drained worker still runs (it is stopped by hand after this), holding nothing.
    assert cluster.workers["w1"].proc is not None and cluster.workers["w1"].proc.poll() is None
    for session_id, number in numbers.items():
        queued[session_id].append(send_retrying(cluster, session_id, f"{session_id} after"))
        statuses = settled(cluster, session_id, queued[session_id])
        assert set(statuses.values()) <= {"sent", "delivered", "read"}, statuses
        assert sorted(texts_at_phone(phone, number)) == [
            f"{session_id} after",
            f"{session_id} before the drain",
        ]
        assert len(cluster.api.events(session_id, "qr_code_generated")) == 1
    # It takes nothing while drained, even with room.
    cluster.link("d3", "5511999990403")
    assert cluster.owners()["d3"] == "w2"
