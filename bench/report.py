"""What every benchmark prints and saves: progress lines, the machine, a JSON file."""

from __future__ import annotations

import gc
import json
import math
import os
import platform
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from streams.commands.cli import GC_THRESHOLDS

__all__ = ["machine", "percentile", "percentiles", "say", "worker_gc_thresholds", "write_json"]


def say(message: str) -> None:
    """A progress line, on stderr so stdout holds only the figures."""
    print(message, file=sys.stderr, flush=True)


def machine(load: tuple[float, float, float]) -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "load_average_at_start": list(load),
            "python": platform.python_version()}


def write_json(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile: the smallest value with at least q of them at or below."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def percentiles(values: Sequence[float]) -> dict[str, float]:
    """p50, p90, p99 and max of ``values`` (not empty)."""
    return {name: percentile(values, q)
            for name, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("max", 1.0))}


@contextmanager
def worker_gc_thresholds() -> Iterator[None]:
    """Python's cycle collector set as the worker sets it (streams.commands.cli) while an
    in-process bench runs, and as it was afterwards (a test may run the bench)."""
    before = gc.get_threshold()
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*before)
