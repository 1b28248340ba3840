"""Recovery time against changelog size: how long a restarted worker takes to be ready.

Publishes N view events over many campaigns and minutes, lets one worker count them,
stops it, starts a new one and times start -> /ready (state is rebuilt from the
changelogs).

    .venv/bin/python -m bench.recovery                      # 10,000, 50,000, 150,000 events
    .venv/bin/python -m bench.recovery 2000 --broker kafka --json bench/results/recovery.json
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from bench.brokers import add_broker_option, describe, open_broker
from bench.report import machine, say, write_json
from streams.kafka.recovery import true_end_offsets
from tests.integration.harness import Deployment, wait_until

MIN_MS = 60_000


def _accepted(deployment: Deployment) -> float:
    worker = deployment.workers[-1]
    return sum(v for (name, labels), v in worker.samples().items()
               if name == "kpistream_events_total" and ("outcome", "accepted") in labels)


def measure(events: int, broker_name: str = "tansu") -> tuple[int, float, float]:
    """(changelog records, seconds to ready for a fresh worker, seconds after restart)."""
    with open_broker(broker_name) as broker:
        deployment = Deployment(broker, Path(tempfile.mkdtemp()), partitions=8)
        started = time.monotonic()
        deployment.start_worker()
        fresh_s = time.monotonic() - started
        now = int(time.time() * 1000)
        deployment.publish(
            ("views", {"event_id": f"v{i}", "ts": now - (i % 1440) * MIN_MS,
                       "campaign_id": f"c{i % 200}", "channel": f"ch{i % 3}"}, None)
            for i in range(events))
        wait_until(lambda: _accepted(deployment) >= events, 600, f"{events} counted")
        deployment.stop_workers()
        started = time.monotonic()
        deployment.start_worker(ready_timeout_s=600)
        restart_s = time.monotonic() - started
        records = _changelog_records(deployment)
        deployment.stop_workers()
        return records, fresh_s, restart_s


def _changelog_records(deployment: Deployment) -> int:
    """Records in every changelog topic of the deployment (true end offsets)."""

    async def count() -> int:
        admin = AIOKafkaAdminClient(bootstrap_servers=deployment.broker.bootstrap)
        await admin.start()
        try:
            topics = [t for t in await admin.list_topics()
                      if t.startswith(deployment.app_id) and t.endswith("-changelog")]
            described = await admin.describe_topics(topics)
        finally:
            await admin.close()
        tps = [TopicPartition(d["topic"], p["partition"]) for d in described
               for p in d["partitions"]]
        consumer = AIOKafkaConsumer(bootstrap_servers=deployment.broker.bootstrap)
        await consumer.start()
        try:
            reported = await consumer.end_offsets(tps)
        finally:
            await consumer.stop()
        ends = await true_end_offsets(deployment.broker.bootstrap, reported)
        return sum(ends.values())

    return asyncio.run(count())


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.recovery", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("events", type=int, nargs="*", default=[10_000, 50_000, 150_000],
                        help="view events to count before the restart, one run each")
    add_broker_option(parser)
    parser.add_argument("--json", type=Path, default=None, metavar="PATH",
                        help="also write the figures as JSON")
    args = parser.parse_args(argv)
    load = os.getloadavg()
    say(f"recovery on {describe(args.broker)}")
    print(f"broker: {describe(args.broker)}")
    print(f"{'events':>8} {'changelog records':>18} {'fresh ready s':>14} {'restart ready s':>16}")
    runs = []
    for events in args.events:
        records, fresh_s, restart_s = measure(events, args.broker)
        print(f"{events:>8,} {records:>18,} {fresh_s:>14.1f} {restart_s:>16.1f}", flush=True)
        runs.append({"events": events, "changelog_records": records, "fresh_ready_s": fresh_s,
                     "restart_ready_s": restart_s})
    if args.json is not None:
        write_json(args.json, {"broker": args.broker, "broker_version": describe(args.broker),
                               "machine": machine(load), "runs": runs})


if __name__ == "__main__":
    main()
