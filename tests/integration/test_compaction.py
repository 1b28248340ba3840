"""Compacted state on Apache Kafka: expired state leaves the changelogs as tombstones, the
cleaner drops it, and a worker started on the compacted log recovers exact numbers.

The windows are shrunk (1m window, 1 s dedup, 3 s attribution) and the changelogs get
aggressive cleaner settings (200 ms segments, any dirty ratio, tombstones kept 0 ms), so
expiry and a cleaner pass take seconds, not days.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from tests.integration.harness import Deployment, Samples, Worker, value, wait_until
from tests.kafka_broker import ApacheKafka

MIN = 60_000
PARTITIONS = 4
CAMPAIGNS = [f"c{i}" for i in range(4)]
KPI = ('[kpi]\nwindows = ["1m"]\ndedup_window = "1s"\nattribution_window = "3s"\n'
       'click_grace = "1s"\ncustomer_window = "3s"\n')
AGGRESSIVE = {"cleanup.policy": "compact", "segment.ms": "200",
              "min.cleanable.dirty.ratio": "0.01", "delete.retention.ms": "0",
              "min.compaction.lag.ms": "0"}
TOTALS = ("marketing_views", "marketing_clicks", "marketing_orders",
          "marketing_new_customers", "marketing_revenue")


def _aggressive_cleaner(bootstrap: str, topics: list[str]) -> None:
    async def _alter() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            await admin.alter_configs(
                [ConfigResource(ConfigResourceType.TOPIC, t, configs=AGGRESSIVE) for t in topics])
        finally:
            await admin.close()

    asyncio.run(_alter())


def _records(bootstrap: str, topic: str) -> list[tuple[Any, Any]]:
    """Every (key, value) of a changelog, in offset order per partition (None: tombstone)."""

    async def _read() -> list[tuple[Any, Any]]:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)
            out: list[tuple[Any, Any]] = []
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                behind = [tp for tp in tps if await consumer.position(tp) < ends[tp]]
                if not behind:
                    break
                for messages in (await consumer.getmany(*behind, timeout_ms=500)).values():
                    out.extend((orjson.loads(m.key),
                                None if m.value is None else orjson.loads(m.value))
                               for m in messages)
            return out
        finally:
            await consumer.stop()

    return asyncio.run(_read())


def _totals(samples: Samples) -> dict[tuple[str, str], float | None]:
    out = {}
    for campaign in CAMPAIGNS:
        for name in TOTALS:
            labels = {"campaign": campaign, "channel": "tiktok", "window": "total"}
            if name == "marketing_revenue":
                labels["currency"] = "USD"
            out[(campaign, name)] = value(samples, name, **labels)
    return out


def _accepted(worker: Worker) -> float:
    return sum(v for (name, labels), v in worker.samples().items()
               if name == "kpistream_events_total" and ("outcome", "accepted") in labels)


def test_expired_state_is_compacted_away_and_a_new_worker_recovers_exact_numbers(
    kafka: ApacheKafka, tmp_path: Path,
    stopped_after: Callable[[Deployment], Deployment],
) -> None:
    deployment = stopped_after(
        Deployment(kafka, tmp_path, partitions=PARTITIONS, extra_toml=KPI))
    worker = deployment.start_worker()
    app = deployment.app_id
    changelogs = {t: f"{app}-{t}-changelog"
                  for t in ("kpi", "event-ids", "clicks", "customers")}
    _aggressive_cleaner(kafka.bootstrap, [*changelogs.values(),
                                          f"{app}-waiting-orders-changelog"])
    now = int(time.time() * 1000)
    if now % MIN > 45_000:  # phase one well inside one minute
        time.sleep((MIN - now % MIN) / 1000 + 0.1)
        now = int(time.time() * 1000)
    first_minute = now // MIN

    # Phase one: views, a click and the order it brought, per campaign.
    deployment.publish([
        *(("views", {"event_id": f"v1-{c}-{i}", "ts": now, "campaign_id": c,
                     "channel": "tiktok"}, None) for c in CAMPAIGNS for i in range(30)),
        *(("clicks", {"event_id": f"k-{c}", "ts": now, "campaign_id": c, "channel": "tiktok",
                      "click_id": f"click-{c}"}, None) for c in CAMPAIGNS)])
    deployment.publish([("orders", {"event_id": f"o1-{c}", "ts": now, "order_id": f"A1{c}",
                                    "customer_id": f"cust-{c}", "revenue": "25.50",
                                    "currency": "USD", "click_id": f"click-{c}"}, None)
                        for c in CAMPAIGNS])
    wait_until(lambda: _accepted(worker) == 4 * 32, 30, "phase one counted")
    phase_one_ids = {tuple(k) for k, v in _records(kafka.bootstrap, changelogs["event-ids"])
                     if v is not None}
    wait_until(lambda: bool(_records(kafka.bootstrap, changelogs["clicks"])), 10,
               "phase one's clicks in their changelog")
    phase_one_clicks = {tuple(k) for k, _ in _records(kafka.bootstrap, changelogs["clicks"])}
    assert phase_one_ids

    # Phase two, in the next minute and past every short window: the minute buckets of
    # phase one, its ids, clicks and customers expire.
    wait_until(lambda: time.time() * 1000 // MIN > first_minute
               and time.time() * 1000 > now + 4_000, 70, "the next minute")
    later = int(time.time() * 1000)
    deployment.publish([
        *(("views", {"event_id": f"v2-{c}-{i}", "ts": later, "campaign_id": c,
                     "channel": "tiktok"}, None) for c in CAMPAIGNS for i in range(10)),
        *(("orders", {"event_id": f"o2-{c}", "ts": later, "order_id": f"A2{c}",
                      "customer_id": f"cust-{c}", "revenue": "25.50", "currency": "USD",
                      "campaign_id": c, "channel": "tiktok"}, None) for c in CAMPAIGNS)])
    wait_until(lambda: _accepted(worker) == 4 * 43, 30, "phase two counted")
    # Phase three, a segment later: the segments holding the tombstones roll and the
    # cleaner may take them.
    time.sleep(0.3)  # longer than segment.ms: the next record starts a new segment
    deployment.publish([("views", {"event_id": f"v3-{c}", "ts": later, "campaign_id": c,
                                   "channel": "tiktok"}, None) for c in CAMPAIGNS])
    wait_until(lambda: _accepted(worker) == 4 * 44, 30, "phase three counted")
    expected = {(c, name): n for c in CAMPAIGNS for name, n in (
        ("marketing_views", 41), ("marketing_clicks", 1), ("marketing_orders", 2),
        # the customer window (3 s) was over: a new customer again in phase two
        ("marketing_new_customers", 2), ("marketing_revenue", 51.0))}
    assert _totals(worker.samples()) == expected

    def live_expired() -> list[Any]:
        """Records of phase one's buckets and ids that still carry a value."""
        return [*(k for k, v in _records(kafka.bootstrap, changelogs["kpi"])
                  if v is not None and k[2] == first_minute),
                *(k for k, v in _records(kafka.bootstrap, changelogs["event-ids"])
                  if v is not None and tuple(k) in phase_one_ids)]

    wait_until(lambda: not live_expired(), 60, "the cleaner to drop phase one's state")
    assert f"cleaned log {changelogs['kpi']}-" in kafka.log_text()
    latest: dict[tuple[Any, ...], Any] = {}
    for key, record in _records(kafka.bootstrap, changelogs["kpi"]):
        latest[tuple(key)] = record
    # Phase one's keys are gone or tombstones; the live buckets are phase two's and totals.
    assert {k[2] for k, v in latest.items() if v is not None} == {later // MIN, -1}
    ids: dict[tuple[Any, ...], Any] = {}
    for key, record in _records(kafka.bootstrap, changelogs["event-ids"]):
        ids[tuple(key)] = record
    assert all(ids.get(k) is None for k in phase_one_ids)
    # Expired clicks leave their changelog as tombstones too.
    clicks: dict[tuple[Any, ...], Any] = {}
    for key, record in _records(kafka.bootstrap, changelogs["clicks"]):
        clicks[tuple(key)] = record
    assert phase_one_clicks and all(clicks.get(k) is None for k in phase_one_clicks), clicks

    # A new worker on the compacted log: the same numbers.
    worker.stop(signal.SIGKILL)
    restarted = deployment.start_worker()
    wait_until(lambda: _totals(restarted.samples()) == expected, 30,
               "the restarted worker's totals")
