"""create_app(settings): the Faust app with its topics, tables, agents and web pages.

Data flow (every internal topic has ``settings.partitions`` partitions, keyed by what
the state behind it needs, whatever key the tracker used):

    input topics --ingest--> <app>-kpi-events       by campaign     --count-->   KPI state
                       \\---> <app>-click-join       by click id     --join--+
                        \\--> <app>-customer-orders  by customer id  <-------+
                                   --customers--> <app>-kpi-events (orders, retractions)
"""

from __future__ import annotations

import gc
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import faust
from prometheus_client import CollectorRegistry, Counter, Gauge

from metrics.budgets import BudgetCollector
from metrics.collector import KpiCollector
from metrics.health import HealthCollector, consumer_lag
from metrics.names import OUTCOMES, TYPE_LABELS
from metrics.targets import TargetCollector
from streams.campaigns import CampaignChannels
from streams.changelog import ChangelogTable
from streams.delivery import InOrderAcks
from streams.events import ValidationRules
from streams.ingest import Ingestor
from streams.input_consumer import InputConsumer
from streams.kafka_clients import aiokafka_options, faust_credentials
from streams.liveness import BrokerProbe
from streams.partitions import partition_for
from streams.settings import Settings
from streams.stages import ClickStage, CountStage, CustomerStage
from streams.state import KpiRow, KpiState
from streams.stream_consumer import stream_consumer_urls
from streams.topics import TopicSpec, ensure_topics, spec_of
from streams.windows import minute_of

__all__ = ["KpiApp", "create_app", "partition_for", "wall_clock_ms"]


def wall_clock_ms() -> int:
    """Milliseconds since the epoch by this machine's clock."""
    return time.time_ns() // 1_000_000


@dataclass(eq=False)
class KpiApp:
    """The Faust app and everything the agents and web pages share."""

    settings: Settings
    faust_app: FaustApp
    topics: dict[str, Any]
    """kpi_events, click_join, customer_orders, deadletter (input is read by
    streams.input_consumer, outside Faust's streams)."""
    counts: CountStage
    clicks: ClickStage
    customers: CustomerStage
    ingestor: Ingestor
    registry: CollectorRegistry
    events_total: Counter
    last_event_seconds: Gauge
    probe: BrokerProbe | None = None
    input: InputConsumer | None = None
    newest_event_ms: dict[str, int] = field(default_factory=dict)
    acks: dict[str, InOrderAcks] = field(default_factory=dict)
    """Per stateful stage, its messages waiting for their sends before they are acked."""

    def stage_acks(self, stage: str) -> InOrderAcks:
        return self.acks.setdefault(stage, InOrderAcks(stage))

    def partition(self, key: str) -> int:
        return partition_for(key, self.settings.partitions)

    def owned_partitions(self, topic: str = "kpi_events") -> set[int]:
        """Partitions of an internal topic this worker actively owns now."""
        name = self.topics[topic].get_topic_name()
        return {tp.partition for tp in self.faust_app.assignor.assigned_actives()
                if tp.topic == name}

    def served_partitions(self) -> set[int]:
        """Partitions whose KPIs /metrics shows: none while a rebalance is under way.

        A worker learns which partitions it lost only when the rebalance hands out the
        new assignment, and another worker may have recovered them and be serving them
        by then (seen in 2 of 10 scale-test runs: the old owner still served a campaign
        0.1 s after the new one had recovered it).
        Faust's ``rebalancing`` is set before this worker rejoins the group and cleared
        once its recovery is done, so no campaign is ever served by two workers.
        """
        return set() if self.faust_app.rebalancing else self.owned_partitions()

    def rows(self) -> Iterator[KpiRow]:
        """Window sums of the campaigns this worker serves, for the collector."""
        owned = self.served_partitions()
        return self.counts.state.rows(
            minute_of(wall_clock_ms()),
            self.settings.windows,
            lambda campaign: self.partition(campaign) in owned,
        )

    def owned_campaigns(self) -> set[str]:
        """Campaigns this worker serves and has counted, for the target collector."""
        owned = self.served_partitions()
        # No windows: only the running totals come back, so no minute bucket is summed.
        rows = self.counts.state.rows(0, (), lambda campaign: self.partition(campaign) in owned)
        return {campaign for campaign, _, _, _ in rows}

    def rebuild(self) -> None:
        """Reload every stage from the recovered tables, dropping partitions we lost."""
        owned = self.owned_partitions()
        self.counts.rebuild(owned, lambda campaign: self.partition(campaign) in owned,
                            wall_clock_ms())
        stages: tuple[tuple[str, ClickStage | CustomerStage], ...] = (
            ("click_join", self.clicks), ("customer_orders", self.customers))
        for topic, stage in stages:
            mine = self.owned_partitions(topic)

            def owns(key: str, mine: set[int] = mine) -> int | None:
                partition = self.partition(key)
                return partition if partition in mine else None

            stage.rebuild(mine, owns)
        # The rebuilt state is long-lived and holds no reference cycles: keep the cyclic
        # garbage collector from walking it on every full pass (refcounting still frees it).
        gc.freeze()

    def count(self, event_type: str, outcome: str, amount: int) -> None:
        self.events_total.labels(event_type, outcome).inc(amount)

    def note_newest(self, newest_ts_ms: dict[str, int]) -> None:
        """Move kpistream_last_event_timestamp_seconds forward (never back) per type."""
        for event_type, ts_ms in newest_ts_ms.items():
            if ts_ms > self.newest_event_ms.get(event_type, -1):
                self.newest_event_ms[event_type] = ts_ms
                self.last_event_seconds.labels(event_type).set(ts_ms / 1000)

    def is_ready(self) -> bool:
        """Tables recovered, both consumer groups joined, the broker answering, every
        stage consuming and delivering."""
        return not self.not_ready_because()

    def not_ready_because(self) -> list[str]:
        """Why /ready answers 503 now (empty: it answers 200)."""
        app = self.faust_app
        recovery = app.tables.recovery  # type: ignore[attr-defined]
        reasons = []
        if not recovery.completed.is_set() or app.rebalancing or app.in_recovery:
            reasons.append("recovering tables or rebalancing")
        if self.probe is not None and not self.probe.reachable:
            reasons.append("the broker does not answer")
        if self.input is not None and (problem := self.input.problem()) is not None:
            reasons.append(problem)
        reasons += [acks.failure for acks in self.acks.values() if acks.failure is not None]
        return reasons

    @property
    def bootstrap(self) -> str:
        """Bootstrap servers in aiokafka's form."""
        return ",".join(f"{url.host}:{url.port or 9092}" for url in self.faust_app.conf.broker)


class FaustApp(faust.App):
    """faust.App that also starts ``started_with_app`` services with its own.

    Services added with ``app.service`` start only after table recovery; the input
    consumer joins its own consumer group, which takes seconds, so it starts beside
    Faust's consumer and both groups are joined at about the same time.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.started_with_app: list[Any] = []
        self.before_start: list[Callable[[], Awaitable[None]]] = []
        """Run before any of Faust's services start (topic creation, streams.topics)."""

    def on_init_dependencies(self) -> Any:
        return [*super().on_init_dependencies(), *self.started_with_app]

    async def on_first_start(self) -> None:
        for step in self.before_start:
            await step()
        await super().on_first_start()


def _faust_app(settings: Settings) -> FaustApp:
    replicas = settings.kafka.replication_factor
    return FaustApp(
        settings.app_id,
        broker=settings.broker,
        # Faust's own Kafka transport, but its consumer's fetch wait and end offsets ours.
        broker_consumer=stream_consumer_urls(settings.broker),
        broker_credentials=faust_credentials(settings.kafka),
        # Faust's own small topics (the assignor's leader topic) when a count is given; with
        # the broker's default (-1, below Faust's floor of 0) they keep Faust's 1.
        topic_replication_factor=max(replicas, 1),
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
        # A topic Faust has just created may be missing from the first metadata Kafka
        # answers (its brokers learn of new topics a moment after the controller); the
        # group is assigned its partitions at the next refresh, so refresh often.
        consumer_metadata_max_age_ms=5_000,
        # Let internal and changelog messages share produce requests.
        producer_linger_ms=5,
        # Table keys are (campaign, channel, minute) tuples: JSON in the changelog.
        key_serializer="json",
        value_serializer="json",
    )


def create_app(settings: Settings, registry: CollectorRegistry | None = None) -> KpiApp:
    """Build the app; nothing here reads the environment."""
    from streams import agents, web  # the wiring modules need the app object first

    registry = CollectorRegistry() if registry is None else registry
    app = _faust_app(settings)
    raw: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}

    def internal(name: str) -> Any:
        return app.topic(f"{settings.app_id}-{name}", partitions=settings.partitions,
                         internal=True, **raw)

    topics = {
        "kpi_events": internal("kpi-events"),
        "click_join": internal("click-join"),
        "customer_orders": internal("customer-orders"),
        "deadletter": app.topic(settings.topics.deadletter, **raw),
    }

    def table(name: str) -> ChangelogTable:
        return ChangelogTable(app.Table(name, default=None, partitions=settings.partitions))

    events_total = Counter(
        "kpistream_events", "Events read, by type and outcome.",
        ["type", "outcome"], registry=registry,
    )
    for event_type in TYPE_LABELS:
        for outcome in OUTCOMES:
            events_total.labels(event_type, outcome)
    kpi = KpiApp(
        settings=settings,
        faust_app=app,
        topics=topics,
        counts=CountStage(
            KpiState(settings.retention_minutes), table("kpi"), settings.dedup_window_ms,
            CampaignChannels(settings.max_campaign_channels, settings.partitions,
                             settings.campaign_retention_ms),
            lambda campaign: partition_for(campaign, settings.partitions)),
        clicks=ClickStage(table("clicks"), table("waiting-orders"),
                          settings.attribution_window_ms, settings.click_grace_ms),
        customers=CustomerStage(table("customers"), settings.customer_window_ms,
                                settings.dedup_window_ms),
        ingestor=Ingestor(settings.event_topics, ValidationRules(settings.fx),
                          settings.promo_codes, wall_clock_ms),
        registry=registry,
        events_total=events_total,
        last_event_seconds=Gauge(
            "kpistream_last_event_timestamp_seconds",
            "Event time of the newest accepted event, by type.", ["type"], registry=registry,
        ),
    )
    # Every topic the worker creates, made (with [kafka] replication_factor; -1: the broker's
    # default) and visible before Faust subscribes.
    replicas = settings.kafka.replication_factor
    specs = [*(spec_of(topics[name], replicas)
               for name in ("kpi_events", "click_join", "customer_orders")),
             *(spec_of(t.changelog_topic, replicas) for t in app.tables.values()),
             TopicSpec(f"{app.conf.id}-__assignor-__leader", 1, replicas, compacted=False)]
    app.before_start.append(
        lambda: ensure_topics(kpi.bootstrap, aiokafka_options(settings.kafka), specs))
    registry.register(KpiCollector(kpi.rows, settings.reporting_currency))
    registry.register(TargetCollector(settings.targets, kpi.owned_campaigns))
    registry.register(BudgetCollector(settings, kpi.counts.state, kpi, wall_clock_ms))
    registry.register(HealthCollector(
        kpi.is_ready, lambda: consumer_lag(app, kpi.settings.app_id, kpi.input)))
    agents.register(kpi)
    web.register(kpi)
    return kpi
