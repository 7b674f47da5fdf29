"""wa-sidecar benchmarks on the sandbox (BENCHMARKS.md). Everything talks to 127.0.0.1 only
and every scenario is bounded in time. Every scenario runs on each store engine: SQLite (the
file under the storage dir) and MariaDB (a private mariadbd in a temporary directory, started
for the run and stopped at its end; never the system service).

    ./scripts/bench                  the full run (a few minutes per engine), table + JSON
    ./scripts/bench --quick          a short smoke run (what the test suite executes)
    ./scripts/bench --engine sqlite  one engine only (sqlite, mariadb or both, the default)
    ./scripts/bench --json F         also write the results to F
    ./scripts/bench --campaign       only send_accept, alone and under a 10,000-recipient
                                     campaign (one session; with --quick, 300)

The bench reads the store only through the Store interface (`open_store` with the URL and
table prefix the service itself uses), never the database file or tables behind its back.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import psutil  # noqa: E402

from service.settings import Settings  # noqa: E402
from service.signing import sign_request  # noqa: E402
from service.store import Store, open_store  # noqa: E402
from tests.conftest import API_SECRET, WEBHOOK_SECRET  # noqa: E402
from tests.support.mariadb import PrivateMariaDB  # noqa: E402
from tests.support.receivers import python_receiver  # noqa: E402
from tests.support.sandbox import Phone, sandbox_process  # noqa: E402
from tests.support.server import free_port, wait_http  # noqa: E402
from tests.support.sidecar import Sidecar, chromium_processes  # noqa: E402


@dataclass
class Plan:
    qr_sessions: int
    accept_clients: int
    accept_per_client: int
    throughput_sessions: int
    throughput_per_session: int
    webhook_events: int
    memory_levels: tuple[int, ...]
    deadline: float  # seconds any single wait may take
    campaign_recipients: int = 10_000


FULL = Plan(10, 50, 20, 10, 300, 5000, (1, 5, 10, 20), 180.0)
QUICK = Plan(2, 10, 5, 2, 20, 300, (1, 2), 60.0, campaign_recipients=300)

ENGINES = ("sqlite", "mariadb")
# The order scenarios run in, and the rows of the table.
SCENARIOS = (
    "webhook_rate",
    "qr_ready",
    "memory",
    "send_accept",
    "campaign",
    "throughput",
    "recovery",
)
# Values that describe a scenario rather than measure it: no mariadb/sqlite ratio for them.
SETUP_KEYS = {"n", "clients", "sessions", "messages", "events", "failed", "recipients", "session"}


@dataclass
class Results:
    engine: str
    scenarios: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(self, name: str, **values: Any) -> None:
        self.scenarios[name] = values
        shown = ", ".join(f"{k}={fmt(v)}" for k, v in values.items())
        print(f"  [{self.engine}] {name:<14} {shown}", flush=True)


def fmt(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def wait_until(check: Callable[[], bool], deadline: float, what: str) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if check():
            return
        time.sleep(0.05)
    raise TimeoutError(f"benchmark gave up waiting for {what}")


def tree_pss(pid: int) -> int:
    total = 0
    try:
        procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    for proc in procs:
        try:
            total += proc.memory_full_info().pss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total


class StoreProbe:
    """The sidecar's store, read through the Store interface as the service opens it: its
    SIDECAR_DATABASE_URL (or the SQLite file under its storage) and its table prefix.

    The store's coroutines run on a loop of our own in a background thread, so the bench's
    synchronous code (and its own `asyncio.run`s) can call them from anywhere.
    """

    def __init__(self, car: Sidecar) -> None:
        settings = Settings.from_env(car.env, env_file=ROOT / ".env")
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="store-probe")
        self.thread.daemon = True
        self.thread.start()
        self.store: Store = open_store(settings.store_url, settings.db_prefix, pool_size=2)
        self.call(self.store.open())

    def call(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=60)

    def messages(self, sessions: Iterable[str], status: str) -> int:
        return sum(self.call(self.store.count_messages(sid, status)) for sid in sessions)

    def any_messages(self, sessions: Iterable[str], statuses: Iterable[str]) -> bool:
        """Whether any of `sessions` has a message in one of `statuses` (stops at the first)."""
        return any(
            self.call(self.store.count_messages(sid, status)) > 0
            for status in statuses
            for sid in sessions
        )

    def sessions(self, status: str) -> int:
        return len(self.call(self.store.list_sessions(status=status)))

    def close(self) -> None:
        try:
            self.call(self.store.close())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=10)
            self.loop.close()


def connect(car: Sidecar, phone: Phone, session_id: str, number: str, deadline: float) -> None:
    response = car.api.post(
        "/api/sessions", json={"workspace_id": "bench", "session_id": session_id}
    )
    response.raise_for_status()
    car.wait_status(session_id, "qr_required", timeout=deadline)
    qr = car.api.get(f"/api/sessions/{session_id}/qr").json()["qr"]
    phone.scan(qr, number).raise_for_status()
    car.wait_status(session_id, "connected", timeout=deadline)


# Scenarios ---------------------------------------------------------------------------------


def qr_ready(car: Sidecar, receiver: Any, plan: Plan, results: Results) -> None:
    """create -> the first qr_code_generated delivered to a local receiver, cold sessions."""
    latencies = []
    for i in range(plan.qr_sessions):
        sid = f"qr{i}"
        t0 = time.monotonic()
        car.api.post(
            "/api/sessions", json={"workspace_id": "bench", "session_id": sid}
        ).raise_for_status()
        wait_until(
            lambda sid=sid: any(
                r["json"].get("session_id") == sid and r["json"].get("event") == "qr_code_generated"
                for r in list(receiver.requests)
            ),
            plan.deadline,
            f"the QR webhook of {sid}",
        )
        latencies.append(time.monotonic() - t0)
        car.api.delete(f"/api/sessions/{sid}")
    results.add(
        "qr_ready",
        n=len(latencies),
        p50_s=pct(latencies, 0.5),
        p95_s=pct(latencies, 0.95),
        budget_s=1.5,
    )


def send_accept(car: Sidecar, plan: Plan, results: Results) -> None:
    """p50/p99 of signed send requests, `accept_clients` concurrent clients."""
    latencies = accept_latencies(car.base, plan.accept_clients, plan.accept_per_client, ["t0"])
    results.add(
        "send_accept",
        n=len(latencies),
        clients=plan.accept_clients,
        p50_ms=pct(latencies, 0.5) * 1000,
        p99_ms=pct(latencies, 0.99) * 1000,
        budget_p99_ms=20.0,
    )


def campaign(car: Sidecar, plan: Plan, results: Results, session_id: str) -> None:
    """send_accept again (to t0) while a campaign of `campaign_recipients` runs on another
    session (its sends go through the same store, at up to 6,000/min with pacing off): a
    campaign must not slow the API. On t0 itself it would mostly wait, as it should: its
    `bulk` sends go behind the accepted ones. Also how long creating it and reading its
    progress take."""
    count = plan.campaign_recipients
    body = {
        "name": "bench",
        "message": {"type": "text", "text": "Hello {{name}}"},
        "recipients": [
            {"to": f"55117{i:08d}", "variables": {"name": f"r{i}"}} for i in range(count)
        ],
        "rate": {"per_minute": 6000, "jitter": 0.2},
    }
    t0 = time.perf_counter()
    created = car.api.post(f"/api/sessions/{session_id}/campaigns", json=body)
    create_s = time.perf_counter() - t0
    assert created.status_code == 201, created.text
    path = f"/api/sessions/{session_id}/campaigns/{created.json()['id']}"

    def sent() -> int:
        return int(car.api.get(path).json()["counts"]["sent"])

    wait_until(lambda: sent() >= 10, plan.deadline, "the campaign to be sending")
    before = sent()
    latencies = accept_latencies(
        car.base, plan.accept_clients, plan.accept_per_client, ["t0"], tag="campaign"
    )
    t1 = time.perf_counter()
    during = sent() - before
    progress_s = time.perf_counter() - t1
    # Paused, not cancelled: its send in flight is sent, so nothing of it counts as failed
    # in the scenarios after this one, and it has nothing left in the queue.
    car.api.post(f"{path}/pause").raise_for_status()
    wait_until(
        lambda: (c := car.api.get(path).json()["counts"])["queued"] + c["sending"] == 0,
        plan.deadline,
        "the paused campaign to settle",
    )
    results.add(
        "campaign",
        session=session_id,
        recipients=count,
        create_s=create_s,
        progress_get_ms=progress_s * 1000,
        sent_while_measured=during,
        n=len(latencies),
        clients=plan.accept_clients,
        p50_ms=pct(latencies, 0.5) * 1000,
        p99_ms=pct(latencies, 0.99) * 1000,
        budget_p99_ms=20.0,
    )


def accept_latencies(
    base: str,
    clients: int,
    per_client: int,
    sessions: list[str],
    tag: str = "accept",
    errors: list[str] | None = None,
) -> list[float]:
    """Seconds each signed `POST .../messages` took to come back 202: `clients` concurrent
    clients, `per_client` requests each, client c sending to sessions[c % len(sessions)].
    With `errors`, a request that fails at the transport is noted there instead of raised."""

    async def run() -> list[float]:
        latencies: list[float] = []
        limits = httpx.Limits(max_connections=clients)
        async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:

            async def one_client(c: int) -> None:
                path = f"/api/sessions/{sessions[c % len(sessions)]}/messages"
                for i in range(per_client):
                    body = json.dumps(
                        {
                            "to": "5511988880002",
                            "type": "text",
                            "text": f"a{c}-{i}",
                            "idempotency_key": f"{tag}-{c}-{i}",
                        }
                    ).encode()
                    ts = str(int(time.time()))
                    headers = {
                        "X-Timestamp": ts,
                        "Content-Type": "application/json",
                        "X-HMAC-Signature": sign_request(API_SECRET, ts, "POST", path, body),
                    }
                    t0 = time.perf_counter()
                    try:
                        response = await client.post(path, content=body, headers=headers)
                    except httpx.TransportError as exc:
                        if errors is None:
                            raise
                        errors.append(type(exc).__name__)
                        continue
                    latencies.append(time.perf_counter() - t0)
                    assert response.status_code == 202, response.text

            await asyncio.gather(*(one_client(c) for c in range(clients)))
        return latencies

    return asyncio.run(run())


def throughput(
    car: Sidecar, probe: StoreProbe, plan: Plan, results: Results, sessions: list[str]
) -> None:
    """Sustained msg/min across sessions, pacing off, until every message is sent (acked).

    Outbound messages only ever go to these sessions (send_accept's go to t0, the first), so
    "sent" means none of them is still `queued` or `sending`; what send_accept left queued
    must settle too, as before."""
    total = plan.throughput_per_session * len(sessions)
    t0 = time.monotonic()

    feed(car, sessions, plan.throughput_per_session, "tp")
    # Every message is in the store once its 202 came back: wait for none to be unsent.
    wait_until(
        lambda: not probe.any_messages(sessions, ("queued", "sending")),
        plan.deadline * 3,
        "every message sent",
    )
    elapsed = time.monotonic() - t0
    results.add(
        "throughput",
        sessions=len(sessions),
        messages=total,
        seconds=elapsed,
        msg_per_min=round(total / elapsed * 60),
        failed=probe.messages(sessions, "failed"),
        budget_msg_per_min=6000,
    )


def feed(car: Sidecar, sessions: list[str], per_session: int, tag: str) -> None:
    """Queue `per_session` messages on each of `sessions`, one thread per session, each
    request answered (202) before the next; returns once every one was accepted."""

    def one(sid: str) -> None:
        with httpx.Client(base_url=car.base, auth=car.api.auth, timeout=60) as client:
            for i in range(per_session):
                client.post(
                    f"/api/sessions/{sid}/messages",
                    json={
                        "to": "5511988880002",
                        "type": "text",
                        "text": f"{sid}-{i}",
                        "idempotency_key": f"{tag}-{sid}-{i}",
                    },
                ).raise_for_status()

    threads = [threading.Thread(target=one, args=(sid,)) for sid in sessions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def memory(
    car: Sidecar, phone: Phone, plan: Plan, results: Results, db: PrivateMariaDB | None
) -> list[str]:
    """PSS of the sidecar + Chromium at each level of connected sessions (and, on MariaDB,
    of the database server, which is not in the sidecar's process tree)."""
    assert car.proc is not None
    levels: dict[int, float] = {}
    connected: list[str] = []
    for level in plan.memory_levels:
        while len(connected) < level:
            sid = f"t{len(connected)}"
            connect(car, phone, sid, f"55119{len(connected):08d}", plan.deadline)
            connected.append(sid)
        time.sleep(5 if plan is FULL else 2)  # let pages settle after their logins
        levels[level] = tree_pss(car.proc.pid) / 2**20
    lo, hi = min(levels), max(levels)
    marginal = (levels[hi] - levels[lo]) / (hi - lo) if hi > lo else float("nan")
    extra = {}
    if db is not None and db.pid is not None:
        extra["mariadbd_pss_mb"] = round(tree_pss(db.pid) / 2**20)
    results.add(
        "memory",
        **{f"pss_mb_at_{k}": round(v) for k, v in levels.items()},
        marginal_mb=round(marginal, 1),
        **extra,
        budget_marginal_mb=120,
    )
    return connected


def recovery(
    car: Sidecar, probe: StoreProbe, plan: Plan, results: Results, sessions: list[str]
) -> None:
    """kill -9 of the service with sessions connected -> seconds until all are connected."""
    car.kill9()
    t0 = time.monotonic()
    car.start()
    wait_until(
        lambda: probe.sessions("connected") >= len(sessions),
        plan.deadline * 2,
        "every session connected again",
    )
    results.add("recovery", sessions=len(sessions), seconds=time.monotonic() - t0, budget_s=30.0)


def webhook_rate(plan: Plan, results: Results, store_url: str) -> None:
    """Events/s from the outbox to a receiver in its own process (the dispatcher alone)."""
    with receiver_process() as base:
        rate, count = asyncio.run(_dispatch(plan, store_url, base))
    results.add("webhook_rate", events=count, events_per_s=round(rate), budget_per_s=1000)


async def _dispatch(plan: Plan, store_url: str, base: str) -> tuple[float, int]:
    from service.store import NewEvent, SessionRecord
    from webhooks.dispatcher import Dispatcher

    store = open_store(store_url)
    await store.open()
    sessions = 50
    for s in range(sessions):
        await store.create_session(SessionRecord(session_id=f"w{s}", workspace_id="bench"))
        events = [NewEvent("bench_event", {"n": i}) for i in range(plan.webhook_events // sessions)]
        await store.update_session(f"w{s}", {}, events)
    total = sessions * (plan.webhook_events // sessions)
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=100)) as client:
        dispatcher = Dispatcher(
            store, client, secret=WEBHOOK_SECRET, default_url=f"{base}/hook", concurrency=32
        )
        t0 = time.monotonic()
        await dispatcher.start()
        end = t0 + plan.deadline
        while dispatcher.delivered < total and time.monotonic() < end:
            await asyncio.sleep(0.05)
        elapsed = time.monotonic() - t0
        await dispatcher.stop(drain=0)
    await store.close()
    return dispatcher.delivered / elapsed, dispatcher.delivered


@contextmanager
def receiver_process() -> Iterator[str]:
    """The receiver of `serve_receiver` in a process of its own; yields its base URL
    (webhooks go to `{base}/hook`, `{base}/count` tells what arrived)."""
    port = free_port()
    receiver = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--serve-receiver", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/count", proc=receiver)
        yield f"http://127.0.0.1:{port}"
    finally:
        receiver.terminate()
        receiver.wait(timeout=10)


def serve_receiver(port: int) -> None:
    """A minimal webhook receiver in its own process (so it does not share our GIL).

    `/count` answers how many requests came, when the first and the last came (epoch
    seconds), and, for events whose data carries a number `n` counting up from 0 in each
    session, how many arrived again (`duplicates`) or out of their session's order."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    count = duplicates = out_of_order = 0
    first = last = 0.0
    arrived: dict[str, set[int]] = {}  # session -> the numbers that came

    async def hook(request: Request) -> Response:
        nonlocal count, duplicates, out_of_order, first, last
        body = json.loads(await request.body())
        last = time.time()
        first = first or last
        count += 1
        n = body.get("data", {}).get("n") if isinstance(body.get("data"), dict) else None
        if isinstance(n, int):
            session = str(body.get("session_id"))
            seen = arrived.setdefault(session, set())
            if n in seen:
                duplicates += 1
            elif n != len(seen):  # n != 0, 1, 2, ... in the order they were appended
                out_of_order += 1
            seen.add(n)
        return Response(b"{}", media_type="application/json")

    async def counter(request: Request) -> Response:
        return JSONResponse(
            {
                "count": count,
                "duplicates": duplicates,
                "out_of_order": out_of_order,
                "first": first,
                "last": last,
            }
        )

    app = Starlette(routes=[Route("/hook", hook, methods=["POST"]), Route("/count", counter)])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


# Main -------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    chromium = subprocess.run(["/usr/bin/chromium", "--version"], capture_output=True, text=True)
    return {
        "cpus": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "chromium": chromium.stdout.strip(),
    }


def single_service(storage: Path, phone: Phone, webhook_url: str, database_url: str) -> Sidecar:
    """The single process (role all) the bench measures, pacing off, not started yet."""
    return Sidecar(
        storage,
        WA_WEB_URL=phone.base + "/",
        SIDECAR_PACING="off",
        SIDECAR_WEBHOOK_URL=webhook_url,
        SIDECAR_DATABASE_URL=database_url,
        MAX_SESSIONS="100",
        SIDECAR_LOG_LEVEL="warning",
    )


def run_engine(
    engine: str, plan: Plan, tmp: Path, db: PrivateMariaDB | None, only_campaign: bool = False
) -> Results:
    """Every scenario on one engine, with a sandbox, a receiver and a sidecar of its own
    (`only_campaign`: one session, send_accept, then send_accept under a campaign)."""
    results = Results(engine)
    tmp.mkdir(parents=True)
    if db is None:
        webhook_url = str(tmp / "webhooks.sqlite3")
        sidecar_url = ""  # the SQLite file under the sidecar's storage
    else:
        webhook_url = db.fresh_database("bench_webhooks")
        sidecar_url = db.fresh_database("bench_sidecar")
    if only_campaign:
        plan = dataclasses.replace(plan, memory_levels=(2,))
    else:
        webhook_rate(plan, results, webhook_url)
    with (
        sandbox_process(qr_interval=20, qr_max_rotations=50) as phone,
        python_receiver() as receiver,
    ):
        car = single_service(tmp / "storage", phone, receiver.url, sidecar_url)
        probe: StoreProbe | None = None
        try:
            car.start()
            probe = StoreProbe(car)
            if not only_campaign:
                qr_ready(car, receiver, plan, results)
            sessions = memory(car, phone, plan, results, db)
            send_accept(car, plan, results)
            campaign(car, plan, results, sessions[-1])
            if only_campaign:
                return results
            throughput(car, probe, plan, results, sessions[: plan.throughput_sessions])
            recovery(car, probe, plan, results, sessions)
        finally:
            if probe is not None:
                probe.close()
            car.close()
            for proc in chromium_processes(tmp / "storage"):
                proc.kill()
    return results


def run(plan: Plan, engines: tuple[str, ...], only_campaign: bool = False) -> dict[str, Any]:
    """{engine: {scenario: values}} for each engine, plus `ratio` (mariadb/sqlite of every
    measured value, when both ran) and `_run` (the machine, the mode, durations)."""
    report: dict[str, Any] = {}
    info: dict[str, Any] = {"mode": "quick" if plan is QUICK else "full", "engines": list(engines)}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="wa-bench-") as tmpdir:
        tmp = Path(tmpdir)
        db: PrivateMariaDB | None = None
        try:
            for engine in engines:
                if engine == "mariadb" and db is None:
                    db = PrivateMariaDB(tmp / "mariadbd").start()
                    info["mariadb_start_s"] = round(db.timings["total"], 1)
                    info["mariadb"] = subprocess.run(
                        [db.server_binary, "--version"], capture_output=True, text=True
                    ).stdout.strip()
                    print(f"  private mariadbd on 127.0.0.1:{db.port} (pid {db.pid})", flush=True)
                t0 = time.monotonic()
                server = db if engine == "mariadb" else None
                results = run_engine(engine, plan, tmp / f"run-{engine}", server, only_campaign)
                report[engine] = results.scenarios
                info[f"seconds_{engine}"] = round(time.monotonic() - t0, 1)
        finally:
            if db is not None:
                db.stop()
    if all(engine in report for engine in ENGINES):
        report["ratio"] = ratios(report["sqlite"], report["mariadb"])
    info["seconds"] = round(time.monotonic() - started, 1)
    report["_run"] = info | machine()
    return report


def measured(key: str) -> bool:
    return key not in SETUP_KEYS and not key.startswith("budget_")


def ratios(sqlite: dict[str, Any], mariadb: dict[str, Any]) -> dict[str, Any]:
    """mariadb / sqlite for every measured number both engines have."""
    out: dict[str, Any] = {}
    for scenario, values in mariadb.items():
        for key, value in values.items():
            base = sqlite.get(scenario, {}).get(key)
            if not measured(key) or not isinstance(value, int | float):
                continue
            if isinstance(base, int | float) and base:
                out.setdefault(scenario, {})[key] = round(value / base, 2)
    return out


def table(report: dict[str, Any]) -> str:
    """Scenarios (one row per measured value) by engines, plus mariadb/sqlite when both ran."""
    engines = [e for e in ENGINES if e in report]
    header = ["scenario", "value", *engines]
    if "ratio" in report:
        header.append("mariadb/sqlite")
    rows = [header]
    for scenario in SCENARIOS:
        keys: list[str] = []
        for engine in engines:
            keys += [k for k in report[engine].get(scenario, {}) if measured(k) and k not in keys]
        for key in keys:
            row = [scenario, key]
            row += [cell(report[e].get(scenario, {}).get(key)) for e in engines]
            if "ratio" in report:
                ratio = report["ratio"].get(scenario, {}).get(key)
                row.append("" if ratio is None else f"{ratio:.2f}x")
            rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = []
    for n, row in enumerate(rows):
        pairs = enumerate(zip(row, widths, strict=True))
        cells = [c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in pairs]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3f}" if value < 10 else f"{value:,.1f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument(
        "--engine",
        choices=[*ENGINES, "both"],
        default="both",
        help="the store engine(s) to run every scenario on (default: both)",
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--campaign",
        action="store_true",
        help="only send_accept, alone and while a campaign runs (one session)",
    )
    parser.add_argument("--serve-receiver", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_receiver:
        serve_receiver(args.serve_receiver)
        return 0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    plan = QUICK if args.quick else FULL
    engines = ENGINES if args.engine == "both" else (args.engine,)
    print(
        f"wa-sidecar benchmarks ({'quick' if args.quick else 'full'}) on "
        f"{' and '.join(engines)}, on 127.0.0.1 only",
        flush=True,
    )
    emit(run(plan, engines, args.campaign), table, args.json)
    return 0


def emit(report: dict[str, Any], table: Callable[[dict[str, Any]], str], path: Path | None) -> None:
    """Print the report as a table, then as JSON; also write the JSON to `path` if given."""
    text = json.dumps(report, indent=2)
    print()
    print(table(report))
    print()
    print(text)
    if path:
        path.write_text(text + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
