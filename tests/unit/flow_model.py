"""The stages wired as the agents wire them, with dicts for tables and a queue for topics.

Every record travels in its wire form (streams.stages.outgoing encodes it, the stage decodes
it as its agent does), through the same stage methods the agents call, so the unit and
property tests drive the code the worker runs, without a broker, under a clock the test
controls. Records are delivered in the order they were sent.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

import orjson

from streams.config.settings import Settings, Window
from streams.events.validation import EventType, ValidationRules
from streams.flow.campaigns import CampaignChannels
from streams.flow.failures import Failure
from streams.kafka.partitions import partition_for
from streams.stages.click_records import MemoryClickStore
from streams.stages.counting import CountStage
from streams.stages.customer_history import CustomerStage
from streams.stages.customer_records import MemoryCustomerStore
from streams.stages.ingest import Ingestor, RawMessage
from streams.stages.joining import ClickStage
from streams.stages.outgoing import Outgoing, dead_letters, ingested, ticks
from streams.stages.steps import count_message, customer_message, join_message
from streams.windows.minutes import minute_of
from streams.windows.state import KpiState

TOPICS: dict[str, EventType] = {
    "views": "view", "engagements": "engagement", "clicks": "click",
    "orders": "order", "spend": "spend",
}
WINDOWS = (Window("5m", 5), Window("1h", 60), Window("24h", 1440))
DAY_MS = 24 * 3600 * 1000
LTV_HORIZON_DAYS = tuple(h.days for h in Settings().ltv_horizons)
"""The default [kpi] ltv_horizons: 30, 90 and 365 days."""


class FlowModel:
    """One worker owning every partition, driven message by message."""

    def __init__(self, now_ms: int, partitions: int = 4, grace_ms: int = 60_000,
                 promo_codes: dict[str, str] | None = None,
                 rates: dict[str, Decimal] | None = None,
                 max_campaign_channels: int | None = None,
                 campaign_retention_ms: int = 30 * DAY_MS) -> None:
        self.now_ms = now_ms
        self.partitions = partitions
        self.ingestor = Ingestor(TOPICS, ValidationRules(
            rates or {"USD": Decimal(1), "EUR": Decimal("1.08")}),
            promo_codes or {}, lambda: self.now_ms)
        campaigns = None if max_campaign_channels is None else CampaignChannels(
            max_campaign_channels, partitions, campaign_retention_ms)
        self.counts = CountStage(KpiState(1440), {}, DAY_MS, campaigns, self.part)
        self.clicks = ClickStage(MemoryClickStore(), {}, 7 * DAY_MS, grace_ms)
        self.customers = CustomerStage(MemoryCustomerStore(partition_of=self.part),
                                       400 * DAY_MS, DAY_MS, LTV_HORIZON_DAYS)
        self.offset = 0
        self.outcomes: Counter[tuple[str, str]] = Counter()
        self.dead_letters: list[dict[str, Any]] = []

    def part(self, key: str) -> int:
        return partition_for(key, self.partitions)

    def publish(self, topic: str, value: Any) -> None:
        """One input message (an event, a batch list, or raw bytes) through every stage."""
        raw = value if isinstance(value, bytes) else orjson.dumps(value)
        self.offset += 1
        result = self.ingestor.ingest([RawMessage(topic, 0, self.offset, raw)])
        for event_type, n in result.invalid.items():
            self.outcomes[(event_type, "invalid")] += n
        self._deliver(ingested(result, self.part))

    def tick(self, advance_ms: int = 0) -> None:
        """Let time pass and tick every partition, as the timer does."""
        self.now_ms += advance_ms
        self._deliver(ticks(self.partitions, self.counts.partitions_held()))

    def _deliver(self, records: Iterable[Outgoing]) -> None:
        queue = deque(records)
        while queue:
            record = queue.popleft()
            self.offset += 1
            queue.extend(self._handle(record, self.offset))

    def _handle(self, record: Outgoing, offset: int) -> list[Outgoing]:
        """What the agent of ``record.topic`` does with one message (see streams.worker.agents)."""
        partition = record.partition if record.partition is not None else 0
        now_ms = self.now_ms
        if record.topic == "deadletter":
            self.dead_letters.append(orjson.loads(record.value))
            return []
        if record.topic == "click_join":
            records, failures = join_message(self.clicks, record.value, partition, offset,
                                             now_ms, self.part)
            return [*self._failed(record, offset, failures), *records]
        if record.topic == "customer_orders":
            records, failures, duplicates = customer_message(
                self.customers, record.value, partition, offset, now_ms, self.part)
            self.outcomes[("order", "duplicate")] += duplicates
            return [*self._failed(record, offset, failures), *records]
        assert record.topic == "kpi_events"
        folded = count_message(self.counts, record.key, record.value, partition, offset,
                               now_ms)
        for event_type, n in folded.accepted.items():
            self.outcomes[(event_type, "accepted")] += n
        for event_type, n in folded.duplicates.items():
            self.outcomes[(event_type, "duplicate")] += n
        return self._failed(record, offset, folded.failures)

    def _failed(self, record: Outgoing, offset: int,
                failures: list[Failure]) -> list[Outgoing]:
        for failure in failures:
            self.outcomes[(failure.type, "invalid")] += 1
        return dead_letters(failures, record.topic, record.partition or 0, offset)

    def rows(self) -> dict[tuple[str, str, str], list[int]]:
        """(campaign, channel, window) -> counters, as the collector would read them."""
        return {(c, ch, w): counts for c, ch, w, counts in
                self.counts.state.rows(minute_of(self.now_ms), WINDOWS, lambda _: True)}

    def ltv(self) -> dict[tuple[str, str], dict[int, int]]:
        """(campaign, channel) -> {horizon days: revenue credited}, as the collector would
        read the total's extras (horizons whose credits were all taken back left out)."""
        out = {}
        for c, ch, window, extras in self.counts.state.extras_rows(
                minute_of(self.now_ms), WINDOWS, lambda _: True):
            credited = {days: amount for days, amount in extras.ltv.items() if amount}
            if window == "total" and credited:
                out[(c, ch)] = credited
        return out
