"""The demo's traffic: deterministic, funnel-shaped, valid where it means to be."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from itertools import pairwise

import pytest

from streams.commands.traffic import DEMO_FX_RATES, DEMO_PROMO_CODES, SimEvent, Simulator, campaigns
from streams.events.validation import Event, Rejection, ValidationRules, parse_message

NOW = 1_795_428_000_000  # 2026-11-23T...Z, in epoch ms
RULES = ValidationRules(fx={"USD": Decimal(1), **DEMO_FX_RATES})


def _run(sim: Simulator, ticks: int, per_tick: int = 20, step_ms: int = 100) -> list[SimEvent]:
    events: list[SimEvent] = []
    for i in range(ticks):
        events.extend(sim.tick(NOW + i * step_ms, per_tick))
    return events


def _verdict(event: SimEvent) -> Event | Rejection:
    [verdict] = parse_message(event.encode(), event.type, RULES, NOW + 3_600_000)
    return verdict


@pytest.fixture(scope="module")
def traffic() -> list[SimEvent]:
    """Ten minutes of traffic at 200 events/s."""
    return _run(Simulator(seed=7), ticks=6000)


def test_same_seed_same_traffic() -> None:
    first = [(e.type, e.kind, e.encode()) for e in _run(Simulator(3), 200)]
    second = [(e.type, e.kind, e.encode()) for e in _run(Simulator(3), 200)]
    other = [(e.type, e.kind, e.encode()) for e in _run(Simulator(4), 200)]
    assert first == second
    assert first != other


def test_funnel_views_then_engagements_then_clicks_then_orders(
    traffic: list[SimEvent],
) -> None:
    good = Counter(e.type for e in traffic if e.kind == "good")
    assert good["view"] > 10 * good["engagement"] > 0
    assert good["engagement"] > 2 * good["click"] > 0
    assert good["click"] > 5 * good["order"] > 0


def test_funnels_differ_between_campaigns(traffic: list[SimEvent]) -> None:
    per_campaign: dict[str, Counter[str]] = {}
    for event in traffic:
        verdict = _verdict(event)
        if event.kind == "good" and isinstance(verdict, Event) and verdict.campaign_id:
            per_campaign.setdefault(verdict.campaign_id, Counter())[verdict.type] += 1
    assert set(per_campaign) == set(campaigns())
    engagement = {c: n["engagement"] / n["view"] for c, n in per_campaign.items()}
    assert max(engagement.values()) > 1.5 * min(engagement.values())


def test_good_events_pass_and_bad_ones_are_rejected(traffic: list[SimEvent]) -> None:
    kinds = Counter(e.kind for e in traffic)
    assert kinds["bad"] > 0 and kinds["duplicate"] > 0
    for event in traffic:
        verdict = _verdict(event)
        if event.kind == "bad":
            assert isinstance(verdict, Rejection), event
        else:
            assert isinstance(verdict, Event), (event, verdict)
    assert kinds["bad"] < 0.01 * len(traffic)


def test_every_kind_of_bad_event_is_made() -> None:
    events = _run(Simulator(seed=11, bad_fraction=0.3), ticks=300)
    reasons = " | ".join(
        v.reason for e in events if e.kind == "bad" and isinstance(v := _verdict(e), Rejection)
    )
    assert "not valid UTF-8 JSON" in reasons
    assert "missing required field" in reasons
    assert "cannot be negative" in reasons
    assert "has no exchange rate" in reasons


def test_new_events_carry_now_and_unique_ids(traffic: list[SimEvent]) -> None:
    sim = Simulator(seed=1)
    for event in sim.tick(NOW, 500):
        if isinstance(event.payload, dict) and event.kind == "good":
            assert event.payload["ts"] == NOW
    ids = [e.payload["event_id"] for e in traffic
           if e.kind == "good" and isinstance(e.payload, dict)]
    assert len(ids) == len(set(ids))


def test_orders_look_like_orders(traffic: list[SimEvent]) -> None:
    orders = [e.payload for e in traffic
              if e.type == "order" and e.kind == "good" and isinstance(e.payload, dict)]
    clicks = {e.payload.get("click_id") for e in traffic
              if e.type == "click" and isinstance(e.payload, dict)}
    assert {o["currency"] for o in orders} == {"USD", "EUR", "IDR", "TRY", "VND"}
    for order in orders:
        usd = Decimal(str(order["revenue"])) * RULES.fx[order["currency"]]
        assert Decimal(1) < usd < Decimal(2000), order
        assert order.get("click_id") in clicks | {None}
    customers = Counter(o["customer_id"] for o in orders)
    assert max(customers.values()) > 1  # some come back
    assert any(o.get("promo_code") in DEMO_PROMO_CODES for o in orders)
    assert any("campaign_id" not in o and "promo_code" in o for o in orders)
    assert any("campaign_id" not in o and "click_id" in o for o in orders)


def test_spend_comes_every_few_seconds_per_campaign_and_channel() -> None:
    sim = Simulator(seed=5)
    seen: dict[tuple[str, str], list[int]] = {}
    for i in range(600):  # one minute, ticks of 100 ms
        for event in sim.tick(NOW + i * 100, 20):
            if event.type == "spend" and event.kind == "good":
                assert isinstance(event.payload, dict)
                key = (event.payload["campaign_id"], event.payload["channel"])
                seen.setdefault(key, []).append(int(event.payload["ts"]))
    assert {campaign for campaign, _ in seen} == set(campaigns())
    assert len(seen) >= 12
    for times in seen.values():
        gaps = [b - a for a, b in pairwise(times)]
        assert len(times) >= 8
        assert all(2_000 <= gap <= 12_000 for gap in gaps), gaps


def test_count_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="count must be >= 0, got -1"):
        Simulator(seed=1).tick(NOW, -1)


# What each product costs in USD in the catalog, as a USD order shows it (x.99).
USD_UNIT_PRICES = {
    "summer-sale": {"sunscreen": "11.99", "beach-towel": "18.99", "sunglasses": "28.99",
                    "swimwear": "34.99"},
    "black-friday": {"headphones": "78.99", "smartwatch": "68.99", "speaker": "38.99",
                     "charger": "14.99"},
    "creator-collab": {"lip-kit": "18.99", "palette": "28.99", "brush-set": "14.99",
                       "merch-tee": "24.99"},
    "app-install": {"gems-100": "2.99", "gems-550": "9.99", "premium-month": "4.99",
                    "starter-pack": "3.99"},
}


def _good_orders(traffic: list[SimEvent]) -> list[dict[str, object]]:
    return [e.payload for e in traffic
            if e.type == "order" and e.kind == "good" and isinstance(e.payload, dict)]


def _in_units(amount: object, currency: object) -> bool:
    """Whether a JSON money value is in whole units of its currency: IDR and VND have no cents."""
    unit = Decimal(1) if currency in ("IDR", "VND") else Decimal("0.01")
    value = Decimal(str(amount))
    return value == value.quantize(unit)


def test_order_items_add_up_exactly_to_the_revenue(traffic: list[SimEvent]) -> None:
    orders = _good_orders(traffic)
    products = {p: c for c, prices in USD_UNIT_PRICES.items() for p in prices}
    lines, quantities = Counter[int](), Counter[int]()
    for order in orders:
        items = order["items"]
        assert isinstance(items, list) and 1 <= len(items) <= 3, order
        ids = [item["product_id"] for item in items]
        assert len(set(ids)) == len(ids), order
        assert len({products[p] for p in ids}) == 1, order  # one campaign's catalog
        if "campaign_id" in order:
            assert products[ids[0]] == order["campaign_id"], order
        total = sum((Decimal(str(item["revenue"])) for item in items), Decimal(0))
        assert Decimal(str(order["revenue"])) == total, order
        lines[len(items)] += 1
        for item in items:
            quantity = item["quantity"]
            assert type(quantity) is int and 1 <= quantity <= 3, order
            quantities[quantity] += 1
            assert _in_units(item["revenue"], order["currency"]), order
            if order["currency"] == "USD":
                unit = Decimal(str(item["revenue"])) / quantity
                assert unit == Decimal(USD_UNIT_PRICES[products[item["product_id"]]][
                    item["product_id"]]), order
            if order["currency"] in ("IDR", "VND"):
                assert Decimal(str(item["revenue"])) / quantity % 1000 == 0, order
    assert set(lines) == {1, 2, 3} and set(quantities) == {1, 2, 3}
    assert {p for o in orders for p in (i["product_id"] for i in o["items"])} == set(products)


def test_most_orders_carry_a_cost_below_their_revenue(traffic: list[SimEvent]) -> None:
    orders = _good_orders(traffic)
    with_cost = [o for o in orders if "cost" in o]
    assert 0.70 * len(orders) < len(with_cost) < 0.95 * len(orders)
    for order in with_cost:
        revenue, cost = Decimal(str(order["revenue"])), Decimal(str(order["cost"]))
        # 40-70 % of the revenue, rounded to the currency's unit
        assert Decimal("0.4") * revenue - 1 <= cost <= Decimal("0.7") * revenue + 1, order
        assert 0 < cost < revenue, order
        assert _in_units(order["cost"], order["currency"]), order


def test_content_types_are_common_and_differ_by_campaign(traffic: list[SimEvent]) -> None:
    seen: dict[str, Counter[str | None]] = {}
    for event in traffic:
        if event.kind != "good" or not isinstance(event.payload, dict):
            continue
        content = event.payload.get("content_type")
        if event.type in ("order", "spend"):
            assert content is None, event
            continue
        assert content in {"tutorial", "unboxing", "challenge", "live", None}, event
        seen.setdefault(event.payload["campaign_id"], Counter())[content] += 1
    for counts in seen.values():
        total = sum(counts.values())
        assert 0.05 * total < counts[None] < 0.30 * total  # some events without one
        assert set(counts) == {"tutorial", "unboxing", "challenge", "live", None}
    top = {campaign: counts.most_common(1)[0][0] for campaign, counts in seen.items()}
    assert top == {"summer-sale": "challenge", "black-friday": "unboxing",
                   "creator-collab": "live", "app-install": "tutorial"}
