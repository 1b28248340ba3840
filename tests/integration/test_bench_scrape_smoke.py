"""The scrape-under-load benchmark still runs end to end against a real broker and worker.

Not a timed test: no scrape time is asserted, only that a tiny run (``--smoke``)
completes with exit status 0, counts every event exactly and saw every campaign-channel.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration  # also set for tests/integration by conftest

ROOT = Path(__file__).resolve().parents[2]


def test_scrape_load_smoke_run_completes_exact(tmp_path: Path) -> None:
    out = tmp_path / "scrape.json"
    run = subprocess.run(
        [sys.executable, "-m", "bench.scrape_load", "--smoke", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, f"exit {run.returncode}\n{run.stdout}\n{run.stderr[-3000:]}"
    assert "campaign-channels in /metrics" in run.stdout
    result = json.loads(out.read_text())["result"]
    assert result["exact"] is True and result["problems"] == []
    # --smoke: 5 campaigns x 4 channels, each with views in the seed and the load.
    assert result["series"] == 20
    assert result["scrape_ms_all"]["n"] >= 1
    assert result["raw_aiokafka_eps"] > 0 and result["load_eps"] > 0
    # A Python process of this size holds tens of MiB; its writer is a second one.
    assert 20 < result["peak_rss_mib"] < result["peak_rss_with_writer_mib"] < 2_048


def test_expected_figures_of_two_data_sets_add_up() -> None:
    from bench.workload import make_workload

    first = make_workload(2_000, "batch", now_ms=1_795_428_000_000, campaigns=3)
    second = make_workload(3_000, "batch", now_ms=1_795_428_000_000, campaigns=3, seed=9,
                           first_id=2_000)
    views = first.expected.by_type["view"] + second.expected.by_type["view"]
    customers = first.expected.customers | second.expected.customers
    first.expected.add(second.expected)
    assert first.expected.events == 5_000
    assert first.expected.by_type["view"] == views
    assert first.expected.customers == customers
    assert sum(c["marketing_views"] for c in first.expected.per_series.values()) == views
