"""The benchmark's traffic: a seeded view-heavy event mix and the KPI totals it must produce.

Pure: no Kafka. The expected figures are computed here from the events as sent, without
any kpistream code, so the check at the end is independent of what it checks.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Final, Literal

import orjson

__all__ = [
    "CHANNELS",
    "FX",
    "MIX",
    "TOPIC_KEYS",
    "Expected",
    "Mode",
    "Workload",
    "make_event",
    "make_workload",
]

Mode = Literal["single", "batch"]

MIX: Final = {"view": 0.90, "engagement": 0.06, "click": 0.03, "order": 0.007, "spend": 0.003}
"""Share of each event type: a view-heavy mix, as ad traffic is."""
TOPIC_KEYS: Final = {
    "view": "views", "engagement": "engagements", "click": "clicks",
    "order": "orders", "spend": "spend",
}
"""Event type -> the ``[topics]`` key of its input topic."""
CHANNELS: Final = ("tiktok", "instagram", "youtube", "influencer")
FX: Final = {"USD": Decimal(1), "EUR": Decimal("1.08")}
"""Rates written to the ``[fx]`` table; money is sent in both currencies."""
BATCH_EVENTS: Final = 1000
"""Events per message in batch mode: SPEC section 1's limit."""
_ACTIONS: Final = ("like", "comment", "share", "save", "follow", "profile_visit")
_CONTENT_TYPES: Final = ("tutorial", "unboxing", "challenge", "live", None)
_PRODUCTS: Final = tuple(f"sku-{i:02d}" for i in range(30))
_MICROS: Final = Decimal(1_000_000)


@dataclass(slots=True)
class Expected:
    """What /metrics must show once every event is counted (window ``total``)."""

    by_type: Counter[str] = field(default_factory=Counter)
    """Events sent per type: kpistream_events_total{outcome="accepted"} per type."""
    per_series: dict[tuple[str, str], Counter[str]] = field(default_factory=dict)
    """(campaign, channel) -> metric name -> count, for the count metrics."""
    completed_views: int = 0
    customers: set[str] = field(default_factory=set)
    """Distinct customers: each is new exactly once, so their number is the new customers."""
    revenue_micros: int = 0
    spend_micros: int = 0
    watch_ms: int = 0
    gross_profit_micros: int = 0
    """Revenue - cost of the orders that carry a cost (no default margin is set)."""
    orders_without_cost: int = 0
    product_units: int = 0
    product_revenue_micros: int = 0

    @property
    def events(self) -> int:
        return sum(self.by_type.values())

    def add(self, other: Expected) -> None:
        """Add the figures of another data set sent to the same topics (distinct ids)."""
        self.by_type.update(other.by_type)
        for series, counts in other.per_series.items():
            self.per_series.setdefault(series, Counter()).update(counts)
        self.completed_views += other.completed_views
        self.customers |= other.customers
        self.revenue_micros += other.revenue_micros
        self.spend_micros += other.spend_micros
        self.watch_ms += other.watch_ms
        self.gross_profit_micros += other.gross_profit_micros
        self.orders_without_cost += other.orders_without_cost
        self.product_units += other.product_units
        self.product_revenue_micros += other.product_revenue_micros

    def totals(self) -> dict[str, float]:
        """Metric name -> its sum over every campaign and channel."""
        return {
            "marketing_views": self.by_type["view"],
            "marketing_completed_views": self.completed_views,
            "marketing_engagements": self.by_type["engagement"],
            "marketing_clicks": self.by_type["click"],
            "marketing_orders": self.by_type["order"],
            "marketing_new_customers": len(self.customers),
            "marketing_revenue": self.revenue_micros / 1_000_000,
            "marketing_spend": self.spend_micros / 1_000_000,
            "marketing_watch_seconds": self.watch_ms / 1000,
            "marketing_engagement_actions": self.by_type["engagement"],
            "marketing_gross_profit": self.gross_profit_micros / 1_000_000,
            "marketing_orders_without_cost": self.orders_without_cost,
            "marketing_product_units": self.product_units,
            "marketing_product_revenue": self.product_revenue_micros / 1_000_000,
            "marketing_content_views": self.by_type["view"],
            "marketing_content_clicks": self.by_type["click"],
            "marketing_content_orders": self.by_type["order"],
        }


@dataclass(slots=True)
class Workload:
    """Encoded messages per input topic key, and the figures they must add up to."""

    messages: dict[str, list[bytes]]
    expected: Expected

    @property
    def message_count(self) -> int:
        return sum(len(m) for m in self.messages.values())


def type_counts(events: int) -> dict[str, int]:
    """Events per type for a total of ``events``; views take the rounding remainder."""
    counts = {t: round(events * share) for t, share in MIX.items() if t != "view"}
    counts["view"] = events - sum(counts.values())
    if counts["view"] < 0:
        raise ValueError(f"cannot split {events} events into the mix {MIX}")
    return counts


def make_workload(
    events: int, mode: Mode, now_ms: int, *, campaigns: int = 50, seed: int = 7,
    max_age_s: int = 180, first_id: int = 0, seed_fields: bool = True,
) -> Workload:
    """``events`` events of the mix, ts in the last ``max_age_s`` seconds, ids unique.
    ``seed_fields``: views, engagements and clicks may carry a ``content_type`` and orders
    ``items``; without, the answer has the counters' KPIs and no product or content
    breakdown beyond ``unknown``.

    Ids are numbered from ``first_id`` per type: give two workloads for the same topics
    ranges that do not overlap.
    """
    rng = random.Random(seed)
    expected = Expected()
    messages: dict[str, list[bytes]] = {}
    campaign_ids = [f"bench-{i:03d}" for i in range(campaigns)]
    for event_type, count in type_counts(events).items():
        docs = (
            make_event(event_type, n, rng, campaign_ids, now_ms, max_age_s, expected,
                       seed_fields)
            for n in range(first_id, first_id + count)
        )
        messages[TOPIC_KEYS[event_type]] = list(_encode(docs, mode))
    return Workload(messages, expected)


def _encode(docs: Iterator[dict[str, Any]], mode: Mode) -> Iterator[bytes]:
    if mode == "single":
        yield from (orjson.dumps(doc) for doc in docs)
        return
    chunk: list[dict[str, Any]] = []
    for doc in docs:
        chunk.append(doc)
        if len(chunk) == BATCH_EVENTS:
            yield orjson.dumps(chunk)
            chunk = []
    if chunk:
        yield orjson.dumps(chunk)


def make_event(
    event_type: str, n: int, rng: random.Random, campaign_ids: list[str], now_ms: int,
    max_age_s: int, expected: Expected, seed_fields: bool = True,
) -> dict[str, Any]:
    campaign = rng.choice(campaign_ids)
    channel = rng.choice(CHANNELS)
    ts_ms = now_ms - rng.randrange(max_age_s * 1000)
    doc: dict[str, Any] = {
        "event_id": f"{event_type[0]}-{n}",
        # Half integer epoch ms, half RFC 3339: trackers send both.
        "ts": ts_ms if n % 2 else _rfc3339(ts_ms),
        "campaign_id": campaign,
        "channel": channel,
    }
    expected.by_type[event_type] += 1
    content_type = rng.choice(_CONTENT_TYPES)
    if seed_fields and content_type is not None and event_type in ("view", "engagement",
                                                                    "click"):
        doc["content_type"] = content_type
    series = expected.per_series.setdefault((campaign, channel), Counter())
    if event_type == "view":
        completed = rng.random() < 0.3
        watch_ms = rng.randrange(60_000)
        doc.update(user_id=f"u{rng.randrange(20_000)}", completed=completed, watch_ms=watch_ms)
        expected.watch_ms += watch_ms
        series["marketing_views"] += 1
        series["marketing_completed_views"] += completed
        expected.completed_views += completed
    elif event_type == "engagement":
        doc["action"] = rng.choice(_ACTIONS)
        series["marketing_engagements"] += 1
    elif event_type == "click":
        doc["click_id"] = f"clk-{n}"
        series["marketing_clicks"] += 1
    elif event_type == "order":
        customer = f"cust-{rng.randrange(max(1, n // 2 + 1))}"
        revenue, currency = _money(rng)
        doc.update(order_id=f"ord-{n}", customer_id=customer, revenue=revenue,
                   currency=currency)
        series["marketing_orders"] += 1
        expected.customers.add(customer)
        expected.revenue_micros += _micros(revenue, currency)
        _order_lines(doc, rng, expected, seed_fields)
    else:
        amount, currency = _money(rng)
        # Spend amounts go as JSON numbers, revenue as strings: both forms are allowed.
        doc.update(amount=float(amount), currency=currency)
        expected.spend_micros += _micros(amount, currency)
    return doc


def _order_lines(doc: dict[str, Any], rng: random.Random, expected: Expected,
                 items_too: bool) -> None:
    """A cost on most orders (a third to two thirds of the revenue) and 1-3 order lines
    (``items_too``)."""
    revenue, currency = Decimal(doc["revenue"]), doc["currency"]
    if rng.random() < 0.8:
        cost = (revenue * Decimal(rng.randrange(33, 67)) / 100).quantize(Decimal("0.01"))
        doc["cost"] = str(cost)
        expected.gross_profit_micros += _micros(str(revenue), currency) - _micros(str(cost),
                                                                                currency)
    else:
        expected.orders_without_cost += 1
    if not items_too:
        return
    items = []
    for product in rng.sample(_PRODUCTS, rng.randrange(1, 4)):
        quantity = rng.randrange(1, 4)
        line = f"{rng.randrange(100, 20_000) / 100:.2f}"
        items.append({"product_id": product, "quantity": quantity, "revenue": line})
        expected.product_units += quantity
        expected.product_revenue_micros += _micros(line, currency)
    doc["items"] = items


def _money(rng: random.Random) -> tuple[str, str]:
    cents = rng.randrange(100, 50_000)
    return f"{cents // 100}.{cents % 100:02d}", rng.choice(tuple(FX))


def _micros(amount: str, currency: str) -> int:
    exact = Decimal(amount) * FX[currency] * _MICROS
    return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def _rfc3339(ts_ms: int) -> str:
    moment = datetime.fromtimestamp(ts_ms // 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts_ms % 1000:03d}Z"
