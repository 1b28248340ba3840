"""The ``kpistream`` command: worker, demo, alert-rules, validate, publish, collector,
simulate, suggest-targets."""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from streams.commands import http_collector, publish, simulate, suggest_targets, validate
from streams.config.errors import SettingsError
from streams.config.settings import Settings, load_settings

__all__ = ["EX_TEMPFAIL", "main"]

EX_TEMPFAIL = os.EX_TEMPFAIL
"""75, the worker's exit status when a stateful stage stopped for a failed send that a
restart may mend (streams.kafka.send_errors): sysexits' "temporary failure, try again", so
that its supervisor (Kubernetes, Compose's ``restart: unless-stopped``, systemd's
``Restart=on-failure``) starts it again."""

log = logging.getLogger(__name__)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    parser = argparse.ArgumentParser(prog="kpistream", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    worker = commands.add_parser("worker", help="run one Faust worker")
    worker.add_argument("--loglevel", default="info")
    demo = commands.add_parser(
        "demo", help="local broker + worker + simulated campaign traffic, with a live table"
    )
    demo.add_argument("--rate", type=float, default=200.0, help="events per second")
    demo.add_argument("--duration", type=float, default=None,
                      help="stop after this many seconds (default: run until Ctrl-C)")
    rules = commands.add_parser(
        "alert-rules", help="write the Prometheus rule file for the settings' [[targets]]"
    )
    rules.add_argument("--output", default=None, help="file to write (default: stdout)")
    rules.add_argument("--runbook-url", default=None,
                       help="base of the alerts' runbook_url annotations")
    # each sets args.run(settings, args)
    for tool in (validate, publish, http_collector, simulate, suggest_targets):
        tool.add_parser(commands)
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"kpistream: {exc}", file=sys.stderr)
        return 2
    if hasattr(args, "run"):
        return int(args.run(settings, args))
    if args.command == "worker":
        return run_worker(settings, args.loglevel)
    if args.command == "alert-rules":
        return write_alert_rules(settings, args.output, args.runbook_url)
    from streams.commands.demo import run_demo

    return run_demo(settings, rate=args.rate, duration_s=args.duration)


def write_alert_rules(settings: Settings, output: str | None, runbook_url: str | None) -> int:
    """Write the Prometheus rule file to ``output`` (stdout if None)."""
    from streams.commands.alert_rules import DEFAULT_RUNBOOK, alert_rules

    text = alert_rules(settings, runbook_url or DEFAULT_RUNBOOK)
    if output is None:
        sys.stdout.write(text)
        return 0
    try:
        Path(output).write_text(text, encoding="utf-8")
    except OSError as exc:
        print(f"kpistream: cannot write {output}: {exc}", file=sys.stderr)
        return 1
    return 0


GC_THRESHOLDS = (50_000, 50, 100)
"""Cyclic-garbage collection much rarer than Python's (700, 10, 10).

A worker's state is hundreds of thousands of long-lived containers (buckets, id lists)
and it allocates a dict per event it reads: with the defaults a full collection ran
every 0.5-3 s under load, took 100-170 ms (for 300k objects) and found a few dozen
objects, holding /metrics and every stage up. Reference counting frees almost
everything; the collector is only needed for cycles, which are rare here.
"""


def run_worker(settings: Settings, loglevel: str = "info") -> int:
    """Run one worker until it is stopped."""
    import faust
    from prometheus_client import disable_created_metrics

    from streams.worker.app import create_app
    from streams.worker.malloc_arenas import limit_malloc_arenas

    limit_malloc_arenas()  # before any thread starts
    disable_created_metrics()  # type: ignore[no-untyped-call]
    gc.set_threshold(*GC_THRESHOLDS)
    kpi = create_app(settings)
    kpi.readiness.on_stage_stopped = _exit_to_be_restarted
    faust.Worker(kpi.faust_app, loglevel=loglevel).execute_from_commandline()
    return 0


def _exit_to_be_restarted(reason: str) -> None:
    """A stateful stage stopped for a failed send a restart may mend: the worker exits at
    once with ``EX_TEMPFAIL``, so that its supervisor starts it again and the group's
    other workers take its partitions, where the stopped stage held them until someone
    restarted it.

    Not a clean stop: Faust's waits until every message taken is acked, and the failed
    one never is (that keeps its offset uncommitted), so it would hang until killed. An
    exit loses nothing a kill would not: the restart reads on from the last committed
    offsets and from the offsets its local databases hold."""
    log.critical("kpistream: %s; the worker exits with status %d, to be restarted",
                 reason, EX_TEMPFAIL)
    logging.shutdown()
    os._exit(EX_TEMPFAIL)
