"""`python -m service keygen` and `sign`: what an operator pastes by hand."""

from __future__ import annotations

import base64
import shlex
import subprocess
import sys
from pathlib import Path

import httpx

from service.secretbox import parse_key
from service.settings import Settings
from tests.conftest import base_env
from tests.support.server import ROOT, free_port, service_process


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path = ROOT) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "service", *args],
        cwd=cwd,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout


def test_keygen_prints_usable_env_lines(tmp_path: Path) -> None:
    out = run_cli("keygen", cwd=tmp_path)
    env_file = tmp_path / ".env"
    env_file.write_text(out)
    settings = Settings.from_env({}, env_file=env_file)
    assert len(settings.api_secrets) == 1 and len(settings.api_secrets[0]) == 64
    assert len(settings.webhook_secret) == 64
    assert len(parse_key(settings.encryption_key)) == 32
    assert len(base64.b64decode(settings.encryption_key)) == 32
    assert run_cli("keygen", cwd=tmp_path) != out


def test_sign_prints_a_curl_command_that_works(tmp_path: Path) -> None:
    env = base_env(tmp_path / "storage")
    port = free_port()
    with service_process(env, port):
        body = '{"workspace_id":"cli","session_id":"by-hand","start":false}'
        line = run_cli(
            "sign", "POST", "/api/sessions", body, env={**env, "SIDECAR_PORT": str(port)}
        )
        argv = shlex.split(line)
        assert argv[:2] == ["curl", "-sS"]
        headers = dict(argv[i + 1].split(": ", 1) for i, a in enumerate(argv) if a == "-H")
        assert set(headers) == {"X-Timestamp", "X-HMAC-Signature", "Content-Type"}
        assert argv[-1] == f"http://127.0.0.1:{port}/api/sessions"
        data = argv[argv.index("--data-binary") + 1]
        response = httpx.post(argv[-1], content=data.encode(), headers=headers)
        assert response.status_code == 201, response.text
        assert response.json()["session_id"] == "by-hand"
