"""Cluster mode as real processes on this machine: an api process, session workers and
dispatchers over one private MariaDB and one storage dir, driving the sandbox in Chromium.

    ./scripts/bench --cluster                 the full run (about 15 minutes), table + JSON
    ./scripts/bench --cluster --quick         a short smoke run (what the test suite executes)
    ./scripts/bench --cluster --json F        also write the results to F

Scenarios (issue 15, "Performance"):
  accept    p50/p95/p99 of `POST /api/sessions/{id}/messages` (202) from concurrent clients
            while the sessions they send to drain their queues at full speed (pacing off):
            the api role (api + 2 workers) against the single process (role all), both on
            MariaDB. The clients' messages go round-robin to those sessions, whose queues
            were filled first so that every sender is busy from the first request on.
  webhooks  events/s from a backlog appended through the store to a receiver in its own
            process: the api alone, then with 1 and 2 dispatcher processes. The receiver
            counts every event and checks each session's order and that none came twice.
  failover  the sessions of a worker killed with SIGKILL: seconds until every one is
            connected again on the others (lease on a survivor, status connected, written
            after the kill), for each lease ttl; no session needed a new QR.
  memory    PSS of the api, of each worker (Python, the Playwright driver, Chromium) with
            no session and with N each; memory per session and a sessions-per-host estimate.

Everything talks to 127.0.0.1 only, every wait is bounded, and only processes this script
started are stopped (by their pid). The store is read through the Store interface only.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(ROOT / "scripts"))

import httpx  # noqa: E402
import psutil  # noqa: E402
from bench import (  # noqa: E402
    StoreProbe,
    accept_latencies,
    cell,
    connect,
    emit,
    feed,
    fmt,
    machine,
    pct,
    receiver_process,
    single_service,
    tree_pss,
    wait_until,
)

from service.store import NewEvent, SessionRecord  # noqa: E402
from tests.support.cluster import Cluster  # noqa: E402
from tests.support.mariadb import PrivateMariaDB  # noqa: E402
from tests.support.receivers import Receiver, python_receiver  # noqa: E402
from tests.support.sandbox import Phone, sandbox_process  # noqa: E402
from tests.support.sidecar import Sidecar, chromium_processes  # noqa: E402

MB = 2**20
HOST_GIB = 24


@dataclass
class Plan:
    per_worker: int  # connected sessions on each of the 2 workers (memory)
    accept_sessions: int  # sessions sending at full speed during `accept`
    accept_clients: int
    accept_per_client: int
    prefill: int  # messages queued on each sending session before the clients start
    webhook_events: int
    webhook_sessions: int
    dispatchers: tuple[int, ...]  # dispatcher processes next to the api, one run each
    failover_sessions: int
    ttls: tuple[int, ...]
    settle: float  # seconds pages get to settle before a memory sample
    deadline: float  # seconds any single wait may take


FULL = Plan(10, 10, 50, 40, 50, 20_000, 200, (0, 1, 2), 20, (15, 6), 5.0, 180.0)
QUICK = Plan(1, 2, 10, 5, 5, 600, 20, (0, 1), 2, (6,), 1.0, 90.0)

WORKERS = ("w1", "w2")
SENT = ("sent", "delivered", "read", "played", "failed")  # past the sender


def report(section: dict[str, Any], name: str, **values: Any) -> None:
    section[name] = values
    shown = ", ".join(f"{k}={fmt(v)}" for k, v in values.items())
    print(f"  {name:<22} {shown}", flush=True)


class CpuMeter:
    """CPU seconds each named process tree used between `start()` and `stop()`, as a share of
    one core (100 = one core busy). Where the time went when a target is missed."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.before: dict[str, float] = {}
        self.t0 = 0.0

    @staticmethod
    def _cpu(pid: int) -> float:
        try:
            procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            return 0.0
        total = 0.0
        for proc in procs:
            try:
                times = proc.cpu_times()
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            total += times.user + times.system
        return total

    def start(self) -> CpuMeter:
        self.before = {name: self._cpu(pid) for name, pid in self.pids.items()}
        self.t0 = time.monotonic()
        return self

    def stop(self) -> dict[str, float]:
        wall = max(time.monotonic() - self.t0, 1e-6)
        return {
            f"cpu_pct_{name}": round((self._cpu(pid) - self.before[name]) / wall * 100)
            for name, pid in self.pids.items()
        }


def breakdown(pid: int) -> dict[str, float]:
    """PSS in MB of a sidecar's tree: its Python process, Chromium, and the rest (the
    Playwright driver)."""
    parts = {"python": 0, "chromium": 0, "driver": 0}
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return {k: 0.0 for k in parts}
    for proc in procs:
        try:
            pss = proc.memory_full_info().pss
            name = proc.name()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        key = "python" if proc.pid == pid else "chromium" if "chrom" in name else "driver"
        parts[key] += pss
    return {k: v / MB for k, v in parts.items()}


def pid_of(car: Sidecar) -> int:
    assert car.proc is not None
    return car.proc.pid


# Scenarios ---------------------------------------------------------------------------------


def settled_count(probe: StoreProbe, sessions: Iterable[str]) -> int:
    return sum(probe.messages(sessions, status) for status in SENT)


def accept_under_load(
    car: Sidecar, probe: StoreProbe, sessions: list[str], plan: Plan, cpu: dict[str, int]
) -> dict[str, Any]:
    """Accept latency while `sessions` send at full speed; then how fast their queues drain."""
    t_fill = time.monotonic()
    feed(car, sessions, plan.prefill, "pre")
    done_before = settled_count(probe, sessions)
    meter = CpuMeter(cpu).start()
    t0 = time.monotonic()
    errors: list[str] = []
    latencies = accept_latencies(
        car.base, plan.accept_clients, plan.accept_per_client, sessions, "acc", errors
    )
    window = time.monotonic() - t0
    usage = meter.stop()
    done_during = settled_count(probe, sessions) - done_before
    queued_after = probe.messages(sessions, "queued")
    total = len(sessions) * plan.prefill + len(latencies)
    wait_until(
        lambda: not probe.any_messages(sessions, ("queued", "sending")),
        plan.deadline * 2,
        "every message sent",
    )
    drained = time.monotonic() - t_fill
    return {
        "n": len(latencies),
        "transport_errors": len(errors),
        "clients": plan.accept_clients,
        "sessions": len(sessions),
        "p50_ms": pct(latencies, 0.5) * 1000,
        "p95_ms": pct(latencies, 0.95) * 1000,
        "p99_ms": pct(latencies, 0.99) * 1000,
        "max_ms": max(latencies) * 1000,
        "window_s": window,
        # Messages the senders got through while the clients were sending: > 0 and a queue
        # left at the end mean the senders were busy throughout.
        "sent_during_window": done_during,
        "queued_at_window_end": queued_after,
        "messages": total,
        "msg_per_min": round(total / drained * 60),
        "failed": probe.messages(sessions, "failed"),
        **usage,
        "budget_p99_ms": 20.0,
    }


def single_process(
    db: PrivateMariaDB, tmp: Path, phone: Phone, plan: Plan, results: dict[str, Any]
) -> None:
    """The single process (role all) on MariaDB: accept latency under the same load."""
    with python_receiver() as receiver:
        url = db.fresh_database("bench_single")
        car = single_service(tmp / "single" / "storage", phone, receiver.url, url)
        probe: StoreProbe | None = None
        try:
            car.start()
            probe = StoreProbe(car)
            sessions = [f"t{i}" for i in range(plan.accept_sessions)]
            for i, sid in enumerate(sessions):
                connect(car, phone, sid, f"55118{i:08d}", plan.deadline)
            time.sleep(plan.settle)
            pss = tree_pss(pid_of(car)) / MB
            cpu = {"sidecar": pid_of(car), "mariadbd": db.pid or 0}
            values = accept_under_load(car, probe, sessions, plan, cpu)
            report(results["accept"], "single", **values, pss_mb=round(pss))
        finally:
            if probe is not None:
                probe.close()
            car.close()


def cluster_memory_and_accept(
    db: PrivateMariaDB,
    url: str,
    storage: Path,
    phone: Phone,
    receiver: Receiver,
    plan: Plan,
    results: dict[str, Any],
) -> list[str]:
    """api + 2 workers: PSS with no session and with `per_worker` each, then accept latency
    while `accept_sessions` of them send. Returns the sessions, connected and running."""
    cluster = Cluster(storage, url, phone, receiver.url, ttl=15, SIDECAR_LOG_LEVEL="warning")
    cluster.phone_scan = phone.scan
    probe: StoreProbe | None = None
    try:
        cluster.start(*WORKERS)
        probe = StoreProbe(cluster.api)
        time.sleep(plan.settle)
        idle = {name: tree_pss(pid_of(w)) / MB for name, w in cluster.workers.items()}
        sessions = [f"c{i}" for i in range(plan.per_worker * len(WORKERS))]
        for i, sid in enumerate(sessions):
            cluster.link(sid, f"55119{i:08d}")
        time.sleep(plan.settle)
        owners = Counter(lease.node_id for lease in live_leases(probe).values())
        memory(db, cluster, idle, owners, plan, results)
        # The sending sessions, spread over both workers as placement spread them.
        by_worker = {
            name: sorted(s for s, n in live_owners(probe).items() if n == name) for name in WORKERS
        }
        sending = interleave(by_worker.values())[: plan.accept_sessions]
        cpu = {
            "api": pid_of(cluster.api),
            **{n: pid_of(w) for n, w in cluster.workers.items()},
            "mariadbd": db.pid or 0,
        }
        values = accept_under_load(cluster.api, probe, sending, plan, cpu)
        sending_owners = Counter(live_owners(probe)[s] for s in sending)
        report(
            results["accept"],
            "cluster",
            **values,
            sending_per_worker=dict(sorted(sending_owners.items())),
        )
        return sessions
    finally:
        if probe is not None:
            probe.close()
        cluster.close()


def interleave(groups: Iterable[list[str]]) -> list[str]:
    lists = [list(g) for g in groups]
    out: list[str] = []
    for i in range(max((len(g) for g in lists), default=0)):
        out += [g[i] for g in lists if i < len(g)]
    return out


def memory(
    db: PrivateMariaDB,
    cluster: Cluster,
    idle: dict[str, float],
    owners: Counter[str],
    plan: Plan,
    results: dict[str, Any],
) -> None:
    values: dict[str, Any] = {"api_pss_mb": round(tree_pss(pid_of(cluster.api)) / MB)}
    busy: dict[str, float] = {}
    for name, worker in cluster.workers.items():
        parts = breakdown(pid_of(worker))
        busy[name] = sum(parts.values())
        values[f"{name}_sessions"] = owners.get(name, 0)
        values[f"{name}_idle_pss_mb"] = round(idle[name])
        values[f"{name}_pss_mb"] = round(busy[name])
        values |= {f"{name}_{part}_mb": round(mb) for part, mb in parts.items()}
    sessions = sum(owners.values())
    per_session = (sum(busy.values()) - sum(idle.values())) / max(sessions, 1)
    worker_base = sum(idle.values()) / len(idle)
    mariadbd = tree_pss(db.pid) / MB if db.pid else 0.0
    # A host: one api, one mariadbd, and workers of MAX_SESSIONS (50, the default) sessions,
    # each costing its idle PSS once: each session carries 1/50 of a worker's base.
    room = HOST_GIB * 1024 - values["api_pss_mb"] - mariadbd
    per_host = math.floor(room / (per_session + worker_base / 50))
    values |= {
        "sessions": sessions,
        "mariadbd_pss_mb": round(mariadbd),
        "per_session_mb": round(per_session, 1),
        "sessions_per_host_24gib": per_host,
    }
    report(results, "memory", **values)


def live_leases(probe: StoreProbe) -> dict[str, Any]:
    now = time.time()
    return {
        lease.session_id: lease
        for lease in probe.call(probe.store.leases())
        if lease.expires_at > now
    }


def live_owners(probe: StoreProbe) -> dict[str, str]:
    return {sid: lease.node_id for sid, lease in live_leases(probe).items()}


def failover(
    url: str,
    storage: Path,
    phone: Phone,
    receiver: Receiver,
    sessions: list[str],
    ttl: int,
    plan: Plan,
    results: dict[str, Any],
) -> None:
    """All of `sessions` on one worker `wv`, two others beside it with room for them all
    (and too little spare room to take any from `wv` before it dies); kill -9 of `wv`."""
    n = len(sessions)
    cluster = Cluster(storage, url, phone, receiver.url, ttl=ttl, SIDECAR_LOG_LEVEL="warning")
    probe: StoreProbe | None = None
    try:
        cluster.start()
        probe = StoreProbe(cluster.api)
        t_start = time.time()
        # Alone, it takes every session (restored from their profiles).
        cluster.add_worker("wv", MAX_SESSIONS=str(2 * n))
        wait_until(
            lambda: recovered(probe, sessions, {"wv"}, t_start, set()),
            plan.deadline,
            "every session connected on wv",
        )
        restore_s = time.time() - t_start
        # Free slots: wv 2n - n = n, the others n + 1: they differ by less than two, so
        # rebalancing leaves wv alone.
        for name in WORKERS:
            cluster.add_worker(name, MAX_SESSIONS=str(n + 1))
        time.sleep(ttl / 3 + 1)  # a round of each: heartbeat seen, nothing rebalanced
        held = sum(1 for owner in live_owners(probe).values() if owner == "wv")
        qr_before = qr_counts(receiver)
        tokens = {sid: lease.token for sid, lease in live_leases(probe).items()}
        qr_seen: set[str] = set()
        cluster.workers["wv"].kill9()
        t_kill = time.time()
        wait_until(
            lambda: recovered(probe, sessions, set(WORKERS), t_kill, qr_seen),
            plan.deadline,
            "every session connected on the survivors",
        )
        seconds = time.time() - t_kill
        time.sleep(3)  # any QR event the takeover produced reaches the receiver by now
        new_qr = sum((qr_counts(receiver) - qr_before).values())
        leases = live_leases(probe)
        report(
            results["failover"],
            f"ttl_{ttl}",
            sessions=n,
            held_by_victim_at_kill=held,
            ttl_s=ttl,
            seconds=seconds,
            restore_on_one_worker_s=restore_s,
            new_qr_events=new_qr,
            sessions_seen_qr_required=len(qr_seen),
            tokens_grown=sum(1 for s in sessions if leases[s].token > tokens.get(s, 0)),
            per_survivor=dict(sorted(Counter(lease.node_id for lease in leases.values()).items())),
            budget_s=30.0,
        )
    finally:
        if probe is not None:
            probe.close()
        cluster.close()


def recovered(
    probe: StoreProbe, sessions: list[str], nodes: set[str], since: float, qr_seen: set[str]
) -> bool:
    """Every session has a live lease on one of `nodes` and is `connected`, written after
    `since` (a record still saying connected from before a kill does not count)."""
    owners = live_owners(probe)
    records = {r.session_id: r for r in probe.call(probe.store.list_sessions())}
    qr_seen |= {s for s in sessions if records[s].status == "qr_required"}
    return all(
        owners.get(s) in nodes
        and records[s].status == "connected"
        and records[s].updated_at > since
        for s in sessions
    )


def qr_counts(receiver: Receiver) -> Counter[str]:
    return Counter(
        str(e.get("session_id")) for e in receiver.events() if e.get("event") == "qr_code_generated"
    )


def webhook_rate(
    db: PrivateMariaDB,
    tmp: Path,
    phone: Phone,
    dispatchers: int,
    plan: Plan,
    results: dict[str, Any],
) -> None:
    """A backlog appended through the store while the api (and `dispatchers` dispatcher
    processes) run; events/s from the first arrival at the receiver to the last."""
    name = f"api+{dispatchers}" if dispatchers else "api"
    url = db.fresh_database(f"bench_webhooks_{dispatchers}")
    total = plan.webhook_events
    per_session = total // plan.webhook_sessions
    total = per_session * plan.webhook_sessions
    with receiver_process() as base:
        cluster = Cluster(
            tmp / f"webhooks-{dispatchers}" / "storage",
            url,
            phone,
            f"{base}/hook",
            ttl=15,
            SIDECAR_LOG_LEVEL="warning",
        )
        probe: StoreProbe | None = None
        try:
            cluster.start()
            for i in range(dispatchers):
                cluster.add_worker(f"d{i + 1}", role="dispatcher")
            probe = StoreProbe(cluster.api)
            cpu = {
                "api": pid_of(cluster.api),
                **{n: pid_of(w) for n, w in cluster.workers.items()},
                "mariadbd": db.pid or 0,
                "receiver": receiver_pid(),
            }
            meter = CpuMeter(cpu).start()
            t0 = time.time()
            for s in range(plan.webhook_sessions):
                sid = f"h{s}"
                probe.call(probe.store.create_session(SessionRecord(sid, "bench")))
                events = [NewEvent("bench_event", {"n": i}) for i in range(per_session)]
                probe.call(probe.store.update_session(sid, {}, events))
            appended_s = time.time() - t0
            with httpx.Client(base_url=base, timeout=10) as client:

                def arrived() -> dict[str, Any]:
                    counts: dict[str, Any] = client.get("/count").json()
                    return counts

                # Bounded: what arrived by then is reported (received < events), not a crash.
                with contextlib.suppress(TimeoutError):
                    wait_until(lambda: arrived()["count"] >= total, plan.deadline * 2, "events")
                usage = meter.stop()
                time.sleep(1)  # anything delivered twice would arrive by now
                counts = arrived()
        finally:
            if probe is not None:
                probe.close()
            cluster.close()
    span = counts["last"] - counts["first"]
    report(
        results["webhooks"],
        name,
        dispatcher_processes=dispatchers,
        events=total,
        received=counts["count"],
        duplicates=counts["duplicates"],
        out_of_order=counts["out_of_order"],
        append_s=appended_s,
        events_per_s=round((counts["count"] - 1) / span) if span > 0 else 0,
        end_to_end_s=counts["last"] - t0,
        **usage,
        budget_per_s=1000,
    )


def receiver_pid() -> int:
    for child in psutil.Process().children():
        try:
            if "--serve-receiver" in child.cmdline():
                return child.pid
        except psutil.NoSuchProcess:
            continue
    return 0


# Main -------------------------------------------------------------------------------------


def run(plan: Plan, skip: frozenset[str] = frozenset()) -> dict[str, Any]:
    results: dict[str, Any] = {"accept": {}, "webhooks": {}, "failover": {}}
    info: dict[str, Any] = {"mode": "quick" if plan is QUICK else "full"}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="wa-bench-cluster-") as tmpdir:
        tmp = Path(tmpdir)
        storage = tmp / "cluster" / "storage"
        db = PrivateMariaDB(tmp / "mariadbd").start()
        print(f"  private mariadbd on 127.0.0.1:{db.port} (pid {db.pid})", flush=True)
        try:
            with sandbox_process(qr_interval=20, qr_max_rotations=50) as phone:
                for dispatchers in plan.dispatchers if "webhooks" not in skip else ():
                    webhook_rate(db, tmp, phone, dispatchers, plan, results)
                single_process(db, tmp, phone, plan, results)
                url = db.fresh_database("bench_cluster")
                with python_receiver() as receiver:
                    sessions = cluster_memory_and_accept(
                        db, url, storage, phone, receiver, plan, results
                    )
                    for ttl in plan.ttls:
                        failover(
                            url,
                            storage,
                            phone,
                            receiver,
                            sessions[: plan.failover_sessions],
                            ttl,
                            plan,
                            results,
                        )
        finally:
            db.stop()
            for proc in chromium_processes(storage):
                proc.kill()
    info["seconds"] = round(time.monotonic() - started, 1)
    results["_run"] = info | machine()
    return results


def table(results: dict[str, Any]) -> str:
    rows = [("scenario", "run", "value", "")]
    for scenario in ("accept", "webhooks", "failover"):
        for run_name, values in results[scenario].items():
            for key, value in values.items():
                rows.append((scenario, run_name, key, cell(value)))
    for key, value in results.get("memory", {}).items():
        rows.append(("memory", "api+2 workers", key, cell(value)))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = [
        "  ".join(
            c.ljust(w) if i < 3 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--skip", action="append", default=[], choices=["webhooks"], help="leave a scenario out"
    )
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    plan = QUICK if args.quick else FULL
    print(
        f"wa-sidecar cluster benchmarks, real processes ({'quick' if args.quick else 'full'}), "
        "on 127.0.0.1 only",
        flush=True,
    )
    emit(run(plan, frozenset(args.skip)), table, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
