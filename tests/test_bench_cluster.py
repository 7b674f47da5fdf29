"""scripts/bench_cluster.py --quick completes on a private MariaDB and yields a number for
every metric (never timings)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.mariadb import mariadb_available
from tests.support.server import ROOT

METRICS = (
    "cold_start_s",
    "lease_renewals_per_s",
    "store_calls_per_s",
    "rows_read_by_workers_per_s",
    "db_statements_per_s",
    "db_com_select_per_s",
    "db_rows_read_per_s",
    "mariadbd_cpu_pct",
    "workers_process_cpu_pct",
    "failover_sessions",
    "failover_s",
    "tick_p50_ms",
    "tick_p99_ms",
)


def test_quick_cluster_bench_yields_numbers(tmp_path: Path) -> None:
    if not mariadb_available():
        pytest.fail("MariaDB is not installed: ./scripts/test installs mariadb-server")
    out = tmp_path / "cluster.json"
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "bench_cluster.py"),
            "--quick",
            "--sessions",
            "200",
            "--workers",
            "4",
            "--json",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    data = json.loads(out.read_text())
    for key in METRICS:
        value = data[key]
        assert isinstance(value, int | float) and not isinstance(value, bool), key
        assert math.isfinite(value), key
