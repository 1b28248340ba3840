"""Recovery time against changelog size: how long a restarted worker takes to be ready.

Publishes N view events over many campaigns and minutes, lets one worker count them,
stops it, starts a new one and times start -> /ready (state is rebuilt from the
changelogs). Run: python -m bench.recovery [N ...]
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from streams.broker import LocalBroker
from streams.recovery import true_end_offsets
from tests.integration.harness import Deployment, wait_until

MIN_MS = 60_000


def _accepted(deployment: Deployment) -> float:
    worker = deployment.workers[-1]
    return sum(v for (name, labels), v in worker.samples().items()
               if name == "kpistream_events_total" and ("outcome", "accepted") in labels)


def measure(events: int) -> tuple[int, float, float]:
    """(changelog records, seconds to ready for a fresh worker, seconds after restart)."""
    with LocalBroker() as broker:
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


def main() -> None:
    sizes = [int(a) for a in sys.argv[1:]] or [10_000, 50_000, 150_000]
    print(f"{'events':>8} {'changelog records':>18} {'fresh ready s':>14} {'restart ready s':>16}")
    for events in sizes:
        records, fresh_s, restart_s = measure(events)
        print(f"{events:>8,} {records:>18,} {fresh_s:>14.1f} {restart_s:>16.1f}")


if __name__ == "__main__":
    main()
