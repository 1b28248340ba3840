"""The reach-sketch measurement still runs end to end on the current sketch code.

Not a timed test: tiny sizes, it checks the output's shape and the figures that do not
depend on the machine (serialized sizes, exact-count errors within the sketch's bounds,
CPC's merges independent of their order).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import reach_sketch


def test_the_reach_sketch_measurement_runs_and_gives_its_figures(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    for name, value in {
        "VIEWERS": (1_000, 5_000), "SEEDS": 2, "SKETCH_SIZES": (10, 1_000), "HEAP_COPIES": 50,
        "UPDATE_BATCHES": 2, "UNION_MINUTES": 30, "UNION_VIEWERS_PER_MINUTE": (10, 100),
        "ORDER_TRIALS": 3, "REPEATS": 3, "WINDOW_VIEWERS_PER_MINUTE": (10,),
        "WINDOW_MINUTES": 120, "WINDOW_CELLS": 2,
    }.items():
        monkeypatch.setattr(reach_sketch, name, value)
    out_json = tmp_path / "reach.json"
    reach_sketch.main(["--json", str(out_json)])
    result = json.loads(out_json.read_text())
    kinds = result["kinds"]
    assert set(kinds) == {"HLL_4-12", "HLL_8-12", "CPC-11", "CPC-12"}
    for name, kind in kinds.items():
        assert set(kind["error"]) == {"1000", "5000"}
        for error in kind["error"].values():  # 5 standard errors: 2 seeds, no flakiness
            assert error["merged_max_abs"] <= 5 * kind["rse_merged"], name
        assert set(kind["heap_bytes"]) == {"10", "1000"}
        assert all(value > 0 for value in kind["heap_bytes"].values())
        assert kind["update_us"] > 0
        assert all(value > 0 for value in kind["union_1440_us"].values())
    # serialized sizes are the library's, not the machine's: HLL_4 at lg_k 12 in HLL mode
    # is 40 bytes of header + 2,048 of 4-bit registers; HLL_8 twice the registers
    assert kinds["HLL_4-12"]["serialized_bytes"]["1000"] == 40 + 2_048
    assert kinds["HLL_8-12"]["serialized_bytes"]["1000"] == 40 + 4_096
    cpc, hll4 = kinds["CPC-11"]["serialized_bytes"], kinds["HLL_4-12"]["serialized_bytes"]
    assert cpc["1000"] < hll4["1000"]
    assert kinds["CPC-11"]["order_mismatches"] == kinds["CPC-12"]["order_mismatches"] == 0
    heap = result["window_heap"]["10"]
    assert heap["live"] > 0 and heap["frozen"] > 0
    estimate = result["window_estimate_us"]["10"]
    assert set(estimate) == {"cached", "after_view", "next_minute", "plain_union"}
    assert all(value > 0 for value in estimate.values())
    out = capsys.readouterr().out
    assert "| CPC-11 | 1.53% |" in out
    assert "KiB per campaign-channel, 120 live minutes" in out
