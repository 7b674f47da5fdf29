"""supervisord as sysadmins run it: RUNNING, restarted after a kill -9, nothing left on stop."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import API_SECRET, base_env
from tests.support.sandbox import Phone, eventually
from tests.support.server import ROOT, free_port, wait_http
from tests.support.sidecar import chromium_processes, stored
from tests.support.signing import SidecarAuth

pytestmark = pytest.mark.browser

BIN = ROOT / ".venv" / "bin"


class Supervisor:
    def __init__(self, conf: Path, env: dict[str, str]) -> None:
        self.conf = conf
        self.env = env

    def ctl(self, *args: str) -> str:
        result = subprocess.run(
            [str(BIN / "supervisorctl"), "-c", str(self.conf), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        return result.stdout

    def status(self) -> dict[str, str]:
        rows = [line.split() for line in self.ctl("status").splitlines() if line.strip()]
        return {row[0]: row[1] for row in rows if len(row) > 1}

    def pid(self, program: str) -> int:
        out = self.ctl("pid", program).strip()
        return int(out) if out.isdigit() else 0


@pytest.fixture
def supervisor(tmp_path: Path) -> Iterator[tuple[Supervisor, str, Phone, Path]]:
    storage = tmp_path / "storage"
    (storage / "logs").mkdir(parents=True)
    # A temp copy of the real file: only where it keeps its state moves to the temp dir.
    text = (ROOT / "supervisord.conf").read_text()
    text = text.replace("%(here)s/storage", str(storage)).replace("%(here)s", str(ROOT))
    conf = tmp_path / "supervisord.conf"
    conf.write_text(text)
    port, sandbox_port = free_port(), free_port()
    env = {
        **os.environ,
        **base_env(storage),
        "SIDECAR_PORT": str(port),
        "SIDECAR_SANDBOX_PORT": str(sandbox_port),
        "SIDECAR_SANDBOX_AUTOSTART": "true",
        "WA_WEB_URL": f"http://127.0.0.1:{sandbox_port}/",
    }
    proc = subprocess.Popen(
        [str(BIN / "supervisord"), "-n", "-c", str(conf)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{base}/health", timeout=120, proc=proc)
        wait_http(f"http://127.0.0.1:{sandbox_port}/control/devices", timeout=60, proc=proc)
        yield Supervisor(conf, env), base, Phone(f"http://127.0.0.1:{sandbox_port}"), storage
    finally:
        subprocess.run(
            [str(BIN / "supervisorctl"), "-c", str(conf), "shutdown"],
            env=env,
            capture_output=True,
            timeout=180,
        )
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        for leftover in chromium_processes(storage):
            leftover.kill()


def test_supervised_sidecar_survives_kill_9_and_stops_clean(
    supervisor: tuple[Supervisor, str, Phone, Path],
) -> None:
    sv, base, phone, storage = supervisor
    eventually(
        lambda: sv.status() == {"sandbox": "RUNNING", "sidecar": "RUNNING"},
        30,
        "both programs RUNNING in supervisorctl status",
    )
    api = httpx.Client(base_url=base, auth=SidecarAuth(API_SECRET), timeout=60)

    def status() -> str:
        try:
            return str(api.get("/api/sessions/sv1").json()["status"])
        except (httpx.HTTPError, KeyError, ValueError):
            return "unreachable"

    assert (
        api.post("/api/sessions", json={"workspace_id": "ops", "session_id": "sv1"}).status_code
        == 201
    )
    eventually(lambda: status() == "qr_required", 60, "a QR")
    assert (
        phone.scan(api.get("/api/sessions/sv1/qr").json()["qr"], "5511999990009").status_code == 200
    )
    eventually(lambda: status() == "connected", 60, "connected")

    first = sv.pid("sidecar")
    assert first > 0
    os.kill(first, signal.SIGKILL)
    eventually(
        lambda: sv.pid("sidecar") not in (0, first) and sv.status().get("sidecar") == "RUNNING",
        120,
        "supervisord to restart the sidecar",
    )
    eventually(lambda: status() == "connected", 120, "the session back, connected, by itself")
    assert api.get("/api/sessions/sv1").json()["phone_number"] == "5511999990009"
    assert chromium_processes(storage), "the restored session runs a browser"

    assert "stopped" in sv.ctl("stop", "sidecar").lower()
    assert sv.status()["sidecar"] == "STOPPED"
    eventually(lambda: chromium_processes(storage) == [], 30, "no Chromium after stop")
    # A stop is no crash: the session stays wanted and connected for the next start, and
    # the stop told Laravel nothing (no browser_restart).
    record, events = stored(storage, "sv1")
    assert record is not None and (record.desired_state, record.status) == ("running", "connected")
    last = [e["data"] for e in events if e["event"] == "session_status_changed"][-1]
    assert last["status"] == "connected", last
    api.close()


def test_a_restart_of_the_whole_stack_keeps_the_login(
    supervisor: tuple[Supervisor, str, Phone, Path],
) -> None:
    """The sandbox keeps its links in storage/sandbox/state.json: after a restart of both
    programs the session is back, connected, with no new QR."""
    sv, base, phone, storage = supervisor
    api = httpx.Client(base_url=base, auth=SidecarAuth(API_SECRET), timeout=60)

    def status() -> str:
        try:
            return str(api.get("/api/sessions/st1").json()["status"])
        except (httpx.HTTPError, KeyError, ValueError):
            return "unreachable"

    def events(name: str) -> list[dict[str, object]]:
        try:
            rows = api.get(
                "/api/webhooks/deliveries", params={"session_id": "st1", "limit": "1000"}
            ).json()["data"]
        except (httpx.HTTPError, KeyError, ValueError):
            return []
        return [r["payload"]["data"] for r in rows if r["payload"]["event"] == name]

    created = api.post("/api/sessions", json={"workspace_id": "ops", "session_id": "st1"})
    assert created.status_code == 201, created.text
    eventually(lambda: status() == "qr_required", 60, "a QR")
    assert (
        phone.scan(api.get("/api/sessions/st1/qr").json()["qr"], "5511999990010").status_code == 200
    )
    eventually(lambda: status() == "connected", 60, "connected")
    qr_codes = len(events("qr_code_generated"))
    statuses = len(events("session_status_changed"))
    pids = (sv.pid("sandbox"), sv.pid("sidecar"))

    sv.ctl("restart", "all")
    eventually(
        lambda: (
            0 not in (sv.pid("sandbox"), sv.pid("sidecar"))
            and pids[0] != sv.pid("sandbox")
            and pids[1] != sv.pid("sidecar")
        ),
        120,
        "both programs restarted",
    )
    after = eventually(
        lambda: (
            (s := events("session_status_changed")[statuses:])
            and s[-1]["status"] == "connected"
            and s
        ),
        120,
        "the session restored, connected",
    )
    assert "qr_required" not in [s["status"] for s in after]
    assert len(events("qr_code_generated")) == qr_codes
    assert api.get("/api/sessions/st1").json()["phone_number"] == "5511999990010"
    api.close()

    # Both stopped cleanly: supervisord reports no program killed by its signal.
    log = (storage / "logs" / "supervisord.log").read_text()
    assert "stopped: sandbox (exit status 0)" in log
    assert "terminated by" not in log
