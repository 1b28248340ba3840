"""create_app(settings): the Faust app with its topics, table, agents and web pages."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import faust
from aiokafka.partitioner import murmur2
from prometheus_client import CollectorRegistry, Counter, Gauge

from metrics.collector import KpiCollector
from metrics.names import OUTCOMES, TYPE_LABELS
from streams.events import ValidationRules
from streams.ingest import Ingestor
from streams.settings import Settings
from streams.state import BucketKey, KpiRow, KpiState
from streams.windows import minute_of

__all__ = ["KpiApp", "create_app", "partition_for"]


def partition_for(campaign: str, partitions: int) -> int:
    """The repartition-topic partition of a campaign (Kafka's default murmur2 partitioner)."""
    hashed: int = murmur2(campaign.encode("utf-8"))
    return (hashed & 0x7FFFFFFF) % partitions


def wall_clock_ms() -> int:
    """Milliseconds since the epoch by this machine's clock."""
    return time.time_ns() // 1_000_000


@dataclass(eq=False)
class KpiApp:
    """The Faust app and everything the agents and web pages share."""

    settings: Settings
    faust_app: faust.App
    input_topic: Any
    kpi_events_topic: Any
    deadletter_topic: Any
    table: Any
    state: KpiState
    ingestor: Ingestor
    registry: CollectorRegistry
    events_total: Counter
    last_event_seconds: Gauge
    newest_event_ms: dict[str, int] = field(default_factory=dict)

    @property
    def kpi_events_name(self) -> str:
        return f"{self.settings.app_id}-kpi-events"

    def owned_partitions(self) -> set[int]:
        """Partitions of the repartition topic this worker actively owns now."""
        name = self.kpi_events_name
        return {tp.partition for tp in self.faust_app.assignor.assigned_actives()
                if tp.topic == name}

    def rows(self) -> Iterator[KpiRow]:
        """Window sums of the campaigns this worker owns, for the collector."""
        owned = self.owned_partitions()
        partitions = self.settings.partitions
        return self.state.rows(
            minute_of(wall_clock_ms()),
            self.settings.windows,
            lambda campaign: partition_for(campaign, partitions) in owned,
        )

    def rebuild_state(self) -> None:
        """Reload the KPI state from the recovered table, dropping partitions we lost."""
        owned = self.owned_partitions()
        partitions = self.settings.partitions
        data = self.table.data
        self.state.clear()
        for key in list(data.keys()):
            bucket_key: BucketKey = tuple(key)
            if partition_for(bucket_key[0], partitions) in owned:
                self.state.load(bucket_key, data[key])
            else:
                # Local only: the changelog still holds it for the partition's new owner.
                del data[key]

    def note_newest(self, newest_ts_ms: dict[str, int]) -> None:
        """Move kpistream_last_event_timestamp_seconds forward (never back) per type."""
        for event_type, ts_ms in newest_ts_ms.items():
            if ts_ms > self.newest_event_ms.get(event_type, -1):
                self.newest_event_ms[event_type] = ts_ms
                self.last_event_seconds.labels(event_type).set(ts_ms / 1000)

    def is_ready(self) -> bool:
        """Tables recovered and the consumer running (not rebalancing)."""
        app = self.faust_app
        recovery = app.tables.recovery  # type: ignore[attr-defined]
        return bool(
            recovery.completed.is_set() and not app.rebalancing and not app.in_recovery
        )


def create_app(settings: Settings, registry: CollectorRegistry | None = None) -> KpiApp:
    """Build the app; nothing here reads the environment."""
    from streams import agents, web  # the wiring modules need the app object first

    registry = CollectorRegistry() if registry is None else registry
    app = faust.App(
        settings.app_id,
        broker=settings.broker,
        store="memory://",
        datadir=str(settings.data_dir),
        autodiscover=False,
        web_enabled=True,
        web_port=settings.web_port,
        web_bind=settings.web_host,
        topic_partitions=settings.partitions,
        consumer_auto_offset_reset="earliest",
        # Tansu holds a JoinGroup for half the session timeout: keep it short.
        broker_session_timeout=6,
        broker_heartbeat_interval=1,
        producer_acks=-1,
        # Table keys are (campaign, channel, minute) tuples: JSON in the changelog.
        key_serializer="json",
        value_serializer="json",
    )
    raw: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}
    input_topic = app.topic(*settings.event_topics, **raw)
    kpi_events_topic = app.topic(
        f"{settings.app_id}-kpi-events", partitions=settings.partitions, internal=True, **raw
    )
    deadletter_topic = app.topic(settings.topics.deadletter, **raw)
    table = app.Table("kpi", default=None, partitions=settings.partitions)
    events_total = Counter(
        "kpistream_events", "Events read, by type and outcome.",
        ["type", "outcome"], registry=registry,
    )
    for event_type in TYPE_LABELS:
        for outcome in OUTCOMES:
            events_total.labels(event_type, outcome)
    last_event_seconds = Gauge(
        "kpistream_last_event_timestamp_seconds",
        "Event time of the newest accepted event, by type.", ["type"], registry=registry,
    )
    kpi = KpiApp(
        settings=settings,
        faust_app=app,
        input_topic=input_topic,
        kpi_events_topic=kpi_events_topic,
        deadletter_topic=deadletter_topic,
        table=table,
        state=KpiState(settings.retention_minutes),
        ingestor=Ingestor(
            settings.event_topics,
            ValidationRules(settings.fx),
            settings.promo_codes,
            wall_clock_ms,
        ),
        registry=registry,
        events_total=events_total,
        last_event_seconds=last_event_seconds,
    )
    registry.register(KpiCollector(kpi.rows, settings.reporting_currency))
    agents.register(kpi)
    web.register(kpi)
    return kpi
