"""How long /metrics takes to answer with 1,000 campaign-channels while the worker is at full load.

    .venv/bin/python -m bench.scrape_load                  # 250 campaigns x 4 channels
    .venv/bin/python -m bench.scrape_load --events 3000000 --scrape-gap 0.1
    .venv/bin/python -m bench.scrape_load --smoke          # tiny: runs and adds up (a test)
    .venv/bin/python -m bench.scrape_load --broker kafka   # on Apache Kafka instead of Tansu

One broker, one worker, batch messages (bench.workload's view-heavy mix):

1. **Seed**: ``--seed-events`` over ``--campaigns`` x 4 channels, ts spread over the last
   23 hours, so every campaign-channel has minute buckets across the day; counted first.
2. **Load**: ``--events`` more over the same campaign-channels (ts in the last 3 minutes,
   ids distinct from the seed's), published at once: the worker counts flat out until it
   has them all. Meanwhile /metrics is fetched every ``--scrape-gap`` seconds; each
   scrape's time runs from the request to the last byte of the answer. A scrape counts as
   "at full load" when the worker used at least 80% of a core between it and the one
   before.
3. The raw aiokafka consume rate of all the data, after the worker has stopped (same run,
   same broker), and every KPI checked as in ``bench.throughput``.

Exit status: 0 measured and exact, 1 numbers wrong, 2 could not measure.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import os
import statistics
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Final

from bench.brokers import add_broker_option, describe, open_broker, wait_for_leaders
from bench.check import accepted_events, check_kpis
from bench.kafka import BenchError, publish, raw_consume
from bench.procstat import ProcessSampler, cpu_seconds
from bench.profile import Profiler, top_frames
from bench.report import machine, percentiles, say, write_json
from bench.throughput import config_toml
from bench.worker import WorkerProcess
from bench.workload import TOPIC_KEYS, Workload, make_workload
from streams.kafka.tansu import create_topics, free_port

__all__ = ["ScrapeLoadResult", "main"]

SEED_AGE_S: Final = 23 * 3600
"""Seed events are at most 23 h old: they stay inside the 24h window the check reads."""
FULL_LOAD: Final = 0.8
"""A scrape is "at full load" when the worker used this share of a core since the last."""
TARGET_MS: Final = 250.0
_ALL_TOPIC_KEYS: Final = (*TOPIC_KEYS.values(), "deadletter")
_READY_TIMEOUT_S: Final = 120.0
_IDLE_SCRAPES: Final = 5
_POLL_S: Final = 0.2


@dataclass(slots=True)
class ScrapeLoadResult:
    """Figures of one run; times in ms, rates in events/s."""

    campaigns: int
    series: int = 0
    """Campaign-channels in the last answer (marketing_views{window="total"} series)."""
    samples: int = 0
    """Lines of KPI samples in the last answer."""
    answer_bytes: int = 0
    """Of the last answer's text; scrapes ask for gzip, as Prometheus does."""
    gzip_bytes: int = 0
    scrapes_at_full_load: int = 0
    scrape_ms_at_full_load: dict[str, float] = field(default_factory=dict)
    scrape_ms_all: dict[str, float] = field(default_factory=dict)
    scrape_ms_idle: dict[str, float] = field(default_factory=dict)
    """Scrapes back to back once everything is counted: the same answer without the load."""
    worker_cores_during_load: float = 0.0
    load_events: int = 0
    load_eps: float = 0.0
    """Load events / (publish start -> all counted), scrapes going on."""
    raw_aiokafka_eps: float = 0.0
    peak_rss_mib: float = 0.0
    """The worker's, from /ready to the last idle scrape."""
    peak_rss_with_writer_mib: float = 0.0
    """The worker and its /metrics writer process together, at their peak."""
    exact: bool = False
    problems: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _Scrape:
    ms: float
    worker_cores: float
    accepted: int


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scrape_load", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--campaigns", type=int, default=250, help="campaigns (x 4 channels)")
    parser.add_argument("--seed-events", type=int, default=200_000)
    parser.add_argument("--events", type=int, default=2_000_000, help="load events")
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--scrape-gap", type=float, default=0.25)
    parser.add_argument("--smoke", action="store_true", help="tiny run: it runs and adds up")
    parser.add_argument("--counters-only", action="store_true",
                        help="events without content_type or items: the counters' KPIs, "
                             "no product or content breakdown beyond 'unknown'")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH")
    parser.add_argument("--profile", type=Path, default=None, metavar="PATH",
                        help="py-spy the worker during the idle scrapes: collapsed stacks "
                             "to PATH, and their top frames printed")
    add_broker_option(parser)
    args = parser.parse_args(argv)
    if args.smoke:
        args.campaigns, args.seed_events, args.events = 5, 2_000, 6_000
    load = os.getloadavg()
    say(f"{machine(load)['cpus']} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    result = ScrapeLoadResult(campaigns=args.campaigns)
    try:
        with tempfile.TemporaryDirectory(prefix="kpistream-scrape-") as tmp:
            _run(result, args, Path(tmp))
    except BenchError as exc:
        say(f"could not measure: {exc}")
        return 2
    except Exception:
        traceback.print_exc()
        return 2
    print(_report(result))
    print(f"broker: {describe(args.broker)}")
    if args.json is not None:
        paths = {"json": str(args.json),
                 "profile": None if args.profile is None else str(args.profile)}
        write_json(args.json, {"broker": args.broker, "broker_version": describe(args.broker),
                               "machine": machine(load), "options": vars(args) | paths,
                               "result": asdict(result)})
    return 0 if result.exact else 1


def _run(result: ScrapeLoadResult, args: argparse.Namespace, tmp: Path) -> None:
    now_ms = time.time_ns() // 1_000_000
    seed = make_workload(args.seed_events, "batch", now_ms, campaigns=args.campaigns,
                         seed=3, max_age_s=SEED_AGE_S, seed_fields=not args.counters_only)
    load = make_workload(args.events, "batch", now_ms, campaigns=args.campaigns, seed=5,
                         first_id=args.seed_events, seed_fields=not args.counters_only)
    result.load_events = load.expected.events
    with open_broker(args.broker) as broker:
        app_id = f"scrape-{uuid.uuid4().hex[:8]}"
        topics = {key: f"{app_id}.{key}" for key in _ALL_TOPIC_KEYS}
        config = tmp / "kpistream.toml"
        config.write_text(config_toml(args.partitions, topics), encoding="utf-8")
        create_topics(broker.bootstrap, topics.values(), args.partitions)
        wait_for_leaders(broker.bootstrap, topics.values(), args.partitions)
        port = free_port()
        worker = WorkerProcess({
            "KPISTREAM_BROKER": broker.url, "KPISTREAM_APP_ID": app_id,
            "KPISTREAM_CONFIG": str(config), "KPISTREAM_WEB_HOST": "127.0.0.1",
            "KPISTREAM_WEB_PORT": str(port), "KPISTREAM_DATA_DIR": str(tmp / "data"),
        }, port, tmp / "worker.log")
        try:
            _wait(worker, lambda: worker.get("/ready", 2)[0] == 200, "/ready")
            sampler = ProcessSampler(worker.pid).start()
            say(f"seeding {seed.expected.events:,} events over {args.campaigns * 4:,} "
                "campaign-channels and 23 h")
            asyncio.run(publish(broker.bootstrap, topics, seed))
            # A poll is a whole scrape: at 10,000 campaign-channels, about a second of the
            # worker's time, so poll less often and allow a big seed its time.
            _wait(worker, lambda: _accepted(worker) >= seed.expected.events, "the seed",
                  timeout_s=_READY_TIMEOUT_S + seed.expected.events / 2_000,
                  poll_s=max(_POLL_S, args.campaigns / 1_000))
            say(f"load: {load.expected.events:,} events, scraping every {args.scrape_gap} s")
            scrapes, load_s = _scrape_under_load(worker, broker.bootstrap, topics, load,
                                                 seed.expected.events, args.scrape_gap)
            result.load_eps = load.expected.events / load_s
            profiler = None if args.profile is None else Profiler(worker.pid, args.profile)
            result.scrape_ms_idle = _summary(_idle_scrapes(worker.port, _IDLE_SCRAPES))
            if profiler is not None:
                _print_profile(profiler)
            status, text = worker.get("/metrics", 30)
            if status != 200:
                raise BenchError(f"/metrics answered {status} after the run")
            sampler.stop()
            result.peak_rss_mib = sampler.peak_rss_kib / 1024
            result.peak_rss_with_writer_mib = sampler.peak_with_children_rss_kib / 1024
        finally:
            worker.stop()
        everything = Workload({key: [*seed.messages.get(key, []), *load.messages.get(key, [])]
                               for key in {*seed.messages, *load.messages}}, seed.expected)
        everything.expected.add(load.expected)
        result.problems = check_kpis(text, everything.expected)
        result.exact = not result.problems
        _figures(result, scrapes, text)
        say("raw aiokafka consume of the same data")
        inputs = [topics[key] for key in TOPIC_KEYS.values()]
        result.raw_aiokafka_eps = asyncio.run(
            raw_consume(broker.bootstrap, inputs, args.partitions, everything))


def _scrape_under_load(
    worker: WorkerProcess, bootstrap: str, topics: dict[str, str], load: Workload,
    before: int, gap_s: float,
) -> tuple[list[_Scrape], float]:
    """Publish the load on a thread, scrape until it is all counted; (scrapes, load time)."""
    want = before + load.expected.events
    started = time.perf_counter()
    publisher = threading.Thread(
        target=lambda: asyncio.run(publish(bootstrap, topics, load)), daemon=True)
    publisher.start()
    scrapes: list[_Scrape] = []
    last_cpu, last_at = cpu_seconds(worker.pid) or 0.0, time.perf_counter()
    accepted = before
    while accepted < want:
        if not worker.alive():
            raise BenchError(f"worker exited:\n{worker.log_tail()}")
        if time.perf_counter() - started > 600:
            raise BenchError(f"{accepted - before:,} of {load.expected.events:,} counted "
                             "after 600 s")
        asked = time.perf_counter()
        status, body = _scrape(worker.port)
        answered = time.perf_counter()
        cpu = cpu_seconds(worker.pid) or last_cpu
        if status == 200:
            accepted = accepted_events(gzip.decompress(body).decode("utf-8"))
            scrapes.append(_Scrape((answered - asked) * 1000,
                                   (cpu - last_cpu) / (answered - last_at), accepted))
        last_cpu, last_at = cpu, answered
        time.sleep(gap_s)
    publisher.join()
    # The last scrape saw everything counted: the load took at most until its answer.
    return scrapes, last_at - started


def _print_profile(profiler: Profiler) -> None:
    """Stop py-spy; the idle scrapes' top frames, with and without what they call."""
    complaint = profiler.stop()
    if complaint:
        say(f"py-spy: {complaint.strip()}")
    total, own, inclusive = top_frames(profiler.out.read_text(), limit=25)
    say(f"profile of the idle scrapes ({total:,} samples, {profiler.out}):")
    for label, frames in (("own time", own), ("with callees", inclusive)):
        say(f"  top frames, {label}:")
        for frame, count in frames:
            say(f"    {count / max(1, total):6.1%}  {frame}")


def _idle_scrapes(port: int, count: int) -> list[float]:
    """ms of ``count`` scrapes back to back with nothing left to count."""
    times = []
    for _ in range(count):
        asked = time.perf_counter()
        status, _body = _scrape(port)
        if status != 200:
            raise BenchError(f"/metrics answered {status} once everything was counted")
        times.append((time.perf_counter() - asked) * 1000)
    return times


def _scrape(port: int) -> tuple[int, bytes]:
    """One /metrics request as Prometheus makes it (gzip accepted): status, raw body.

    Timed by the caller from the request to the last byte; unzipping comes after.
    """
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics",
                                     headers={"Accept-Encoding": "gzip"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            if response.headers.get("Content-Encoding") != "gzip":
                raise BenchError("/metrics did not answer with gzip when asked to")
            return int(response.status), response.read()
    except urllib.error.URLError:
        return 0, b""


def _figures(result: ScrapeLoadResult, scrapes: list[_Scrape], text: str) -> None:
    result.answer_bytes = len(text.encode("utf-8"))
    result.gzip_bytes = len(gzip.compress(text.encode("utf-8"), compresslevel=1))
    lines = [line for line in text.splitlines() if line.startswith("marketing_")]
    result.samples = len(lines)
    result.series = sum(1 for line in lines
                        if line.startswith("marketing_views{") and 'window="total"' in line)
    busy = [s for s in scrapes if s.worker_cores >= FULL_LOAD]
    result.scrapes_at_full_load = len(busy)
    result.scrape_ms_at_full_load = _summary([s.ms for s in busy])
    result.scrape_ms_all = _summary([s.ms for s in scrapes])
    result.worker_cores_during_load = (statistics.fmean(s.worker_cores for s in scrapes)
                                       if scrapes else 0.0)


def _summary(values: list[float]) -> dict[str, float]:
    return {**percentiles(values), "n": float(len(values))} if values else {}


def _accepted(worker: WorkerProcess) -> int:
    status, text = worker.get("/metrics", 30)
    return accepted_events(text) if status == 200 else -1


def _wait(worker: WorkerProcess, check: Callable[[], bool], what: str,
          timeout_s: float = _READY_TIMEOUT_S, poll_s: float = _POLL_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if not worker.alive():
            raise BenchError(f"worker exited waiting for {what}:\n{worker.log_tail()}")
        if time.monotonic() > deadline:
            raise BenchError(f"timed out waiting for {what}:\n{worker.log_tail()}")
        time.sleep(poll_s)


def _report(r: ScrapeLoadResult) -> str:
    full, every = r.scrape_ms_at_full_load, r.scrape_ms_all

    def ms(summary: dict[str, float], key: str) -> str:
        return f"{summary[key]:,.0f}" if key in summary else "n/a"

    met = "met" if full and full["max"] < TARGET_MS else "not met"
    return "\n".join([
        f"{'figure':<44}{'value':>12}",
        f"{'campaign-channels in /metrics':<44}{r.series:>12,}",
        f"{'KPI sample lines / answer bytes':<44}{f'{r.samples:,} / {r.answer_bytes:,}':>12}",
        f"{'answer bytes gzipped (as scraped)':<44}{r.gzip_bytes:>12,}",
        f"{'scrapes at full load (worker >= 0.8 core)':<44}{r.scrapes_at_full_load:>12}",
        f"{'  scrape ms p50 / p99 / max':<44}"
        f"{ms(full, 'p50') + ' / ' + ms(full, 'p99') + ' / ' + ms(full, 'max'):>12}",
        f"{'all scrapes during load ms p50 / max':<44}"
        f"{ms(every, 'p50') + ' / ' + ms(every, 'max'):>12}",
        f"{'idle scrape ms (all counted) p50 / max':<44}"
        f"{ms(r.scrape_ms_idle, 'p50') + ' / ' + ms(r.scrape_ms_idle, 'max'):>12}",
        f"{'worker cores during load (mean)':<44}{r.worker_cores_during_load:>12.2f}",
        f"{'kpistream load ev/s, while scraped':<44}{r.load_eps:>12,.0f}",
        f"{'raw aiokafka consume ev/s (same data)':<44}{r.raw_aiokafka_eps:>12,.0f}",
        f"{'ratio':<44}{(r.load_eps / r.raw_aiokafka_eps if r.raw_aiokafka_eps else 0):>12.3f}",
        f"{'peak RSS MiB, worker / with its writer':<44}"
        f"{f'{r.peak_rss_mib:,.0f} / {r.peak_rss_with_writer_mib:,.0f}':>12}",
        f"{'exact (every KPI checked)':<44}{'yes' if r.exact else 'NO':>12}",
        f"target: every scrape at full load under {TARGET_MS:.0f} ms: {met}",
        *(f"  problem: {p}" for p in r.problems[:20]),
    ])


if __name__ == "__main__":
    sys.exit(main())
