"""How long one /metrics scrape takes with many campaign-channels, in process.

    .venv/bin/python -m bench.scrape                          # 1,000 series x 1,440 minutes
    .venv/bin/python -m bench.scrape --series 200 --scrapes 9
    .venv/bin/python -m bench.scrape --smoke                  # tiny: runs and adds up (a test)

Builds a KpiState the way recovery does (``load`` of every bucket of a full day per
campaign-channel, plus its total), registers the real KpiCollector in a fresh
CollectorRegistry and times ``exposition(registry)`` as streams/worker/web.py serves it (it must
equal ``generate_latest(registry)`` byte for byte; checked). Between scrapes the clock
moves on a minute and every series gets a message, as in a busy worker. A scrape's time
is split into ``rows()`` (window sums) and rendering (KPI values, families, text). A
second pass splits rendering into collecting the families from ready rows and writing
their text (the KPI columns and label text, then the lines), by KpiFamily.exposition and
by prometheus_client's ``generate_latest`` for comparison.

It does not run a worker: a busy event loop delays the answer further, by however long
the loop's other callbacks hold it. Exit status 0, or 1 if the scraped samples are wrong.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Iterable, Iterator, Sequence

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from metrics.kpi_gauges import KpiCollector, KpiFamily, exposition
from metrics.names import KPI_HELP
from streams.config.settings import Window
from streams.windows.counts import ACTION_FIELDS, WIDTH
from streams.windows.extras import CONTENT_FIELDS
from streams.windows.minutes import TOTAL, window_sums
from streams.windows.state import KpiRow, KpiState

__all__ = ["NOW", "WINDOWS", "bucket_counts", "build_state", "main"]

NOW = 29_590_500  # a minute in November 2026
WINDOWS = (Window("5m", 5), Window("1h", 60), Window("24h", 1440))


def bucket_counts(series: int, minute: int) -> list[int]:
    """Deterministic counters (every field of FIELDS, in order) with every KPI defined (no
    zero denominator); the engagement actions add up to the engagements."""
    views = 50 + (series * 7 + minute * 13) % 200
    engagements = views // 10
    clicks = 2 + views // 20
    orders = 1 + clicks // 4
    comments, shares, saves = engagements // 5, engagements // 7, engagements // 9
    follows, visits = engagements // 11, engagements // 13
    likes = engagements - comments - shares - saves - follows - visits
    watched = views // 2
    costed = orders // 2
    counts = [views, views // 3, engagements, clicks, orders, 1 + orders // 3,
              orders * 12_340_000 + minute, 7_000_000 + series,
              likes, comments, shares, saves, follows, visits,
              views - views // 8, watched, watched * 4_500 + minute % 1_000,
              costed, costed * 12_340_000, costed * 5_000_000]
    assert len(counts) == WIDTH
    return counts


def build_state(series: int, minutes: int, now: int = NOW) -> KpiState:
    """``series`` campaign-channels, each with ``minutes`` minute buckets up to ``now``."""
    state = KpiState(max(w.minutes for w in WINDOWS))
    for s in range(series):
        campaign, channel = f"campaign-{s // 4:05d}", ("tiktok", "youtube", "meta", "web")[s % 4]
        total = [0] * WIDTH
        for minute in range(now - minutes + 1, now + 1):
            counts = bucket_counts(s, minute)
            total = [a + b for a, b in zip(total, counts, strict=True)]
            state.load((campaign, channel, minute), [*counts, minute])
        state.load((campaign, channel, TOTAL), [*total, now])
    return state


def _busy_minute(state: KpiState, series: int, now: int, offset: int) -> None:
    """One message per series at ``now`` (as if the worker kept counting)."""
    for s in range(series):
        campaign, channel = f"campaign-{s // 4:05d}", ("tiktok", "youtube", "meta", "web")[s % 4]
        state.apply({(campaign, channel, now): bucket_counts(s, now)}, now, offset + s)


class _Static(Collector):
    """Families built beforehand: times the exposition alone."""

    def __init__(self, families: Sequence[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


def _ms(seconds: Iterable[float]) -> str:
    values = [s * 1000 for s in seconds]
    return f"median {statistics.median(values):8.1f} ms   max {max(values):8.1f} ms"


def _check(state: KpiState, now: int, text: str, series: int) -> list[str]:
    """Problems with one scrape: sample count, and rows() against the naive sums."""
    problems = []
    samples = sum(1 for line in text.splitlines() if line and not line.startswith("#"))
    # Every KPI defined here; of the labelled ones (no extras: no reach, products or LTV)
    # each row has its engagement actions and its content as content_type="unknown".
    per_row = len(KPI_HELP) + len(ACTION_FIELDS) + len(CONTENT_FIELDS)
    expected = series * (len(WINDOWS) + 1) * per_row
    if samples != expected:
        problems.append(f"{samples} samples, expected {expected}")
    minutes = [w.minutes for w in WINDOWS]
    naive: list[KpiRow] = []
    for (campaign, channel), cell in state._cells.items():  # noqa: SLF001
        for w, sums in zip(WINDOWS, window_sums(cell, now, minutes), strict=True):
            naive.append((campaign, channel, w.label, sums))
        naive.append((campaign, channel, "total", list(cell[TOTAL][:WIDTH])))
    if list(state.rows(now, WINDOWS, lambda _: True)) != naive:
        problems.append("rows() differ from the naive window sums")
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--series", type=int, default=1000, help="campaign-channels")
    parser.add_argument("--minutes", type=int, default=1440, help="minute buckets per series")
    parser.add_argument("--scrapes", type=int, default=7, help="timed scrapes")
    parser.add_argument("--smoke", action="store_true", help="tiny run (for a test)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.series, args.minutes, args.scrapes = 8, 90, 3

    started = time.perf_counter()
    state = build_state(args.series, args.minutes)
    print(f"{args.series} series x {args.minutes} minute buckets, windows "
          f"{', '.join(w.label for w in WINDOWS)} + total: built in "
          f"{time.perf_counter() - started:.1f} s")

    now = NOW
    rows_s: list[float] = []

    def timed_rows() -> list[KpiRow]:
        t0 = time.perf_counter()
        rows = list(state.rows(now, WINDOWS, lambda _: True))
        rows_s.append(time.perf_counter() - t0)
        return rows

    registry = CollectorRegistry()
    registry.register(KpiCollector(timed_rows, "USD"))
    # The first scrape sums every bucket afresh, as the first after a start or a rebuild
    # does; later ones only move the running sums. Shown apart.
    t0 = time.perf_counter()
    text = exposition(registry)
    first = time.perf_counter() - t0
    print(f"first scrape:   {first * 1000:8.1f} ms  ({rows_s[0] * 1000:.1f} ms of it rows())")
    rows_s.clear()

    scrape_s: list[float] = []
    for i in range(args.scrapes):
        now += 1
        _busy_minute(state, args.series, now, 10 * NOW + i * args.series)
        t0 = time.perf_counter()
        text = exposition(registry)
        scrape_s.append(time.perf_counter() - t0)
    render_s = [s - r for s, r in zip(scrape_s, rows_s, strict=True)]
    print(f"scrape:         {_ms(scrape_s)}   ({len(text) / 1e6:.1f} MB)")
    print(f"  rows():       {_ms(rows_s)}")
    print(f"  rendering:    {_ms(render_s)}")

    rows = timed_rows()
    collector = KpiCollector(lambda: rows, "USD")
    collect_s: list[float] = []
    fast_s: list[float] = []
    slow_s: list[float] = []
    for _ in range(min(args.scrapes, 3)):
        t0 = time.perf_counter()
        families: list[KpiFamily] = list(collector.collect())
        collect_s.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        b"".join(f.exposition() for f in families)
        fast_s.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        generate_latest(_Static(list(families)))
        slow_s.append(time.perf_counter() - t0)
    print(f"    families:   {_ms(collect_s)}   (collect: the ready rows copied)")
    print(f"    text:       {_ms(fast_s)}   (KpiFamily.exposition: KPI columns, label text, "
          "lines)")
    print(f"    [generate_latest of the same: {_ms(slow_s)}]")

    problems = _check(state, now, text.decode(), args.series)
    if generate_latest(registry) != text:
        problems.append("exposition() differs from generate_latest()")
    for problem in problems:
        print(f"WRONG: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
