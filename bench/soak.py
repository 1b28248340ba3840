"""Kill-anything soak: workers SIGKILLed at random while a ledger producer keeps sending.

3 workers (``--workers``) of one deployment count a steady stream of all five event types
(duplicates, late events, orders attributed three ways, returning customers); every 30-60 s
(seeded) a random worker gets SIGKILL and is started again. When the producer stops, the
summed /metrics of the live workers must equal the ledger exactly (``window="total"``, per
campaign and channel). The anchor is Kafka Streams' exactly-once system test (kill -9
while scaling, every record delivered once).

    .venv/bin/python -m bench.soak                       # 10 minutes at 1,000 events/s
    .venv/bin/python -m bench.soak --duration 180 --json bench/results/soak.json

Exit status: 0 exact, 1 lost or double counted (or a worker did not come back), 2 could
not measure (broker, producer).
"""

from __future__ import annotations

import argparse
import os
import random
import re
import signal
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.brokers import add_broker_option, describe, open_broker
from bench.ledger import (
    METRICS,
    Difference,
    Ledger,
    Snapshot,
    Totals,
    add_totals,
    compare,
    config_toml,
    covers,
    read_totals,
)
from bench.report import machine, say, write_json
from bench.soak_lag import dead_letters, group_lag
from bench.soak_producer import ProducerStats, produce
from streams.kafka.tansu import Broker
from tests.integration.harness import Deployment, Worker, wait_until

__all__ = ["SoakConfig", "SoakResult", "main", "run_soak"]

_POLL_S = 1.0
_LABEL = re.compile(r'(\w+)="([^"]*)"')
_LOG_MARKS = ("ERROR", "CRITICAL", "Traceback", "ConsistencyError")


@dataclass(frozen=True, slots=True)
class SoakConfig:
    duration_s: float = 600.0
    rate: float = 1000.0
    workers: int = 3
    partitions: int = 8
    seed: int = 1
    kill_min_s: float = 30.0
    kill_max_s: float = 60.0
    max_kills: int | None = None
    min_kills: int = 0
    """Produce past the duration until this many kills are done (for the short test)."""
    final_timeout_s: float = 180.0
    """How long to wait after the producer stopped for the numbers to become exact."""
    broker: str = "tansu"


@dataclass(slots=True)
class Kill:
    """One SIGKILL and how long the deployment took to come back from it."""

    at_s: float
    """Seconds since the producer started."""
    port: int
    acked_events: int
    """Events the broker had acknowledged when the kill came."""
    restarted_ready_s: float | None = None
    """SIGKILL -> the replacement worker's /ready answers 200."""
    all_ready_s: float | None = None
    """SIGKILL -> every live worker's /ready answers 200."""
    covered_s: float | None = None
    """SIGKILL -> the summed /metrics hold every event acknowledged before the kill."""
    snapshot: Snapshot | None = field(default=None, repr=False)
    killed_at: float = field(default=0.0, repr=False)


@dataclass(slots=True)
class SoakResult:
    config: SoakConfig
    sent_unique: dict[str, int]
    sent_duplicates: dict[str, int]
    producer: ProducerStats
    metrics: dict[str, dict[str, float]]
    differences: list[Difference]
    kills: list[Kill]
    exact_after_s: float | None
    """Producer stopped (every send acknowledged) -> summed /metrics equal the ledger."""
    shared_campaigns: int
    """Polls in which some campaign was served by two workers at once."""
    problems: list[str]
    log_lines: dict[str, list[str]]
    lag: dict[str, dict[str, int]]
    """Consumer group -> "topic:partition" -> messages not committed, from the broker."""
    worker_lag: dict[int, dict[str, float]]
    """Worker port -> "topic:partition" -> its kpistream_consumer_lag, at the end."""
    dead_letters: dict[str, int]
    """Reason -> records on the dead-letter topic (the soak sends only valid events)."""
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]
    workdir: str

    @property
    def exact(self) -> bool:
        return (not self.differences and self.exact_after_s is not None
                and not self.dead_letters)

    def lost(self) -> float:
        return sum(m["lost"] for m in self.metrics.values())

    def double(self) -> float:
        return sum(m["double"] for m in self.metrics.values())


def live_totals(workers: list[Worker]) -> tuple[Totals, set[str]]:
    """Summed totals over the workers that answer, and campaigns two of them serve."""
    summed: Totals = {}
    owner: dict[str, int] = {}
    shared: set[str] = set()
    for worker in workers:
        if worker.process.poll() is not None:
            continue
        try:
            totals = read_totals(worker.metrics_text())
        except OSError:
            continue
        for campaign, _ in totals:
            if owner.setdefault(campaign, worker.port) != worker.port:
                shared.add(campaign)
        add_totals(summed, totals)
    return summed, shared


class _Watcher(threading.Thread):
    """Polls the summed /metrics; marks each kill covered once the counts reach its snapshot."""

    def __init__(self, live: list[Worker], lock: threading.Lock) -> None:
        super().__init__(daemon=True)
        self.live = live
        self.lock = lock
        self.kills: list[Kill] = []
        self.shared_polls = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(_POLL_S):
            with self.lock:
                workers = list(self.live)
                pending = [k for k in self.kills if k.covered_s is None]
            counted, shared = live_totals(workers)
            self.shared_polls += bool(shared)
            now = time.monotonic()
            for kill in pending:
                if kill.snapshot is not None and covers(counted, kill.snapshot):
                    kill.covered_s = now - kill.killed_at


def run_soak(broker: Broker, workdir: Path, config: SoakConfig) -> SoakResult:
    """One soak against a running broker; stops every worker it started."""
    load_before = os.getloadavg()
    deployment = Deployment(broker, workdir, partitions=config.partitions,
                            extra_toml=config_toml())
    ledger = Ledger(config.seed)
    stats = ProducerStats()
    problems: list[str] = []
    lock = threading.Lock()
    live: list[Worker] = []
    watcher = _Watcher(live, lock)
    stop = threading.Event()
    try:
        for _ in range(config.workers):
            live.append(deployment.start_worker(ready_timeout_s=120))
        wait_until(lambda: all(w.status("/ready") == 200 for w in live), 120,
                   "every worker ready before the soak")
        say(f"soak: {config.workers} workers ready; producing {config.rate:,.0f} events/s "
            f"for {config.duration_s:.0f} s")
        producer = threading.Thread(target=produce, args=(
            broker.bootstrap, deployment.topics, ledger, config.rate, stop, stats,
            config.seed + 1), daemon=True)
        started = time.monotonic()
        producer.start()
        watcher.start()
        _kill_loop(deployment, live, lock, watcher, ledger, config, started, problems)
        stop.set()
        producer.join()
        say(f"soak: producer stopped after {stats.seconds:.0f} s, {stats.events:,} events; "
            f"waiting for the numbers")
        if stats.given_up_events:
            problems.append(f"producer gave up on {stats.given_up_events} events")
        expected = ledger.expected()
        stopped = time.monotonic()
        exact_after: float | None = None
        counted: Totals = {}
        deadline = stopped + config.final_timeout_s
        progress = stopped
        while time.monotonic() < deadline:
            counted, shared = live_totals(live)
            if not shared and not compare(expected, counted)[1]:
                exact_after = time.monotonic() - stopped
                break
            if time.monotonic() - progress >= 15:
                progress = time.monotonic()
                views = compare(expected, counted)[0]["marketing_views"]
                say(f"soak: {progress - stopped:.0f} s after the end: views counted "
                    f"{views['counted']:,.0f} of {views['expected']:,.0f}")
            time.sleep(_POLL_S)  # the pace of polling; the condition is the counts
        try:
            lag = group_lag(broker.bootstrap, deployment.app_id,
                            [deployment.app_id, f"{deployment.app_id}-ingest"])
        except Exception as exc:  # a diagnostic only: never the verdict
            lag = {}
            say(f"soak: could not read the consumer groups' offsets: {exc!r}")
        dead = dead_letters(broker.bootstrap, deployment.topics["deadletter"])
        worker_lag = {w.port: _worker_lag(w) for w in live}
        watcher.stop.set()
        watcher.join()
        for kill in watcher.kills:  # the watcher may not have polled since the last answer
            if kill.covered_s is None and kill.snapshot and covers(counted, kill.snapshot):
                kill.covered_s = time.monotonic() - kill.killed_at
        summary, differences = compare(expected, counted)
    finally:
        stop.set()
        watcher.stop.set()
        deployment.stop_workers()
    return SoakResult(
        config, dict(ledger.sent_unique), dict(ledger.sent_duplicates), stats, summary,
        differences, watcher.kills, exact_after, watcher.shared_polls, problems,
        _log_lines(deployment), lag, worker_lag, dead, load_before, os.getloadavg(), str(workdir))


def _kill_loop(deployment: Deployment, live: list[Worker], lock: threading.Lock,
               watcher: _Watcher, ledger: Ledger, config: SoakConfig, started: float,
               problems: list[str]) -> None:
    """Until the duration is over and ``min_kills`` are done: SIGKILL a random worker,
    start a new one, wait for it. A restart under way when the time is up is finished."""
    rng = random.Random(config.seed + 2)
    end = started + config.duration_s
    next_kill = started + rng.uniform(config.kill_min_s, config.kill_max_s)
    idle = threading.Event()  # never set: waits for the next scheduled kill, not a readiness
    while True:
        now, done = time.monotonic(), len(watcher.kills)
        if now >= end and done >= config.min_kills:
            return
        if config.max_kills is not None and done >= config.max_kills:
            idle.wait(end - now)
            return
        if now < next_kill:
            idle.wait(next_kill - now if done < config.min_kills else min(next_kill, end) - now)
            continue
        with lock:
            victim = rng.choice(live)
        snapshot = ledger.snapshot()
        killed_at = time.monotonic()
        victim.stop(signal.SIGKILL)
        kill = Kill(killed_at - started, victim.port, snapshot.events, snapshot=snapshot,
                    killed_at=killed_at)
        with lock:
            live.remove(victim)
            watcher.kills.append(kill)
        say(f"soak: t={kill.at_s:.0f} s SIGKILL worker on port {victim.port} "
            f"({snapshot.events:,} events acknowledged)")
        try:
            replacement = deployment.start_worker(ready_timeout_s=180)
        except AssertionError as exc:
            problems.append(f"the worker started after the kill at {kill.at_s:.0f} s: {exc}")
            return
        kill.restarted_ready_s = time.monotonic() - killed_at
        with lock:
            live.append(replacement)
        try:
            wait_until(lambda: all(w.status("/ready") == 200 for w in list(live)), 180,
                       "every worker ready after a kill")
            kill.all_ready_s = time.monotonic() - killed_at
        except AssertionError as exc:
            problems.append(f"after the kill at {kill.at_s:.0f} s: {exc}")
        say(f"soak: replacement ready after {kill.restarted_ready_s:.1f} s, all ready after "
            f"{kill.all_ready_s or float('nan'):.1f} s")
        next_kill = max(killed_at + rng.uniform(config.kill_min_s, config.kill_max_s),
                        time.monotonic())


def _worker_lag(worker: Worker) -> dict[str, float]:
    """What a worker has not yet consumed, per consumer group and topic
    (its kpistream_consumer_lag series)."""
    try:
        text = worker.metrics_text()
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        if line.startswith("kpistream_consumer_lag{"):
            labels = dict(_LABEL.findall(line[:line.rindex("}")]))
            out[f"{labels['group']}:{labels['topic']}"] = float(line.rsplit(" ", 1)[1])
    return out


def _log_lines(deployment: Deployment, per_worker: int = 12) -> dict[str, list[str]]:
    """Each worker's distinct error lines (killed workers included), with how often and
    when first seen: the time stamp is cut off to group them."""
    out = {}
    for worker in deployment.workers:
        seen: dict[str, list[Any]] = {}
        for line in worker.log.read_text(errors="replace").splitlines():
            if any(mark in line for mark in _LOG_MARKS):
                stamp, _, text = line.partition("] [")
                message = text.partition("] ")[2] or line
                seen.setdefault(message, [0, stamp.lstrip("[")])[0] += 1
        if seen:
            out[worker.log.name] = [f"{n}x from {first}: {message}"
                                    for message, (n, first) in list(seen.items())[:per_worker]]
    return out


def _num(value: float, money: bool) -> str:
    return f"{value:,.2f}" if money else f"{value:,.0f}"


def render(result: SoakResult) -> str:
    """The figures as a plain-text table."""
    c = result.config
    unique, dups = sum(result.sent_unique.values()), sum(result.sent_duplicates.values())
    lines = [
        f"kpistream soak: {c.workers} workers, {c.partitions} partitions, broker {c.broker}, "
        f"{result.producer.seconds:.0f} s at {c.rate:,.0f} events/s, seed {c.seed}; load average "
        f"{result.load_before[0]:.2f} before, {result.load_after[0]:.2f} after",
        f"sent: {unique:,} unique events, {unique + dups:,} with {dups:,} duplicates "
        f"({dups / max(1, unique + dups):.1%}); in {result.producer.messages:,} messages; "
        f"send errors retried {result.producer.send_failures:,}",
        "  by type: " + ", ".join(f"{t} {n:,} (+{result.sent_duplicates[t]:,} dup)"
                                  for t, n in result.sent_unique.items()),
        "",
        f"{'metric (window=total)':<28}{'expected':>16}{'counted':>16}{'lost':>12}"
        f"{'double':>12}",
    ]
    for name in METRICS:
        m = result.metrics[name]
        money = name in ("marketing_revenue", "marketing_spend")
        lines.append(f"{name:<28}{_num(m['expected'], money):>16}{_num(m['counted'], money):>16}"
                     f"{_num(m['lost'], money):>12}{_num(m['double'], money):>12}")
    lines += ["", f"{'kill':<6}{'at s':>7}{'acked before':>14}{'replacement ready s':>21}"
              f"{'all ready s':>13}{'covered s':>11}"]
    for i, kill in enumerate(result.kills, 1):
        lines.append(f"{i:<6}{kill.at_s:>7.0f}{kill.acked_events:>14,}"
                     f"{_opt(kill.restarted_ready_s):>21}{_opt(kill.all_ready_s):>13}"
                     f"{_opt(kill.covered_s):>11}")
    lines += [
        "",
        "covered s: SIGKILL -> the /metrics of the live workers, summed, hold for every "
        "campaign-channel at least every event the broker had acknowledged before the kill",
        f"exact after the producer stopped: {_opt(result.exact_after_s)} s "
        f"(timeout {c.final_timeout_s:.0f} s); polls with a campaign on two workers: "
        f"{result.shared_campaigns}",
        f"EXACT: {'yes' if result.exact else 'NO'}; lost {result.lost():,.2f}, "
        f"double counted {result.double():,.2f}",
    ]
    for campaign, by_metric in _by_campaign(result.differences).items():
        lines.append(f"  {campaign}: " + ", ".join(
            f"{name.removeprefix('marketing_')} {delta:+,.6g}"
            for name, delta in by_metric.items()))
    if result.differences:
        lines.append("  (counted - expected, summed over the campaign's channels; "
                     "every campaign-channel in the JSON)")
    lines += [f"problem: {p}" for p in result.problems]
    lines.append("dead-letter topic: " + (", ".join(
        f"{n:,}x {reason!r}" for reason, n in result.dead_letters.items()) or "empty"))
    behind = [f"{g} {tp} {n:,}" for g, parts in result.lag.items() for tp, n in parts.items()]
    if not result.exact:  # when exact, a few messages past the last commit are normal
        lines.append("consumer groups at the end, messages not committed: "
                     + (", ".join(sorted(behind)) or "none"))
        for port, parts in sorted(result.worker_lag.items()):
            lines.append(f"  worker on port {port} reports kpistream_consumer_lag for "
                         f"{len(parts)} partitions; not 0: "
                         + (", ".join(f"{tp} {n:,.0f}" for tp, n in sorted(parts.items())
                                      if n) or "none"))
        for log, marked in result.log_lines.items():
            lines.append(f"{log}:")
            lines += [f"  {line[:300]}" for line in marked]
        lines.append(f"worker logs in {result.workdir}")
    return "\n".join(lines)


def _by_campaign(differences: list[Difference]) -> dict[str, dict[str, float]]:
    """campaign -> metric -> counted - expected over its channels, for the differences."""
    out: dict[str, dict[str, float]] = {}
    for diff in differences:
        row = out.setdefault(diff.series[0], {})
        row[diff.metric] = row.get(diff.metric, 0.0) + diff.counted - diff.expected
    return dict(sorted(out.items()))


def _opt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def to_json(result: SoakResult) -> dict[str, Any]:
    kills = [{k: v for k, v in asdict(kill).items() if k not in ("snapshot", "killed_at")}
             for kill in result.kills]
    return {
        "broker": result.config.broker,
        "broker_version": describe(result.config.broker),
        "config": asdict(result.config),
        "machine": machine(result.load_before),
        "load_average_after": list(result.load_after),
        "sent_unique": result.sent_unique,
        "sent_duplicates": result.sent_duplicates,
        "producer": asdict(result.producer),
        "metrics": result.metrics,
        "kills": kills,
        "exact_after_s": result.exact_after_s,
        "exact": result.exact,
        "lost": result.lost(),
        "double": result.double(),
        "shared_campaign_polls": result.shared_campaigns,
        "differences": [asdict(d) for d in result.differences],
        "problems": result.problems,
        "log_lines": result.log_lines,
        "group_lag": result.lag,
        "worker_lag": result.worker_lag,
        "dead_letters": result.dead_letters,
        "workdir": result.workdir,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of producing")
    parser.add_argument("--rate", type=float, default=1000.0, help="events/s, duplicates in")
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--kill-min", type=float, default=30.0, help="seconds between kills")
    parser.add_argument("--kill-max", type=float, default=60.0)
    parser.add_argument("--max-kills", type=int, default=None)
    parser.add_argument("--final-timeout", type=float, default=180.0)
    add_broker_option(parser)
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here "
                        "('-' for stdout)")
    args = parser.parse_args(argv)
    config = SoakConfig(args.duration, args.rate, args.workers, args.partitions, args.seed,
                        args.kill_min, args.kill_max, args.max_kills,
                        final_timeout_s=args.final_timeout, broker=args.broker)
    workdir = Path(tempfile.mkdtemp(prefix="kpistream-soak-"))
    try:
        with open_broker(config.broker) as broker:
            result = run_soak(broker, workdir, config)
    except (RuntimeError, OSError) as exc:
        say(f"soak: could not measure: {exc}")
        return 2
    if args.json is not None and str(args.json) == "-":
        import json
        print(json.dumps(to_json(result), indent=2))
    else:
        print(render(result))
        if args.json is not None:
            write_json(args.json, to_json(result))
    if result.producer.given_up_events:
        return 2
    return 0 if result.exact and not result.problems else 1


if __name__ == "__main__":
    sys.exit(main())
