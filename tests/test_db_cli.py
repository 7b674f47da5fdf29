"""`python -m service db status|migrate|copy`, the doctor's store check, and a start on a
store that cannot be reached: through the CLI as an operator runs them, on SQLite and MariaDB.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from service.doctor import FAIL, OK, check_database
from service.settings import Settings
from service.store import (
    MessageRecord,
    NewEvent,
    NodeRecord,
    SessionRecord,
    SqlStore,
    open_store,
)
from tests.conftest import base_env
from tests.support.mariadb import PrivateMariaDB
from tests.support.server import ROOT


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SIDECAR_", "WA_"))}
    return subprocess.run(
        [sys.executable, "-m", "service", *args],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def fill(store: SqlStore) -> None:
    """A store as a single host leaves it: sessions, messages in every state, webhooks."""
    await store.open()
    try:
        for n in range(3):
            await store.create_session(
                SessionRecord(session_id=f"s{n}", workspace_id="acme", desired_state="running")
            )
        await store.update_session(
            "s0",
            {"status": "connected", "phone_number": "5511999990001", "last_error": "ok 😀"},
            [NewEvent("session_status_changed", {"status": "connected", "previous": "stopped"})],
        )
        for n in range(5):
            await store.enqueue_message(
                MessageRecord(
                    id=f"msg_{n}",
                    session_id="s0",
                    workspace_id="acme",
                    direction="out",
                    chat_id="5511999990002@c.us",
                    type="text",
                    content=json.dumps({"text": f"olá {n} 🎉"}, ensure_ascii=False),
                    status="queued",
                    idempotency_key=f"k{n}",
                )
            )
        await store.update_message("msg_0", {"status": "sent", "provider": "webjs"})
        await store.first_sighting("a" * 64, 1.0, 10**9)
        await store.heartbeat(NodeRecord("node-1", "worker", "http://10.0.0.1:9000", 100), 1.0)
        await store.acquire_lease("s0", "node-1", 1.0, 10**10)
    finally:
        await store.close()


async def snapshot(store: SqlStore) -> dict[str, object]:
    await store.open()
    try:
        sessions = await store.list_sessions()
        messages = [await store.get_message(f"msg_{n}") for n in range(5)]
        events = await store.list_events(limit=1000)
        replay = await store.first_sighting("a" * 64, 2.0, 10)
        return {
            "sessions": sessions,
            "messages": messages,
            "events": events,
            "replay": replay,
            "nodes": await store.list_nodes(),
            "leases": await store.leases(),
        }
    finally:
        await store.close()


def test_status_and_migrate_on_a_fresh_sqlite_file(tmp_path: Path) -> None:
    env = base_env(tmp_path / "storage")
    (tmp_path / "storage").mkdir()
    before = run_cli("db", "status", **env)
    assert before.returncode == 1, before.stderr
    assert "does not exist yet" in before.stdout
    # Looking created nothing.
    assert not (tmp_path / "storage" / "sidecar.sqlite3").exists()
    migrated = run_cli("db", "migrate", **env)
    assert migrated.returncode == 0, migrated.stderr
    assert "empty ->" in migrated.stdout
    after = run_cli("db", "status", **env)
    assert after.returncode == 0, after.stdout + after.stderr
    assert "sqlite" in after.stdout and "'wa_'" in after.stdout
    again = run_cli("db", "migrate", **env)
    assert "already at" in again.stdout


def test_copy_moves_a_sqlite_store_onto_mariadb_whole(
    tmp_path: Path, mariadb_server: PrivateMariaDB
) -> None:
    source_path = tmp_path / "storage" / "sidecar.sqlite3"
    asyncio.run(fill(open_store(str(source_path))))
    target = mariadb_server.fresh_database("copy_target")
    env = base_env(tmp_path / "storage")
    result = run_cli("db", "copy", "--to", target, **env)
    assert result.returncode == 0, result.stderr
    assert "3 sessions" in result.stdout and "5 messages" in result.stdout
    # The password never shows in what the operator sees.
    assert mariadb_server.password not in result.stdout + result.stderr

    copied = asyncio.run(snapshot(open_store(target)))
    original = asyncio.run(snapshot(open_store(str(source_path))))
    assert copied["sessions"] == original["sessions"]
    assert copied["messages"] == original["messages"]
    assert copied["events"] == original["events"]
    # The cluster's nodes and leases (tokens included) came along too.
    assert copied["nodes"] == original["nodes"] != []
    assert copied["leases"] == original["leases"] != []
    # A signature seen before the move is still a replay after it.
    assert copied["replay"] is False

    async def next_message_after_copy() -> tuple[int, bool]:
        store = open_store(target)
        await store.open()
        try:
            record, created = await store.enqueue_message(
                MessageRecord(
                    id="msg_new",
                    session_id="s1",
                    workspace_id="acme",
                    direction="out",
                    chat_id="5511999990002@c.us",
                    type="text",
                    content="{}",
                    status="queued",
                    idempotency_key="k1",
                )
            )
            return record.seq, created
        finally:
            await store.close()

    # Idempotency keys came along: the same key answers with the copied message.
    seq, created = asyncio.run(next_message_after_copy())
    assert created is False and seq == original["messages"][1].seq  # type: ignore[index]

    again = run_cli("db", "copy", "--to", target, **env)
    assert again.returncode == 2
    assert "already holds rows" in again.stderr and len(again.stderr.strip().splitlines()) == 1


def test_doctor_reads_the_store_through_its_interface(
    tmp_path: Path, mariadb_server: PrivateMariaDB
) -> None:
    url = mariadb_server.fresh_database("doctor")
    settings = Settings.from_mapping(base_env(tmp_path / "storage", SIDECAR_DATABASE_URL=url))
    empty = check_database(settings)
    assert empty.status == OK and "empty" in empty.detail and "mariadb" in empty.detail
    asyncio.run(fill(open_store(url)))
    filled = check_database(settings)
    assert filled.status == OK and "3 sessions" in filled.detail, filled.detail
    assert mariadb_server.password not in filled.detail


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("postgres://u:p@127.0.0.1/db", "unsupported scheme"),
        ("mysql+pymysql://u:secret-pw@127.0.0.1:1/db", "127.0.0.1"),
    ],
)
def test_a_store_that_cannot_be_used_stops_the_start_with_one_line(
    tmp_path: Path, url: str, words: str
) -> None:
    env = base_env(tmp_path / "storage", SIDECAR_DATABASE_URL=url, SIDECAR_PORT="1")
    result = run_cli("serve", **env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], result.stderr
    assert "secret-pw" not in result.stderr
    doctor = check_database(Settings.from_mapping(env))
    assert doctor.status == FAIL and "secret-pw" not in doctor.detail


@pytest.mark.browser
def test_a_host_moved_onto_mariadb_comes_back_connected_without_a_new_qr(
    tmp_path: Path, mariadb_server: PrivateMariaDB
) -> None:
    """The whole move: a connected session on SQLite, stop, `db copy`, start on MariaDB."""
    from tests.support.sandbox import sandbox_process
    from tests.support.sidecar import Sidecar
    from tests.test_sessions_runtime import PHONE, connect, create

    storage = tmp_path / "storage"
    target = mariadb_server.fresh_database("moved_host")
    with sandbox_process() as phone:
        car = Sidecar(storage, WA_WEB_URL=phone.base + "/")
        try:
            car.start()
            create(car, "m1")
            connect(car, phone, "m1")
            qr_before = len(car.events("m1", "qr_code_generated"))
            assert qr_before > 0
            assert car.terminate() == 0
            copied = run_cli("db", "copy", "--to", target, **base_env(storage))
            assert copied.returncode == 0, copied.stderr
            car.env["SIDECAR_DATABASE_URL"] = target
            car.start()
            assert car.wait_status("m1", "connected")["phone_number"] == PHONE
            # The same outbox came along, and the restored login needed no new QR.
            assert len(car.events("m1", "qr_code_generated")) == qr_before
            statuses = [e["data"]["status"] for e in car.events("m1", "session_status_changed")]
            assert statuses[-2:] == ["initializing", "connected"]
        finally:
            car.close()


def test_a_copy_of_a_store_that_changes_meanwhile_is_refused(
    tmp_path: Path, mariadb_server: PrivateMariaDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A message accepted while the copy runs would be lost: the copy says so and fails."""
    from service import dbcli

    asyncio.run(fill(open_store(str(tmp_path / "src.sqlite3"))))
    source = open_store(str(tmp_path / "src.sqlite3"))
    target = open_store(mariadb_server.fresh_database("copy_changed"))
    copy_to = SqlStore.copy_to

    async def copy_then_write(self: SqlStore, to: SqlStore, batch: int = 500) -> dict[str, int]:
        copied = await copy_to(self, to, batch)
        await self.update_session("s1", {"last_error": "written during the copy"})
        return copied

    monkeypatch.setattr(SqlStore, "copy_to", copy_then_write)
    with pytest.raises(dbcli.SourceChanged):
        asyncio.run(dbcli._copy(source, target, 500))


async def test_one_service_per_mariadb_store(mariadb_server: PrivateMariaDB) -> None:
    """Until cluster mode, a second service on the same store and prefix is refused."""
    from service.errors import ConfigError

    url = mariadb_server.fresh_database("single_service")
    first, second, other_prefix = open_store(url), open_store(url), open_store(url, "b_")
    await first.open()
    await second.open()
    await other_prefix.open()
    try:
        await first.hold_single_service()
        with pytest.raises(ConfigError, match="already serves"):
            await second.hold_single_service()
        await other_prefix.hold_single_service()
        await first.close()
        await second.hold_single_service()
    finally:
        await first.close()
        await second.close()
        await other_prefix.close()
