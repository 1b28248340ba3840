"""The freshness benchmark still runs end to end against a real broker and worker.

Not a timed test: no latency or memory figure is asserted, only that a tiny run
(``--smoke``: 500 events/s for 8 s) completes with exit status 0, loses no event and
prints its percentiles.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration  # also set for tests/integration by conftest

ROOT = Path(__file__).resolve().parents[2]


def test_freshness_smoke_run_completes_without_loss(tmp_path: Path) -> None:
    out = tmp_path / "freshness.json"
    run = subprocess.run(
        [sys.executable, "-m", "bench.freshness", "--smoke", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, f"exit {run.returncode}\n{run.stdout}\n{run.stderr[-3000:]}"
    assert "freshness p99 ms" in run.stdout
    assert "no loss (accepted == sent)" in run.stdout
    doc = json.loads(out.read_text())
    result = doc["result"]
    assert doc["broker"] == result["broker"] == "tansu"
    assert result["broker_version"].startswith("Tansu ")
    assert result["exact"] is True and result["problems"] == []
    assert result["probes_sent"] > 0 and result["probes_seen"] == result["probes_sent"]
    assert set(result["latency_ms"]) == {"p50", "p90", "p99", "max"}
    assert result["events_sent"] > 0 and result["rss_samples"]
    # The raw aiokafka figures of the same run, beside kpistream's.
    assert set(result["raw_latency_ms"]) == {"p50", "p90", "p99", "max"}
    assert result["raw_aiokafka_eps"] > 0


def test_probe_count_reads_only_the_probe_series() -> None:
    from bench.freshness import PROBE_SERIES, probe_count

    text = ('marketing_views{campaign="bench-001",channel="probe",window="total"} 9.0\n'
            'marketing_views{campaign="freshness-probe",channel="probe",window="5m"} 3.0\n'
            f"{PROBE_SERIES}7.0\n")
    assert probe_count(text) == 7
    assert probe_count(text.replace(PROBE_SERIES, "x")) == 0
