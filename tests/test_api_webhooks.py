"""`/api/webhooks/deliveries` and `python -m service webhooks replay` against a live service
with no SIDECAR_WEBHOOK_URL: events wait, a PATCHed webhook_url sends them, dead ones are
replayed in bulk by filter."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from service.app import create_app
from service.settings import Settings
from service.store import NO_WEBHOOK_URL, NewEvent, SqlStore, open_store
from tests.conftest import API_SECRET, ENGINES, base_env
from tests.support.receivers import Receiver, python_receiver
from tests.support.sandbox import eventually
from tests.support.server import ROOT, serve_app
from tests.support.signing import SidecarAuth


@dataclass
class Service:
    """A live service (records only, no browsers), a signed client, and a store of the
    test's own on the same database, writing events as a worker would."""

    settings: Settings
    api: httpx.Client
    store: SqlStore
    port: int

    async def emit(self, session_id: str, workspace_id: str, events: list[str]) -> None:
        answer = self.api.get(f"/api/sessions/{session_id}")
        if answer.status_code == 404:
            created = self.api.post(
                "/api/sessions",
                json={"workspace_id": workspace_id, "session_id": session_id, "start": False},
            )
            assert created.status_code == 201, created.text
        for i, name in enumerate(events):
            await self.store.update_session(session_id, {}, [NewEvent(name, {"n": i})])

    def deliveries(self, **params: str) -> list[dict[str, Any]]:
        answer = self.api.get("/api/webhooks/deliveries", params={"limit": "1000", **params})
        assert answer.status_code == 200, answer.text
        data: list[dict[str, Any]] = answer.json()["data"]
        return data


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with python_receiver() as r:
        yield r


@pytest.fixture
async def service(
    make_settings: Callable[..., Settings], database: Callable[[str], dict[str, str]]
) -> AsyncIterator[Service]:
    settings = make_settings(**database("api_webhooks"))
    assert not settings.webhook_url
    with serve_app(create_app(settings, with_browsers=False)) as base:
        store = open_store(settings.store_url, settings.db_prefix)
        await store.open()
        try:
            with httpx.Client(base_url=base, auth=SidecarAuth(API_SECRET), timeout=30) as api:
                yield Service(settings, api, store, int(base.rsplit(":", 1)[1]))
        finally:
            await store.close()


async def make_dead(service: Service) -> dict[str, dict[str, Any]]:
    """Every event in the outbox made dead, as the deliveries API shows them by id."""
    for event in await service.store.list_events(limit=10_000):
        await service.store.finish_attempt(event.id, {"status": "dead", "last_error": "HTTP 410"})
    return {d["id"]: d for d in service.deliveries()}


def pending_ids(service: Service) -> set[str]:
    return {d["id"] for d in service.deliveries(status="pending")}


@pytest.mark.parametrize("engine", ENGINES)
async def test_events_wait_for_a_url_and_go_out_in_order_once_patch_sets_one(
    service: Service, receiver: Receiver
) -> None:
    await service.emit("s1", "w1", ["session_status_changed", "qr_code_generated"] * 2)

    def parked() -> list[dict[str, Any]] | None:
        found = service.deliveries(session_id="s1")
        return found if found and found[0]["last_error"] == NO_WEBHOOK_URL else None

    head, *rest = eventually(parked, 30, "the head to wait for a URL")
    # Pending, not dead: nothing was sent, and the record says why and until when.
    assert (head["status"], head["attempts"], head["url"]) == ("pending", 0, None)
    assert head["next_attempt_at"] is not None
    assert [d["status"] for d in rest] == ["pending"] * 3
    assert not service.deliveries(status="dead")

    patched = service.api.patch("/api/sessions/s1", json={"webhook_url": receiver.url})
    assert patched.status_code == 200, patched.text
    eventually(lambda: len(receiver.requests) >= 4, 30, "the waiting events to go out")
    assert [e["data"]["n"] for e in receiver.events()] == [0, 1, 2, 3]
    eventually(lambda: len(service.deliveries(status="delivered")) == 4, 30, "all four delivered")


@pytest.mark.parametrize("engine", ENGINES)
async def test_bulk_replay_takes_only_the_matching_dead_deliveries(service: Service) -> None:
    await service.emit("s1", "w1", ["message_received", "qr_code_generated"])
    await service.emit("s2", "w1", ["message_received"])
    await service.emit("s3", "w2", ["message_received"])
    cut = time.time()
    while time.time() <= cut + 1:  # whole seconds: the ISO form below has no fraction
        time.sleep(0.05)
    await service.emit("s3", "w2", ["qr_code_generated"])
    iso_cut = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(cut) + 1))

    dead = await make_dead(service)

    def chosen(pick: Callable[[dict[str, Any]], bool]) -> set[str]:
        return {i for i, d in dead.items() if pick(d)}

    late = chosen(lambda d: d["created_at"] >= iso_cut)
    assert len(late) == 1
    cases: list[tuple[dict[str, Any], set[str]]] = [
        ({"session_id": "s1"}, chosen(lambda d: d["session_id"] == "s1")),
        ({"workspace_id": "w1"}, chosen(lambda d: d["workspace_id"] == "w1")),
        ({"event": "qr_code_generated"}, chosen(lambda d: d["event"] == "qr_code_generated")),
        ({"since": iso_cut}, late),
        ({"until": str(int(cut) + 1)}, set(dead) - late),
        ({"since": int(cut) + 1, "until": "2100-01-01T00:00:00"}, late),
        (
            {"workspace_id": "w2", "event": "message_received"},
            chosen(lambda d: d["session_id"] == "s3" and d["event"] == "message_received"),
        ),
        ({"session_id": "nobody"}, set()),
        ({}, set(dead)),
    ]
    for body, expected in cases:
        await make_dead(service)
        answer = service.api.post("/api/webhooks/deliveries/retry", json=body)
        assert answer.status_code == 202, answer.text
        assert answer.json() == {"retried": len(expected)}, body
        # Pending again (no URL: they wait once more); nothing else moved.
        assert pending_ids(service) == expected, body


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"session_id": "../etc"}, "session_id"),
        ({"workspace_id": ""}, "workspace_id"),
        ({"event": "message_sent"}, "event"),
        ({"event": 3}, "event"),
        ({"since": "yesterday"}, "since"),
        ({"since": "\u0661\u0667" + "\u0660" * 8}, "since"),  # Arabic-Indic digits
        ({"until": -5}, "until"),
        ({"since": 10**18}, "since"),
        ({"until": 10**400}, "until"),  # no float holds it
        ({"until": True}, "until"),
        ({"since": 200, "until": 100}, "until"),
        ({"status": "dead"}, "status"),
    ],
)
async def test_bad_filters_are_422_and_replay_nothing(
    service: Service, body: dict[str, Any], field: str
) -> None:
    await service.emit("s1", "w1", ["message_received"])
    await make_dead(service)
    answer = service.api.post("/api/webhooks/deliveries/retry", json=body)
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert (error["code"], error["details"]["field"]) == ("validation_failed", field)
    assert pending_ids(service) == set()


async def test_the_cli_replays_against_the_live_service(service: Service) -> None:
    await service.emit("s1", "w1", ["message_received", "qr_code_generated"])
    await service.emit("s2", "w1", ["message_received"])
    dead = await make_dead(service)
    env = {
        **base_env(service.settings.storage_dir),
        "SIDECAR_HOST": "127.0.0.1",
        "SIDECAR_PORT": str(service.port),
        "PATH": "/usr/bin:/bin",
    }

    def replay(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "service", "webhooks", "replay", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    done = replay("--session", "s1", "--event", "qr_code_generated")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        "replayed 1 dead delivery (session_id=s1, event=qr_code_generated)"
    )
    assert pending_ids(service) == {
        i for i, d in dead.items() if d["session_id"] == "s1" and d["event"] == "qr_code_generated"
    }
    refused = replay("--event", "nope")
    assert refused.returncode == 1
    assert refused.stderr.startswith("error 422 validation_failed: event: must be one of")
    everything = replay("--workspace", "w1")
    assert everything.returncode == 0, everything.stderr
    assert everything.stdout.strip() == "replayed 2 dead deliveries (workspace_id=w1)"
    assert pending_ids(service) == set(dead)
