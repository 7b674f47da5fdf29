"""The two commands: ./scripts/run runs the service under supervisord and answers /health."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import httpx

from service.stack import running_stack
from tests.conftest import base_env
from tests.support.sandbox import eventually
from tests.support.server import ROOT, free_port, wait_http


def test_scripts_run_sandbox_mode_under_supervisord(tmp_path: Path) -> None:
    port, sandbox_port = free_port(), free_port()
    env = {
        **os.environ,
        **base_env(tmp_path / "storage"),
        "SIDECAR_PORT": str(port),
        "SIDECAR_SANDBOX_PORT": str(sandbox_port),
    }
    output = tmp_path / "run.out"
    with output.open("wb") as out:
        proc = subprocess.Popen(
            [str(ROOT / "scripts" / "run"), "--sandbox"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_http(f"http://127.0.0.1:{port}/health", timeout=600, proc=proc)
        response = httpx.get(f"http://127.0.0.1:{port}/health")
        assert response.status_code == 200
        assert response.json()["status"] == "ok"
        wait_http(f"http://127.0.0.1:{sandbox_port}/control/devices", timeout=60, proc=proc)

        def status() -> str:
            return subprocess.run(
                [
                    str(ROOT / ".venv" / "bin" / "supervisorctl"),
                    "-c",
                    str(ROOT / "supervisord.conf"),
                    "status",
                ],
                capture_output=True,
                text=True,
                env=env,
                timeout=60,
            ).stdout

        eventually(lambda: status().count("RUNNING") == 2, 30, "sidecar and sandbox RUNNING")

        # doctor in another shell, whose environment names some other WA_WEB_URL, checks
        # the one the running stack uses: the sandbox.
        elsewhere = f"http://127.0.0.1:{free_port()}/"
        doctor = subprocess.run(
            [str(ROOT / ".venv" / "bin" / "python"), "-m", "service", "doctor"],
            cwd=ROOT,
            env={**env, "WA_WEB_URL": elsewhere},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert (
            f"and WA_WEB_URL from ./scripts/run --sandbox, running as supervisord pid {proc.pid} "
            "(storage/stack.env)"
        ) in doctor.stdout
        sandbox_url = f"http://127.0.0.1:{sandbox_port}/"
        assert (
            f"whatsapp web     ok: {sandbox_url} (the sandbox of ./scripts/run --sandbox) "
            "answers (HTTP 200)"
        ) in doctor.stdout.splitlines(), doctor.stdout
        # The README's restart: shutdown, then run again at once, while the first is still
        # closing its browsers. The second waits for the first instead of failing.
        ctl = [str(ROOT / ".venv" / "bin" / "supervisorctl"), "-c", str(ROOT / "supervisord.conf")]
        subprocess.run([*ctl, "shutdown"], env=env, capture_output=True, timeout=60, check=True)
        with output.open("ab") as out:
            again = subprocess.Popen(
                [str(ROOT / "scripts" / "run"), "--sandbox"],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            assert proc.wait(timeout=120) == 0
            wait_http(f"http://127.0.0.1:{port}/health", timeout=120, proc=again)
            eventually(lambda: status().count("RUNNING") == 2, 30, "the stack running again")
        finally:
            os.killpg(again.pid, signal.SIGTERM)
            assert again.wait(timeout=120) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            assert proc.wait(timeout=120) == 0
    # Stopped, the stack's record counts for nothing: doctor goes back to the environment.
    assert running_stack(ROOT) is None
    text = output.read_text()
    assert "supervisord already runs here" not in text
    assert "sandbox mode: WhatsApp Web is the local stand-in" in text
    # As root, scripts/run says root is meant, so supervisord has nothing to warn about.
    assert "Supervisor is running as root" not in text
    if os.getuid() == 0:
        assert "Set uid to user 0 succeeded" in text


def test_ci_runs_the_test_script() -> None:
    assert "scripts/test" in (ROOT / ".ci" / "run").read_text()
