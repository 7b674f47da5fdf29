"""`python -m service cluster status` and `python -m service drain NODE`, run as processes
against a real store (SQLite file and MariaDB) that ClusterNodes in the test share."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from service.cluster import ClusterNode
from service.store import NodeRecord, SessionRecord, SqlStore
from tests.conftest import base_env
from tests.support.server import ROOT
from tests.support.stores import opened_stores

TTL = 600  # the CLI's lease ttl: far from any heartbeat age here


def cli_env(storage: Path, url: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SIDECAR_", "WA_"))}
    settings = base_env(storage, SIDECAR_DATABASE_URL=url, SIDECAR_LEASE_TTL=str(TTL))
    return clean | settings


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[SqlStore]:
    async for opener in opened_stores(db_url):
        yield await opener()


@pytest.fixture
def env(tmp_path: Path, db_url: str) -> dict[str, str]:
    return cli_env(tmp_path / "storage", db_url)


async def seed(store: SqlStore, count: int) -> None:
    for i in range(count):
        await store.create_session(SessionRecord(f"s{i}", "ws", desired_state="running"))


def table(output: str) -> dict[str, dict[str, str]]:
    """The status table's rows by node id, cells by column name."""
    lines = output.splitlines()
    header = lines[0].split()
    rows: dict[str, dict[str, str]] = {}
    for line in lines[1:]:
        if not line.strip():
            break
        cells = line.split()
        cells[4:6] = [" ".join(cells[4:6])]  # "2.0s ago"
        rows[cells[0]] = dict(zip(header, cells, strict=True))
    return rows


async def test_status_shows_nodes_leases_and_sessions_no_lease_covers(
    store: SqlStore, env: dict[str, str]
) -> None:
    await seed(store, 5)
    now = time.time()
    await store.heartbeat(NodeRecord("w1", "worker", "http://10.0.0.1:9001", 50, 9), now)
    await store.heartbeat(NodeRecord("w2", "worker", None, 40), now - 3600)
    await store.heartbeat(NodeRecord("api-1", "api"), now)
    assert await store.request_drain("api-1")
    for session_id in ("s0", "s1"):
        await store.acquire_lease(session_id, "w1", now, TTL)
    await store.acquire_lease("s2", "w2", now - 3600, TTL)  # expired with its node
    done = run_cli(env, "cluster", "status")
    assert done.returncode == 0, done.stderr
    rows = table(done.stdout)
    assert list(rows) == ["api-1", "w1", "w2"]
    assert rows["w1"] == {
        "node": "w1",
        "role": "worker",
        "live": "yes",
        "draining": "no",
        "heartbeat": rows["w1"]["heartbeat"],
        "sessions": "2/50",  # live leases, not the 9 its heartbeat said
        "address": "http://10.0.0.1:9001",
    }
    assert rows["w1"]["heartbeat"].endswith("s ago")
    assert (rows["w2"]["live"], rows["w2"]["sessions"], rows["w2"]["heartbeat"]) == (
        "no",
        "0/40",
        "60m ago",
    )
    assert (rows["api-1"]["live"], rows["api-1"]["draining"]) == ("no", "yes")
    assert "1 of 3 nodes live (lease ttl 600s)" in done.stdout
    assert "running sessions with no live lease: 3 (s2, s3, s4)" in done.stdout
    as_json = run_cli(env, "cluster", "status", "--json")
    assert as_json.returncode == 0, as_json.stderr
    body = json.loads(as_json.stdout)
    assert body["lease_ttl"] == TTL and body["unplaced"] == ["s2", "s3", "s4"]
    w1 = next(node for node in body["nodes"] if node["node_id"] == "w1")
    assert (w1["sessions"], w1["reported_sessions"], w1["live"]) == (2, 9, True)
    assert w1["heartbeat_at"].endswith("Z")


async def test_status_of_a_single_host_and_of_no_store(
    store: SqlStore, env: dict[str, str], tmp_path: Path
) -> None:
    await seed(store, 2)
    done = run_cli(env, "cluster", "status")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("no node has sent a heartbeat")
    assert json.loads(run_cli(env, "cluster", "status", "--json").stdout)["nodes"] == []
    missing = tmp_path / "nowhere" / "s.sqlite3"
    absent = run_cli(cli_env(tmp_path / "storage", str(missing)), "cluster", "status")
    assert absent.returncode == 2 and len(absent.stderr.splitlines()) == 1
    assert "does not exist yet" in absent.stderr and not missing.exists()


async def test_drain_of_an_unknown_node_is_one_line_and_exit_2(
    store: SqlStore, env: dict[str, str]
) -> None:
    await store.heartbeat(NodeRecord("w1", "worker", capacity=5), time.time())
    done = run_cli(env, "drain", "w9")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == [
        "wa-sidecar drain: no node 'w9' in the store (see `cluster status`)"
    ]
    assert not (await store.list_nodes())[0].draining


async def test_drain_waits_until_the_node_gave_every_session_up(
    store: SqlStore, env: dict[str, str]
) -> None:
    await seed(store, 3)
    w1, w2 = (ClusterNode(store, name, capacity=10, ttl=15.0) for name in ("w1", "w2"))
    await w1.beat()
    assert len(await w1.claim()) == 3
    await w2.beat()
    command = [sys.executable, "-m", "service", "drain", "w1", "--timeout", "120"]
    with subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stdout is not None
        lines = [proc.stdout.readline().strip(), proc.stdout.readline().strip()]
        assert lines == ["w1: drain requested", "w1: 3 sessions still held"]
        # The node's next round hears of it, closes its sessions and gives them up.
        await w1.tick()
        assert w1.draining and w1.owned == {}
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert out.splitlines() == ["w1: drained, it holds no session"]
    await w2.tick()
    assert sorted(w2.owned) == ["s0", "s1", "s2"]


async def test_drain_that_does_not_finish_in_time_exits_1_and_no_wait_returns_at_once(
    store: SqlStore, env: dict[str, str]
) -> None:
    await seed(store, 2)
    w1 = ClusterNode(store, "w1", capacity=10, ttl=15.0)
    await w1.beat()
    await w1.claim()
    # w1 never runs another round here: its two sessions stay held.
    late = run_cli(env, "drain", "w1", "--timeout", "0.2")
    assert late.returncode == 1
    assert late.stdout.splitlines() == ["w1: drain requested", "w1: 2 sessions still held"]
    assert late.stderr.splitlines() == [
        "wa-sidecar drain: w1 still holds 2 sessions after 0.2s "
        "(it keeps draining; run again to wait more)"
    ]
    assert (await store.list_nodes())[0].draining  # the request stays
    quick = run_cli(env, "drain", "w1", "--no-wait")
    assert quick.returncode == 0 and quick.stdout.splitlines() == ["w1: drain requested"]
    bad = run_cli(env, "drain", "w1", "--timeout", "soon")
    assert bad.returncode == 2 and "--timeout" in bad.stderr
