"""./scripts/bench --cluster --quick completes and reports every scenario of the cluster run
as real processes (never timings: only that each key is there with a number)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.support.server import ROOT

pytestmark = pytest.mark.browser

KEYS = {
    ("accept", "single"): ("p50_ms", "p95_ms", "p99_ms", "msg_per_min"),
    ("accept", "cluster"): ("p50_ms", "p95_ms", "p99_ms", "msg_per_min"),
    ("webhooks", "api"): ("events_per_s", "received", "duplicates", "out_of_order"),
    ("webhooks", "api+1"): ("events_per_s", "received", "duplicates", "out_of_order"),
    ("failover", "ttl_6"): ("seconds", "new_qr_events", "held_by_victim_at_kill"),
}
MEMORY = ("api_pss_mb", "w1_pss_mb", "w2_pss_mb", "per_session_mb", "sessions_per_host_24gib")


def test_quick_cluster_process_bench_reports_every_scenario(tmp_path: Path) -> None:
    out = tmp_path / "cluster.json"
    result = subprocess.run(
        [str(ROOT / "scripts" / "bench"), "--cluster", "--quick", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    data = json.loads(out.read_text())
    for (scenario, run), keys in KEYS.items():
        for key in keys:
            value = data[scenario][run][key]
            assert isinstance(value, int | float) and not isinstance(value, bool), (run, key)
    for key in MEMORY:
        assert isinstance(data["memory"][key], int | float), key
    assert data["_run"]["mode"] == "quick"
