"""config/supervisord.cluster.conf, read by supervisor's own parser (no process started)."""

from __future__ import annotations

import io
import platform
import shutil
from pathlib import Path
from typing import Any

import pytest
from supervisor.options import ServerOptions

from tests.support.server import ROOT

CONF = ROOT / "config" / "supervisord.cluster.conf"


def project(tmp_path: Path) -> Path:
    """A copy of the file in a project-shaped temp dir (supervisord wants storage/logs)."""
    (tmp_path / "config").mkdir()
    (tmp_path / "storage" / "logs").mkdir(parents=True)
    conf = tmp_path / "config" / CONF.name
    shutil.copy(CONF, conf)
    return conf


def load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **env: str) -> ServerOptions:
    """The file as supervisord reads it with `env` in its environment."""
    conf = project(tmp_path)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    # Read at construction: the ENV_ expansions come from os.environ then.
    options = ServerOptions()
    options.stderr = io.StringIO()
    try:
        options.realize(args=["-c", str(conf)])
    except SystemExit:
        pytest.fail(f"supervisord refuses the file: {options.stderr.getvalue()}")
    return options


def programs(options: ServerOptions) -> dict[str, list[Any]]:
    return {group.name: group.process_configs for group in options.process_group_configs}


def test_one_api_and_the_workers_the_environment_asks_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    options = load(tmp_path, monkeypatch, SIDECAR_WORKERS="3", SIDECAR_API_AUTOSTART="true")
    found = programs(options)
    assert set(found) == {"api", "worker"}
    (api,) = found["api"]
    assert api.autostart is True
    assert api.command.endswith("-m service serve --role api --port 3000")
    assert api.environment["SIDECAR_NODE_ID"] == f"{platform.node()}-api"

    workers = found["worker"]
    assert [w.name for w in workers] == ["worker-1", "worker-2", "worker-3"]
    ports = [w.environment["SIDECAR_PORT"] for w in workers]
    assert ports == ["3101", "3102", "3103"]
    for worker, port in zip(workers, ports, strict=True):
        # The port on the command line is the one in the environment: one per worker.
        assert worker.command.endswith(f"-m service serve --role worker --port {port}")
    node_ids = [w.environment["SIDECAR_NODE_ID"] for w in workers]
    assert node_ids == [f"{platform.node()}-worker-{n}" for n in (1, 2, 3)]
    assert len({*ports, "3000"}) == 4
    logs = [w.stdout_logfile for w in workers]
    assert len(set(logs)) == 3
    log_dir = (tmp_path / "storage" / "logs").resolve()
    assert {Path(log).resolve().parent for log in logs} == {log_dir}


def test_every_process_stops_by_handing_over_and_comes_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    options = load(tmp_path, monkeypatch, SIDECAR_WORKERS="2", SIDECAR_API_AUTOSTART="false")
    found = programs(options)
    assert found["api"][0].autostart is False  # a worker-only host
    for config in [*found["api"], *found["worker"]]:
        assert config.stopsignal == 15  # TERM: the hand-over, not a kill
        assert config.stopwaitsecs >= 75
        # TERM to the process alone (it closes its browsers itself), SIGKILL to its group.
        assert not config.stopasgroup and config.killasgroup
        assert config.autorestart
        assert Path(config.directory).resolve() == tmp_path.resolve()
        assert config.command.startswith(f"{tmp_path}/config/../.venv/bin/python ")


def test_a_host_that_forgot_its_worker_count_is_told_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SIDECAR_WORKERS", raising=False)
    monkeypatch.setenv("SIDECAR_API_AUTOSTART", "true")
    conf = project(tmp_path)
    options = ServerOptions()
    options.stderr = io.StringIO()
    with pytest.raises(SystemExit):
        options.realize(args=["-c", str(conf)])
    assert "ENV_SIDECAR_WORKERS" in options.stderr.getvalue()
