"""SPEC-valid events at the edges, through the whole path the worker runs, against a plain
reference: same numbers, no exception, nothing dead-lettered (issue 11).

Edges: money up to just below 10^15 with six decimals (and sums far past 64 bits), every
field at its longest, unicode ids, ids shared across campaigns and customers, batches of
1,000 events and of nearly 1 MiB, timestamps days late and at the future edge.
"""

from __future__ import annotations

import string
from collections import Counter
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest

from metrics.kpi_gauges import KpiCollector
from streams.events.validation import MAX_BATCH_BYTES, MAX_FUTURE_MS
from streams.windows.counts import FIELDS, WIDTH
from streams.windows.minutes import minute_of
from tests.unit.flow_model import WINDOWS, FlowModel

NOW = 1_795_430_000_000 + 12_345
DAY_MS = 24 * 3600 * 1000
EUR = Decimal("1.08")
RATES = {"USD": Decimal(1), "EUR": EUR}
TOP = Decimal("999999999999999.999999")
CAMPAIGN_CHARS = string.ascii_letters + string.digits + "._:-"
TOPIC = {"view": "views", "engagement": "engagements", "click": "clicks",
         "order": "orders", "spend": "spend"}
INDEX = {name: i for i, name in enumerate(FIELDS)}
ACTIONS = {"like": "likes", "comment": "comments", "share": "shares", "save": "saves",
           "follow": "follows", "profile_visit": "profile_visits"}
"""Engagement action (SPEC 1) -> its counter."""

ids = st.one_of(
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1,
            max_size=128),
    st.sampled_from(["shared", "x" * 128, "ünï-cødé-✓", "1"]),
)
event_ids = st.one_of(st.sampled_from(["e-1", "e-2"]), ids)
"""Often the same few: redeliveries, and one id in several campaigns and customers."""
customers = st.one_of(st.sampled_from(["cust-a", "cust-b"]), ids)
"""Mostly two customers, so ids shared across customers are common."""
campaigns = st.one_of(st.sampled_from(["c", "C" * 128]), st.just("c"),
                      st.text(CAMPAIGN_CHARS, min_size=1, max_size=128))
channels = st.one_of(st.none(), st.sampled_from(["TikTok", "tiktok", "ÄÖÜ-kanal",
                                                 "y" * 64]))
money = st.one_of(st.sampled_from([TOP, Decimal("0"), Decimal("99999999999999"),
                                   Decimal("0.000001")]),
                  st.decimals(min_value=0, max_value=TOP, places=6, allow_nan=False,
                              allow_infinity=False))
times = st.one_of(st.sampled_from([NOW, NOW + MAX_FUTURE_MS, NOW - 3 * DAY_MS]),
                  st.integers(NOW - 2 * DAY_MS, NOW + MAX_FUTURE_MS))


@dataclass(frozen=True)
class Spec:
    type: str
    doc: dict[str, Any]


@st.composite
def events(draw: st.DrawFn) -> Spec:
    kind = draw(st.sampled_from(list(TOPIC)))
    doc: dict[str, Any] = {"event_id": draw(event_ids), "ts": draw(times)}
    channel = draw(channels)
    if channel is not None:
        doc["channel"] = channel
    if kind != "order" or draw(st.booleans()):
        doc["campaign_id"] = draw(campaigns)
    if kind == "view":
        user = draw(st.sampled_from([None, "u", "ü" * 129, "v" * 20_000]))
        if user is not None:
            doc["user_id"] = user
        doc["completed"] = draw(st.booleans())
        watch_ms = draw(st.none() | st.just(0) | st.integers(0, 2**62))
        if watch_ms is not None:
            doc["watch_ms"] = watch_ms
    elif kind == "engagement":
        doc["action"] = draw(st.sampled_from(list(ACTIONS)))
    elif kind == "click":
        doc["click_id"] = draw(st.sampled_from(["k" * 128, "ttclid-1"]))
    elif kind == "order":
        doc.update(order_id=draw(ids), customer_id=draw(customers),
                   revenue=str(draw(money)), currency=draw(st.sampled_from(["USD", "EUR"])))
        if draw(st.booleans()):
            doc["cost"] = str(draw(money))
        if "campaign_id" not in doc:
            doc["campaign_id"] = draw(campaigns)  # attributed by its own campaign here
    else:
        doc.update(amount=str(draw(money)), currency=draw(st.sampled_from(["USD", "eur"])))
    return Spec(kind, doc)


def micros(amount: str, currency: str) -> int:
    value = Decimal(amount) * RATES[currency.upper()] * 1_000_000
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def reference(specs: list[Spec]) -> dict[tuple[str, str], list[int]]:
    """Totals per (campaign, channel), counted one event at a time by SPEC's rules."""
    totals: dict[tuple[str, str], list[int]] = {}
    seen: set[tuple[Any, ...]] = set()
    first: dict[str, tuple[int, str, tuple[str, str]]] = {}
    for spec in specs:
        doc = spec.doc
        cell = (doc["campaign_id"], (doc.get("channel") or "unknown").lower())
        # An event id names an event within its campaign; an order's, within its customer
        # (whatever campaign a second delivery names).
        key: tuple[Any, ...] = (spec.type, cell[0], doc["event_id"])
        if spec.type == "order":
            key = (spec.type, doc["customer_id"], doc["event_id"])
        if key in seen:
            continue
        seen.add(key)
        acc = totals.setdefault(cell, [0] * WIDTH)
        if spec.type == "view":
            acc[INDEX["views"]] += 1
            acc[INDEX["completed_views"]] += doc["completed"]
            acc[INDEX["user_views"]] += "user_id" in doc
            if "watch_ms" in doc:
                acc[INDEX["watched_views"]] += 1
                acc[INDEX["watch_ms"]] += doc["watch_ms"]
        elif spec.type == "engagement":
            acc[INDEX["engagements"]] += 1
            acc[INDEX[ACTIONS[doc["action"]]]] += 1
        elif spec.type == "click":
            acc[INDEX["clicks"]] += 1
        elif spec.type == "spend":
            acc[INDEX["spend_micros"]] += micros(doc["amount"], doc["currency"])
        else:
            acc[INDEX["orders"]] += 1
            acc[INDEX["revenue_micros"]] += micros(doc["revenue"], doc["currency"])
            if "cost" in doc:
                acc[INDEX["costed_orders"]] += 1
                acc[INDEX["costed_revenue_micros"]] += micros(doc["revenue"], doc["currency"])
                acc[INDEX["cost_micros"]] += micros(doc["cost"], doc["currency"])
            mine = (doc["ts"], doc["event_id"], cell)
            known = first.get(doc["customer_id"])
            if known is None or mine[:2] < known[:2]:
                first[doc["customer_id"]] = mine
    for _, _, cell in first.values():
        totals[cell][INDEX["new_customers"]] += 1
    return totals


def batches(specs: list[Spec], sizes: list[int]) -> list[tuple[str, Any]]:
    """The events as messages of one topic each: singles and batches of up to 1,000."""
    out: list[tuple[str, Any]] = []
    by_type: dict[str, list[dict[str, Any]]] = {}
    for spec in specs:
        by_type.setdefault(spec.type, []).append(spec.doc)
    for i, (kind, docs) in enumerate(by_type.items()):
        size = sizes[i % len(sizes)]
        for start in range(0, len(docs), size):
            chunk = docs[start:start + size]
            out.append((TOPIC[kind], chunk[0] if size == 1 else chunk))
    return out


def run(specs: list[Spec], sizes: list[int]) -> FlowModel:
    model = FlowModel(NOW, rates=RATES)
    for topic, value in batches(specs, sizes):
        model.publish(topic, value)
    model.tick(advance_ms=61_000)  # orders waiting for a click (none here) go on
    return model


def totals(model: FlowModel) -> dict[tuple[str, str], list[int]]:
    return {(c, ch): counts for (c, ch, w), counts in model.rows().items() if w == "total"}


@settings(max_examples=60, deadline=None)
@given(st.lists(events(), min_size=1, max_size=40),
       st.lists(st.sampled_from([1, 3, 1000]), min_size=1, max_size=3))
def test_extreme_valid_events_count_exactly_through_the_whole_path(
        specs: list[Spec], sizes: list[int]) -> None:
    model = run(specs, sizes)
    assert model.dead_letters == []
    assert totals(model) == reference(specs)
    # and the collector serves them: a scrape of huge sums never raises
    registry = CollectorRegistry()
    rows = list(model.counts.state.rows(minute_of(model.now_ms), WINDOWS, lambda _: True))
    registry.register(KpiCollector(lambda: iter(rows), "USD"))
    assert b"marketing_revenue" in generate_latest(registry)


def test_a_batch_of_1000_largest_orders_of_one_customer_pair_counts_exactly() -> None:
    specs = [Spec("order", {"event_id": f"o-{i // 2}", "ts": NOW - i, "campaign_id": "c",
                            "order_id": f"A{i}", "customer_id": f"cust-{i % 2}",
                            "revenue": str(TOP), "currency": "EUR"}) for i in range(1000)]
    model = run(specs, [1000])
    assert model.dead_letters == []
    assert totals(model) == reference(specs)
    assert totals(model)[("c", "unknown")][INDEX["orders"]] == 1000
    assert totals(model)[("c", "unknown")][INDEX["revenue_micros"]] == 1000 * micros(
        str(TOP), "EUR")


def test_a_batch_of_nearly_one_mib_counts_every_event() -> None:
    doc = {"event_id": "", "ts": NOW, "campaign_id": "c", "user_id": "u" * 1000}
    size = len(orjson.dumps(doc)) + 10
    specs = [Spec("view", {**doc, "event_id": f"v-{i:06d}"})
             for i in range(min(1000, MAX_BATCH_BYTES // size))]
    raw = orjson.dumps([s.doc for s in specs])
    assert MAX_BATCH_BYTES - 20_000 < len(raw) <= MAX_BATCH_BYTES
    model = FlowModel(NOW)
    model.publish("views", raw)
    assert model.dead_letters == []
    assert totals(model)[("c", "unknown")][INDEX["views"]] == len(specs)
    assert Counter(model.outcomes)[("view", "accepted")] == len(specs)
