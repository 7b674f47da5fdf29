"""The two commands: ./scripts/run starts a server that answers /health."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import httpx

from tests.conftest import base_env
from tests.support.server import ROOT, free_port, wait_http


def test_scripts_run_serves_health(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, **base_env(tmp_path / "storage"), "SIDECAR_PORT": str(port)}
    proc = subprocess.Popen(
        [str(ROOT / "scripts" / "run")],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/health", timeout=600, proc=proc)
        response = httpx.get(f"http://127.0.0.1:{port}/health")
        assert response.status_code == 200
        assert response.json()["status"] == "ok"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        assert proc.stderr is not None
        proc.stderr.close()


def test_ci_runs_the_test_script() -> None:
    assert "scripts/test" in (ROOT / ".ci" / "run").read_text()
