"""A cluster as separate processes on one machine: an api process and named session workers
sharing one MySQL/MariaDB store and one storage directory (for the process tests and
scripts/bench_cluster_processes.py)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.support.mariadb import PrivateMariaDB
from tests.support.receivers import Receiver, python_receiver
from tests.support.sandbox import Phone
from tests.support.sidecar import Sidecar

INTERNAL_SECRET = "internal-" + "c" * 40


class Cluster:
    """An api process and named workers sharing `url` and `storage`; `env` is added to
    every process's environment (a worker's own on top, in `add_worker`)."""

    def __init__(
        self, storage: Path, url: str, phone: Phone, webhook_url: str, ttl: int = 6, **env: str
    ) -> None:
        self.storage = storage
        self.url = url
        self.env = {
            "SIDECAR_DATABASE_URL": url,
            "SIDECAR_INTERNAL_SECRET": INTERNAL_SECRET,
            "SIDECAR_LEASE_TTL": str(ttl),
            "WA_WEB_URL": phone.base + "/",
            "SIDECAR_WEBHOOK_URL": webhook_url,
            "SIDECAR_PACING": "off",
            **env,
        }
        self.api = Sidecar(storage, SIDECAR_ROLE="api", SIDECAR_NODE_ID="api-1", **self.env)
        self.workers: dict[str, Sidecar] = {}

    def start(self, *workers: str) -> Cluster:
        self.api.start()
        for name in workers:
            self.add_worker(name)
        return self

    def add_worker(self, name: str, role: str = "worker", **env: str) -> Sidecar:
        """Start a process of `role` (a worker, or a dispatcher) named `name`."""
        worker = Sidecar(
            self.storage, **{**self.env, "SIDECAR_ROLE": role, "SIDECAR_NODE_ID": name, **env}
        )
        self.workers[name] = worker.start()
        return worker

    def close(self) -> None:
        live = [w for w in self.workers.values() if w.proc is not None and w.proc.poll() is None]
        for worker in live:
            with_signal(worker, signal.SIGCONT)
        # Every worker is told at once: stopped one by one, each would first hand its
        # sessions to the next, which would launch their browsers only to stop them again.
        for worker in live:
            with_signal(worker, signal.SIGTERM)
        for worker in live:
            assert worker.proc is not None
            worker.proc.wait(timeout=90)
            worker.proc = None
        for worker in self.workers.values():
            worker.close()
        self.api.close()

    def query(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        conn = self.server.connect(self.database)
        try:
            with conn.cursor() as cur:
                cur.execute(sql, args)
                return list(cur.fetchall())
        finally:
            conn.close()

    def owners(self) -> dict[str, str]:
        """Session id -> node holding its live lease."""
        rows = self.query(
            "SELECT session_id, node_id FROM wa_leases WHERE expires_at > %s", time.time()
        )
        return {str(s): str(n) for s, n in rows}

    def session(self, session_id: str) -> dict[str, Any]:
        return self.api.session(session_id)

    def link(self, session_id: str, number: str) -> None:
        created = self.api.api.post(
            "/api/sessions", json={"workspace_id": "acme", "session_id": session_id}
        )
        assert created.status_code == 201, created.text
        self.api.wait_status(session_id, "qr_required", timeout=90)
        qr = self.api.api.get(f"/api/sessions/{session_id}/qr")
        assert qr.status_code == 200, qr.text
        scan = self.phone_scan(qr.json()["qr"], number)
        assert scan.status_code == 200, scan.text
        self.api.wait_status(session_id, "connected", timeout=90)

    phone_scan: Any = None
    server: PrivateMariaDB
    database: str
    receiver: Receiver


@contextmanager
def running_cluster(
    storage: Path, phone: Phone, server: PrivateMariaDB, name: str, ttl: int = 6, **env: str
) -> Iterator[Cluster]:
    """A Cluster on a fresh database of `server` (named after `name`, the process and the
    clock, so parallel tests never share one), its webhooks to a receiver of its own and its
    scans by `phone`; closed at the end."""
    database = f"{name}_{os.getpid()}_{time.monotonic_ns() % 10**6}"
    url = server.fresh_database(database)
    with python_receiver() as receiver:
        group = Cluster(storage, url, phone, receiver.url, ttl=ttl, **env)
        group.server, group.database = server, database
        group.phone_scan = phone.scan
        group.receiver = receiver
        try:
            yield group
        finally:
            group.close()


def with_signal(worker: Sidecar, signum: int) -> None:
    assert worker.proc is not None
    os.kill(worker.proc.pid, signum)
