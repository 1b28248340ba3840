"""The stages wired as the agents wire them, with dicts for tables and lists for topics.

Lets the unit tests run whole data sets through validation, click join, customer
history, dedup and counting without a broker, under a clock the test controls.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

import orjson

from streams.app import partition_for
from streams.events import EventType, ValidationRules
from streams.forwards import Forwards
from streams.ingest import Ingestor, RawMessage
from streams.orders import OrderRoute
from streams.settings import Window
from streams.stages import ClickStage, CountStage, CustomerStage
from streams.state import KpiState
from streams.windows import minute_of

TOPICS: dict[str, EventType] = {
    "views": "view", "engagements": "engagement", "clicks": "click",
    "orders": "order", "spend": "spend",
}
WINDOWS = (Window("5m", 5), Window("1h", 60), Window("24h", 1440))
DAY_MS = 24 * 3600 * 1000


class FlowModel:
    """One worker owning every partition, driven message by message."""

    def __init__(self, now_ms: int, partitions: int = 4, grace_ms: int = 60_000,
                 promo_codes: dict[str, str] | None = None) -> None:
        self.now_ms = now_ms
        self.partitions = partitions
        self.ingestor = Ingestor(TOPICS, ValidationRules({"USD": Decimal(1),
                                                          "EUR": Decimal("1.08")}),
                                 promo_codes or {}, lambda: self.now_ms)
        self.counts = CountStage(KpiState(1440), {}, DAY_MS)
        self.clicks = ClickStage({}, {}, 7 * DAY_MS, grace_ms)
        self.customers = CustomerStage({}, 400 * DAY_MS, DAY_MS)
        self.offset = 0
        self.outcomes: Counter[tuple[str, str]] = Counter()
        self.dead_letters: list[dict[str, Any]] = []

    def part(self, key: str) -> int:
        return partition_for(key, self.partitions)

    def publish(self, topic: str, value: Any) -> None:
        """One input message (an event, a batch list, or raw bytes) through every stage."""
        raw = value if isinstance(value, bytes) else orjson.dumps(value)
        result = self.ingestor.ingest([RawMessage(topic, 0, 0, raw)])
        self.dead_letters += [orjson.loads(d) for d in result.dead_letters]
        for event_type, n in result.invalid.items():
            self.outcomes[(event_type, "invalid")] += n
        released: list[OrderRoute] = []
        self.offset += 1
        for click_id, click in result.clicks:
            released += self.clicks.remember(click_id, click, self.part(click_id), self.offset)
            self.clicks.end_message(self.part(click_id), self.offset)
        for order in result.to_join:
            joined = self.clicks.join(order, self.part(order.click_id or ""), self.now_ms)
            if joined is not None:
                released.append(joined)
        self._customers([*result.to_customers, *released])
        for campaign, forwards in result.forwards.items():
            self._count(campaign, forwards)

    def tick(self, advance_ms: int = 0) -> None:
        """Let time pass and tick every click-join partition, as the timer does."""
        self.now_ms += advance_ms
        for partition in range(self.partitions):
            self.offset += 1
            self._customers(self.clicks.tick(partition, self.now_ms, self.offset))

    def _customers(self, orders: Iterable[OrderRoute]) -> None:
        by_partition: dict[int, list[OrderRoute]] = {}
        for order in orders:
            by_partition.setdefault(self.part(order.customer_id), []).append(order)
        for partition, batch in by_partition.items():
            self.offset += 1
            forwards, duplicates = self.customers.handle(batch, partition, self.offset,
                                                         self.now_ms)
            self.outcomes[("order", "duplicate")] += duplicates
            for campaign, campaign_forwards in forwards.items():
                self._count(campaign, campaign_forwards)

    def _count(self, campaign: str, forwards: Forwards) -> None:
        self.offset += 1
        folded = self.counts.handle(campaign, Forwards.from_wire(forwards.to_wire()),
                                    self.part(campaign), self.offset, self.now_ms)
        for event_type, n in folded.accepted.items():
            self.outcomes[(event_type, "accepted")] += n
        for event_type, n in folded.duplicates.items():
            self.outcomes[(event_type, "duplicate")] += n

    def rows(self) -> dict[tuple[str, str, str], list[int]]:
        """(campaign, channel, window) -> counters, as the collector would read them."""
        return {(c, ch, w): counts for c, ch, w, counts in
                self.counts.state.rows(minute_of(self.now_ms), WINDOWS, lambda _: True)}
