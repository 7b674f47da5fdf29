"""`python -m service keygen` and `sign`: what an operator pastes by hand."""

from __future__ import annotations

import base64
import json
import shlex
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from service.secretbox import parse_key
from service.settings import Settings
from tests.conftest import base_env
from tests.support.sandbox import sandbox_process
from tests.support.server import ROOT, free_port, service_process
from tests.support.sidecar import Sidecar


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


# curl without any proxy a developer's environment may name: the service is on 127.0.0.1.
CURL_ENV = {"PATH": "/usr/bin:/bin", "NO_PROXY": "*"}


def run_shell(line: str) -> subprocess.CompletedProcess[bytes]:
    """The printed command line, run by a shell as a person pasting it would."""
    return subprocess.run(
        ["bash", "-c", line], capture_output=True, timeout=60, check=False, env=CURL_ENV
    )


def split_answer(output: bytes) -> tuple[str, dict[str, str], bytes]:
    """curl -i's output: the status line, the headers (lower-case names), the body."""
    head, _, body = output.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines)
    return status, {k.lower(): v for k, v in headers.items()}, body


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

        # The line itself, run by a shell, is a signed request the service accepts; what
        # follows `--` goes to curl as given, before the URL, quoted so no shell runs it.
        marker = tmp_path / "pwned"
        note = f"X-Note: it's $(touch {marker}) `touch {marker}`"
        line = run_cli(
            "sign",
            "POST",
            "/api/sessions",
            '{"workspace_id":"cli","session_id":"quoted","start":false}',
            "--",
            "-i",
            "-H",
            note,
            env={**env, "SIDECAR_PORT": str(port)},
        )
        assert shlex.split(line)[-4:-1] == ["-i", "-H", note]
        status, headers, body = split_answer(run_shell(line).stdout)
    assert status == "HTTP/1.1 201 Created"
    assert headers["content-type"] == "application/json"
    assert json.loads(body)["session_id"] == "quoted"
    assert not marker.exists()


@pytest.mark.browser
def test_sign_fetches_the_qr_png_with_an_accept_header(tmp_path: Path) -> None:
    with sandbox_process() as phone:
        car = Sidecar(tmp_path / "storage", WA_WEB_URL=phone.base + "/").start()
        try:
            env = {**car.env, "PYTHONPATH": str(ROOT)}
            create = run_cli(
                "sign",
                "POST",
                "/api/sessions",
                '{"workspace_id":"cli","session_id":"png"}',
                env=env,
            )
            assert json.loads(run_shell(create).stdout)["session_id"] == "png"
            car.wait_status("png", "qr_required")
            line = run_cli(
                "sign",
                "GET",
                "/api/sessions/png/qr",
                "--",
                "-i",
                "-H",
                "Accept: image/png",
                env=env,
            )
            status, headers, body = split_answer(run_shell(line).stdout)
        finally:
            car.close()
    assert status == "HTTP/1.1 200 OK"
    assert headers["content-type"] == "image/png"
    assert body.startswith(b"\x89PNG\r\n\x1a\n")
