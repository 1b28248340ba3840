"""create_app(settings): the Faust app with its topics, tables, agents and web pages.

Data flow (every internal topic has ``settings.partitions`` partitions, keyed by what
the state behind it needs, whatever key the tracker used):

    input topics --ingest--> <app>-kpi-events       by campaign     --count-->   KPI state
                       \\---> <app>-click-join       by click id     --join--+
                        \\--> <app>-customer-orders  by customer id  <-------+
                                   --customers--> <app>-kpi-events (orders, retractions)
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry

from metrics.budget_gauges import BudgetCollector
from metrics.health_gauges import HealthCollector, consumer_lag
from metrics.kpi_gauges import KpiCollector, SeedKpis
from metrics.target_gauges import TargetCollector
from streams.config.settings import Settings
from streams.events.validation import ValidationRules
from streams.flow.campaigns import CampaignChannels
from streams.kafka.clients import aiokafka_options
from streams.kafka.partitions import partition_for
from streams.kafka.topics import TopicSpec, ensure_topics, spec_of
from streams.stages.counting import CountStage
from streams.stages.customer_history import CustomerStage
from streams.stages.ingest import Ingestor
from streams.stages.joining import ClickStage
from streams.windows.cold import hot_span
from streams.windows.state import KpiState
from streams.worker import agents, web
from streams.worker.books import Books, ServedKpis
from streams.worker.bucket_store import STORE_URL as BUCKET_STORE_URL
from streams.worker.changelog import ChangelogTable
from streams.worker.click_store import STORE_URL as CLICK_STORE_URL
from streams.worker.clock import wall_clock_ms
from streams.worker.customer_store import STORE_URL as CUSTOMER_STORE_URL
from streams.worker.event_counters import EventCounters
from streams.worker.faust_app import faust_app
from streams.worker.id_store import STORE_URL as ID_STORE_URL
from streams.worker.kpi_app import KpiApp
from streams.worker.ownership import Ownership
from streams.worker.readiness import Readiness
from streams.worker.sending import FaustSender, Sender

__all__ = ["create_app"]


def create_app(settings: Settings, registry: CollectorRegistry | None = None,
               sender: Sender | None = None) -> KpiApp:
    """Build the app; nothing here reads the environment. Every record it produces goes
    through ``sender`` (default: Faust's producer, streams.worker.sending)."""
    registry = CollectorRegistry() if registry is None else registry
    app = faust_app(settings)
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
    sender = FaustSender(app, topics) if sender is None else sender

    def table(name: str, store: str | None = None) -> ChangelogTable:
        return ChangelogTable(app.Table(name, default=None, partitions=settings.partitions,
                                        store=store), sender)

    # The large state on disk, in RocksDB: buckets (streams.worker.bucket_store), remembered
    # event ids (.id_store), clicks (.click_store) and customers (.customer_store); a
    # restart recovers only their changelogs' tails. Orders waiting for a click stay in
    # memory (seconds of them).
    kpi_table = table("kpi", BUCKET_STORE_URL)
    id_table = table("event-ids", ID_STORE_URL)
    click_table = table("clicks", CLICK_STORE_URL)
    customer_table = table("customers", CUSTOMER_STORE_URL)

    books = Books(
        counts=CountStage(
            # Minutes older than the hot ones are read back from the kpi table's store.
            KpiState(settings.retention_minutes,
                     hot_span([w.minutes for w in settings.windows]), kpi_table.get),
            kpi_table, settings.dedup_window_ms,
            CampaignChannels(settings.max_campaign_channels, settings.partitions,
                             settings.campaign_retention_ms),
            lambda campaign: partition_for(campaign, settings.partitions), id_table),
        clicks=ClickStage(click_table, table("waiting-orders"),
                          settings.attribution_window_ms, settings.click_grace_ms),
        customers=CustomerStage(customer_table, settings.customer_window_ms,
                                settings.dedup_window_ms,
                                tuple(h.days for h in settings.ltv_horizons)),
    )
    ownership = Ownership(app, topics, settings.partitions)
    kpi = KpiApp(
        settings=settings,
        faust_app=app,
        topics=topics,
        sender=sender,
        books=books,
        ownership=ownership,
        served=ServedKpis(books, ownership, settings.windows),
        readiness=Readiness(app),
        counters=EventCounters(registry),
        ingestor=Ingestor(settings.event_topics, ValidationRules(settings.fx),
                          settings.promo_codes, wall_clock_ms),
        registry=registry,
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
    registry.register(KpiCollector(kpi.served.rows, settings.reporting_currency, SeedKpis(
        extras=kpi.served.extras_rows, margin=settings.default_gross_margin,
        top_products=settings.top_products, top_content_types=settings.top_content_types,
        ltv_horizons=tuple((h.label, h.days) for h in settings.ltv_horizons))))
    registry.register(TargetCollector(settings.targets, kpi.served.owned_campaigns))
    registry.register(BudgetCollector(settings, books.counts.state, ownership, wall_clock_ms))
    registry.register(HealthCollector(
        kpi.readiness.is_ready,
        lambda: consumer_lag(app, settings.app_id, kpi.readiness.input)))
    agents.register(kpi)
    web.register(kpi)
    return kpi
