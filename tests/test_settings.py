"""Settings from the environment and .env, and the refusal to start without secrets."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from service.app import create_app
from service.errors import ConfigError
from service.settings import Settings
from tests.support.server import ROOT


def test_defaults_follow_the_design() -> None:
    s = Settings.from_mapping({})
    assert (s.host, s.port, s.signature_tolerance) == ("127.0.0.1", 3000, 300)
    assert (s.max_sessions, s.max_concurrent_launches) == (50, 2)
    assert s.wa_web_url == "https://web.whatsapp.com"
    assert s.chromium_path == "/usr/bin/chromium"
    assert s.pacing is True and s.broadcast_driver == "none"
    assert s.meta_graph_version == "v25.0"
    assert s.max_body_bytes == 16 * 1024 * 1024


def test_env_wins_over_dotenv(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("SIDECAR_PORT=4000\nMAX_SESSIONS=7\nSIDECAR_API_SECRET=a,b , c\n")
    s = Settings.from_env({"SIDECAR_PORT": "5000"}, env_file=env_file)
    assert s.port == 5000
    assert s.max_sessions == 7
    assert s.api_secrets == ("a", "b", "c")


def test_settings_are_immutable() -> None:
    s = Settings.from_mapping({})
    with pytest.raises(AttributeError):
        s.port = 1  # type: ignore[misc]


def test_secrets_do_not_show_in_repr() -> None:
    s = Settings.from_mapping(
        {"SIDECAR_API_SECRET": "hunter2-api", "SIDECAR_WEBHOOK_SECRET": "hunter2-wh"}
    )
    assert "hunter2" not in repr(s)


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"SIDECAR_PORT": "eighty"}, "SIDECAR_PORT"),
        ({"SIDECAR_PACING": "sometimes"}, "SIDECAR_PACING"),
        ({"BROADCAST_DRIVER": "carrier"}, "BROADCAST_DRIVER"),
        ({"MAX_SESSIONS": "0"}, "MAX_SESSIONS"),
    ],
)
def test_bad_values_are_config_errors(env: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        Settings.from_mapping(env)


@pytest.mark.parametrize("missing", ["SIDECAR_API_SECRET", "SIDECAR_WEBHOOK_SECRET"])
def test_refuses_to_start_without_secrets(tmp_path: Path, missing: str) -> None:
    env = {
        "SIDECAR_API_SECRET": "a",
        "SIDECAR_WEBHOOK_SECRET": "b",
        "SIDECAR_STORAGE_DIR": str(tmp_path),
    }
    del env[missing]
    with pytest.raises(ConfigError, match="keygen"):
        create_app(Settings.from_mapping(env))
    # The real command says it in one line and exits non-zero, from a directory with no .env.
    result = subprocess.run(
        [sys.executable, "-m", "service", "serve"],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert missing in lines[0] and "python -m service keygen" in lines[0]
