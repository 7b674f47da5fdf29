"""The Laravel side of the signing contract, proven with Debian's php-cli on a live server."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.conftest import API_SECRET, base_env
from tests.support.server import free_port, service_process
from tests.support.signing import SidecarAuth

PHP = shutil.which("php")
SCRIPT = Path(__file__).parent / "php" / "create_session.php"

pytestmark = pytest.mark.php


def run_php(*args: str) -> dict[str, object]:
    assert PHP is not None, "php-cli is required (scripts/test installs it)"
    result = subprocess.run(
        [PHP, str(SCRIPT), *args], capture_output=True, text=True, timeout=60, check=True
    )
    output: dict[str, object] = json.loads(result.stdout)
    return output


def test_php_signs_and_creates_a_session(tmp_path: Path) -> None:
    port = free_port()
    with service_process(base_env(tmp_path / "storage"), port):
        base = f"http://127.0.0.1:{port}"
        result = run_php(base, API_SECRET, "acme", "from-php")
        assert result["status"] == 201, result
        body = result["body"]
        assert isinstance(body, dict)
        assert body["session_id"] == "from-php"
        assert body["webhook_url"] == "https://crm.example.test/webhooks/whatsapp?tenant=café"
        # PHP escaped the slashes and the é, so the verified bytes were not Python's JSON.
        sent = str(result["sent"])
        assert "\\/" in sent and "\\u00e9" in sent
        with httpx.Client(base_url=base, auth=SidecarAuth(API_SECRET)) as client:
            assert client.get("/api/sessions/from-php").json()["workspace_id"] == "acme"

        wrong = run_php(base, "not-the-secret", "acme", "nope")
        assert wrong["status"] == 401
        error = wrong["body"]
        assert isinstance(error, dict)
        assert error["error"]["code"] == "invalid_signature"
