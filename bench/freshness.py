"""How fresh kpistream's /metrics is at a steady publish rate, and how its memory grows.

    .venv/bin/python -m bench.freshness                       # 5,000 ev/s for 60 s
    .venv/bin/python -m bench.freshness --rate 2000 --duration 600 --json bench/results/f.json
    .venv/bin/python -m bench.freshness --smoke               # tiny: it runs and adds up
    .venv/bin/python -m bench.freshness --broker kafka        # on Apache Kafka instead of Tansu

One broker (``--broker``: Tansu, or Apache Kafka), one worker. A producer sends the
view-heavy mix at ``--rate`` events/s (one event per message, ts = now, unique ids) and,
every ``--probe-interval``, one probe view of campaign "freshness-probe". A poller scrapes
/metrics back to back (or ``--scrape-gap`` apart): a probe's latency is the *answer* time
of the first scrape whose probe count includes it, minus the time it was handed to the
producer (an upper bound; the scrape's duration, plus the gap, is the resolution);
back-to-back scrapes load the worker (see bench/README.md). The worker's RSS is sampled
all along. Exit status: 0 measured, 1 events lost or miscounted (or a probe never seen), 2
could not measure.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import functools
import hashlib
import itertools
import math
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

import aiohttp
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench.brokers import add_broker_option, describe, open_broker, wait_for_leaders
from bench.check import accepted_events, check_kpis
from bench.kafka import BenchError, raw_consume
from bench.procstat import cpu_seconds, main_thread_cpu_s, rss_kib
from bench.report import machine, percentile, percentiles, say, write_json
from bench.throughput import config_toml
from bench.worker import WorkerProcess
from bench.workload import MIX, TOPIC_KEYS, Expected, make_event
from streams.config.durations import parse_duration_ms
from streams.kafka.fetching import INPUT_FETCH_WAIT_MS
from streams.kafka.partitions import partition_for
from streams.kafka.tansu import create_topics, free_port

__all__ = ["PROBE_SERIES", "FreshnessResult", "Traffic", "code_version", "main", "probe_count"]

PROBE_CAMPAIGN: Final = "freshness-probe"
PROBE_CHANNEL: Final = "probe"
PROBE_SERIES: Final = (f'marketing_views{{campaign="{PROBE_CAMPAIGN}",'
                       f'channel="{PROBE_CHANNEL}",window="total"}} ')
"""The one line of /metrics the poller reads (label order as the worker renders it)."""
ID_BYTES: Final = 156
"""Worker memory per remembered event id (README, ``python -m bench.state_memory``)."""
_TICK_S: Final = 0.005
_LOAD_LINGER_MS: Final = 50
"""The steady load's default linger: busy trackers batch, as any busy Kafka producer
does. Tansu appears to keep each record batch as an object, and its fetches cost more the
more batches it holds, so a record batch per event or two slows the local broker down over a run (at
5 ms, Tansu used a whole core after 7 minutes at 2,000 events/s). Probes go through a
producer of their own that does not linger: their latency is not padded."""
_READY_POLL_S: Final = 0.05
_SETTLE_S: Final = 2.0
_KIB_PER_MIB: Final = 1024
_EARLY_S: Final = 60.0
_EARLY_SHARE: Final = 0.2
_ALL_TOPIC_KEYS: Final = (*TOPIC_KEYS.values(), "deadletter")


@dataclass(slots=True)
class Options:
    rate: float
    duration_s: float
    probe_interval_s: float
    campaigns: int
    partitions: int
    rss_interval_s: float
    dedup_window: str
    scrape_gap_s: float
    load_linger_ms: int
    start_timeout_s: float
    drain_timeout_s: float
    json_path: Path | None
    logs_dir: Path | None
    broker: str = "tansu"


@dataclass(slots=True)
class Scrape:
    """One /metrics answer: perf_counter() at request and answer, what it showed."""

    started: float
    answered: float
    sent: int
    """Events (probes included) handed to the producer when the scrape started."""
    probes: int
    accepted: int


@dataclass(slots=True)
class RunLog:
    """Raw observations of one run, in perf_counter() seconds."""

    expected: Expected
    sent: int = 0
    acked: int = 0
    failed: int = 0
    publish_started: float = 0.0
    publish_ended: float = 0.0
    probe_sent: list[float] = field(default_factory=list)
    probe_acked: dict[int, float] = field(default_factory=dict)
    probe_raw_seen: dict[int, float] = field(default_factory=dict)
    """probe index -> when a plain aiokafka consumer of its partition got it."""
    scrapes: list[Scrape] = field(default_factory=list)
    rss: list[tuple[float, int]] = field(default_factory=list)
    """(seconds since publishing started, VmRSS KiB)."""
    cpu: list[dict[str, float | None]] = field(default_factory=list)
    """CPU seconds so far of the worker (all threads, main thread), the broker and this
    process, at publish start and end."""

    def note_ack(self, future: asyncio.Future[Any]) -> None:
        if future.cancelled() or future.exception() is not None:
            self.failed += 1
        else:
            self.acked += 1

    def note_probe_ack(self, index: int, future: asyncio.Future[Any]) -> None:
        self.note_ack(future)
        self.probe_acked[index] = time.perf_counter()


@dataclass(slots=True)
class FreshnessResult:
    """The figures of one run; latencies in ms, memory in MiB."""

    rate_target: float
    duration_s: float
    dedup_window: str
    broker: str = "tansu"
    """The broker of the run: tansu or kafka."""
    broker_version: str = ""
    events_sent: int = 0
    publish_eps: float = 0.0
    probes_sent: int = 0
    probes_seen: int = 0
    latency_ms: dict[str, float] = field(default_factory=dict)
    """p50/p90/p99/max of (answer of the first scrape showing a probe - its send)."""
    latency_second_half_ms: dict[str, float] = field(default_factory=dict)
    """The same for the probes sent in the second half of the run (steady state)."""
    latency_lower_p50_ms: float | None = None
    """p50 of (start of the scrape before that one - send): the visibility lower bound."""
    ack_p50_ms: float | None = None
    """p50 of probe send -> broker ack (producer and broker's share of the latency)."""
    ack_max_ms: float | None = None
    raw_latency_ms: dict[str, float] = field(default_factory=dict)
    """Probe handed to the producer -> a plain aiokafka consumer of its partition (same
    fetch wait as the worker's input consumer) has it: the broker hop kpistream can't beat."""
    raw_aiokafka_eps: float | None = None
    """After the run: one aiokafka consumer reads all the input from the start, parsing."""
    scrapes: int = 0
    scrape_median_ms: float = 0.0
    scrape_p90_ms: float = 0.0
    backlog_at_end: int | None = None
    """Events sent but not yet counted at the first scrape after publishing ended."""
    drain_s: float | None = None
    cpu_cores: dict[str, float] = field(default_factory=dict)
    """CPU used while publishing, in cores: worker, worker main thread, broker, bench."""
    rss_start_mib: float = 0.0
    rss_early_at_s: float = 0.0
    rss_early_mib: float = 0.0
    rss_last_mib: float = 0.0
    rss_max_mib: float = 0.0
    rss_slope_mib_per_min: float | None = None
    """Least-squares slope of RSS over the second half of the publishing period."""
    id_growth_mib_per_min: float = 0.0
    """What remembering every id costs per minute until the dedup window passes."""
    rss_samples: list[tuple[float, float]] = field(default_factory=list)
    """(seconds since publishing started, RSS MiB)."""
    probe_latencies_ms: list[tuple[float, float]] = field(default_factory=list)
    """(seconds since publishing started when sent, latency ms) of every probe seen."""
    timeline: list[tuple[float, int, int]] = field(default_factory=list)
    """(seconds since publishing started, events sent - counted, probes seen), one a second."""
    code: str = ""
    """The commit and uncommitted changes of the code under test (others edit it)."""
    exact: bool = False
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Pids:
    worker: int
    broker: int | None

    def cpu(self) -> dict[str, float | None]:
        """CPU seconds used so far by the worker, its main thread, the broker and the bench."""
        own = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "worker": cpu_seconds(self.worker),
            "worker main thread": main_thread_cpu_s(self.worker),
            "broker": None if self.broker is None else cpu_seconds(self.broker),
            "bench": own.ru_utime + own.ru_stime,
        }


class Traffic:
    """Events of the view-heavy mix with ts = now and unique ids; keeps what they add up to."""

    def __init__(self, campaigns: int, seed: int = 11) -> None:
        self.expected = Expected()
        self._rng = random.Random(seed)
        self._campaigns = [f"bench-{i:03d}" for i in range(campaigns)]
        self._types = list(MIX)
        cumulative = list(itertools.accumulate(MIX.values()))
        self._bounds, self._total = cumulative[:-1], cumulative[-1]
        self._numbers: Counter[str] = Counter()

    def next(self, now_ms: int) -> tuple[str, bytes, bytes]:
        """(topic key, message key, value) of one event a second old at most."""
        event_type = self._types[bisect.bisect(self._bounds, self._rng.random() * self._total)]
        number = self._numbers[event_type]
        self._numbers[event_type] += 1
        doc = make_event(event_type, number, self._rng, self._campaigns, now_ms, 1, self.expected)
        return TOPIC_KEYS[event_type], doc["campaign_id"].encode(), orjson.dumps(doc)

    def probe(self, index: int, now_ms: int) -> bytes:
        """Probe view ``index``: the only events of the probe campaign."""
        self.expected.by_type["view"] += 1
        series = self.expected.per_series.setdefault((PROBE_CAMPAIGN, PROBE_CHANNEL), Counter())
        series["marketing_views"] += 1
        return orjson.dumps({"event_id": f"probe-{index}", "ts": now_ms,
                             "campaign_id": PROBE_CAMPAIGN, "channel": PROBE_CHANNEL})


def main(argv: Sequence[str] | None = None) -> int:
    options = _parse(argv)
    load = os.getloadavg()
    say(f"{os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    result = FreshnessResult(options.rate, options.duration_s, options.dedup_window,
                             options.broker, describe(options.broker))
    with tempfile.TemporaryDirectory(prefix="kpistream-fresh-") as tmp:
        try:
            _run(result, options, Path(tmp))
        except BenchError as exc:
            say(f"FAILED TO MEASURE: {exc}")
            return 2
        except Exception:  # broker, Kafka client or HTTP trouble: nothing was measured
            say(f"FAILED TO MEASURE:\n{traceback.format_exc()}")
            return 2
    print(_table(result))
    print(_notes(result))
    if options.json_path is not None:
        _write_json(options.json_path, result, options, load)
    if result.problems:
        say(f"\n!!! EVENTS LOST OR MISCOUNTED ({len(result.problems)} differences) !!!")
        for problem in result.problems[:25]:
            say(f"  {problem}")
        return 1
    return 0


def _parse(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench.freshness", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rate", type=float, default=None,
                        help="events/s of steady traffic (default 5000; 500 with --smoke)")
    parser.add_argument("--duration", type=float, default=None,
                        help="seconds of publishing (default 60; 8 with --smoke)")
    parser.add_argument("--probe-interval", type=float, default=None,
                        help="seconds between probes (default 0.25; 0.5 with --smoke)")
    parser.add_argument("--campaigns", type=int, default=50, help="campaigns (x 4 channels)")
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--rss-interval", type=float, default=None,
                        help="seconds between RSS samples (default 5; 1 with --smoke)")
    parser.add_argument("--dedup-window", default="2m",
                        help="[kpi] dedup_window and attribution_window for the run: how long "
                             'ids and clicks are remembered (default "2m"; product: 24h, 7d). '
                             "Customers keep the product's 400 days: a shorter window would "
                             "rightly count a returning customer as new again")
    parser.add_argument("--scrape-gap", type=float, default=0.1,
                        help="seconds between the poller's scrapes (default 0.1; 0: back to "
                             "back)")
    parser.add_argument("--load-linger", type=int, default=_LOAD_LINGER_MS, metavar="MS",
                        help="linger of the steady load's producer (probes never linger); "
                             f"default {_LOAD_LINGER_MS}")
    parser.add_argument("--start-timeout", type=float, default=120.0,
                        help="seconds for the worker to answer /ready")
    parser.add_argument("--drain-timeout", type=float, default=60.0,
                        help="seconds without progress after publishing before calling "
                             "events lost")
    parser.add_argument("--smoke", action="store_true",
                        help="a tiny run (500 ev/s for 8 s): it runs and adds up")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH",
                        help="also write the figures as JSON")
    parser.add_argument("--logs", type=Path, default=None, metavar="DIR",
                        help="keep the worker's log in DIR")
    add_broker_option(parser)
    args = parser.parse_args(argv)
    smoke: bool = args.smoke

    def pick(value: float | None, normal: float, small: float) -> float:
        return value if value is not None else (small if smoke else normal)

    options = Options(
        rate=pick(args.rate, 5000, 500), duration_s=pick(args.duration, 60, 8),
        probe_interval_s=pick(args.probe_interval, 0.25, 0.5), campaigns=args.campaigns,
        partitions=args.partitions, rss_interval_s=pick(args.rss_interval, 5, 1),
        dedup_window=args.dedup_window, scrape_gap_s=args.scrape_gap,
        load_linger_ms=args.load_linger,
        start_timeout_s=args.start_timeout, drain_timeout_s=args.drain_timeout,
        json_path=args.json, logs_dir=args.logs, broker=args.broker,
    )
    if min(options.rate, options.duration_s, options.probe_interval_s,
           options.rss_interval_s) <= 0:
        parser.error("--rate, --duration, --probe-interval and --rss-interval must be > 0")
    try:
        parse_duration_ms(options.dedup_window)
    except ValueError as exc:
        parser.error(f"--dedup-window: {exc}")
    return options


def _run(result: FreshnessResult, options: Options, tmp: Path) -> None:
    with open_broker(options.broker) as broker:
        app_id = f"fresh-{uuid.uuid4().hex[:8]}"
        topics = {key: f"{app_id}.{key}" for key in _ALL_TOPIC_KEYS}
        config = tmp / f"{app_id}.toml"
        config.write_text(config_toml(options.partitions, topics)
                          + "\n[kpi]\n" + "".join(
                              f'{name} = "{options.dedup_window}"\n' for name in
                              ("dedup_window", "attribution_window")),
                          encoding="utf-8")
        create_topics(broker.bootstrap, topics.values(), options.partitions)
        wait_for_leaders(broker.bootstrap, topics.values(), options.partitions)
        port = free_port()
        env = {
            "KPISTREAM_BROKER": broker.url, "KPISTREAM_APP_ID": app_id,
            "KPISTREAM_CONFIG": str(config), "KPISTREAM_WEB_HOST": "127.0.0.1",
            "KPISTREAM_WEB_PORT": str(port), "KPISTREAM_DATA_DIR": str(tmp / "data"),
        }
        result.code = code_version()
        worker = WorkerProcess(env, port, tmp / "worker.log")
        try:
            _wait_ready(worker, options.start_timeout_s)
            say(f"worker ready; publishing {options.rate:,.0f} ev/s for "
                 f"{options.duration_s:g} s, dedup_window {options.dedup_window}")
            log = RunLog(Expected())
            pids = _Pids(worker.pid, broker.process.pid if broker.process else None)
            asyncio.run(_measure(log, options, broker.bootstrap, topics, worker, pids))
            say("checking every KPI against what was sent")
            time.sleep(_SETTLE_S)
            status, text = worker.get("/metrics", timeout_s=30)
            if status != 200:
                raise BenchError(f"/metrics answered {status} after the run:\n"
                                 f"{worker.log_tail()}")
            _figures(result, log, options)
            result.problems += check_kpis(text, log.expected)
            result.exact = not result.problems
        finally:
            worker.stop()
            if options.logs_dir is not None:
                options.logs_dir.mkdir(parents=True, exist_ok=True)
                shutil.copy(worker.log, options.logs_dir / "worker-freshness.log")
        say("raw aiokafka consume of the same input")
        inputs = [topics[key] for key in TOPIC_KEYS.values()]
        sent = (log.sent + len(log.probe_sent), log.expected.events)
        result.raw_aiokafka_eps = asyncio.run(
            raw_consume(broker.bootstrap, inputs, options.partitions, sent))


def code_version() -> str:
    """HEAD, and a digest of streams/ and metrics/ as on disk when the worker starts."""
    root = Path(__file__).resolve().parents[1]

    def git(*args: str) -> str:
        run = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True,
                             check=False)
        return run.stdout.strip()

    digest = hashlib.sha256()
    for path in sorted([*root.glob("streams/*.py"), *root.glob("metrics/*.py")]):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    dirty = len(git("status", "--porcelain", "--", "streams", "metrics").splitlines())
    return (f"{git('rev-parse', '--short', 'HEAD') or 'unknown'}, {dirty} files in streams/ "
            f"and metrics/ uncommitted, their digest {digest.hexdigest()[:12]}")


def _wait_ready(worker: WorkerProcess, timeout_s: float) -> None:
    deadline = time.perf_counter() + timeout_s
    while worker.get("/ready", 2)[0] != 200:
        if not worker.alive():
            raise BenchError(f"the worker exited with status {worker.process.returncode}:\n"
                             f"{worker.log_tail()}")
        if time.perf_counter() > deadline:
            raise BenchError(f"worker not /ready after {timeout_s} s:\n{worker.log_tail()}")
        time.sleep(_READY_POLL_S)


async def _measure(log: RunLog, options: Options, bootstrap: str, topics: dict[str, str],
                   worker: WorkerProcess, pids: _Pids) -> None:
    """Publish, probe, scrape and sample RSS; then wait until everything is counted."""
    traffic = Traffic(options.campaigns)
    log.expected = traffic.expected
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1,
                                linger_ms=options.load_linger_ms)
    prober = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=0)
    await producer.start()
    await prober.start()
    stop = asyncio.Event()
    url = f"http://127.0.0.1:{worker.port}/metrics"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
            poller = asyncio.create_task(_poll(session, url, log, stop, options.scrape_gap_s))
            watcher = asyncio.create_task(_watch_probes(
                bootstrap, topics["views"], options.partitions, log, stop))
            try:
                await _publish(log, options, (producer, prober), topics, traffic, pids)
                say(f"published {log.sent:,} events and {len(log.probe_sent)} probes; "
                     "draining")
                await _drain(log, worker, options.drain_timeout_s, poller)
            finally:
                stop.set()
                await poller
                await watcher
    finally:
        await producer.stop()
        await prober.stop()
    if log.failed or log.acked != log.sent + len(log.probe_sent):
        raise BenchError(f"the broker acknowledged {log.acked:,} of "
                         f"{log.sent + len(log.probe_sent):,} messages ({log.failed} failed)")


async def _publish(log: RunLog, options: Options,
                   producers: tuple[AIOKafkaProducer, AIOKafkaProducer],
                   topics: dict[str, str], traffic: Traffic, pids: _Pids) -> None:
    """Steady traffic, probes and RSS samples for ``duration_s``; then flush."""
    producer, prober = producers
    start = log.publish_started = time.perf_counter()
    until = start + options.duration_s
    log.cpu.append(pids.cpu())
    await asyncio.gather(
        _steady(producer, topics, traffic, options.rate, start, until, log),
        _probes(prober, topics["views"], traffic, options.probe_interval_s, until, log),
        _sample_rss(pids.worker, options.rss_interval_s, start, until, log),
    )
    log.publish_ended = time.perf_counter()
    log.cpu.append(pids.cpu())
    await producer.flush()
    await prober.flush()


async def _steady(producer: AIOKafkaProducer, topics: dict[str, str], traffic: Traffic,
                  rate: float, start: float, until: float, log: RunLog) -> None:
    """Keep the number sent at ``rate`` x elapsed, topping up every few ms."""
    while (now := time.perf_counter()) < until:
        now_ms = time.time_ns() // 1_000_000
        for _ in range(int((now - start) * rate) - log.sent):
            key, message_key, value = traffic.next(now_ms)
            future = await producer.send(topics[key], value, key=message_key)
            future.add_done_callback(log.note_ack)
            log.sent += 1
        await asyncio.sleep(_TICK_S)


async def _probes(producer: AIOKafkaProducer, topic: str, traffic: Traffic, interval_s: float,
                  until: float, log: RunLog) -> None:
    """One probe every ``interval_s``, all with one key so they stay in order."""
    next_at = time.perf_counter()
    while next_at < until:
        await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
        index = len(log.probe_sent) + 1
        value = traffic.probe(index, time.time_ns() // 1_000_000)
        log.probe_sent.append(time.perf_counter())
        future = await producer.send(topic, value, key=PROBE_CAMPAIGN.encode())
        future.add_done_callback(functools.partial(log.note_probe_ack, index))
        next_at += interval_s


async def _watch_probes(bootstrap: str, topic: str, partitions: int, log: RunLog,
                        stop: asyncio.Event) -> None:
    """Note when a plain aiokafka consumer of the probes' partition gets each probe."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                enable_auto_commit=False, fetch_max_wait_ms=INPUT_FETCH_WAIT_MS)
    await consumer.start()
    try:
        tp = TopicPartition(topic, partition_for(PROBE_CAMPAIGN, partitions))
        consumer.assign([tp])
        await consumer.seek_to_end(tp)
        probe_key = PROBE_CAMPAIGN.encode()
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=50)
            seen = time.perf_counter()
            for record in batches.get(tp, ()):
                if record.key == probe_key:
                    event_id = orjson.loads(record.value)["event_id"]
                    log.probe_raw_seen[int(event_id.removeprefix("probe-"))] = seen
    finally:
        await consumer.stop()


async def _sample_rss(pid: int, interval_s: float, start: float, until: float,
                      log: RunLog) -> None:
    """VmRSS every ``interval_s`` from ``start`` to ``until``, both ends included."""
    while True:
        now = time.perf_counter()
        kib = rss_kib(pid)
        if kib is not None:
            log.rss.append((now - start, kib))
        if now >= until - 0.001:
            return
        await asyncio.sleep(min(interval_s, until - now))


async def _poll(session: aiohttp.ClientSession, url: str, log: RunLog, stop: asyncio.Event,
                gap_s: float) -> None:
    """Scrape /metrics until ``stop``; read the probe count and the accepted events."""
    while not stop.is_set():
        started, sent = time.perf_counter(), log.sent + len(log.probe_sent)
        try:
            async with session.get(url) as response:
                body = await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError):
            status, body = 0, b""
        answered = time.perf_counter()
        if status == 200:
            text = body.decode("utf-8")
            log.scrapes.append(Scrape(started, answered, sent, probe_count(text),
                                      accepted_events(text)))
        else:
            await asyncio.sleep(0.1)
        if gap_s:
            await asyncio.sleep(gap_s)


def probe_count(text: str) -> int:
    """The probe campaign's total views in a /metrics answer; 0 before the first."""
    at = text.find(PROBE_SERIES)
    if at < 0:
        return 0
    start = at + len(PROBE_SERIES)
    return int(float(text[start:text.index("\n", start)]))


async def _drain(log: RunLog, worker: WorkerProcess, timeout_s: float,
                 poller: asyncio.Task[None]) -> None:
    """Wait until a scrape shows every probe and every event; stop if progress stops."""
    want, probes = log.expected.events, len(log.probe_sent)
    progress, progress_at = -1, time.perf_counter()
    while time.perf_counter() - progress_at <= timeout_s:
        await asyncio.sleep(0.05)
        if poller.done() or not worker.alive():
            raise BenchError(f"worker or poller stopped while draining:\n{worker.log_tail()}")
        last = log.scrapes[-1] if log.scrapes else None
        if last is None or last.started < log.publish_ended:
            continue
        if last.accepted >= want and last.probes >= probes:
            return
        if last.accepted + last.probes > progress:
            progress, progress_at = last.accepted + last.probes, time.perf_counter()
    # No progress for timeout_s: the exactness check after the run names what is missing.


def _figures(result: FreshnessResult, log: RunLog, options: Options) -> None:
    publish_s = log.publish_ended - log.publish_started
    result.events_sent = log.sent
    result.publish_eps = log.sent / publish_s
    result.probes_sent = len(log.probe_sent)
    _latencies(result, log)
    durations = [(s.answered - s.started) * 1000 for s in log.scrapes]
    result.scrapes = len(durations)
    if durations:
        result.scrape_median_ms = statistics.median(durations)
        result.scrape_p90_ms = percentile(durations, 0.9)
    _backlog(result, log)
    before, after = log.cpu
    for name, used in before.items():
        if used is not None and after.get(name) is not None:
            result.cpu_cores[name] = ((after[name] or 0.0) - used) / publish_s
    result.timeline = _timeline(log)
    _memory(result, log, options)


def _latencies(result: FreshnessResult, log: RunLog) -> None:
    """Each probe's latency from the first scrape whose count includes it."""
    upper: list[float] = []
    lower: list[float] = []
    previous_start, seen = log.publish_started, 0
    for scrape in log.scrapes:
        while seen < min(scrape.probes, len(log.probe_sent)):
            sent = log.probe_sent[seen]
            upper.append((scrape.answered - sent) * 1000)
            lower.append(max(0.0, previous_start - sent) * 1000)
            seen += 1
        previous_start = scrape.started
    result.probes_seen = seen
    if seen < result.probes_sent:
        result.problems.append(f"only {seen} of {result.probes_sent} probes were seen")
    if upper:
        result.latency_ms = percentiles(upper)
        result.latency_lower_p50_ms = percentile(lower, 0.5)
        sent_at = [t - log.publish_started for t in log.probe_sent[:seen]]
        result.probe_latencies_ms = [(round(t, 2), round(ms, 1))
                                     for t, ms in zip(sent_at, upper, strict=True)]
        half = [ms for t, ms in zip(sent_at, upper, strict=True)
                if t >= result.duration_s / 2]
        result.latency_second_half_ms = percentiles(half) if half else {}
    acks = [(log.probe_acked[i + 1] - sent) * 1000 for i, sent in enumerate(log.probe_sent)
            if i + 1 in log.probe_acked]
    if acks:
        result.ack_p50_ms = percentile(acks, 0.5)
        result.ack_max_ms = max(acks)
    raw = [(log.probe_raw_seen[i + 1] - sent) * 1000 for i, sent in enumerate(log.probe_sent)
           if i + 1 in log.probe_raw_seen]
    if raw:
        result.raw_latency_ms = percentiles(raw)


def _timeline(log: RunLog) -> list[tuple[float, int, int]]:
    """The first scrape of every second: (s since publishing started, backlog, probes)."""
    points: list[tuple[float, int, int]] = []
    for scrape in log.scrapes:
        at = scrape.started - log.publish_started
        if not points or at >= points[-1][0] + 1:
            points.append((round(at, 2), scrape.sent - scrape.accepted, scrape.probes))
    return points


def _backlog(result: FreshnessResult, log: RunLog) -> None:
    """Events not yet counted when publishing ended, and how long they took."""
    want = log.expected.events
    after = [s for s in log.scrapes if s.started >= log.publish_ended]
    if not after:
        return
    result.backlog_at_end = max(0, want - after[0].accepted)
    done = next((s for s in after if s.accepted >= want), None)
    if done is not None:
        result.drain_s = max(0.0, done.answered - log.publish_ended)


def _memory(result: FreshnessResult, log: RunLog, options: Options) -> None:
    mib = [(t, kib / _KIB_PER_MIB) for t, kib in log.rss]
    result.rss_samples = [(round(t, 2), round(m, 1)) for t, m in mib]
    result.id_growth_mib_per_min = options.rate * ID_BYTES * 60 / 2**20
    if not mib:
        return
    result.rss_start_mib = mib[0][1]
    result.rss_last_mib = mib[-1][1]
    result.rss_max_mib = max(m for _, m in mib)
    early = min(_EARLY_S, _EARLY_SHARE * options.duration_s)
    result.rss_early_at_s, result.rss_early_mib = next(
        ((t, m) for t, m in mib if t >= early - 0.5), mib[-1])
    half = [(t, m) for t, m in mib if t >= options.duration_s / 2 - 0.5]
    if len(half) >= 2:
        slope = statistics.linear_regression([t for t, _ in half], [m for _, m in half]).slope
        result.rss_slope_mib_per_min = slope * 60




def _ratio(ours: float | None, raw: float | None) -> str:
    return "n/a" if ours is None or not raw else f"{ours / raw:.1f}"


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


def _mib(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.1f}"


def _table(r: FreshnessResult) -> str:
    lat, half = r.latency_ms, r.latency_second_half_ms
    rows = [
        ("figure", "value"),
        ("broker", r.broker_version or r.broker),
        (f"publish rate ev/s (target {r.rate_target:,.0f})", f"{r.publish_eps:,.0f}"),
        ("probes seen / sent", f"{r.probes_seen} / {r.probes_sent}"),
        ("freshness p50 ms", _ms(lat.get("p50"))),
        ("freshness p90 ms", _ms(lat.get("p90"))),
        ("freshness p99 ms", _ms(lat.get("p99"))),
        ("freshness max ms", _ms(lat.get("max"))),
        ("freshness p50 / p99 ms, 2nd half", f"{_ms(half.get('p50'))} / "
                                              f"{_ms(half.get('p99'))}"),
        ("raw aiokafka gets the probe p50 / p99 ms",
         f"{_ms(r.raw_latency_ms.get('p50'))} / {_ms(r.raw_latency_ms.get('p99'))}"),
        ("raw aiokafka consume ev/s (same input)",
         "n/a" if r.raw_aiokafka_eps is None else f"{r.raw_aiokafka_eps:,.0f}"),
        ("freshness p99 / raw aiokafka p99", _ratio(lat.get("p99"), r.raw_latency_ms.get("p99"))),
        ("scrape median ms (resolution)", _ms(r.scrape_median_ms)),
        (f"RSS at {r.rss_early_at_s:.0f} s MiB", _mib(r.rss_early_mib)),
        ("RSS last MiB", _mib(r.rss_last_mib)),
        ("RSS max MiB", _mib(r.rss_max_mib)),
        ("RSS slope, 2nd half MiB/min", _mib(r.rss_slope_mib_per_min)),
        ("no loss (accepted == sent)", "yes" if r.exact else "NO"),
    ]
    width = max(len(name) for name, _ in rows)
    value_width = max(len(value) for _, value in rows)
    return "\n".join(f"{name.ljust(width)}  {value.rjust(value_width)}" for name, value in rows)


def _notes(r: FreshnessResult) -> str:
    cpu = ", ".join(f"{name} {cores:.2f}" for name, cores in r.cpu_cores.items())
    window_s = parse_duration_ms(r.dedup_window) / 1000
    passes = f"at {window_s:g} s" if window_s < r.duration_s else "after the run"
    drained = "n/a" if r.drain_s is None else f"{r.drain_s:.1f} s"
    lines = [
        f"{r.events_sent:,} events + {r.probes_sent} probes in {r.duration_s:g} s. Freshness: "
        "answer of the first /metrics scrape showing a probe - probe handed to the producer",
        f"  (an upper bound; the lower bound, from the start of the scrape before, has p50 "
        f"{_ms(r.latency_lower_p50_ms)} ms). Probe -> broker ack p50 {_ms(r.ack_p50_ms)} ms, "
        f"max {_ms(r.ack_max_ms)} ms.",
        f"  {r.scrapes} scrapes, median {_ms(r.scrape_median_ms)} ms, p90 "
        f"{_ms(r.scrape_p90_ms)} ms.",
        f"  Events sent but not yet counted: {_backlogs(r)}; {_ms(r.backlog_at_end)} when "
        f"publishing ended, all counted {drained} later.",
        f"  CPU while publishing, in cores of {os.cpu_count()}: {cpu}.",
        f"  Code under test: {r.code}.",
        f"  RSS {_mib(r.rss_start_mib)} MiB at the start. dedup_window {r.dedup_window}: ids "
        f"alone add ~{r.id_growth_mib_per_min:.0f} MiB/min ({ID_BYTES} B each) until it "
        f"passes ({passes}), then none.",
    ]
    if r.publish_eps < 0.95 * r.rate_target:
        lines.append(f"  The publisher fell short of {r.rate_target:,.0f} ev/s: the machine is "
                     "busy; re-run before trusting a figure.")
    return "\n".join(lines)


def _backlogs(r: FreshnessResult, points: int = 7) -> str:
    """A few points of the timeline: 'N at T s'."""
    during = [p for p in r.timeline if p[0] <= r.duration_s]
    step = max(1, math.ceil(len(during) / points))
    return ", ".join(f"{backlog:,} at {at:.0f} s" for at, backlog, _ in during[::step])


def _write_json(path: Path, result: FreshnessResult, options: Options,
                load: tuple[float, float, float]) -> None:
    write_json(path, {
        "broker": result.broker,
        "machine": machine(load),
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(options).items()},
        "result": asdict(result),
    })


if __name__ == "__main__":
    sys.exit(main())
