"""Which sketch for reach: HLL_4 / HLL_8 at lg_k 12 against CPC at lg_k 11 and 12, measured.

Per kind: relative error against the exact distinct count (one sketch fed every viewer, and
the union of 60 minute sketches that split them, which is what the windows report), heap
bytes and serialized bytes per sketch by distinct count (most minute buckets hold few
viewers), µs per update fed in batches of 1,000 keys, µs to union 1,440 minute sketches,
serialize and deserialize µs, whether the merged estimate depends on the order and
grouping of merges, and the heap of one campaign-channel's ``WindowReach`` over a day.
Heap bytes: glibc's ``mallinfo2`` in-use bytes over 2,000 copies of one
sketch alive at once, plus the Python wrapper. Run: python -m bench.reach_sketch [--json PATH]
"""

from __future__ import annotations

import argparse
import copy
import ctypes
import gc
import json
import math
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datasketches import cpc_sketch, cpc_union, hll_sketch, hll_union, tgt_hll_type

from streams.windows.reach import LG_K, UserSketch, WindowReach, user_key

VIEWERS = (1_000, 100_000, 1_000_000)
SEEDS = 20
SKETCH_SIZES = (10, 100, 1_000, 100_000)
HEAP_COPIES = 2_000
BATCH = 1_000
UPDATE_BATCHES = 100
UNION_MINUTES = 1_440
UNION_VIEWERS_PER_MINUTE = (10, 1_000)
ORDER_TRIALS = 40
REPEATS = 200
WINDOW_VIEWERS_PER_MINUTE = (10, 100)
WINDOW_MINUTES = 1_440
WINDOW_CELLS = 20
ROOT = Path(__file__).resolve().parents[1]
DEFAULT_JSON = Path("bench/results/reach-sketch.json")


@dataclass(frozen=True, slots=True)
class Kind:
    name: str
    new: Callable[[], Any]
    union: Callable[[Sequence[Any]], Any]
    serialize: Callable[[Any], bytes]
    deserialize: Callable[[bytes], Any]
    clone: Callable[[Any], Any]
    rse_merged: float
    """A priori relative standard error of a merged sketch."""


def _hll(lg_k: int, target: tgt_hll_type) -> Kind:
    def union(sketches: Sequence[Any]) -> Any:
        gadget = hll_union(lg_k)
        for sketch in sketches:
            gadget.update(sketch)
        return gadget.get_result(target)
    return Kind(f"{target.name}-{lg_k}", lambda: hll_sketch(lg_k, target), union,
                lambda s: bytes(s.serialize_compact()), hll_sketch.deserialize,
                lambda s: hll_sketch.deserialize(s.serialize_updatable()),
                abs(hll_sketch.get_rel_err(True, True, lg_k, 1)))


def _cpc(lg_k: int) -> Kind:
    def union(sketches: Sequence[Any]) -> Any:
        gadget = cpc_union(lg_k)
        for sketch in sketches:
            gadget.update(sketch)
        return gadget.get_result()
    # CPC's merged (ICON) estimator: 0.693 / sqrt(k) (DataSketches' CPC documentation).
    return Kind(f"CPC-{lg_k}", lambda: cpc_sketch(lg_k), union, lambda s: bytes(s.serialize()),
                cpc_sketch.deserialize, copy.copy, 0.693 / math.sqrt(1 << lg_k))


KINDS = (_hll(12, tgt_hll_type.HLL_4), _hll(12, tgt_hll_type.HLL_8), _cpc(11), _cpc(12))


def viewer_keys(count: int, seed: int) -> list[int]:
    """Distinct keys of synthetic viewers, hashed as the product hashes user ids."""
    return [user_key(f"viewer-{seed}-{i}") for i in range(count)]


def fed(kind: Kind, keys: Sequence[int]) -> Any:
    sketch = kind.new()
    update = sketch.update
    for key in keys:
        update(key)
    return sketch


def errors(kind: Kind, keys_by_seed: dict[int, list[int]]) -> dict[str, float]:
    """Relative errors over the seeds, direct and as the union of 60 minute sketches."""
    direct, merged = [], []
    for keys in keys_by_seed.values():
        exact = len(set(keys))
        direct.append(fed(kind, keys).get_estimate() / exact - 1)
        minutes = [fed(kind, keys[m::60]) for m in range(60)]
        merged.append(kind.union(minutes).get_estimate() / exact - 1)
    return {
        "direct_rms": _rms(direct), "direct_max_abs": max(map(abs, direct)),
        "merged_rms": _rms(merged), "merged_max_abs": max(map(abs, merged)),
        "merged_mean": statistics.fmean(merged), "seeds": len(merged),
    }


def _rms(values: Sequence[float]) -> float:
    return math.sqrt(statistics.fmean(v * v for v in values))


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


def _heap_in_use() -> int:
    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = _MallInfo2
    info = libc.mallinfo2()
    return int(info.uordblks + info.hblkhd)


def heap_bytes(kind: Kind, distinct: int) -> float:
    """Heap bytes per sketch of ``distinct`` keys: HEAP_COPIES copies alive at once."""
    original = fed(kind, range(distinct))
    kept: list[Any] = [None] * HEAP_COPIES
    gc.collect()
    gc.disable()
    try:
        before = _heap_in_use()
        for i in range(HEAP_COPIES):
            kept[i] = kind.clone(original)
        after = _heap_in_use()
    finally:
        gc.enable()
    return (after - before) / HEAP_COPIES + sys.getsizeof(original)


def update_us(kind: Kind) -> float:
    keys = viewer_keys(BATCH * UPDATE_BATCHES, seed=-1)
    sketch = kind.new()
    update = sketch.update
    start = time.perf_counter()
    for b in range(UPDATE_BATCHES):
        for key in keys[b * BATCH:(b + 1) * BATCH]:
            update(key)
    return (time.perf_counter() - start) * 1e6 / len(keys)


def union_us(kind: Kind, per_minute: int) -> float:
    """µs to union UNION_MINUTES minute sketches of ``per_minute`` viewers (a 100k pool)."""
    rng = random.Random(per_minute)
    pool = viewer_keys(max(per_minute, 100_000 if UNION_MINUTES > 100 else 1_000), seed=-2)
    minutes = [fed(kind, rng.sample(pool, per_minute)) for _ in range(UNION_MINUTES)]
    return _best(lambda: kind.union(minutes), 3)


def serde_us(kind: Kind, distinct: int) -> tuple[float, float]:
    sketch = fed(kind, range(distinct))
    blob = kind.serialize(sketch)
    return (_best(lambda: kind.serialize(sketch), REPEATS),
            _best(lambda: kind.deserialize(blob), REPEATS))


def order_mismatches(kind: Kind) -> int:
    """Trials where two orders or groupings of merging the same sketches gave other estimates."""
    rng = random.Random(7)
    differing = 0
    for trial in range(ORDER_TRIALS):
        sizes = [rng.choice((0, 1, 5, 50, 300, 2_000, 20_000)) for _ in range(rng.randint(2, 8))]
        keys = viewer_keys(sum(sizes), seed=1_000 + trial)
        parts, at = [], 0
        for size in sizes:
            parts.append(fed(kind, keys[at:at + size]))
            at += size
        shuffled = rng.sample(parts, len(parts))
        cut = rng.randint(1, len(parts))
        grouped = [kind.union(shuffled[:cut]), kind.union(shuffled[cut:])]
        estimates = {kind.union(parts).get_estimate(), kind.union(shuffled).get_estimate(),
                     kind.union(grouped).get_estimate()}
        differing += len(estimates) > 1
    return differing


def _best(action: Callable[[], object], repeats: int) -> float:
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - start)
    return best * 1e6


def measure() -> dict[str, Any]:
    keys = {n: {seed: viewer_keys(n, seed) for seed in range(SEEDS)} for n in VIEWERS}
    kinds: dict[str, Any] = {}
    for kind in KINDS:
        serde = {n: serde_us(kind, n) for n in SKETCH_SIZES}
        kinds[kind.name] = {
            "rse_merged": kind.rse_merged,
            "error": {str(n): errors(kind, keys[n]) for n in VIEWERS},
            "serialized_bytes": {str(n): len(kind.serialize(fed(kind, range(n))))
                                 for n in SKETCH_SIZES},
            "heap_bytes": {str(n): heap_bytes(kind, n) for n in SKETCH_SIZES},
            "update_us": update_us(kind),
            "union_1440_us": {str(v): union_us(kind, v) for v in UNION_VIEWERS_PER_MINUTE},
            "serialize_us": {str(n): serde[n][0] for n in SKETCH_SIZES},
            "deserialize_us": {str(n): serde[n][1] for n in SKETCH_SIZES},
            "order_mismatches": order_mismatches(kind),
        }
    ids = [f"viewer-{i}" for i in range(100_000)]
    start = time.perf_counter()
    hashed = [user_key(user_id) for user_id in ids]
    return {"kinds": kinds, "user_key_us": (time.perf_counter() - start) * 1e6 / len(hashed),
            "viewers": list(VIEWERS), "sketch_sizes": list(SKETCH_SIZES),
            "order_trials": ORDER_TRIALS, "union_minutes": UNION_MINUTES,
            "window_minutes": WINDOW_MINUTES, "window_heap": window_heaps(),
            "window_estimate_us": {str(v): window_estimate_us(v)
                                   for v in WINDOW_VIEWERS_PER_MINUTE}}


def window_heap(per_minute: int, minutes: int, cells: int, state: str) -> float:
    """Heap bytes per campaign-channel's ``WindowReach`` of ``minutes`` minute buckets of
    ``per_minute`` viewers (a 100k pool). ``state``: ``live``; ``frozen``, after a
    full-window estimate, which builds the hour roll-ups and freezes the minutes of past
    hours; ``spilled``, the same with the minutes also in a store (as the worker's buckets
    are in the kpi table's), so hours gone by leave their minutes there (the store is made
    before the count starts: it is the disk's). Run it under ``PYTHONMALLOC=malloc`` so
    every allocation shows in ``mallinfo2``."""
    rng = random.Random(per_minute)
    pool = viewer_keys(100_000, seed=-3)
    draws = [[rng.sample(pool, per_minute) for _ in range(minutes)] for _ in range(cells)]
    stores: list[dict[int, str]] = []
    if state == "spilled":
        for cell in draws:
            written = WindowReach()
            stores.append({minute: written.add(minute, keys).to_wire()
                           for minute, keys in enumerate(cell)})
        del written
    kept: list[WindowReach] = []
    gc.collect()
    gc.disable()
    before = _heap_in_use()
    for index, cell in enumerate(draws):
        if state == "spilled":
            store = stores[index]
            reach = WindowReach(lambda minute, store=store: UserSketch.from_wire(store[minute]))
        else:
            reach = WindowReach()
        for minute, keys in enumerate(cell):
            reach.add(minute, keys)
        if state != "live":
            reach.estimate(minutes - 1, minutes)
        kept.append(reach)
    after = _heap_in_use()
    gc.enable()
    return (after - before) / cells


def window_estimate_us(per_minute: int) -> dict[str, float]:
    """µs of a 24 h ``WindowReach.estimate`` over WINDOW_MINUTES minutes of ``per_minute``
    viewers: cached; after a view at the current minute (its hour's roll-up rebuilt); after
    the clock moved a minute on (start's partial hour re-read); and a plain union of every
    minute sketch, the answer without roll-ups."""
    rng = random.Random(per_minute)
    pool = viewer_keys(100_000, seed=-4)
    reach = WindowReach()
    now = WINDOW_MINUTES - 1
    for minute in range(WINDOW_MINUTES):
        reach.add(minute, rng.sample(pool, per_minute))
    reach.estimate(now, WINDOW_MINUTES)
    minutes = [s for m in range(WINDOW_MINUTES) if (s := reach.minute_sketch(m)) is not None]

    def plain() -> None:
        gadget = cpc_union(LG_K)
        for sketch in minutes:
            gadget.update(sketch.cpc)
        gadget.get_result().get_estimate()

    def after_view() -> None:
        reach.add(now, [rng.choice(pool)])
        reach.estimate(now, WINDOW_MINUTES)

    moved = iter(range(now + 1, now + 10_000))
    return {"cached": _best(lambda: reach.estimate(now, WINDOW_MINUTES), REPEATS),
            "after_view": _best(after_view, 20),
            "next_minute": _best(lambda: reach.estimate(next(moved), WINDOW_MINUTES), 20),
            "plain_union": _best(plain, 5)}


def window_heaps() -> dict[str, dict[str, float]]:
    """``window_heap`` in a fresh interpreter per case (PYTHONMALLOC=malloc)."""
    env = {**os.environ, "PYTHONMALLOC": "malloc",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    heaps: dict[str, dict[str, float]] = {}
    for per_minute in WINDOW_VIEWERS_PER_MINUTE:
        heaps[str(per_minute)] = {}
        for state in ("live", "frozen", "spilled"):
            out = subprocess.run(
                [sys.executable, "-m", "bench.reach_sketch", "--window-heap", str(per_minute),
                 "--minutes", str(WINDOW_MINUTES), "--cells", str(WINDOW_CELLS),
                 "--state", state],
                env=env, capture_output=True, text=True, check=True).stdout
            heaps[str(per_minute)][state] = float(out)
    return heaps


def tables(result: dict[str, Any]) -> str:
    sizes, viewers, kinds = result["sketch_sizes"], result["viewers"], result["kinds"]
    union_cols = [f"us union {result['union_minutes']}x{v}" for v in UNION_VIEWERS_PER_MINUTE]

    def render(head: list[str], rows: list[list[str]]) -> str:
        lines = [head, ["---"] * len(head), *rows]
        return "\n".join("| " + " | ".join(line) + " |" for line in lines)

    def err(k: dict[str, Any], n: int) -> str:
        e = k["error"][str(n)]
        return f"{e['merged_rms']:.2%} (max {e['merged_max_abs']:.2%})"

    errors = render(
        ["kind", "RSE merged"] + [f"RMS error {n:,} (max)" for n in viewers]
        + [f"order diffs /{result['order_trials']}"],
        [[name, f"{k['rse_merged']:.2%}", *[err(k, n) for n in viewers],
          str(k["order_mismatches"])] for name, k in kinds.items()])
    sizes_table = render(
        ["kind"] + [f"serialized B {n:,}" for n in sizes] + [f"heap B {n:,}" for n in sizes],
        [[name, *[f"{k['serialized_bytes'][str(n)]:,}" for n in sizes],
          *[f"{k['heap_bytes'][str(n)]:,.0f}" for n in sizes]] for name, k in kinds.items()])
    speed = render(
        ["kind", "us/update"] + union_cols
        + [f"us ser/deser {n:,}" for n in sizes],
        [[name, f"{k['update_us']:.3f}", *[f"{u:,.0f}" for u in k["union_1440_us"].values()],
          *[f"{k['serialize_us'][str(n)]:.1f} / {k['deserialize_us'][str(n)]:.1f}"
            for n in sizes]] for name, k in kinds.items()])
    window = render(
        ["viewers per minute", f"KiB per campaign-channel, {result['window_minutes']} live "
         "minutes", "after a 24 h estimate (past hours frozen, roll-ups built)",
         "the same, past hours' minutes left in the store"],
        [[v, f"{h['live'] / 1024:,.1f}", f"{h['frozen'] / 1024:,.1f}",
          f"{h['spilled'] / 1024:,.1f}"] for v, h in result["window_heap"].items()])
    scrape = render(
        ["viewers per minute", "us 24 h estimate cached", "after a view now",
         "after the clock moved a minute", "plain union of every minute"],
        [[v, *[f"{e[case]:,.1f}" for case in ("cached", "after_view", "next_minute",
                                                "plain_union")]]
         for v, e in result["window_estimate_us"].items()])
    return "\n\n".join([errors, sizes_table, speed, window, scrape])


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.reach_sketch", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where the figures go")
    parser.add_argument("--window-heap", type=int, metavar="VIEWERS",
                        help="only print window_heap's bytes (run by window_heaps)")
    parser.add_argument("--minutes", type=int, default=WINDOW_MINUTES)
    parser.add_argument("--cells", type=int, default=WINDOW_CELLS)
    parser.add_argument("--state", choices=["live", "frozen", "spilled"], default="live")
    args = parser.parse_args(argv)
    if args.window_heap is not None:
        print(window_heap(args.window_heap, args.minutes, args.cells, args.state))
        return
    result = measure()
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(tables(result))
    print(f"user_key: {result['user_key_us']:.2f} us per id; errors: RMS over {SEEDS} seeds "
          "of the union of 60 minute sketches that split the viewers")


if __name__ == "__main__":
    main()
