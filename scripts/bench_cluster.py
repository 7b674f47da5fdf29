"""Control-plane benchmark, by simulation: W simulated workers (the real ClusterNode rounds,
lease, placement, heartbeat and failover code; no browsers) hold N sessions on one MariaDB.

    .venv/bin/python scripts/bench_cluster.py                 3,000 sessions, 20 workers, ttl 15 s
    .venv/bin/python scripts/bench_cluster.py --quick         a short smoke run (ttl 6 s)
    .venv/bin/python scripts/bench_cluster.py --sessions 200 --workers 4 --json out.json

A private mariadbd is started in a temporary directory and stopped at the end (never the
system service). Every worker is a ClusterNode with its own SqlStore (pool of 2 connections,
as a separate process would have), all in this one Python process on one event loop: the
workers share this process's CPU (and the GIL), and the host's cores with mariadbd. Each
worker repeats `tick()` every ttl/3 on the real wall clock, like `ClusterNode.run()`.

Phases: (1) cold start, until every running session is owned; (2) steady state: lease
renewals/s, store calls and rows read/s, MariaDB statements/s (SHOW GLOBAL STATUS deltas) and
mariadbd CPU%; (3) one worker stops ticking without releasing (as after kill -9): seconds
until all of its sessions are owned by the others with a grown fencing token; (4) latency of
`ClusterNode.tick()`, p50/p99.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402

from service.cluster import ClusterNode  # noqa: E402
from service.store import SessionRecord, SqlStore  # noqa: E402
from tests.support.mariadb import PrivateMariaDB  # noqa: E402

# Store calls the control plane makes; each is counted (and rows returned, for reads).
COUNTED = (
    "heartbeat",
    "renew_leases",
    "acquire_lease",
    "release_lease",
    "leases",
    "list_nodes",
    "list_sessions",
)
STATUS_KEYS = (
    "Questions",
    "Com_select",
    "Com_update",
    "Com_insert",
    "Com_commit",
    "Rows_read",
    "Rows_sent",
    "Innodb_row_lock_waits",
)


class Stats:
    """Counters shared by every simulated worker; `phase` tags tick latencies."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.rows: Counter[str] = Counter()
        self.ticks: dict[str, list[float]] = {}
        self.tick_errors = 0
        self.phase = "cold"

    def snapshot(self) -> tuple[Counter[str], Counter[str]]:
        return Counter(self.calls), Counter(self.rows)


def count_calls(store: SqlStore, stats: Stats) -> None:
    """Wrap the store's control-plane methods on this instance to count calls and rows."""
    for name in COUNTED:
        original = getattr(store, name)

        def make(name: str = name, original: Any = original) -> Any:
            async def counted(*args: Any, **kwargs: Any) -> Any:
                result = await original(*args, **kwargs)
                stats.calls[name] += 1
                if isinstance(result, list):
                    stats.rows[name] += len(result)
                return result

            return counted

        setattr(store, name, make())


class Worker:
    """One simulated worker: a ClusterNode on its own store, ticking every ttl/3."""

    def __init__(self, node: ClusterNode, stats: Stats) -> None:
        self.node = node
        self.stats = stats
        self.stopped = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def loop(self, offset: float) -> None:
        period = self.node.ttl / 3
        await asyncio.sleep(offset)  # processes do not start in the same millisecond
        while not self.stopped.is_set():
            started = time.perf_counter()
            try:
                await self.node.tick()
            except Exception:
                self.stats.tick_errors += 1
            self.stats.ticks.setdefault(self.stats.phase, []).append(time.perf_counter() - started)
            # Like ClusterNode.run(): sleep ttl/3 after each round; stopping skips the wait.
            try:
                await asyncio.wait_for(self.stopped.wait(), period)
            except TimeoutError:
                pass

    def kill(self) -> None:
        """Stop ticking without releasing anything (the leases run out on their own)."""
        self.stopped.set()


def global_status(db: PrivateMariaDB) -> dict[str, int]:
    with db.admin() as conn, conn.cursor() as cur:
        cur.execute("SHOW GLOBAL STATUS")
        found = {k: int(v) for k, v in cur.fetchall() if k in STATUS_KEYS}
    return {k: found.get(k, 0) for k in STATUS_KEYS}


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def owned_now(workers: list[Worker]) -> dict[str, str]:
    return {s: w.node.node_id for w in workers for s in w.node.owned}


async def wait_until(check: Any, bound: float, step: float = 0.05) -> float | None:
    """Seconds until check() is true, polled every `step`; None past `bound`."""
    started = time.monotonic()
    while time.monotonic() - started < bound:
        if check():
            return time.monotonic() - started
        await asyncio.sleep(step)
    return None


async def run(args: argparse.Namespace, db: PrivateMariaDB) -> dict[str, Any]:
    n, w, ttl = args.sessions, args.workers, args.ttl
    # 20% headroom, and at least enough for the survivors to hold all after losing one.
    capacity = max(math.ceil(n / w * 1.2), math.ceil(n / max(1, w - 1)))
    url = db.fresh_database("cluster_bench")
    stats = Stats()

    # Seed N running sessions over ~200 workspaces through the store.
    seeded = time.monotonic()
    admin_store = SqlStore(url, pool_size=8)
    await admin_store.open()
    workspaces = max(1, min(200, n // 15))
    ids = [f"sess{i:05d}" for i in range(n)]
    for start in range(0, n, 64):
        await asyncio.gather(
            *(
                admin_store.create_session(
                    SessionRecord(sid, f"ws{i % workspaces:03d}", desired_state="running")
                )
                for i, sid in enumerate(ids[start : start + 64], start)
            )
        )
    seed_s = time.monotonic() - seeded

    workers: list[Worker] = []
    for i in range(w):
        store = SqlStore(url, pool_size=2)
        await store.open()
        count_calls(store, stats)
        node = ClusterNode(store, f"w{i:02d}", capacity=capacity, ttl=ttl)
        workers.append(Worker(node, stats))

    mariadbd = psutil.Process(db.pid)
    me = psutil.Process(os.getpid())
    result: dict[str, Any] = {
        "sessions": n,
        "workers": w,
        "ttl_s": ttl,
        "capacity_per_worker": capacity,
        "workspaces": workspaces,
        "seed_s": round(seed_s, 2),
    }
    try:
        # (1) cold start: every worker starts within one tick period.
        rng = random.Random(7)  # noqa: S311 (start jitter, not a secret)
        for worker in workers:
            worker.task = asyncio.create_task(worker.loop(rng.uniform(0, ttl / 3)))
        cold = await wait_until(lambda: len(owned_now(workers)) >= n, args.cold_bound)
        result["cold_start_s"] = cold if cold is not None else float("nan")
        result["cold_start_owned"] = len(owned_now(workers))
        result["cold_start_rounds"] = (cold / (ttl / 3)) if cold is not None else float("nan")
        # Let a round of rebalancing settle before measuring the steady state.
        await asyncio.sleep(ttl / 3)

        # (2) steady state.
        stats.phase = "steady"
        calls0, rows0 = stats.snapshot()
        status0 = global_status(db)
        mariadbd.cpu_percent(None)
        me.cpu_percent(None)
        t0 = time.monotonic()
        await asyncio.sleep(args.steady)
        elapsed = time.monotonic() - t0
        db_cpu = mariadbd.cpu_percent(None)
        py_cpu = me.cpu_percent(None)
        status1 = global_status(db)
        calls1, rows1 = stats.snapshot()
        calls = calls1 - calls0
        rows = rows1 - rows0
        result["steady_s"] = round(elapsed, 2)
        result["lease_renewals_per_s"] = rows["renew_leases"] / elapsed
        result["renew_calls_per_s"] = calls["renew_leases"] / elapsed
        result["store_calls_per_s"] = sum(calls.values()) / elapsed
        result["store_calls_by_kind_per_s"] = {k: round(calls[k] / elapsed, 2) for k in COUNTED}
        result["rows_read_by_workers_per_s"] = (
            rows["leases"] + rows["list_sessions"] + rows["list_nodes"] + rows["renew_leases"]
        ) / elapsed
        result["db_statements_per_s"] = (status1["Questions"] - status0["Questions"]) / elapsed
        for key in STATUS_KEYS[1:]:
            result[f"db_{key.lower()}_per_s"] = (status1[key] - status0[key]) / elapsed
        result["mariadbd_cpu_pct"] = db_cpu
        result["workers_process_cpu_pct"] = py_cpu
        spread = Counter(owned_now(workers).values())
        result["owned_min"] = min(spread.values(), default=0)
        result["owned_max"] = max(spread.values(), default=0)

        # (3) failover: one worker stops ticking, its leases run out, the others take over.
        stats.phase = "failover"
        victim = workers[0]
        lost = dict(victim.node.owned)
        survivors = workers[1:]
        victim.kill()

        def taken_over() -> bool:
            held = {s: lease for x in survivors for s, lease in x.node.owned.items()}
            return all(s in held and held[s].token > lost[s].token for s in lost)

        failover = await wait_until(taken_over, args.failover_bound)
        result["failover_sessions"] = len(lost)
        result["failover_s"] = failover if failover is not None else float("nan")
        result["failover_after_ttl_s"] = failover - ttl if failover is not None else float("nan")
        held = {s: lease for x in survivors for s, lease in x.node.owned.items()}
        result["failover_taken"] = sum(1 for s in lost if s in held)

        # (4) tick latency.
        steady_ticks = stats.ticks.get("steady", [])
        all_ticks = [t for ticks in stats.ticks.values() for t in ticks]
        result["tick_p50_ms"] = pct(steady_ticks, 0.50) * 1000
        result["tick_p99_ms"] = pct(steady_ticks, 0.99) * 1000
        result["tick_max_ms"] = max(all_ticks, default=float("nan")) * 1000
        result["ticks_measured"] = len(steady_ticks)
        result["tick_errors"] = stats.tick_errors
    finally:
        for worker in workers:
            worker.kill()
        for worker in workers:
            if worker.task is not None:
                await worker.task
        for worker in workers:
            await worker.node.store.close()
        await admin_store.close()
    return result


ROWS = (
    ("cold_start_s", "cold start: all sessions owned (s)", 1),
    ("cold_start_rounds", "  in tick periods (ttl/3)", 1),
    ("lease_renewals_per_s", "steady: lease renewals/s", 0),
    ("renew_calls_per_s", "steady: renew calls/s", 1),
    ("store_calls_per_s", "steady: store calls/s (all workers)", 1),
    ("rows_read_by_workers_per_s", "steady: rows read by workers/s", 0),
    ("db_statements_per_s", "steady: MariaDB statements/s (Questions)", 0),
    ("db_com_select_per_s", "  SELECT/s", 0),
    ("db_com_update_per_s", "  UPDATE/s", 0),
    ("db_rows_read_per_s", "  rows read by the server/s", 0),
    ("db_rows_sent_per_s", "  rows sent to clients/s", 0),
    ("mariadbd_cpu_pct", "steady: mariadbd CPU (% of one core)", 0),
    ("workers_process_cpu_pct", "steady: workers process CPU (% of one core)", 0),
    ("failover_sessions", "failover: sessions of the lost worker", 0),
    ("failover_s", "failover: all taken over (s)", 1),
    ("failover_after_ttl_s", "  beyond the ttl (s)", 1),
    ("tick_p50_ms", "tick() p50 (ms, steady)", 1),
    ("tick_p99_ms", "tick() p99 (ms, steady)", 1),
    ("tick_max_ms", "tick() max (ms, any phase)", 1),
)


def table(result: dict[str, Any]) -> str:
    head = (
        f"{result['sessions']} sessions, {result['workers']} workers, ttl {result['ttl_s']:g} s, "
        f"capacity {result['capacity_per_worker']}, {result['workspaces']} workspaces"
    )
    lines = [head, "-" * len(head)]
    for key, label, digits in ROWS:
        value = result.get(key, float("nan"))
        lines.append(f"{label:<44} {value:>12,.{digits}f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=3000)
    parser.add_argument("--workers", type=int, default=20)
    parser.add_argument("--ttl", type=float, default=None, help="lease ttl, s (15; 6 --quick)")
    parser.add_argument("--steady", type=float, default=None, help="s of steady state (30; 5)")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if args.ttl is None:
        args.ttl = 6.0 if args.quick else 15.0
    if args.steady is None:
        args.steady = 5.0 if args.quick else 30.0
    # Bounds on the waits, so a run always ends.
    args.cold_bound = 60.0 if args.quick else 90.0
    args.failover_bound = args.ttl * 4 + 10

    wall = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="wa-cluster-bench-") as tmp:
        db = PrivateMariaDB(Path(tmp)).start()
        try:
            result = asyncio.run(run(args, db))
        finally:
            db.stop()
    result["run_s"] = round(time.monotonic() - wall, 1)
    result["machine"] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "note": "one process for all workers; mariadbd on the same host",
    }
    print(table(result))
    print(f"run took {result['run_s']} s")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
