"""The rebuild benchmark still runs end to end on a small database it builds itself.

Not a timed test: no time is asserted, only that the run completes and the rebuilt state's
24h views are the views the database was built with.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration  # also set for tests/integration by conftest

ROOT = Path(__file__).resolve().parents[2]


def test_rebuild_smoke_run_reads_back_every_view(tmp_path: Path) -> None:
    cells, minutes = 6, 150  # two campaigns; 150 minutes: two hour blocks and hot minutes
    out = tmp_path / "rebuild.json"
    run = subprocess.run(
        [sys.executable, "-m", "bench.rebuild", "--campaign-channels", str(cells),
         "--minutes", str(minutes), "--db", str(tmp_path / "kpi"), "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, f"exit {run.returncode}\n{run.stdout}\n{run.stderr[-3000:]}"
    result = json.loads(out.read_text())
    # bench.rebuild's counters: views of campaign n, channel i, minute m are 20 + (n+i+m) % 37
    last = 29_922_394 + 1439
    want = sum(20 + (n + i + m) % 37
               for m in range(last - minutes + 1, last + 1)
               for n in range(2) for i in range(min(4, cells - 4 * n)))
    assert result["views_24h"] == want
    assert result["records"] < cells * minutes  # the cold hours went into blocks
    assert result["build_s"] > 0 and result["load_without_gc_s"] > 0
