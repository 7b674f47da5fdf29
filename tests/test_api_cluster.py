"""`GET /api/cluster/nodes`: every node row of the store, its leases counted from the leases
table, liveness judged by the service's lease ttl."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import datetime

import httpx
import pytest

from service.settings import Settings
from service.store import NodeRecord, open_store

TTL = 600  # far from any heartbeat age below, so liveness never depends on the test's speed


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(SIDECAR_LEASE_TTL=str(TTL))


def seconds(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


async def fill(url: str, now: float) -> None:
    """What a cluster leaves in the store: a live worker, one gone silent, one draining, and
    an api node."""
    store = open_store(url)
    await store.open()
    try:
        worker = NodeRecord("w1", "worker", "http://10.0.0.1:9001", 50, 5, now - 100)
        await store.heartbeat(worker, now)
        await store.heartbeat(NodeRecord("w2", "worker", None, 40, 3, now - 7200), now - 3600)
        await store.heartbeat(NodeRecord("w3", "worker", None, 30, 0, now - 50), now)
        assert await store.request_drain("w3")
        await store.heartbeat(NodeRecord("api-1", "api", None, 0, 0, now - 10), now)
        for session_id in ("a", "b"):
            await store.acquire_lease(session_id, "w1", now, TTL)
        await store.acquire_lease("c", "w2", now - 3600, TTL)  # expired with its node
    finally:
        await store.close()


def test_a_single_host_has_no_nodes(api: httpx.Client) -> None:
    response = api.get("/api/cluster/nodes")
    assert response.status_code == 200, response.text
    assert response.json() == {"data": [], "lease_ttl": TTL}


def test_nodes_show_leases_liveness_and_heartbeat_age(
    api: httpx.Client, raw: httpx.Client, settings: Settings
) -> None:
    now = time.time()
    asyncio.run(fill(settings.store_url, now))
    response = api.get("/api/cluster/nodes")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["lease_ttl"] == TTL
    nodes = {node["node_id"]: node for node in body["data"]}
    assert [node["node_id"] for node in body["data"]] == ["api-1", "w1", "w2", "w3"]
    w1 = nodes["w1"]
    assert {k: w1[k] for k in ("role", "address", "capacity", "live", "draining")} == {
        "role": "worker",
        "address": "http://10.0.0.1:9001",
        "capacity": 50,
        "live": True,
        "draining": False,
    }
    # Sessions are the live leases it holds; what its heartbeat said is shown beside them.
    assert (w1["sessions"], w1["reported_sessions"]) == (2, 5)
    assert abs(seconds(w1["heartbeat_at"]) - now) <= 1  # ISO, whole seconds
    assert abs(seconds(w1["started_at"]) - (now - 100)) <= 1
    assert 0 <= w1["heartbeat_age_s"] < TTL
    w2 = nodes["w2"]
    assert (w2["live"], w2["draining"], w2["sessions"]) == (False, False, 0)
    assert w2["heartbeat_age_s"] >= 3600
    assert (nodes["w3"]["live"], nodes["w3"]["draining"]) == (False, True)
    assert (nodes["api-1"]["role"], nodes["api-1"]["live"]) == ("api", True)
    # Signed like the rest of the API.
    assert raw.get("/api/cluster/nodes").status_code == 401


def test_the_document_describes_the_nodes(api: httpx.Client) -> None:
    document = api.get("/openapi.json").json()
    get = document["paths"]["/api/cluster/nodes"]["get"]
    assert {"200", "401", "422"} <= set(get["responses"])
    node = document["components"]["schemas"]["Node"]
    assert {"node_id", "sessions", "heartbeat_age_s", "live", "draining"} <= set(node["required"])
