"""The throughput benchmark still runs end to end and its exactness check passes.

Not a timed test: no speed figure is asserted, only that a tiny run of both modes
completes with exit status 0 and prints its table with the right event count.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_benchmark_smoke_run_completes_exact(tmp_path: Path) -> None:
    out = tmp_path / "smoke.json"
    run = subprocess.run(
        [sys.executable, "-m", "bench.throughput", "--smoke", "--mode", "both",
         "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, f"exit {run.returncode}\n{run.stdout}\n{run.stderr[-3000:]}"
    lines = run.stdout.splitlines()
    assert re.match(r"mode\s+events\s+raw aiokafka ev/s\s+kpistream e2e ev/s\s+ratio", lines[0])
    rows = {line.split()[0]: line.split() for line in lines[1:3]}
    assert set(rows) == {"single", "batch"}
    for row in rows.values():
        assert row[1] == "3,000"
        assert row[-1] == "yes"
    assert lines[3].startswith("broker: Tansu ")
    doc = json.loads(out.read_text())
    assert doc["broker"] == "tansu"
    assert [(r["mode"], r["broker"], r["events"], r["exact"], r["problems"])
            for r in doc["results"]] == [
        ("single", "tansu", 3000, True, []), ("batch", "tansu", 3000, True, []),
    ]


def test_benchmark_smoke_runs_on_apache_kafka(tmp_path: Path) -> None:
    """``--broker kafka`` starts Apache Kafka for the run, and the report names it."""
    out = tmp_path / "kafka.json"
    run = subprocess.run(
        [sys.executable, "-m", "bench.throughput", "--smoke", "--mode", "single",
         "--broker", "kafka", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, f"exit {run.returncode}\n{run.stdout}\n{run.stderr[-3000:]}"
    from tests.kafka_broker import kafka_version

    assert f"broker: Apache Kafka {kafka_version()}" in run.stdout.splitlines()
    doc = json.loads(out.read_text())
    assert (doc["broker"], doc["broker_version"]) == ("kafka", f"Apache Kafka {kafka_version()}")
    assert [(r["mode"], r["broker"], r["events"], r["exact"], r["problems"])
            for r in doc["results"]] == [("single", "kafka", 3000, True, [])]
    # Kafka refused nothing: every partition was led before the timed publish began.
    assert "NotLeaderForPartition" not in run.stderr


def test_exactness_check_reports_a_miscount() -> None:
    from bench.check import accepted_events, check_kpis
    from bench.workload import make_workload

    expected = make_workload(1000, "single", now_ms=1_795_428_000_000, campaigns=1).expected
    totals = expected.totals()
    counted = ("marketing_views", "marketing_completed_views", "marketing_engagements",
               "marketing_clicks", "marketing_orders")
    counters = "".join(
        f'kpistream_events_total{{type="{t}",outcome="accepted"}} {n}\n'
        for t, n in expected.by_type.items())
    kpis = "".join(
        f'{name}{{campaign="bench-000",channel="{channel}",window="{window}"}} '
        f"{counts.get(name, 0)}\n"
        for (_, channel), counts in expected.per_series.items()
        for window in ("total", "24h")
        for name in counted)
    money = "".join(  # the rest (new customers, money, the seed KPIs' sums) as one series
        f'{name}{{campaign="bench-000",channel="x",window="{window}",currency="USD"}} '
        f"{totals[name]!r}\n"
        for window in ("total", "24h")
        for name in totals if name not in counted)
    text = counters + kpis + money
    assert accepted_events(text) == 1000
    assert check_kpis(text, expected) == []
    one_view_lost = text.replace(
        f'type="view",outcome="accepted"}} {expected.by_type["view"]}',
        f'type="view",outcome="accepted"}} {expected.by_type["view"] - 1}')
    assert check_kpis(one_view_lost, expected) == [
        f"view: {expected.by_type['view']} sent, {expected.by_type['view'] - 1} accepted"]
