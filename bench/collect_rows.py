"""How long a /metrics scrape's collect step takes on the event loop, in process.

    .venv/bin/python -m bench.collect_rows                     # 10,000 series x 1,440 minutes
    .venv/bin/python -m bench.collect_rows --series 500 --scrapes 3
    .venv/bin/python -m bench.collect_rows --profile rows.prof  # cProfile of the later scrapes
    .venv/bin/python -m bench.collect_rows --smoke              # tiny: runs and adds up (a test)

At a scrape the worker copies its rows out of its state on the loop, ``KpiState.rows``
(window sums and totals) and ``KpiState.extras_rows`` (reach, products, content types,
LTV); the collector then writes them off the loop. This times those two calls alone, on a
state built as a worker holds it: 2,500 campaigns x 4 channels by default, a full day of
minute buckets each with extras (3 viewers, 1-3 of 30 products, one of 4 content types),
the total with LTV credits, kept as streams/worker/app.py keeps it (only the hot minutes in
memory, older ones read back from a store that holds each record as its changelog bytes,
hours gone cold as hour blocks, each with its minutes' viewers' union). It is built the way
a rebuild does (``load`` of every record of the store, at the clock's minute), then the
first scrape (what ``prime`` does), then, per later scrape, the clock moves on a minute and
every series gets one message with extras (``apply``, its records written to the store),
as in a busy worker.

Prints each call's time for the first scrape and for the later ones, and a digest of what
the later scrapes returned: a change that makes them faster must leave it as it was. It
does not run a worker or render anything (bench.scrape, bench.scrape_rows), and an
in-memory dict is a faster store than RocksDB. The cyclic collector runs with the
worker's thresholds (streams.commands.cli), on what was made since the rebuild. Exit
status 0, or 1 if a check fails.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import hashlib
import pstats
import resource
import statistics
import sys
import time
from collections.abc import Iterable, Sequence
from typing import Any

import orjson
from datasketches import cpc_sketch

from bench.report import worker_gc_thresholds
from bench.scrape import NOW, WINDOWS, bucket_counts
from streams.flow.wire import dumps
from streams.windows.blocks import block_value, hour_key
from streams.windows.cold import HOUR, column_sums, hot_span
from streams.windows.extras import BucketExtras, ExtrasDelta, summed_named
from streams.windows.minutes import TOTAL, oldest_kept_minute
from streams.windows.reach import LG_K, UserSketch, union_wire
from streams.windows.state import ExtrasRow, KpiRow, KpiState, RecordKey

__all__ = ["Store", "build", "main"]

RETENTION = 1440
CHANNELS = ("tiktok", "youtube", "meta", "web")
CONTENT = ("tutorial", "unboxing", "challenge", "review")
USERS_PER_CELL = 5_000


class Store(dict[Any, bytes]):
    """The kpi table's store: each record as its changelog bytes (as BucketStore)."""

    def write(self, changed: dict[RecordKey, list[Any] | None]) -> None:
        for key, value in changed.items():
            if value is None:
                self.pop(key, None)
            else:
                self[key] = dumps(value)

    def read(self, key: tuple[Any, ...]) -> list[Any] | None:
        raw = self.get(key)
        return None if raw is None else list(orjson.loads(raw))


def cell_of(series: int) -> tuple[str, str]:
    return f"campaign-{series // 4:05d}", CHANNELS[series % 4]


def users(series: int, minute: int) -> list[int]:
    """Three viewers of a minute, from the series' pool (some come back other minutes)."""
    return [series * 1_000_003 + (minute * 7 + j * 131) % USERS_PER_CELL for j in range(3)]


def extras(series: int, minute: int, counts: Sequence[int]) -> ExtrasDelta:
    """A minute's viewers, 1-3 products of 30 and one content type of 4."""
    products = {f"sku-{(series + minute * 3 + j * 7) % 30:02d}": [1 + j, 1_990_000 * (1 + j)]
                for j in range(1 + (series + minute) % 3)}
    content = {CONTENT[(series + minute) % 4]: [counts[0], counts[2], counts[3], counts[4],
                                                counts[6]]}
    return ExtrasDelta(users(series, minute), products, content)


def _wire(counts: Sequence[int], offset: int, extra: ExtrasDelta,
          sketch: cpc_sketch) -> list[Any]:
    held = BucketExtras(UserSketch(sketch), extra.products, extra.content, extra.ltv)
    return [*counts, offset, held.to_wire()]


def _cell_records(series: int, minutes: int, now: int, hot_from: int,
                  store: Store) -> None:
    """One series' records as a worker's store holds them: its hours gone cold as hour
    blocks, the minutes after them as minute records, its total."""
    campaign, channel = cell_of(series)
    total = cpc_sketch(LG_K)
    total_counts: list[list[int]] = []
    total_extras: list[ExtrasDelta] = []
    blocks: dict[int, dict[int, list[Any]]] = {}
    for minute in range(now - minutes + 1, now + 1):
        counts = bucket_counts(series, minute)
        extra = extras(series, minute, counts)
        sketch = cpc_sketch(LG_K)
        for key in extra.users:
            sketch.update(key)
            total.update(key)
        record = _wire(counts, minute - (now - minutes), extra, sketch)
        total_counts.append(counts)
        total_extras.append(extra)
        if (minute // HOUR + 1) * HOUR <= hot_from:
            blocks.setdefault(minute // HOUR, {})[minute] = record
        else:
            store[(campaign, channel, minute)] = dumps(record)
    for hour, entries in blocks.items():
        sums = column_sums(list(entries.values()))
        held = [BucketExtras.from_wire(e[-1]) for e in entries.values()]
        names = (summed_named(e.products for e in held), summed_named(e.content for e in held))
        viewers = union_wire(e.reach for e in held if e.reach is not None)
        store[hour_key(campaign, channel, hour)] = dumps(block_value(sums, names, entries,
                                                                     viewers))
    ltv = {30: 25_000_000 * (1 + series % 7), 90: 40_000_000, 365: 90_000_000}
    every = ExtrasDelta([], summed_named(e.products for e in total_extras),
                        summed_named(e.content for e in total_extras), ltv)
    store[(campaign, channel, TOTAL)] = dumps(_wire(column_sums(total_counts), minutes, every,
                                                    total))


def build(series: int, minutes: int, now: int = NOW) -> tuple[KpiState, Store, float]:
    """A store of ``series`` campaign-channels x ``minutes`` minutes up to ``now``, a
    state rebuilt from it as ``CountStage.rebuild`` does (every record loaded at ``now``),
    and the seconds that rebuild took."""
    hot = hot_span([w.minutes for w in WINDOWS])
    hot_from = oldest_kept_minute(now, hot)
    store = Store()
    for s in range(series):
        _cell_records(s, minutes, now, hot_from, store)
    started = time.perf_counter()
    state = KpiState(RETENTION, hot, store.read)
    for key, raw in store.items():
        state.load(key, list(orjson.loads(raw)), now)
    return state, store, time.perf_counter() - started


def busy_minute(state: KpiState, store: Store, series: int, now: int, offset: int) -> None:
    """One message per series at ``now``, with extras, its records written to the store
    (as if the worker kept counting)."""
    for s in range(series):
        campaign, channel = cell_of(s)
        counts = bucket_counts(s, now)
        key = (campaign, channel, now)
        store.write(state.apply({key: counts}, now, offset + s,
                                {key: extras(s, now, counts)}))


def _ms(seconds: Iterable[float]) -> str:
    values = [s * 1000 for s in seconds]
    return f"median {statistics.median(values):8.1f} ms   max {max(values):8.1f} ms"


def _digest(rows: Sequence[KpiRow], extra_rows: Sequence[ExtrasRow]) -> str:
    """What a scrape returned as a short hash (extras rows sorted: they come in the order
    of a set of cells, which differs from process to process)."""
    h = hashlib.sha256()
    h.update(orjson.dumps(rows))
    for line in sorted(orjson.dumps([c, ch, w, e.reach, e.products, e.content,
                                     sorted(e.ltv.items())]) for c, ch, w, e in extra_rows):
        h.update(line)
    return h.hexdigest()[:16]


def _check(state: KpiState, store: Store, now: int, rows: Sequence[KpiRow],
           extra_rows: Sequence[ExtrasRow]) -> list[str]:
    """The last scrape against a state rebuilt afresh from the store at the same minute."""
    fresh = KpiState(RETENTION, hot_span([w.minutes for w in WINDOWS]), store.read)
    for key, raw in store.items():
        fresh.load(key, list(orjson.loads(raw)), now)
    problems = []
    if sorted(fresh.rows(now, WINDOWS, lambda _: True)) != sorted(rows):
        problems.append("rows() differ from a state rebuilt from the store")

    def key(row: ExtrasRow) -> tuple[Any, ...]:
        c, ch, w, e = row
        return (c, ch, w, e.reach, e.products, e.content, e.ltv)
    if sorted(map(key, fresh.extras_rows(now, WINDOWS, lambda _: True))) != sorted(
            map(key, extra_rows)):
        problems.append("extras_rows() differ from a state rebuilt from the store")
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    with worker_gc_thresholds():
        return _run(argv)


def _run(argv: Sequence[str] | None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--series", type=int, default=10_000, help="campaign-channels")
    parser.add_argument("--minutes", type=int, default=1440, help="minute buckets per series")
    parser.add_argument("--scrapes", type=int, default=5, help="timed later scrapes")
    parser.add_argument("--profile", metavar="PATH", help="cProfile the later scrapes to PATH")
    parser.add_argument("--check", action="store_true",
                        help="check the last scrape against a state rebuilt from the store")
    parser.add_argument("--smoke", action="store_true", help="tiny run (for a test)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.series, args.minutes, args.scrapes, args.check = 8, 300, 3, True

    started = time.perf_counter()
    gc.disable()  # as Books.rebuild: the rebuilt state is frozen out of the collector's walks
    state, store, rebuild_s = build(args.series, args.minutes)
    gc.freeze()
    gc.enable()
    print(f"{args.series} series x {args.minutes} minute buckets with extras, windows "
          f"{', '.join(w.label for w in WINDOWS)} + total: built in "
          f"{time.perf_counter() - started:.1f} s, {len(store)} records in the store; "
          f"rebuilt from it in {rebuild_s:.1f} s, {state.viewer_minutes_in_memory()} "
          f"viewers' minute sketches in memory")

    def owned(_: str) -> bool:
        return True

    now = NOW
    t0 = time.perf_counter()
    rows = list(state.rows(now, WINDOWS, owned))
    t1 = time.perf_counter()
    extra_rows = list(state.extras_rows(now, WINDOWS, owned))
    t2 = time.perf_counter()
    print(f"first scrape:   rows() {(t1 - t0) * 1000:8.1f} ms   extras_rows() "
          f"{(t2 - t1) * 1000:8.1f} ms   ({len(rows)} rows, {len(extra_rows)} extras rows)")

    profile = cProfile.Profile() if args.profile else None
    rows_s: list[float] = []
    extras_s: list[float] = []
    digests: list[str] = []
    for i in range(args.scrapes):
        now += 1
        busy_minute(state, store, args.series, now, 10 * NOW + i * args.series)
        if profile is not None:
            profile.enable()
        t0 = time.perf_counter()
        rows = list(state.rows(now, WINDOWS, owned))
        t1 = time.perf_counter()
        extra_rows = list(state.extras_rows(now, WINDOWS, owned))
        t2 = time.perf_counter()
        if profile is not None:
            profile.disable()
        rows_s.append(t1 - t0)
        extras_s.append(t2 - t1)
        digests.append(_digest(rows, extra_rows))
    print(f"later scrapes:  rows()        {_ms(rows_s)}")
    print(f"                extras_rows() {_ms(extras_s)}")
    both = [r + e for r, e in zip(rows_s, extras_s, strict=True)]
    print(f"                both          {_ms(both)}")
    print(f"digests: {' '.join(digests)}")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    if profile is not None:
        profile.dump_stats(args.profile)
        pstats.Stats(profile).sort_stats("cumulative").print_stats(30)
        pstats.Stats(profile).sort_stats("tottime").print_stats(25)

    problems = _check(state, store, now, rows, extra_rows) if args.check else []
    for problem in problems:
        print(f"WRONG: {problem}", file=sys.stderr)
    gc.unfreeze()  # else the frozen sketches outlive the interpreter (nanobind's leak report)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
