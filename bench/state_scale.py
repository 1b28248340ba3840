"""State that scales (issue 14): memory per remembered event id, and restarts, measured.

Three parts, each in its own process so one's memory does not hide in the other's:

- ``ids``: the counting stage remembers N event ids (40 characters, 100 per kpi-events
  message, as the input stage groups them) in the worker's RocksDB store and, for
  comparison, in Python dicts (the store before, kept for tests); resident memory per id
  (VmRSS after minus before), time per id, the store's size on disk, and whether any of
  100,000 new ids is called a duplicate (none may be).
- ``clicks``: the click-join stage remembers N clicks (20-character click ids, 40 per
  click-join message) in the worker's RocksDB store and, for comparison, in dicts (the
  memory store the tests use); resident memory per click, time per click handled, and
  time per order joined to a click (half of them to absent click ids).
- ``customers``: the customer stage remembers N customers (one first order each, 20 per
  customer-orders message, lifetime value over 30, 90 and 365 days) in the worker's
  RocksDB store and, for comparison, in a dict; resident memory per customer, and time
  per order decided, for new customers and for returning ones.
- ``buckets``: the counting stage's KPI state for C campaign-channels (four channels per
  campaign, one kpi-events message per campaign and minute) over M minutes of traffic,
  every bucket written to a RocksDB database as the worker's kpi table holds them; with
  cold minutes (only the hot ones in memory, streams.windows.cold) and, for comparison,
  every bucket in memory (the state before): resident memory, time per message, a first
  scrape's window sums (5m, 1h, 24h and total) after a rebuild from the store, the next
  minute's, and the rebuild.
- ``pipeline``: on a real broker, N view events in one-event messages over C
  campaign-channels and M minutes; raw aiokafka's consume rate of the same topic, one
  worker's end-to-end rate and peak RSS; then SIGKILL and a restart on the same disk
  (local state kept) and one on an empty disk (recovered from the changelogs): seconds to
  /ready and to exact totals, and the second deliveries of 1,000 events counted before,
  dropped as duplicates. With ``--viewers`` each view carries a ``user_id`` (2,000,000
  users, a new one for each view of a campaign-channel) and one of four
  ``content_type``s, as a pixel's do: reach and content state too.

    .venv/bin/python -m bench.state_scale --ids 20000000               # the ids part only
    .venv/bin/python -m bench.state_scale --part buckets --campaign-channels 10000 \
        --minutes 1440
    .venv/bin/python -m bench.state_scale --broker kafka --events 2000000 \\
        --json bench/results/state-scale-kafka.json
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import gzip
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from bench.brokers import add_broker_option, describe, open_broker
from bench.kafka import raw_consume
from bench.procstat import ProcessSampler, rss_kib
from bench.report import machine, say, write_json

NOW_MS = 1_795_430_000_000
DAY_MS = 86_400_000
MIN_MS = 60_000
IDS_PER_MESSAGE = 100
CONTENT_TYPES = ("tutorial", "unboxing", "review", "challenge")
"""The content types of ``--viewers`` views, one per round of the campaign-channels."""
MEMORY_STORE_IDS = 2_000_000
"""Ids the in-memory comparison remembers (at 156 B each, 20 M would take ~3 GB)."""


def _id(n: int) -> str:
    return f"{n:012d}-3f2a9c1e-tracker-event-idx"  # 40 characters


def ids_part(count: int, store_kind: str) -> dict[str, Any]:
    """The counting stage remembering ``count`` ids; what it cost."""
    import faust

    from streams.flow.forwards import Forwards
    from streams.stages.counting import CountStage
    from streams.stages.event_ids import MemoryIdStore
    from streams.windows.state import KpiState
    from streams.worker.id_store import STORE_URL

    datadir = Path(tempfile.mkdtemp(prefix="kpistream-ids-"))
    id_table: Any
    if store_kind == "rocksdb":
        app = faust.App("bench-ids", datadir=str(datadir), store="memory://",
                        autodiscover=False)
        id_table = app.Table("event-ids", default=None, partitions=1, store=STORE_URL).data
    else:
        id_table = MemoryIdStore()
    stage = CountStage(KpiState(1440), {}, DAY_MS, id_table=id_table)

    def message(first: int) -> Forwards:
        forwards = Forwards()
        for n in range(first, min(first + IDS_PER_MESSAGE, count)):
            forwards.add("v", _id(n), NOW_MS, "tiktok")
        return forwards

    stage.handle("summer-sale", message(0), 0, 0, NOW_MS)  # opens the store
    gc.collect()
    before_kib = rss_kib(os.getpid()) or 0
    handled_s = 0.0
    for offset, first in enumerate(range(IDS_PER_MESSAGE, count, IDS_PER_MESSAGE), 1):
        forwards = message(first)
        started = time.perf_counter()
        stage.handle("summer-sale", forwards, 0, offset, NOW_MS)
        handled_s += time.perf_counter() - started
    gc.collect()
    after_kib = rss_kib(os.getpid()) or 0
    store = stage.id_store
    new = [f"view/summer-sale/{_id(count + n)}" for n in range(100_000)]
    old = [f"view/summer-sale/{_id(n)}" for n in range(0, count, max(1, count // 100_000))]
    started = time.perf_counter()
    false_duplicates = len(store.recorded(0, new))
    lookup_us = (time.perf_counter() - started) / len(new) * 1e6
    found = len(store.recorded(0, old))
    disk = sum(f.stat().st_size for f in datadir.rglob("*") if f.is_file())
    return {
        "store": store_kind, "ids": count,
        "rss_before_mib": before_kib / 1024, "rss_after_mib": after_kib / 1024,
        "resident_bytes_per_id": (after_kib - before_kib) * 1024 / count,
        "handle_us_per_id": handled_s / count * 1e6,
        "lookup_us_per_new_id": lookup_us,
        "new_ids_called_duplicates": false_duplicates,
        "old_ids_found": f"{found}/{len(old)}",
        "disk_mib": disk / 2**20,
    }


CLICKS_PER_MESSAGE = 40
MEMORY_STORE_CLICKS = 2_000_000


def clicks_part(count: int, store_kind: str) -> dict[str, Any]:
    """The click-join stage remembering ``count`` clicks; what it cost."""
    import faust

    from streams.attribution.orders import OrderRoute
    from streams.stages.click_records import MemoryClickStore
    from streams.stages.joining import ClickStage
    from streams.worker.click_store import STORE_URL

    datadir = Path(tempfile.mkdtemp(prefix="kpistream-clicks-"))
    clicks_table: Any
    if store_kind == "rocksdb":
        app = faust.App("bench-clicks", datadir=str(datadir), store="memory://",
                        autodiscover=False)
        clicks_table = app.Table("clicks", default=None, partitions=1, store=STORE_URL).data
    else:
        clicks_table = MemoryClickStore()
    stage = ClickStage(clicks_table, {}, 7 * DAY_MS, 60_000)

    def click_id(n: int) -> str:
        return f"ttclid-{n:013d}"  # 20 characters

    def message(first: int) -> list[Any]:
        return [["c", click_id(n), NOW_MS, "summer-sale", "tiktok", "tutorial"]
                for n in range(first, min(first + CLICKS_PER_MESSAGE, count))]

    stage.handle_message(message(0), 0, 0, NOW_MS)  # opens the store
    gc.collect()
    before_kib = rss_kib(os.getpid()) or 0
    handled_s = 0.0
    for offset, first in enumerate(range(CLICKS_PER_MESSAGE, count, CLICKS_PER_MESSAGE), 1):
        items = message(first)
        started = time.perf_counter()
        stage.handle_message(items, 0, offset, NOW_MS)
        handled_s += time.perf_counter() - started
    gc.collect()
    after_kib = rss_kib(os.getpid()) or 0
    orders = [["o", *OrderRoute(f"o-{n}", NOW_MS + 1, "customer", None, 1_000_000, None,
                                "web", click_id(n * 7919 % count if n % 2 else count + n)
                                ).to_wire()] for n in range(100_000)]
    offset = count
    started = time.perf_counter()
    attributed = 0
    for first in range(0, len(orders), CLICKS_PER_MESSAGE):
        offset += 1
        sent, _ = stage.handle_message(orders[first:first + CLICKS_PER_MESSAGE], 0, offset,
                                       NOW_MS + 1)
        attributed += len(sent)
    join_us = (time.perf_counter() - started) / len(orders) * 1e6
    disk = sum(f.stat().st_size for f in datadir.rglob("*") if f.is_file())
    return {
        "store": store_kind, "clicks": count,
        "rss_before_mib": before_kib / 1024, "rss_after_mib": after_kib / 1024,
        "resident_bytes_per_click": (after_kib - before_kib) * 1024 / count,
        "handle_us_per_click": handled_s / count * 1e6,
        "join_us_per_order": join_us,
        "orders_attributed": f"{attributed}/{len(orders)}",
        "disk_mib": disk / 2**20,
    }


ORDERS_PER_MESSAGE = 20
MEMORY_STORE_CUSTOMERS = 1_000_000


def customers_part(count: int, store_kind: str) -> dict[str, Any]:
    """The customer stage remembering ``count`` customers; what it cost."""
    import faust

    from streams.attribution.orders import OrderRoute
    from streams.stages.customer_history import CustomerStage
    from streams.stages.customer_records import MemoryCustomerStore
    from streams.worker.customer_store import STORE_URL

    datadir = Path(tempfile.mkdtemp(prefix="kpistream-customers-"))
    table: Any
    if store_kind == "rocksdb":
        app = faust.App("bench-customers", datadir=str(datadir), store="memory://",
                        autodiscover=False)
        table = app.Table("customers", default=None, partitions=1, store=STORE_URL).data
    else:
        table = MemoryCustomerStore()
    stage = CustomerStage(table, 400 * DAY_MS, DAY_MS, (30, 90, 365))

    def orders(first: int, returning: bool) -> list[OrderRoute]:
        return [OrderRoute(f"o-{n}-{int(returning)}", NOW_MS + n, f"customer-{n:012d}", None,
                           25_000_000, "summer-sale", "tiktok", None)
                for n in range(first, min(first + ORDERS_PER_MESSAGE, count))]

    stage.handle(orders(0, False), 0, 0, NOW_MS)  # opens the store
    gc.collect()
    before_kib = rss_kib(os.getpid()) or 0
    handled_s = 0.0
    offset = 0
    for first in range(ORDERS_PER_MESSAGE, count, ORDERS_PER_MESSAGE):
        offset += 1
        batch = orders(first, False)
        started = time.perf_counter()
        stage.handle(batch, 0, offset, NOW_MS)
        handled_s += time.perf_counter() - started
    stage.handle([], 0, offset + 1, NOW_MS)  # the last message's records leave the book
    gc.collect()
    after_kib = rss_kib(os.getpid()) or 0
    returning = 100_000
    started = time.perf_counter()
    for first in range(0, returning, ORDERS_PER_MESSAGE):
        offset += 1
        stage.handle(orders(first * (count // returning), True), 0, offset, NOW_MS + DAY_MS)
    returning_us = (time.perf_counter() - started) / returning * 1e6
    disk = sum(f.stat().st_size for f in datadir.rglob("*") if f.is_file())
    return {
        "store": store_kind, "customers": count,
        "rss_before_mib": before_kib / 1024, "rss_after_mib": after_kib / 1024,
        "resident_bytes_per_customer": (after_kib - before_kib) * 1024 / count,
        "new_us_per_order": handled_s / count * 1e6,
        "returning_us_per_order": returning_us,
        "disk_mib": disk / 2**20,
    }


def _run_part(part: str, *args: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-m", "bench.state_scale", "--part", part, *args],
                         check=True, capture_output=True, text=True)
    result: dict[str, Any] = json.loads(out.stdout.splitlines()[-1])
    return result


def buckets_part(cells: int, minutes: int, kind: str) -> dict[str, Any]:
    """``cells`` campaign-channels with a bucket in each of ``minutes`` minutes."""
    import orjson
    from rocksdict import Rdict

    from streams.config.settings import Window
    from streams.flow.wire import dumps
    from streams.windows.cold import hot_span
    from streams.windows.counts import CLICKS, ORDERS, REVENUE, SPEND, VIEWS, WIDTH
    from streams.windows.state import KpiState
    from streams.worker.rocks_store import database_options

    windows = [Window("5m", 5), Window("1h", 60), Window("24h", 1440)]
    retention = max(w.minutes for w in windows)
    datadir = Path(tempfile.mkdtemp(prefix="kpistream-buckets-"))
    db = Rdict(str(datadir / "kpi"), database_options())

    def key_of(key: tuple[Any, ...]) -> bytes:
        return orjson.dumps(key)

    def read(key: tuple[Any, ...]) -> list[Any] | None:
        raw = db.get(key_of(key))
        return None if raw is None else list(orjson.loads(raw))

    def state_now() -> KpiState:
        if kind == "cold":
            return KpiState(retention, hot_span([w.minutes for w in windows]), read)
        return KpiState(retention)

    state = state_now()
    campaigns = [f"campaign-{n:05d}" for n in range((cells + 3) // 4)]
    channels = ["tiktok", "meta", "google", "web"]
    now = NOW_MS // MIN_MS
    first = now - minutes + 1

    def counters(n: int) -> list[int]:
        counts = [0] * WIDTH
        counts[VIEWS], counts[CLICKS], counts[ORDERS] = 20 + n % 37, n % 5, n % 2
        counts[REVENUE], counts[SPEND] = 49_990_000 * (n % 2), 1_250_000 + n % 9_000
        return counts

    gc.collect()
    before_kib = rss_kib(os.getpid()) or 0
    applied_s = 0.0
    offset = 0
    for minute in range(first, now + 1):
        for n, campaign in enumerate(campaigns):
            deltas = {(campaign, channel, minute): counters(n + i + minute)
                      for i, channel in enumerate(channels[:min(4, cells - 4 * n)])}
            started = time.perf_counter()
            changed = state.apply(deltas, minute, offset)
            applied_s += time.perf_counter() - started
            for key, value in changed.items():
                if value is None:
                    del db[key_of(key)]
                else:
                    db[key_of(key)] = dumps(value)
            offset += 1
    gc.collect()
    after_kib = rss_kib(os.getpid()) or 0

    def scrape(at: int) -> tuple[float, float]:
        started = time.perf_counter()
        views = sum(r[3][VIEWS] for r in state.rows(at, windows, lambda _: True)
                    if r[2] == "24h")
        return time.perf_counter() - started, views

    first_scrape_s, views_24h = scrape(now)
    next_minute_s, _ = scrape(now + 1)
    # a rebuild from the store, as a restart on the same disk does, then its first scrape
    del state
    gc.collect()
    started = time.perf_counter()
    state = state_now()
    for raw_key, raw in db.items():
        state.load(tuple(orjson.loads(raw_key)), list(orjson.loads(raw)), now)
    rebuild_s = time.perf_counter() - started
    rebuilt_scrape_s, rebuilt_views = scrape(now)
    gc.collect()
    rebuilt_kib = rss_kib(os.getpid()) or 0
    records = len(list(db.keys()))
    db.close()
    buckets = cells * minutes
    disk = sum(f.stat().st_size for f in datadir.rglob("*") if f.is_file())
    return {
        "state": kind, "campaign_channels": cells, "minutes": minutes, "buckets": buckets,
        "first_minute": first,
        "held_in_memory": state.held_in_memory(), "records": records,
        "rss_before_mib": before_kib / 1024, "rss_after_mib": after_kib / 1024,
        "resident_mib": (after_kib - before_kib) / 1024,
        "resident_bytes_per_bucket": (after_kib - before_kib) * 1024 / buckets,
        "apply_us_per_message": applied_s / offset * 1e6,
        "first_scrape_s": first_scrape_s, "next_minute_scrape_s": next_minute_s,
        "rebuild_s": rebuild_s, "rebuilt_first_scrape_s": rebuilt_scrape_s,
        "rebuilt_rss_mib": rebuilt_kib / 1024,
        "views_24h": views_24h, "rebuilt_views_24h": rebuilt_views,
        "disk_mib": disk / 2**20,
    }


def scrape_totals(port: int) -> tuple[float, float, float, int]:
    """One /metrics request as Prometheus makes it (gzip): (views counted over every
    campaign-channel, events dropped as duplicates, seconds from the request to the last
    byte, bytes unzipped). A line scan, not a parser: at 10,000 campaign-channels the text
    is over 100 MB."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics",
                                     headers={"Accept-Encoding": "gzip"})
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=300) as response:
        body = response.read()
        zipped = response.headers.get("Content-Encoding") == "gzip"
    took = time.perf_counter() - started
    text = gzip.decompress(body) if zipped else body
    views = dups = 0.0
    for line in text.splitlines():
        if line.startswith(b"marketing_views{") and b'window="total"' in line:
            views += float(line.rsplit(b" ", 1)[1])
        elif line.startswith(b"kpistream_events_total{") and b'outcome="duplicate"' in line:
            dups += float(line.rsplit(b" ", 1)[1])
    return views, dups, took, len(text)


def pipeline_part(broker_name: str, events: int, cells: int, minutes: int,
                  partitions: int, batch: int = 1, one_pass: bool = False,
                  viewers: bool = False) -> dict[str, Any]:
    from tests.integration.harness import Deployment, Worker

    result: dict[str, Any] = {"broker": describe(broker_name), "events": events,
                              "campaign_channels": cells, "minutes": minutes,
                              "partitions": partitions, "events_per_message": batch,
                              "order": "one pass back over the minutes" if one_pass
                              else "rounds of every campaign-channel, a minute back each",
                              "views_carry": "user_id (2,000,000 users, a new one for each view "
                              "of a campaign-channel), content_type (4)"
                              if viewers else "campaign and channel only",
                              "poll_gap": "nine scrapes' time, at least 1 s"}
    scrapes: list[dict[str, Any]] = []
    result["scrapes"] = scrapes

    last_scrape_s = [0.0]

    def totals(worker: Worker, when: str | None = None) -> tuple[float, float]:
        """(views counted over every campaign-channel, events dropped as duplicates)."""
        try:
            views, dups, took, size = scrape_totals(worker.port)
        except OSError:
            return -1.0, -1.0
        last_scrape_s[0] = took
        if when is not None:
            scrapes.append({"when": when, "seconds": took, "mib_unzipped": size / 2**20})
        return views, dups

    def wait_until(check: Callable[[], bool], timeout_s: float, what: str) -> None:
        """Poll ``check`` (a scrape) with a gap of nine scrapes' time, at least 1 s, after
        each, so scrapes take at most a tenth of the worker's time: at 1,000
        campaign-channels x 24 h one takes ~0.4 s of its one core, and polling every 0.1 s
        (as the tests do) measured the scrapes more than the counting. The clock's
        resolution is that gap."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if check():
                return
            time.sleep(max(1.0, 9 * last_scrape_s[0]))
        raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")

    with open_broker(broker_name) as broker:
        tmp = Path(tempfile.mkdtemp(prefix="kpistream-state-scale-"))
        # The default cap (10,000 live per deployment) is kept per partition, and
        # campaigns do not spread evenly: room for every campaign-channel here.
        deployment = Deployment(
            broker, tmp, partitions=partitions,
            extra_toml=f"[kpi]\nmax_campaign_channels = {max(10_000, 2 * cells)}\n")
        now = int(time.time() * 1000)

        def view(i: int) -> dict[str, Any]:
            cell = i % cells
            back = i * minutes // events if one_pass else i // cells % minutes
            event = {"event_id": f"{i:012d}-3f2a9c1e-tracker-event-idx",
                     "ts": now - back * MIN_MS,
                     "campaign_id": f"campaign-{cell // 4:05d}",
                     "channel": f"channel-{cell % 4}"}
            if viewers:
                # every view of a campaign-channel a new user (of 2,000,000 in all): 7,919
                # is prime to 2,000,000 (i * 7,919 repeated after 200 of a cell's views)
                event["user_id"] = f"user-{(i // cells * 7_919 + cell * 104_729) % 2_000_000:07d}"
                event["content_type"] = CONTENT_TYPES[i // cells % len(CONTENT_TYPES)]
            return event

        def messages(count: int) -> Iterator[tuple[str, Any, bytes | None]]:
            if batch == 1:
                yield from (("views", view(i), None) for i in range(count))
                return
            for first in range(0, count, batch):
                yield ("views", [view(i) for i in range(first, min(first + batch, count))],
                       None)

        say(f"[state-scale] {result['broker']}: publishing {events:,} views")
        started = time.perf_counter()
        deployment.publish(messages(events))
        result["publish_eps"] = events / (time.perf_counter() - started)
        say("[state-scale] raw aiokafka consume")
        result["raw_aiokafka_eps"] = asyncio.run(raw_consume(
            broker.bootstrap, [deployment.topics["views"]], partitions,
            (-(-events // batch), events), timeout_s=1800))

        say("[state-scale] kpistream worker")
        started = time.perf_counter()
        worker = deployment.start_worker(ready_timeout_s=120)
        sampler = ProcessSampler(worker.process.pid).start()
        # Each poll is a scrape at full load (the worker counts flat out meanwhile).
        wait_until(lambda: totals(worker, "while counting")[0] >= events, 7200,
                   f"{events} views counted")
        result["kpistream_eps"] = events / (time.perf_counter() - started)
        result["ratio"] = result["kpistream_eps"] / result["raw_aiokafka_eps"]
        sampler.stop()
        result["peak_rss_mib"] = sampler.peak_rss_kib / 1024
        result["peak_rss_with_writer_mib"] = sampler.peak_with_children_rss_kib / 1024
        result["final_rss_mib"] = (rss_kib(worker.process.pid) or 0) / 1024
        for _ in range(3):  # idle now: what a scrape of this state costs, three times
            totals(worker, "after counting")

        for local_state in ("kept", "wiped"):
            worker.stop(signal.SIGKILL)
            say(f"[state-scale] SIGKILL; restart with local state {local_state}")
            started = time.perf_counter()
            worker = deployment.start_worker(
                ready_timeout_s=1800,
                data_dir=worker.data_dir if local_state == "kept" else None)
            ready_s = time.perf_counter() - started
            # exact: the end of the first scrape that shows every view (this first one
            # counts too; until 2026-12-04 it did not, which added a scrape, ~2.5 s here)
            first_views, _ = totals(worker, f"first after the restart, local state {local_state}")
            if first_views < events:
                wait_until(lambda: totals(worker)[0] >= events, 1800, "exact after the restart")  # noqa: B023
            exact_s = time.perf_counter() - started
            views, dups = totals(worker)
            deployment.publish(messages(1_000))  # second deliveries
            wait_until(lambda: totals(worker)[1] >= dups + 1_000, 120,  # noqa: B023
                       "second deliveries dropped")
            result[f"restart_{local_state}"] = {
                "ready_s": ready_s, "exact_s": exact_s, "views": views,
                "exact": views == events and totals(worker)[0] == events,
                "rss_mib": (rss_kib(worker.process.pid) or 0) / 1024}
        worker.stop()
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.state_scale", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["all", "ids", "clicks", "buckets", "pipeline",
                                           "ids-rocksdb", "ids-memory", "clicks-rocksdb",
                                           "clicks-memory", "customers", "customers-rocksdb",
                                           "customers-memory", "buckets-cold",
                                           "buckets-memory"],
                        default="all")
    parser.add_argument("--ids", type=int, default=20_000_000,
                        help="event ids the ids part remembers (default 20,000,000)")
    parser.add_argument("--clicks", type=int, default=10_000_000,
                        help="clicks the clicks part remembers (default 10,000,000)")
    parser.add_argument("--customers", type=int, default=5_000_000,
                        help="customers the customers part remembers (default 5,000,000)")
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--campaign-channels", type=int, default=1_000,
                        help="the pipeline's (the buckets part: 10,000 unless given)")
    parser.add_argument("--minutes", type=int, default=60,
                        help="the pipeline's (the buckets part: 1,440 unless given)")
    parser.add_argument("--memory-minutes", type=int, default=None,
                        help="minutes of the all-in-memory comparison (default: --minutes)")
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--batch", type=int, default=1,
                        help="the pipeline's events per message (default 1)")
    parser.add_argument("--one-pass", action="store_true",
                        help="the pipeline's event times: one pass back over the minutes "
                             "(default: rounds of every campaign-channel, wrapping)")
    parser.add_argument("--viewers", action="store_true",
                        help="the pipeline's views carry a user_id and a content_type")
    parser.add_argument("--json", type=Path, default=None)
    add_broker_option(parser)
    args = parser.parse_args(argv)
    if args.part.startswith("ids-"):  # a child: one store, its figures as JSON
        print(json.dumps(ids_part(args.ids, args.part.removeprefix("ids-"))))
        return 0
    if args.part.startswith("clicks-"):
        print(json.dumps(clicks_part(args.clicks, args.part.removeprefix("clicks-"))))
        return 0
    if args.part.startswith("customers-"):
        print(json.dumps(customers_part(args.customers,
                                        args.part.removeprefix("customers-"))))
        return 0
    if args.part.startswith("buckets-"):
        print(json.dumps(buckets_part(args.campaign_channels, args.minutes,
                                      args.part.removeprefix("buckets-"))))
        return 0
    doc: dict[str, Any] = {"machine": machine(os.getloadavg())}
    if args.part in ("all", "ids"):
        for kind, count in (("rocksdb", args.ids),
                            ("memory", min(args.ids, MEMORY_STORE_IDS))):
            say(f"[state-scale] {count:,} ids in the {kind} store")
            doc[f"ids_{kind}"] = figures = _run_part(f"ids-{kind}", "--ids", str(count))
            say(f"  {figures['resident_bytes_per_id']:.1f} B resident per id, "
                f"{figures['handle_us_per_id']:.2f} us per id handled, "
                f"{figures['lookup_us_per_new_id']:.2f} us per new id looked up, "
                f"{figures['disk_mib']:.0f} MiB on disk, "
                f"{figures['new_ids_called_duplicates']} of 100,000 new ids called "
                f"duplicates, old ids found {figures['old_ids_found']}")
    if args.part in ("all", "clicks"):
        for kind, count in (("rocksdb", args.clicks),
                            ("memory", min(args.clicks, MEMORY_STORE_CLICKS))):
            say(f"[state-scale] {count:,} clicks in the {kind} store")
            doc[f"clicks_{kind}"] = figures = _run_part(f"clicks-{kind}", "--clicks",
                                                        str(count))
            say(f"  {figures['resident_bytes_per_click']:.1f} B resident per click, "
                f"{figures['handle_us_per_click']:.2f} us per click handled, "
                f"{figures['join_us_per_order']:.2f} us per order joined, attributed "
                f"{figures['orders_attributed']}, {figures['disk_mib']:.0f} MiB on disk")
    if args.part in ("all", "customers"):
        for kind, count in (("rocksdb", args.customers),
                            ("memory", min(args.customers, MEMORY_STORE_CUSTOMERS))):
            say(f"[state-scale] {count:,} customers in the {kind} store")
            doc[f"customers_{kind}"] = figures = _run_part(f"customers-{kind}", "--customers",
                                                           str(count))
            say(f"  {figures['resident_bytes_per_customer']:.1f} B resident per customer, "
                f"{figures['new_us_per_order']:.1f} us per new customer's order, "
                f"{figures['returning_us_per_order']:.1f} us per returning customer's order, "
                f"{figures['disk_mib']:.0f} MiB on disk")
    if args.part in ("all", "buckets"):
        explicit = argv if argv is not None else sys.argv[1:]
        cells = args.campaign_channels if "--campaign-channels" in explicit else 10_000
        minutes = args.minutes if "--minutes" in explicit else 1_440
        for kind, span in (("cold", minutes), ("memory", args.memory_minutes or minutes)):
            say(f"[state-scale] {cells:,} campaign-channels x {span:,} minutes, {kind}")
            doc[f"buckets_{kind}"] = figures = _run_part(
                f"buckets-{kind}", "--campaign-channels", str(cells), "--minutes", str(span))
            say(f"  {figures['resident_mib']:.0f} MiB resident "
                f"({figures['resident_bytes_per_bucket']:.1f} B per bucket), "
                f"{figures['apply_us_per_message']:.1f} us per message, first scrape "
                f"{figures['first_scrape_s']:.2f} s, next minute "
                f"{figures['next_minute_scrape_s']:.2f} s; rebuild {figures['rebuild_s']:.1f} s,"
                f" then a first scrape {figures['rebuilt_first_scrape_s']:.2f} s, RSS "
                f"{figures['rebuilt_rss_mib']:.0f} MiB; 24h views {figures['views_24h']:,} "
                f"/ rebuilt {figures['rebuilt_views_24h']:,}")
    if args.part in ("all", "pipeline"):
        doc["pipeline"] = figures = pipeline_part(
            args.broker, args.events, args.campaign_channels, args.minutes, args.partitions,
            args.batch, args.one_pass, args.viewers)
        say(f"  raw aiokafka {figures['raw_aiokafka_eps']:,.0f} ev/s, kpistream "
            f"{figures['kpistream_eps']:,.0f} ev/s (ratio {figures['ratio']:.3f}), peak RSS "
            f"{figures['peak_rss_mib']:.0f} MiB, with the /metrics writer "
            f"{figures['peak_rss_with_writer_mib']:.0f} MiB")
        for when in ("while counting", "after counting"):
            took = sorted(x["seconds"] for x in figures["scrapes"] if x["when"] == when)
            if took:
                say(f"  /metrics {when}: {len(took)} scrapes, p50 "
                    f"{took[len(took) // 2]:.2f} s, max {took[-1]:.2f} s")
        for local_state in ("kept", "wiped"):
            r = figures[f"restart_{local_state}"]
            say(f"  restart after SIGKILL, local state {local_state}: /ready in "
                f"{r['ready_s']:.1f} s, exact in {r['exact_s']:.1f} s "
                f"({'exact' if r['exact'] else 'NOT exact'}), RSS {r['rss_mib']:.0f} MiB")
        for scrape in figures["scrapes"]:
            say(f"  /metrics (gzip) {scrape['when']}: {scrape['seconds']:.2f} s, "
                f"{scrape['mib_unzipped']:.1f} MiB unzipped")
    if args.json:
        write_json(args.json, doc)
    ok = all(doc.get(f"ids_{k}", {}).get("new_ids_called_duplicates", 0) == 0
             for k in ("rocksdb", "memory"))
    ok = ok and all(doc[k]["views_24h"] == doc[k]["rebuilt_views_24h"]
                    for k in ("buckets_cold", "buckets_memory") if k in doc)
    ok = ok and all(doc.get("pipeline", {}).get(f"restart_{s}", {}).get("exact", True)
                    for s in ("kept", "wiped"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
