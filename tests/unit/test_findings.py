"""Issue 11's findings, each as the test that failed on the code it was found in.

1. Money up to 10^15 is valid (SPEC 1), so every wire and table format between the
   stages carries it exactly (a spend of 99999999999999 crashed the input stage).
2. An order's event id names it within its customer: two customers' orders with the
   same id in one campaign are two orders.
3. ``user_id`` has no length limit but the event's 64 KiB; an order's ``click_id`` and
   ``promo_code`` are plain strings.
"""

from __future__ import annotations

from decimal import Decimal

import orjson
import pytest

from streams.attribution.orders import OrderRoute
from streams.events.validation import Event, ValidationRules, parse_message
from streams.flow.forwards import Forwards
from streams.flow.wire import dumps, exact_ints
from streams.windows.counts import COST, NEW_CUSTOMERS, ORDERS, REVENUE, SPEND, WIDTH
from streams.windows.state import KpiState
from tests.unit.flow_model import WINDOWS, FlowModel

NOW = 1_795_430_000_000
RULES = ValidationRules({"USD": Decimal(1), "EUR": Decimal("1.08")})
LARGEST = "999999999999999.999999"
"""The largest money value with six decimals below SPEC's bound of 10^15."""


def micros(amount: str, rate: str = "1") -> int:
    return int((Decimal(amount) * Decimal(rate) * 1_000_000).to_integral_value())


def total(model: FlowModel, campaign: str, channel: str, index: int) -> int:
    return model.rows().get((campaign, channel, "total"), [0] * WIDTH)[index]


@pytest.mark.parametrize("amount", ["99999999999999", LARGEST, "9223372036854.775808"])
def test_spend_up_to_ten_to_the_fifteen_counts_exactly(amount: str) -> None:
    model = FlowModel(NOW)
    for i in range(3):  # the sum of three goes past 64 bits too
        model.publish("spend", {"event_id": f"s-{i}", "ts": NOW, "campaign_id": "big",
                                "channel": "tiktok", "amount": amount, "currency": "USD"})
    assert not model.dead_letters
    assert total(model, "big", "tiktok", SPEND) == 3 * micros(amount)


def test_order_revenue_up_to_ten_to_the_fifteen_counts_exactly_through_a_click() -> None:
    model = FlowModel(NOW)
    model.publish("clicks", {"event_id": "c-1", "ts": NOW - 1000, "campaign_id": "big",
                             "channel": "meta", "click_id": "clk"})
    model.publish("orders", {"event_id": "o-1", "ts": NOW, "order_id": "A1",
                             "customer_id": "cust", "revenue": LARGEST, "currency": "EUR",
                             "click_id": "clk"})
    assert not model.dead_letters
    assert total(model, "big", "meta", REVENUE) == micros(LARGEST, "1.08")


def test_wire_formats_carry_money_beyond_64_bits_exactly() -> None:
    huge = micros(LARGEST, "1.08")
    assert huge > 2**63
    forwards = Forwards()
    forwards.add("s", "s-1", NOW, "tiktok", huge)
    forwards.add("v", "v-1", NOW, "tiktok")
    assert list(Forwards.from_wire(forwards.to_wire())) == list(forwards)
    order = OrderRoute("o-1", NOW, "cust", None, huge, "big", "meta", None)
    assert OrderRoute.from_wire(orjson.loads(orjson.dumps(order.to_wire()))) == order


def test_exact_ints_gives_integers_only() -> None:
    """The fast path (one ``sum`` in C) must not pass on what is not an integer: the wire
    fuzzer found a number too long for orjson's integers, which orjson reads as a float."""
    assert exact_ints([7, str(3 * 10**21), 0]) == [7, 3 * 10**21, 0]
    read = orjson.loads(b"[1, 5" + b"5" * 40 + b"]")
    assert type(read[1]) is float
    assert [type(v) for v in exact_ints(read)] == [int, int]
    plain = [1, 2, 3]
    assert exact_ints(plain) == plain and exact_ints(plain) is not plain  # a copy


def test_a_bucket_beyond_64_bits_survives_its_changelog_record() -> None:
    state = KpiState(60)
    delta = [0] * WIDTH
    delta[SPEND], delta[COST] = 3 * 10**21, 5 * 10**20  # the last field, added later, too
    changed = state.apply({("big", "tiktok", NOW // 60_000): delta}, NOW // 60_000, 17)
    rebuilt = KpiState(60)
    for key, counts in changed.items():
        assert counts is not None
        rebuilt.load(key, orjson.loads(dumps(counts)))
    rows = {(c, ch, w): v for c, ch, w, v in rebuilt.rows(NOW // 60_000, WINDOWS,
                                                            lambda _: True)}
    assert rows[("big", "tiktok", "total")][SPEND] == 3 * 10**21
    assert rows[("big", "tiktok", "5m")][SPEND] == 3 * 10**21
    assert rows[("big", "tiktok", "total")][COST] == 5 * 10**20
    assert rows[("big", "tiktok", "5m")][COST] == 5 * 10**20


def test_two_customers_orders_with_one_event_id_are_two_orders() -> None:
    model = FlowModel(NOW)
    for customer in ("cust-1", "cust-2"):
        model.publish("orders", {"event_id": "order-1", "ts": NOW, "order_id": "A1",
                                 "customer_id": customer, "campaign_id": "shop",
                                 "revenue": "5", "currency": "USD"})
    assert total(model, "shop", "unknown", ORDERS) == 2
    assert total(model, "shop", "unknown", NEW_CUSTOMERS) == 2
    assert model.outcomes[("order", "accepted")] == 2
    assert model.outcomes[("order", "duplicate")] == 0


def test_a_retraction_takes_back_only_its_own_customers_order() -> None:
    model = FlowModel(NOW)
    for customer in ("cust-1", "cust-2"):
        model.publish("orders", {"event_id": "o-late", "ts": NOW, "order_id": "A2",
                                 "customer_id": customer, "campaign_id": "shop",
                                 "revenue": "5", "currency": "USD"})
    # cust-1's earlier order arrives late: only cust-1's "o-late" stops being first.
    model.publish("orders", {"event_id": "o-early", "ts": NOW - 60_000, "order_id": "A1",
                             "customer_id": "cust-1", "campaign_id": "shop",
                             "revenue": "5", "currency": "USD"})
    assert total(model, "shop", "unknown", ORDERS) == 3
    assert total(model, "shop", "unknown", NEW_CUSTOMERS) == 2


@pytest.mark.parametrize("length", [129, 1000, 60_000])
def test_a_view_with_a_long_user_id_is_valid(length: int) -> None:
    raw = orjson.dumps({"event_id": "v-1", "ts": NOW, "campaign_id": "c",
                        "user_id": "u" * length})
    for fast in (True, False):
        (verdict,) = parse_message(raw, "view", RULES, NOW, fast=fast)
        assert isinstance(verdict, Event), verdict


def test_a_user_id_past_the_event_size_limit_is_refused_for_the_size() -> None:
    raw = orjson.dumps({"event_id": "v-1", "ts": NOW, "campaign_id": "c",
                        "user_id": "u" * 70_000})
    (verdict,) = parse_message(raw, "view", RULES, NOW)
    assert not isinstance(verdict, Event)
    assert "65536" in verdict.reason


@pytest.mark.parametrize("field", ["click_id", "promo_code"])
def test_an_orders_long_click_id_or_promo_code_is_valid(field: str) -> None:
    raw = orjson.dumps({"event_id": "o-1", "ts": NOW, "order_id": "A1", "customer_id": "c",
                        "revenue": "1", "currency": "USD", field: "x" * 500})
    (verdict,) = parse_message(raw, "order", RULES, NOW)
    assert isinstance(verdict, Event), verdict
