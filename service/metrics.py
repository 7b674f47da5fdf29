"""Prometheus metrics: one registry per app, fed by outbox events and a few direct hooks.

Counters that follow events (messages by provider and status, failovers, inbound) are
counted from the store's post-commit listener, so they count exactly what was recorded.
Gauges that describe state (sessions by status, webhook backlog) are read at scrape time.
Every series carries the `node` label of the process that exports it (cluster mode has many),
added when the registry is collected, so no metric has to remember it.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics_core import Metric

from service import __version__
from service.store import SESSION_STATUSES, AppendedEvent, Store

log = logging.getLogger("service.metrics")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class NodeLabelled:
    """A collector of `registry`'s metrics with `node` added to every sample's labels."""

    def __init__(self, registry: CollectorRegistry, node: str) -> None:
        self.registry = registry
        self.node = node

    def collect(self) -> Iterator[Metric]:
        for family in self.registry.collect():
            labelled = copy.copy(family)
            labelled.samples = [
                sample._replace(labels={**sample.labels, "node": self.node})
                for sample in family.samples
            ]
            yield labelled


class Metrics:
    """Every metric the sidecar exports, in its own registry. `node` and `role` are this
    process's in the cluster (SIDECAR_NODE_ID, SIDECAR_ROLE); with no node, the series
    carry no `node` label."""

    def __init__(self, *, node: str = "", role: str = "all") -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.exposed: NodeLabelled | CollectorRegistry = NodeLabelled(r, node) if node else r
        Gauge("wa_sidecar_info", "Build information", ["version"], registry=r).labels(
            __version__
        ).set(1)
        Gauge(
            "wa_sidecar_node_info", "This process in the cluster", ["node", "role"], registry=r
        ).labels(node, role).set(1)
        self.sessions = Gauge("wa_sessions", "Sessions by observed status", ["status"], registry=r)
        self.messages = Counter(
            "wa_messages_total",
            "Outbound message status changes, by provider and status",
            ["provider", "status"],
            registry=r,
        )
        self.received = Counter(
            "wa_messages_received_total",
            "Inbound messages, by provider",
            ["provider"],
            registry=r,
        )
        self.send_seconds = Histogram(
            "wa_send_seconds",
            "Time one send takes at its provider",
            ["provider"],
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=r,
        )
        self.webhook_pending = Gauge(
            "wa_webhook_queue_depth", "Webhook events waiting for delivery", registry=r
        )
        self.webhook_oldest = Gauge(
            "wa_webhook_oldest_pending_seconds",
            "Age of the oldest undelivered webhook event",
            registry=r,
        )
        self.webhook_dead = Gauge("wa_webhook_dead", "Dead webhook deliveries", registry=r)
        self.deliveries = Counter(
            "wa_webhook_deliveries_total",
            "Webhook delivery attempts by result",
            ["result"],
            registry=r,
        )
        self.browser_restarts = Counter(
            "wa_browser_restarts_total", "Browser relaunches by reason", ["reason"], registry=r
        )
        self.failovers = Counter(
            "wa_provider_failovers_total", "Changes of provider", ["from", "to"], registry=r
        )
        self.session_memory = Gauge(
            "wa_session_memory_bytes",
            "PSS of each session's Chromium process tree",
            ["session_id"],
            registry=r,
        )
        # Read from the store at scrape time, in cluster mode only: how long ago each node
        # (`member`, so as not to clash with the exporter's own `node`) last heartbeat.
        self.cluster = bool(node)
        self.heartbeat_age = Gauge(
            "wa_cluster_heartbeat_age_seconds",
            "Seconds since each cluster node's last heartbeat, as the shared store has it",
            ["member", "role", "draining"],
            registry=r,
        )
        self._memory_task: asyncio.Task[None] | None = None
        # The last memory sample (session id -> PSS bytes), for the dashboard's charts.
        self.last_memory: dict[str, int] = {}

    def on_events(self, events: list[AppendedEvent]) -> None:
        """Store listener: count what was just committed."""
        for appended in events:
            data = appended.event.data
            match appended.event.event:
                case "message_status_updated":
                    self.messages.labels(str(data.get("provider")), str(data.get("status"))).inc()
                case "message_received":
                    provider = (data.get("message") or {}).get("provider")
                    self.received.labels(str(provider)).inc()
                case "provider_failover":
                    self.failovers.labels(str(data.get("from")), str(data.get("to"))).inc()
                case "session_status_changed" if data.get("reason") in (
                    "browser_restart",
                    "memory_limit",
                ):
                    self.browser_restarts.labels(str(data["reason"])).inc()

    async def render(self, store: Store) -> bytes:
        """Refresh the gauges read at scrape time, then the exposition text."""
        counts = dict.fromkeys(SESSION_STATUSES, 0)
        for session in await store.list_sessions():
            counts[session.status] = counts.get(session.status, 0) + 1
        for status, count in counts.items():
            self.sessions.labels(status).set(count)
        stats = await store.outbox_stats()
        self.webhook_pending.set(stats["pending"])
        self.webhook_dead.set(stats["dead"])
        oldest = stats["oldest_pending_at"]
        self.webhook_oldest.set(max(time.time() - oldest, 0.0) if oldest else 0.0)
        if self.cluster:
            now = time.time()
            self.heartbeat_age.clear()
            for node in await store.list_nodes():
                draining = "true" if node.draining else "false"
                self.heartbeat_age.labels(node.node_id, node.role, draining).set(
                    max(now - node.heartbeat_at, 0.0)
                )
        return generate_latest(self.exposed)

    def start_memory_sampler(
        self, sample: Callable[[], dict[str, int]], interval: float = 30.0
    ) -> None:
        """Measure sessions' memory in a thread every `interval` s: PSS reads every page
        table, too slow to do per scrape at hundreds of sessions."""

        async def loop() -> None:
            while True:
                try:
                    values = await asyncio.to_thread(sample)
                except Exception:
                    log.exception("memory sampling failed")
                    values = {}
                self.last_memory = dict(values)
                self.session_memory.clear()
                for session_id, pss in values.items():
                    self.session_memory.labels(session_id).set(pss)
                await asyncio.sleep(interval)

        self._memory_task = asyncio.create_task(loop(), name="memory-sampler")

    async def stop(self) -> None:
        if self._memory_task is not None:
            self._memory_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._memory_task
