"""./scripts/bench --quick completes and yields a number for every scenario on both store
engines, SQLite and MariaDB (never timings)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.support.server import ROOT

pytestmark = pytest.mark.browser

ENGINES = ("sqlite", "mariadb")
SCENARIOS = {
    "qr_ready": ("p50_s", "p95_s"),
    "send_accept": ("p50_ms", "p99_ms"),
    "campaign": ("create_s", "p50_ms", "p99_ms", "sent_while_measured"),
    "throughput": ("msg_per_min",),
    "webhook_rate": ("events_per_s",),
    "memory": ("pss_mb_at_1", "pss_mb_at_2", "marginal_mb"),
    "recovery": ("seconds",),
}


def test_quick_bench_completes_with_numbers_on_both_engines(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [str(ROOT / "scripts" / "bench"), "--quick", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    data = json.loads(out.read_text())
    for engine in ENGINES:
        for scenario, keys in SCENARIOS.items():
            for key in keys:
                value = data[engine][scenario][key]
                assert isinstance(value, int | float) and value > 0, (engine, scenario, key, value)
        assert data[engine]["throughput"]["failed"] == 0, engine
    for scenario, keys in SCENARIOS.items():
        for key in keys:
            assert isinstance(data["ratio"][scenario][key], int | float), (scenario, key)
    assert data["_run"]["mode"] == "quick"
    assert data["_run"]["engines"] == list(ENGINES)
    # The table: scenarios as rows, the engines (and their ratio) as columns.
    header = next(line for line in result.stdout.splitlines() if line.startswith("scenario "))
    assert header.split() == ["scenario", "value", *ENGINES, "mariadb/sqlite"]
