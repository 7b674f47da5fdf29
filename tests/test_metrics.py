"""The Prometheus text: read at scrape time from a real store, every series labelled with the
node that exports it."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from service.metrics import Metrics
from service.store import (
    AppendedEvent,
    NewEvent,
    NodeRecord,
    SessionRecord,
    SqlStore,
    open_store,
)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqlStore]:
    store = open_store(str(tmp_path / "s.sqlite3"))
    await store.open()
    await store.create_session(SessionRecord("s1", "w", status="connected"))
    yield store
    await store.close()


def samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [
        (sample.name, sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def sent(metrics: Metrics) -> None:
    data = {"provider": "webjs", "status": "sent"}
    metrics.on_events([AppendedEvent("e", "w", "s1", NewEvent("message_status_updated", data))])


async def test_every_series_carries_the_node_and_the_node_info_its_role(
    store: SqlStore,
) -> None:
    metrics = Metrics(node="worker-1", role="worker")
    sent(metrics)
    text = (await metrics.render(store)).decode()
    assert 'wa_sidecar_node_info{node="worker-1",role="worker"} 1.0' in text.splitlines()
    assert 'wa_sessions{node="worker-1",status="connected"} 1.0' in text.splitlines()
    parsed = samples(text)
    names = {name for name, _, _ in parsed}
    assert {"wa_sidecar_info", "wa_sessions", "wa_messages_total", "wa_webhook_dead"} <= names
    assert all(labels.get("node") == "worker-1" for _, labels, _ in parsed)
    assert (
        "wa_messages_total",
        {"node": "worker-1", "provider": "webjs", "status": "sent"},
        1.0,
    ) in parsed
    # Collecting again labels afresh: the registry's own series are left as they were.
    assert (await metrics.render(store)).decode() == text


async def test_without_a_node_the_series_carry_no_node_label(store: SqlStore) -> None:
    metrics = Metrics()
    text = (await metrics.render(store)).decode()
    assert 'wa_sidecar_node_info{node="",role="all"} 1.0' in text.splitlines()
    assert 'wa_sessions{status="connected"} 1.0' in text.splitlines()
    assert all(
        "node" not in labels for name, labels, _ in samples(text) if name != "wa_sidecar_node_info"
    )


async def test_a_cluster_node_exports_every_nodes_heartbeat_age(store: SqlStore) -> None:
    now = time.time()
    await store.heartbeat(NodeRecord("w1", "worker"), now - 100)
    await store.heartbeat(NodeRecord("w2", "worker", draining=True), now - 500)
    await store.heartbeat(NodeRecord("api-1", "api"), now)
    text = (await Metrics(node="api-1", role="api").render(store)).decode()
    ages = {
        (labels["member"], labels["role"], labels["draining"]): value
        for name, labels, value in samples(text)
        if name == "wa_cluster_heartbeat_age_seconds"
    }
    assert set(ages) == {
        ("w1", "worker", "false"),
        ("w2", "worker", "true"),
        ("api-1", "api", "false"),
    }
    assert 100 <= ages[("w1", "worker", "false")] < 400
    assert ages[("w2", "worker", "true")] >= 500
    assert ages[("api-1", "api", "false")] < 100


async def test_the_single_service_exports_no_heartbeat_series(store: SqlStore) -> None:
    await store.heartbeat(NodeRecord("w1", "worker"), time.time())
    text = (await Metrics().render(store)).decode()
    # The family is declared (dashboards find it) but holds no series outside a cluster.
    assert "# TYPE wa_cluster_heartbeat_age_seconds gauge" in text.splitlines()
    assert not [s for s in samples(text) if s[0] == "wa_cluster_heartbeat_age_seconds"]
