"""The cluster roles at their edges, with no browser: what each refuses to start with, what
a worker's internal port answers, and what the api answers for a session whose worker is
missing or dead (a clear 503, never a hang)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.errors import ConfigError
from service.settings import Settings
from service.store import open_store
from service.store.base import NodeRecord
from tests.conftest import base_env
from tests.support.mariadb import PrivateMariaDB
from tests.support.receivers import python_receiver
from tests.support.server import ROOT, free_port
from tests.support.sidecar import Sidecar
from tests.support.signing import SidecarAuth
from tests.test_laravel_kit import call, run_kit, values

INTERNAL = "internal-" + "d" * 40


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"SIDECAR_ROLE": "boss"}, "SIDECAR_ROLE must be one of all, api, worker, dispatcher"),
        ({"SIDECAR_ROLE": "worker"}, "SIDECAR_INTERNAL_SECRET"),
        ({"SIDECAR_ROLE": "api", "SIDECAR_INTERNAL_SECRET": INTERNAL}, "mysql+pymysql://"),
        ({"SIDECAR_PLACEMENT": "random"}, "SIDECAR_PLACEMENT"),
        ({"SIDECAR_LEASE_TTL": "1"}, "SIDECAR_LEASE_TTL"),
        ({"SIDECAR_NODE_ID": "../etc"}, "SIDECAR_NODE_ID"),
        (
            {
                "SIDECAR_ROLE": "worker",
                "SIDECAR_INTERNAL_SECRET": "s" * 40,
                "SIDECAR_API_SECRET": "s" * 40,
            },
            "must differ from the API and webhook secrets",
        ),
    ],
)
def test_cluster_settings_that_cannot_work_are_refused(env: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle.replace("+", r"\+")):
        Settings.from_mapping(env)


def serve(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service", "serve", *args],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_cluster_role_on_sqlite_stops_with_one_line(tmp_path: Path) -> None:
    env = {**base_env(tmp_path / "storage"), "SIDECAR_INTERNAL_SECRET": INTERNAL}
    result = serve(env, "--role", "worker")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "SQLite serves one process only" in lines[0], result.stderr


@pytest.fixture
def cluster_env(tmp_path: Path, mariadb_server: PrivateMariaDB) -> dict[str, str]:
    name = f"roles_{time.monotonic_ns() % 10**9}"
    return {
        **base_env(tmp_path / "storage"),
        "SIDECAR_DATABASE_URL": mariadb_server.fresh_database(name),
        "SIDECAR_INTERNAL_SECRET": INTERNAL,
        "SIDECAR_LEASE_TTL": "6",
    }


def test_a_single_host_service_and_a_cluster_never_share_a_store(
    tmp_path: Path, cluster_env: dict[str, str]
) -> None:
    single = Sidecar(tmp_path / "storage", **cluster_env).start()
    try:
        result = serve(cluster_env, "--role", "api")
        assert result.returncode == 2
        assert "a single-host service (--role all) runs on this store" in result.stderr
    finally:
        single.close()
    api = Sidecar(tmp_path / "storage", SIDECAR_ROLE="api", **cluster_env).start()
    try:
        result = serve(cluster_env)
        assert result.returncode == 2
        assert "cluster processes" in result.stderr and "use this store" in result.stderr
    finally:
        api.close()


@pytest.fixture
def api(tmp_path: Path, cluster_env: dict[str, str]) -> Iterator[Sidecar]:
    car = Sidecar(
        tmp_path / "storage", SIDECAR_ROLE="api", SIDECAR_NODE_ID="api-1", **cluster_env
    ).start()
    try:
        yield car
    finally:
        car.close()


def mark_connected(env: dict[str, str], session_id: str) -> None:
    """The session's status as its worker writes it once the page is logged in."""

    async def write() -> None:
        store = open_store(env["SIDECAR_DATABASE_URL"])
        await store.open()
        try:
            await store.update_session(session_id, {"status": "connected"})
        finally:
            await store.close()

    asyncio.run(write())


def put_owner(env: dict[str, str], session_id: str, address: str, node_id: str = "w-gone") -> None:
    """A worker row and its lease on `session_id`, as a worker at `address` would write."""

    async def write() -> None:
        store = open_store(env["SIDECAR_DATABASE_URL"])
        await store.open()
        try:
            now = time.time()
            node = NodeRecord(node_id, "worker", address, 10, 1, now, now, False)
            await store.heartbeat(node, now)
            lease = await store.lease(session_id)
            if lease is not None:
                assert await store.release_lease(session_id, lease.node_id, lease.token)
            assert await store.acquire_lease(session_id, node_id, now, 60.0) is not None
        finally:
            await store.close()

    asyncio.run(write())


def test_the_api_answers_503_for_a_session_no_worker_can_serve(
    api: Sidecar, cluster_env: dict[str, str]
) -> None:
    created = api.api.post("/api/sessions", json={"workspace_id": "acme", "session_id": "c1"})
    assert created.status_code == 201, created.text
    # No worker yet: the session waits to be placed, and says so.
    assert created.json()["status"] == "initializing"
    assert api.api.get("/api/sessions/c1/qr").json()["error"]["code"] == "no_qr"
    restart = api.api.post("/api/sessions/c1/restart", json={})
    assert restart.status_code == 503
    assert restart.json()["error"]["code"] == "session_unassigned"
    # The Laravel kit gives it a class of its own: worth a retry, not a bug.
    (unassigned,) = values(run_kit(api.base, call("restartSession", sessionId="c1")), False)
    assert (unassigned["class"], unassigned["code"], unassigned["status"]) == (
        "UnavailableException",
        "session_unassigned",
        503,
    )
    sent = api.api.post(
        "/api/sessions/c1/messages", json={"to": "5511988880002", "type": "text", "text": "hi"}
    )
    assert sent.status_code == 409 and sent.json()["error"]["code"] == "session_not_connected"

    # A worker holds it but is gone (nothing listens at its address): 503 at once, no hang.
    put_owner(cluster_env, "c1", f"http://127.0.0.1:{free_port()}")
    stop = api.api.post("/api/sessions/c1/stop", json={})
    assert stop.status_code == 503, stop.text
    error = stop.json()["error"]
    assert error["code"] == "worker_unavailable" and error["details"]["node_id"] == "w-gone"

    # A worker that refuses the api's signature (another internal secret, a clock far off):
    # not the client's fault, so not its 401 either.
    with python_receiver() as refusing:
        refusing.status = 401
        put_owner(cluster_env, "c1", refusing.url.removesuffix("/hook"), "w-refusing")
        logout = api.api.post("/api/sessions/c1/logout", json={})
        assert logout.status_code == 502, logout.text
        assert logout.json()["error"]["code"] == "worker_error"
        (refused,) = values(run_kit(api.base, call("logoutSession", sessionId="c1")), False)
        assert (refused["class"], refused["status"]) == ("UnavailableException", 502)
        assert refusing.requests[0]["path"] == "/internal/sessions/c1/logout"
        # A 409 whose code this api does not know (a worker of another version): nothing a
        # client could look up, so it is the worker's error, not a made-up 409.
        refusing.status = 409
        refusing.answer = {"error": {"code": "brand_new", "message": "?", "details": {}}}
        unknown = api.api.post("/api/sessions/c1/pairing-code", json={"phone": "5511999990009"})
        assert unknown.status_code == 502, unknown.text
        assert unknown.json()["error"]["code"] == "worker_error"

        # A page operation of a session not connected is refused here, as its worker would;
        # once connected it reaches the worker as `call` with its name and arguments, its
        # value comes back, and so does its 504 (the worker's page did not answer in time).
        calls = len(refusing.requests)
        early = api.api.get("/api/sessions/c1/contacts/+5511988880002/about")
        assert early.status_code == 409, early.text
        assert early.json()["error"]["details"] == {"status": "initializing"}
        assert len(refusing.requests) == calls
        mark_connected(cluster_env, "c1")
        refusing.status, refusing.answer = 200, {"value": "Available"}
        about = api.api.get("/api/sessions/c1/contacts/+5511988880002/about")
        assert about.json() == {"contact_id": "+5511988880002", "about": "Available"}
        forwarded = refusing.requests[-1]
        assert forwarded["path"] == "/internal/sessions/c1/call"
        assert (forwarded["json"]["op"], forwarded["json"]["args"]) == (
            "contacts.about",
            {"id": "5511988880002@c.us"},
        )
        refusing.status = 504
        refusing.answer = {"error": {"code": "page_timeout", "message": "slow", "details": {}}}
        slow = api.api.post("/api/sessions/c1/contacts/check", json={"phones": ["5511988880002"]})
        assert slow.status_code == 504, slow.text
        assert slow.json()["error"]["code"] == "page_timeout"

        # A group's subject: changed on the worker's page, and its group_updated written by
        # the api role that answered.
        refusing.status, refusing.answer = 200, {"value": True}
        gid = "120363000000000001@g.us"
        renamed = api.api.put(f"/api/sessions/c1/groups/{gid}/subject", json={"subject": "R"})
        assert renamed.json() == {"group_id": gid, "subject": "R"}, renamed.text
        forwarded = refusing.requests[-1]
        assert (forwarded["json"]["op"], forwarded["json"]["args"]) == (
            "groups.subject",
            {"id": gid, "subject": "R"},
        )
        (updated,) = api.events("c1", "group_updated")
        assert updated["data"] == {"group_id": gid, "subject": "R"}


def test_a_workers_port_answers_only_signed_internal_calls(
    tmp_path: Path, cluster_env: dict[str, str]
) -> None:
    worker = Sidecar(
        tmp_path / "storage",
        SIDECAR_ROLE="worker",
        SIDECAR_NODE_ID="w1",
        CHROMIUM_PATH="/nonexistent/chromium",
        **cluster_env,
    ).start()
    try:
        base = worker.base
        assert httpx.get(f"{base}/health").status_code == 200
        # The public API is not served here.
        assert httpx.get(f"{base}/api/sessions").status_code == 404
        unsigned = httpx.post(f"{base}/internal/claim", json={})
        assert unsigned.status_code == 401
        # Signed with the API secret instead of the internal one: refused.
        wrong = httpx.post(
            f"{base}/internal/claim",
            json={},
            auth=SidecarAuth(base_env(tmp_path)["SIDECAR_API_SECRET"]),
        )
        assert wrong.status_code == 401
        right = httpx.post(
            f"{base}/internal/claim", json={"nonce": "1"}, auth=SidecarAuth(INTERNAL)
        )
        assert right.status_code == 200, right.text
        # A session this worker does not hold: 503 session_unassigned, so the api retries.
        other = httpx.post(
            f"{base}/internal/sessions/nope/qr", json={"nonce": "2"}, auth=SidecarAuth(INTERNAL)
        )
        assert other.status_code == 503 and other.json()["error"]["code"] == "session_unassigned"
        bad = httpx.post(
            f"{base}/internal/sessions/a..b/qr", json={"nonce": "3"}, auth=SidecarAuth(INTERNAL)
        )
        assert bad.status_code == 422
    finally:
        worker.close()


def test_each_role_builds_only_its_part(cluster_env: dict[str, str]) -> None:
    from service.app import create_app

    def build(**env: str) -> Any:
        return create_app(Settings.from_mapping({**cluster_env, **env})).state

    api = build(SIDECAR_ROLE="api")
    assert api.dispatcher is not None and api.runtime is None and api.messenger is not None
    assert build(SIDECAR_ROLE="api", SIDECAR_API_DISPATCH="false").dispatcher is None
    dispatcher = build(SIDECAR_ROLE="dispatcher")
    assert dispatcher.dispatcher is not None and dispatcher.messenger is None
    worker = build(SIDECAR_ROLE="worker", SIDECAR_NODE_ID="w9")
    assert worker.dispatcher is None and worker.runtime is not None
    assert worker.node.node_id == "w9" and worker.node.role == "worker"
