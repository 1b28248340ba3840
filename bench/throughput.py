"""kpistream's end-to-end events/s against raw aiokafka on the same data, in one run.

    .venv/bin/python -m bench.throughput                   # both modes, 200,000 events
    .venv/bin/python -m bench.throughput --mode single --json bench/results/single.json
    .venv/bin/python -m bench.throughput --smoke           # tiny: does it still run and add up?
    .venv/bin/python -m bench.throughput --broker kafka    # on Apache Kafka instead of Tansu

Exit status: 0 measured and exact, 1 kpistream's numbers are wrong, 2 could not measure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

from bench.brokers import add_broker_option, describe, open_broker, wait_for_leaders
from bench.check import accepted_events, check_kpis
from bench.kafka import BenchError, publish, raw_consume, topic_messages
from bench.procstat import ProcessSampler, cpu_seconds
from bench.profile import Profiler, breakdown, project_frames, top_frames
from bench.report import say
from bench.worker import WorkerProcess
from bench.workload import FX, TOPIC_KEYS, Mode, Workload, make_workload
from streams.kafka.tansu import create_topics, free_port

__all__ = ["ModeResult", "main"]

FLOOR_EPS: Final = 8_000
"""End-to-end events/s one worker must reach in single mode."""
DEFAULT_EVENTS: Final = 200_000
SMOKE_EVENTS: Final = 3_000
_ALL_TOPIC_KEYS: Final = (*TOPIC_KEYS.values(), "deadletter")
_READY_POLL_S: Final = 0.05
_FIRST_ACCEPTED_POLL_S: Final = 0.25
_QUIET_S: Final = 0.5
_QUIET_SHARE: Final = 0.2
"""The worker is quiet when its main thread used under 20% of a core for half a second."""
_PROGRESS_EVERY_S: Final = 10.0
_SETTLE_S: Final = 2.0
"""Wait after the last event before the exactness check, so a late double count shows."""
_KIB_PER_MIB: Final = 1024


@dataclass(slots=True)
class Options:
    modes: tuple[Mode, ...]
    events: int
    partitions: int
    campaigns: int
    poll_s: float
    start_timeout_s: float
    stall_timeout_s: float
    profile_dir: Path | None
    json_path: Path | None
    logs_dir: Path | None
    broker: str = "tansu"


@dataclass(slots=True)
class ModeResult:
    """One mode's figures; rates in events/s, times in seconds after the worker started."""

    mode: str
    events: int
    broker: str = "tansu"
    """The broker of the run: tansu or kafka."""
    messages: int = 0
    publish_eps: float = 0.0
    raw_aiokafka_eps: float = 0.0
    clock_start: str = "/ready"
    """What started kpistream's clock: the worker's first input fetch or /ready turning 200,
    whichever came first (or the first accepted event, should neither be known)."""
    kpistream_eps: float | None = None
    """events / (clock start -> /metrics counts every event accepted)."""
    kpistream_eps_from_first_accepted: float | None = None
    ratio: float | None = None
    """kpistream_eps / raw_aiokafka_eps."""
    ready_s: float | None = None
    first_accepted_s: float | None = None
    done_s: float | None = None
    run_s: float | None = None
    worker_cpu_cores: float | None = None
    """CPU (all threads) the worker used during the run, in cores."""
    worker_cpu_us_per_event: float | None = None
    peak_rss_mib: float = 0.0
    final_rss_mib: float = 0.0
    polls: int = 0
    """/metrics polls during the run (asked when the worker went quiet, or every 10 s)."""
    poll_ms_idle: float = 0.0
    """One /metrics answer from the idle worker after the run, full state: a poll's cost."""
    internal_messages: dict[str, int] = field(default_factory=dict)
    """Messages the worker wrote to each of its own topics (repartition, changelogs)."""
    internal_at_first_accepted: dict[str, int] = field(default_factory=dict)
    exact: bool = False
    problems: list[str] = field(default_factory=list)
    profile: dict[str, Any] | None = None


def main(argv: Sequence[str] | None = None) -> int:
    options = _parse(argv)
    load = os.getloadavg()
    say(f"{os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    results: list[ModeResult] = []
    with tempfile.TemporaryDirectory(prefix="kpistream-bench-") as tmp:
        for mode in options.modes:
            result = ModeResult(mode, options.events, options.broker)
            try:
                _run_mode(result, options, Path(tmp))
            except BenchError as exc:
                say(f"FAILED TO MEASURE ({mode}): {exc}")
                return 2
            results.append(result)
    print(_table(results))
    print(f"broker: {describe(options.broker)}")
    for result in results:
        print(_notes(result))
    if options.json_path is not None:
        _write_json(options.json_path, results, load, options.broker)
    wrong = [r for r in results if not r.exact]
    for result in wrong:
        say(f"\n!!! {result.mode}: KPISTREAM'S NUMBERS ARE WRONG "
             f"({len(result.problems)} differences); its speed means nothing !!!")
        for problem in result.problems[:25]:
            say(f"  {problem}")
    return 1 if wrong else 0


def _parse(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench.throughput", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--mode", choices=("single", "batch", "both"), default="both",
                        help="one event per message, arrays of up to 1,000, or both in turn")
    parser.add_argument("--events", type=int, default=None,
                        help=f"events to send (default {DEFAULT_EVENTS:,}; "
                             f"{SMOKE_EVENTS:,} with --smoke)")
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--campaigns", type=int, default=50)
    parser.add_argument("--poll-ms", type=float, default=50.0,
                        help="how often the worker's CPU use is checked for the end of work")
    parser.add_argument("--start-timeout", type=float, default=120.0,
                        help="seconds for the worker to accept its first event")
    parser.add_argument("--stall-timeout", type=float, default=60.0,
                        help="seconds without progress before calling events lost")
    parser.add_argument("--smoke", action="store_true",
                        help=f"a tiny run ({SMOKE_EVENTS:,} events): it runs and adds up")
    parser.add_argument("--profile", type=Path, default=None, metavar="DIR",
                        help="record the worker with py-spy while it works; stacks to DIR")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH",
                        help="also write the figures as JSON")
    parser.add_argument("--logs", type=Path, default=None, metavar="DIR",
                        help="keep the worker's log in DIR")
    add_broker_option(parser)
    args = parser.parse_args(argv)
    events = args.events if args.events is not None else (
        SMOKE_EVENTS if args.smoke else DEFAULT_EVENTS)
    if events < 1_000:
        parser.error(f"--events must be at least 1000 to hold every event type, got {events}")
    modes: tuple[Mode, ...] = ("single", "batch") if args.mode == "both" else (args.mode,)
    return Options(
        modes=modes, events=events, partitions=args.partitions, campaigns=args.campaigns,
        poll_s=args.poll_ms / 1000, start_timeout_s=args.start_timeout,
        stall_timeout_s=args.stall_timeout, profile_dir=args.profile, json_path=args.json,
        logs_dir=args.logs, broker=args.broker,
    )


def _run_mode(result: ModeResult, options: Options, tmp: Path) -> None:
    mode: Mode = "single" if result.mode == "single" else "batch"
    with open_broker(options.broker) as broker:
        app_id = f"bench-{mode}-{uuid.uuid4().hex[:8]}"
        topics = {key: f"{app_id}.{key}" for key in _ALL_TOPIC_KEYS}
        config = tmp / f"{app_id}.toml"
        config.write_text(config_toml(options.partitions, topics), encoding="utf-8")
        create_topics(broker.bootstrap, topics.values(), options.partitions)
        wait_for_leaders(broker.bootstrap, topics.values(), options.partitions)
        say(f"[{mode}] {describe(options.broker)} on {broker.bootstrap}; building "
            f"{options.events:,} events")
        workload = make_workload(options.events, mode, time.time_ns() // 1_000_000,
                                 campaigns=options.campaigns)
        result.messages = workload.message_count
        say(f"[{mode}] publishing {result.messages:,} messages")
        result.publish_eps = asyncio.run(publish(broker.bootstrap, topics, workload))
        say(f"[{mode}] raw aiokafka consume")
        inputs = [topics[key] for key in TOPIC_KEYS.values()]
        result.raw_aiokafka_eps = asyncio.run(
            raw_consume(broker.bootstrap, inputs, options.partitions, workload))
        say(f"[{mode}] kpistream worker")
        env = {
            "KPISTREAM_BROKER": broker.url,
            "KPISTREAM_APP_ID": app_id,
            "KPISTREAM_CONFIG": str(config),
            "KPISTREAM_WEB_HOST": "127.0.0.1",
            "KPISTREAM_DATA_DIR": str(tmp / f"data-{app_id}"),
        }
        _measure_worker(result, options, tmp, env, workload, broker.bootstrap)
    if result.kpistream_eps is not None:
        result.ratio = result.kpistream_eps / result.raw_aiokafka_eps


def config_toml(partitions: int, topics: dict[str, str]) -> str:
    topic_lines = "\n".join(f'{key} = "{name}"' for key, name in topics.items())
    fx_lines = "\n".join(f"{code} = {rate}" for code, rate in FX.items() if code != "USD")
    return (f"[kafka]\npartitions = {partitions}\n\n[topics]\n{topic_lines}\n\n"
            f"[fx]\n{fx_lines}\n")


@dataclass(slots=True)
class _Clock:
    """perf_counter() times of the worker's milestones, and its CPU time at /ready."""

    spawned: float
    epoch_offset: float = field(default_factory=lambda: time.time() - time.perf_counter())
    """time.time() - time.perf_counter(): turns the worker log's wall-clock stamps into
    perf_counter() times."""
    fetched_at: float | None = None
    """The worker's first input fetch, from its log."""
    ready_at: float | None = None
    cpu_at_ready: float | None = None
    first_at: float | None = None
    done_at: float | None = None

    def note_ready(self, worker: WorkerProcess) -> None:
        if self.ready_at is None and worker.get("/ready", 2)[0] == 200:
            self.ready_at = time.perf_counter()
            self.cpu_at_ready = cpu_seconds(worker.pid)

    def since_start(self, moment: float | None) -> float | None:
        return None if moment is None else moment - self.spawned


def _measure_worker(
    result: ModeResult, options: Options, tmp: Path, env: dict[str, str], workload: Workload,
    bootstrap: str,
) -> None:
    port = free_port()
    worker = WorkerProcess({**env, "KPISTREAM_WEB_PORT": str(port)}, port,
                           tmp / f"worker-{env['KPISTREAM_APP_ID']}.log")
    sampler = ProcessSampler(worker.pid).start()
    profiler: Profiler | None = None
    want = workload.expected.events
    internal_prefix = f"{env['KPISTREAM_APP_ID']}-"
    clock = _Clock(time.perf_counter())
    try:
        if options.profile_dir is not None:
            options.profile_dir.mkdir(parents=True, exist_ok=True)
        _wait_first_accepted(worker, clock, options)
        result.internal_at_first_accepted = _internal(bootstrap, internal_prefix)
        if options.profile_dir is not None:
            profiler = Profiler(worker.pid, options.profile_dir / f"{result.mode}.collapsed")
        result.problems = _wait_all_accepted(worker, sampler, clock, options, want, result)
        cpu_done = cpu_seconds(worker.pid)
        fetched = worker.logged_at("first input fetched")
        if fetched is not None:
            clock.fetched_at = fetched - clock.epoch_offset
        if profiler is not None:
            result.profile = _profile_summary(profiler)
            profiler = None
        time.sleep(_SETTLE_S)
        status, text = worker.get("/metrics", timeout_s=30)
        if status != 200:
            raise BenchError(f"/metrics answered {status} after the run:\n{worker.log_tail()}")
        result.problems += check_kpis(text, workload.expected)
        result.exact = not result.problems
        result.poll_ms_idle = _idle_poll_s(worker) * 1000
        result.internal_messages = _internal(bootstrap, internal_prefix)
        sampler.sample_rss()
    finally:
        if profiler is not None:
            profiler.stop()
        sampler.stop()
        worker.stop()
        if options.logs_dir is not None:
            options.logs_dir.mkdir(parents=True, exist_ok=True)
            shutil.copy(worker.log, options.logs_dir / f"worker-{result.mode}.log")
    result.peak_rss_mib = sampler.peak_rss_kib / _KIB_PER_MIB
    result.final_rss_mib = sampler.last_rss_kib / _KIB_PER_MIB
    _figures(result, clock, want, cpu_done)


def _internal(bootstrap: str, prefix: str) -> dict[str, int]:
    """Messages in each of the worker's own topics, named without the app id."""
    counts = asyncio.run(topic_messages(bootstrap, prefix))
    return {name.removeprefix(prefix): count for name, count in counts.items()}


def _figures(result: ModeResult, clock: _Clock, want: int, cpu_done: float | None) -> None:
    result.ready_s = clock.since_start(clock.ready_at)
    result.first_accepted_s = clock.since_start(clock.first_at)
    result.done_s = clock.since_start(clock.done_at)
    if clock.done_at is None or clock.first_at is None:
        return
    # The clock starts when the worker starts consuming: its first input fetch (it may
    # come a little before /ready) or /ready. The input stage runs ahead of the counting
    # one, so the first accepted event comes after much of the work.
    start, cpu_start = clock.ready_at, clock.cpu_at_ready
    if clock.fetched_at is not None and (start is None or clock.fetched_at < start):
        result.clock_start, start = "first input fetch", clock.fetched_at
    if start is None or start >= clock.done_at:
        result.clock_start, start, cpu_start = "first accepted", clock.first_at, None
    run_s = result.run_s = clock.done_at - start
    if run_s > 0:
        result.kpistream_eps = want / run_s
        if cpu_start is not None and cpu_done is not None:
            result.worker_cpu_cores = (cpu_done - cpu_start) / run_s
            result.worker_cpu_us_per_event = (cpu_done - cpu_start) / want * 1e6
    if clock.done_at > clock.first_at:
        result.kpistream_eps_from_first_accepted = want / (clock.done_at - clock.first_at)


def _wait_first_accepted(worker: WorkerProcess, clock: _Clock, options: Options) -> None:
    """Poll /ready fast (it starts the clock), /metrics less often (the clock is running)."""
    asked = clock.spawned - _FIRST_ACCEPTED_POLL_S
    while True:
        _require_alive(worker)
        if time.perf_counter() - clock.spawned > options.start_timeout_s:
            raise BenchError(f"no event accepted {options.start_timeout_s} s after the "
                             f"worker started:\n{worker.log_tail()}")
        clock.note_ready(worker)
        if time.perf_counter() - asked >= _FIRST_ACCEPTED_POLL_S:
            asked = time.perf_counter()
            status, text = worker.get("/metrics")
            if status == 200 and accepted_events(text) > 0:
                # The counter is the first thing the worker writes into its answer.
                clock.first_at = asked
                return
        time.sleep(_READY_POLL_S)


def _wait_all_accepted(
    worker: WorkerProcess, sampler: ProcessSampler, clock: _Clock, options: Options,
    want: int, result: ModeResult,
) -> list[str]:
    """Wait until /metrics counts every event; returns a problem if progress stops.

    A poll of /metrics renders every KPI series and costs the worker a lot once the
    state is full, so it is asked only when the worker's CPU goes quiet (or every
    ``_PROGRESS_EVERY_S`` to see progress); the moment the work ended is then the
    last time the worker was busy before the poll that saw every event.
    """
    assert clock.first_at is not None
    accepted, progress_at, asked_at = 0, clock.first_at, clock.first_at
    while True:
        time.sleep(options.poll_s)
        _require_alive(worker)
        clock.note_ready(worker)
        now = time.perf_counter()
        quiet = sampler.cpu_share(now - _QUIET_S, now) < _QUIET_SHARE
        if not (quiet and now - asked_at >= _QUIET_S) and now - asked_at < _PROGRESS_EVERY_S:
            continue
        asked_at = time.perf_counter()
        status, text = worker.get("/metrics")
        result.polls += 1
        now_accepted = accepted_events(text) if status == 200 else accepted
        if now_accepted >= want:
            busy = sampler.last_busy(asked_at)
            clock.done_at = max(clock.first_at, asked_at if busy is None else busy)
            return []
        if now_accepted > accepted:
            accepted, progress_at = now_accepted, asked_at
        elif asked_at - progress_at > options.stall_timeout_s:
            return [f"only {accepted:,} of {want:,} events accepted, and no progress for "
                    f"{options.stall_timeout_s} s"]


def _idle_poll_s(worker: WorkerProcess, tries: int = 5) -> float:
    """The quickest of a few /metrics answers: the worker's own cost of one poll."""
    best = float("inf")
    for _ in range(tries):
        asked = time.perf_counter()
        worker.get("/metrics")
        best = min(best, time.perf_counter() - asked)
    return best


def _require_alive(worker: WorkerProcess) -> None:
    if not worker.alive():
        raise BenchError(f"the worker exited with status {worker.process.returncode}:\n"
                         f"{worker.log_tail()}")


def _profile_summary(profiler: Profiler) -> dict[str, Any]:
    complaint = profiler.stop()
    if complaint or not profiler.out.exists():
        say(f"py-spy failed: {complaint.strip()[-500:]}")
        return {"error": complaint}
    collapsed = profiler.out.read_text(errors="replace")
    total, own, _ = top_frames(collapsed)
    return {
        "file": str(profiler.out),
        "samples": total,
        "stages": breakdown(collapsed),
        "own": [(frame, count / max(1, total)) for frame, count in own],
        "kpistream_inclusive": project_frames(collapsed),
    }


def _rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


def _secs(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} s"


def _table(results: list[ModeResult]) -> str:
    header = ("mode", "events", "raw aiokafka ev/s", "kpistream e2e ev/s", "ratio",
              "peak RSS MiB", "exact")
    rows = [header] + [
        (r.mode, f"{r.events:,}", _rate(r.raw_aiokafka_eps), _rate(r.kpistream_eps),
         "n/a" if r.ratio is None else f"{r.ratio:.3f}", f"{r.peak_rss_mib:.0f}",
         "yes" if r.exact else "NO")
        for r in results
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                  for i, (cell, w) in enumerate(zip(row, widths, strict=True)))
        for row in rows
    )


def _notes(r: ModeResult) -> str:
    cpu = ("n/a" if r.worker_cpu_cores is None else
           f"{r.worker_cpu_cores:.2f} cores = {r.worker_cpu_us_per_event:.0f} us/event")
    lines = [
        f"{r.mode}: {r.messages:,} messages. Worker /ready {_secs(r.ready_s)} after start, "
        f"first accepted {_secs(r.first_accepted_s)}, all accepted {_secs(r.done_s)}; "
        f"clock from {r.clock_start}: {_secs(r.run_s)}",
        f"  from the first accepted event instead: "
        f"{_rate(r.kpistream_eps_from_first_accepted)} ev/s; worker CPU {cpu}; "
        f"final RSS {r.final_rss_mib:.0f} MiB; publish {_rate(r.publish_eps)} ev/s",
        f"  {r.polls} polls of /metrics during the run, {r.poll_ms_idle:.0f} ms each when idle",
    ]
    if r.internal_messages:
        lines.append("  worker's own topics: messages per event (messages written by the time "
                     "of the first accepted event / in all)")
        lines += [f"    {count / r.events:5.2f}  {name} "
                  f"({r.internal_at_first_accepted.get(name, 0):,} / {count:,})"
                  for name, count in r.internal_messages.items() if count]
    if r.mode == "single" and r.kpistream_eps is not None and r.kpistream_eps < FLOOR_EPS:
        lines.append(f"  BELOW the {FLOOR_EPS:,} ev/s floor for one worker in single mode "
                     "(a busy machine reads low: check the load average, re-run)")
    if r.profile and "own" in r.profile:
        lines.append(f"  py-spy, {r.profile['samples']} samples from the first accepted event; "
                     "by stage:")
        lines += [f"    {share:6.1%}  {stage}" for stage, share in r.profile["stages"]]
        lines.append("  top frames by own time:")
        lines += [f"    {share:6.1%}  {frame}" for frame, share in r.profile["own"]]
        lines.append("  kpistream functions, including what they call:")
        lines += [f"    {share:6.1%}  {frame}"
                  for frame, share in r.profile["kpistream_inclusive"]]
    return "\n".join(lines)


def _write_json(path: Path, results: list[ModeResult], load: tuple[float, float, float],
                broker: str) -> None:
    doc = {
        "broker": broker,
        "broker_version": describe(broker),
        "machine": {"cpus": os.cpu_count(), "load_average_at_start": list(load),
                    "python": platform.python_version()},
        "results": [asdict(r) for r in results],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
