"""A worker's parts, as the agents and the web pages reach them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry

from streams.config.settings import Settings
from streams.stages.ingest import Ingestor
from streams.worker.books import Books, ServedKpis
from streams.worker.event_counters import EventCounters
from streams.worker.faust_app import FaustApp
from streams.worker.ownership import Ownership
from streams.worker.readiness import Readiness
from streams.worker.sending import Sender

__all__ = ["KpiApp"]


@dataclass(eq=False)
class KpiApp:
    """The Faust app and the roles beside it, each its own object."""

    settings: Settings
    faust_app: FaustApp
    topics: dict[str, Any]
    """kpi_events, click_join, customer_orders, deadletter (input is read by
    streams.worker.input_consumer, outside Faust's streams)."""
    sender: Sender
    """Where every record the worker produces goes (streams.worker.sending)."""
    books: Books
    ownership: Ownership
    served: ServedKpis
    readiness: Readiness
    counters: EventCounters
    ingestor: Ingestor
    registry: CollectorRegistry

    @property
    def bootstrap(self) -> str:
        """Bootstrap servers in aiokafka's form."""
        return ",".join(f"{url.host}:{url.port or 9092}" for url in self.faust_app.conf.broker)
