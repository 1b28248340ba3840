"""A short coverage-guided fuzzing run of each target of bench.fuzz (longer runs: see it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

RUNS = 600_000
"""About 12 s a target here. A bug planted to try it (the fast path taking an empty
user_id) was found after ~935,000 inputs, so the short run finds shallow ones only."""


@pytest.mark.parametrize("target", ["parse", "wire"])
def test_fuzzing_finds_no_crash(target: str, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.fuzz", "--target", target, "--runs", str(RUNS),
         "--corpus", str(tmp_path / "corpus")],
        capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"Done {RUNS} runs" in done.stderr
