"""The counting stage's rebuild from a kept disk, in process: what a restart at scale waits for.

    python -m bench.rebuild --campaign-channels 10000 --minutes 1440 [--db PATH] [--json F]

Builds (or, with an existing ``--db``, reuses) one RocksDB database holding the kpi
table's records for ``--campaign-channels`` over ``--minutes`` of minute traffic, as the
worker writes them (hot minutes, hour blocks, totals; ~11 min for 10,000 x 1,440), then
times each part of a rebuild over it:

- reading the records and decoding them with Faust's ``json`` codecs (what
  ``Store.items()`` does) and with orjson (what ``BucketStore.loaded_items`` does);
- ``KpiState.load`` of every record with the cyclic garbage collector on (the worker
  before 2026-12-04) and off (``Books.rebuild`` now);
- the first ``rows`` after it (the first scrape's sums).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson

from bench.report import machine

NOW_MINUTE = 29_922_394 + 1439


def build(path: Path, cells: int, minutes: int) -> float:
    """Every campaign-channel gets a bucket in each minute, applied a minute at a time."""
    from rocksdict import Rdict

    from streams.flow.wire import dumps
    from streams.windows.cold import hot_span
    from streams.windows.counts import CLICKS, ORDERS, REVENUE, SPEND, VIEWS, WIDTH
    from streams.windows.state import KpiState
    from streams.worker.rocks_store import database_options

    db = Rdict(str(path), database_options())

    def read(key: tuple[Any, ...]) -> list[Any] | None:
        raw = db.get(orjson.dumps(key))
        return None if raw is None else list(orjson.loads(raw))

    state = KpiState(1440, hot_span([5, 60, 1440]), read)
    campaigns = [f"campaign-{n:05d}" for n in range((cells + 3) // 4)]
    channels = ["tiktok", "meta", "google", "web"]

    def counters(n: int) -> list[int]:
        counts = [0] * WIDTH
        counts[VIEWS], counts[CLICKS], counts[ORDERS] = 20 + n % 37, n % 5, n % 2
        counts[REVENUE], counts[SPEND] = 49_990_000 * (n % 2), 1_250_000 + n % 9_000
        return counts

    started = time.perf_counter()
    for offset, minute in enumerate(range(NOW_MINUTE - minutes + 1, NOW_MINUTE + 1)):
        deltas = {(campaign, channel, minute): counters(n + i + minute)
                  for n, campaign in enumerate(campaigns)
                  for i, channel in enumerate(channels[:min(4, cells - 4 * n)])}
        for key, value in state.apply(deltas, minute, offset).items():
            if value is None:
                del db[orjson.dumps(key)]
            else:
                db[orjson.dumps(key)] = dumps(value)
    db.close()
    return time.perf_counter() - started


def raw_items(db: Any) -> Iterator[tuple[bytes, bytes]]:
    """The database's records (its options keep them raw bytes)."""
    items: Iterator[tuple[bytes, bytes]] = iter(db.items())
    return items


def measure(path: Path) -> dict[str, Any]:
    import faust
    from rocksdict import Rdict

    from streams.config.settings import Window
    from streams.windows.cold import hot_span
    from streams.windows.state import KpiState
    from streams.worker.rocks_store import database_options

    db = Rdict(str(path), database_options())
    serializers = faust.App("bench-rebuild", broker="memory://").serializers

    def timed(step: Any) -> float:
        started = time.perf_counter()
        step()
        return time.perf_counter() - started

    def faust_decode() -> None:
        for key, value in raw_items(db):
            serializers.loads_key(None, key, serializer="json")
            serializers.loads_value(None, value, serializer="json")

    def orjson_decode() -> None:
        for key, value in raw_items(db):
            orjson.loads(key)
            orjson.loads(value)

    windows = [Window("5m", 5), Window("1h", 60), Window("24h", 1440)]

    def read(key: tuple[Any, ...]) -> list[Any] | None:
        raw = db.get(orjson.dumps(key))
        return None if raw is None else list(orjson.loads(raw))

    states: list[KpiState] = []

    def load() -> None:
        state = KpiState(1440, hot_span([w.minutes for w in windows]), read)
        for key, value in raw_items(db):
            state.load(tuple(orjson.loads(key)), orjson.loads(value), NOW_MINUTE)
        states.append(state)

    def load_without_gc() -> None:
        gc.disable()
        try:
            load()
        finally:
            gc.enable()

    records = sum(1 for _ in db.keys())  # noqa: SIM118  # Rdict has no __iter__
    figures: dict[str, Any] = {"records": records}
    figures["faust_decode_s"] = timed(faust_decode)
    figures["orjson_decode_s"] = timed(orjson_decode)
    figures["load_with_gc_s"] = timed(load)
    states.clear()
    gc.collect()
    figures["load_without_gc_s"] = timed(load_without_gc)
    state = states[-1]
    views: list[int] = []
    figures["first_rows_s"] = timed(lambda: views.append(sum(
        r[3][0] for r in state.rows(NOW_MINUTE, windows, lambda _: True) if r[2] == "24h")))
    figures["views_24h"] = views[0]
    figures["codec_us_per_record_saved"] = (
        (figures["faust_decode_s"] - figures["orjson_decode_s"]) / records * 1e6)
    db.close()
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.rebuild", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--campaign-channels", type=int, default=10_000)
    parser.add_argument("--minutes", type=int, default=1440)
    parser.add_argument("--db", type=Path, default=None,
                        help="a database to reuse (built there when it does not exist)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    path = args.db or Path(f"/tmp/kpistream-rebuild-{args.campaign_channels}-{args.minutes}")
    result: dict[str, Any] = {"machine": machine(os.getloadavg()),
                              "campaign_channels": args.campaign_channels,
                              "minutes": args.minutes}
    if not path.exists():
        result["build_s"] = build(path, args.campaign_channels, args.minutes)
    result.update(measure(path))
    text = json.dumps(result, indent=2)
    print(text)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
