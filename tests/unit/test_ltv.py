"""Lifetime value (issue #15 item 4): every order of a customer, in any campaign, within
each horizon of the order that acquired them, credited to the acquiring campaign-channel.

End to end through the flow model (ingest, click join, customer stage, counting), checked
against hand-computed values and, for random histories, a brute-force recomputation.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.attribution.customers import CustomerRecord
from streams.attribution.lifetime import LtvCredit, credit_id
from streams.attribution.orders import OrderRoute
from streams.config.errors import SettingsError
from streams.config.settings import Horizon, settings_from
from streams.flow.forwards import Forwards
from streams.flow.wire import dumps
from streams.stages.customer_history import CustomerStage
from streams.stages.customer_records import MemoryCustomerStore
from streams.stages.outgoing import Outgoing
from streams.windows.counts import NEW_CUSTOMERS, REVENUE
from tests.unit.flow_model import DAY_MS, LTV_HORIZON_DAYS, FlowModel

NOW = 1_795_430_000_000  # 2026-11-23
START = NOW - 900 * DAY_MS
USD = 1_000_000  # micros


class LtvModel(FlowModel):
    """The flow model, noting every LTV credit id the customer stage sends, optionally
    handling each customer-orders message twice at its offset (a replay after a crash),
    and restartable from the customer table's wire form."""

    def __init__(self, replays: bool = False) -> None:
        super().__init__(NOW)
        self.replays = replays
        self.credit_ids: list[str] = []

    def _handle(self, record: Outgoing, offset: int) -> list[Outgoing]:
        out = super()._handle(record, offset)
        if record.topic != "customer_orders":
            return out
        if self.replays:
            again = super()._handle(record, offset)
            assert [r.value for r in again] == [r.value for r in out]  # same ids, same sums
            out += again  # and the counting stage drops the second sending
        self.credit_ids += [event_id for r in out if r.topic == "kpi_events"
                            for kind, event_id, *_ in Forwards.from_wire(r.value)
                            if kind == "L"]
        return out

    def restart(self) -> None:
        """A new customer stage rebuilt from its table as recovered (its wire form)."""
        table = {customer: orjson.loads(dumps(record))
                 for customer, record in self.customers.table.items()}
        self.customers = CustomerStage(MemoryCustomerStore(table, self.part), 400 * DAY_MS,
                                       DAY_MS, LTV_HORIZON_DAYS)
        self.customers.rebuild(set(range(self.partitions)), self.part)


def order(event_id: str, day: float, customer: str, dollars: int, campaign: str | None = None,
          **fields: Any) -> dict[str, Any]:
    doc = {"event_id": event_id, "ts": START + int(day * DAY_MS), "order_id": event_id,
           "customer_id": customer, "revenue": str(dollars), "currency": "USD", **fields}
    if campaign is not None:
        doc["campaign_id"] = campaign
    return doc


def new_customers(model: FlowModel, campaign: str, channel: str) -> int:
    return model.rows().get((campaign, channel, "total"), [0] * 8)[NEW_CUSTOMERS]


# --- hand-computed examples ---------------------------------------------------------------

def two_customers(model: LtvModel) -> None:
    """alice and bob, acquired by spring on tiktok; their repeat orders are in summer."""
    model.publish("orders", order("a0", 0, "alice", 50, "spring", channel="tiktok"))
    model.publish("orders", order("b0", 0, "bob", 40, "spring", channel="tiktok"))
    model.publish("orders", order("a10", 10, "alice", 20, "summer"))
    model.publish("orders", order("a100", 100, "alice", 30, "summer"))
    model.publish("orders", order("b90", 90, "bob", 60, "summer"))  # day 90 exactly: in


SPRING = {30: (50 + 20 + 40) * USD,                 # alice's day 0 and 10, bob's day 0
          90: (50 + 20 + 40 + 60) * USD,            # and bob's at day 90 exactly
          365: (50 + 20 + 30 + 40 + 60) * USD}      # and alice's at day 100


def test_repeat_orders_in_another_campaign_credit_the_acquiring_campaign_channel() -> None:
    model = LtvModel()
    two_customers(model)
    assert model.ltv() == {("spring", "tiktok"): SPRING}
    assert new_customers(model, "spring", "tiktok") == 2
    # LTV per customer: 55, 85 and 100 dollars; summer acquired no one and is owed nothing
    assert {d: v / 2 / USD for d, v in SPRING.items()} == {30: 55, 90: 85, 365: 100}
    assert new_customers(model, "summer", "unknown") == 0
    assert model.rows()[("summer", "unknown", "total")][REVENUE] == 110 * USD


def test_a_late_earlier_order_in_another_campaign_moves_the_cohort() -> None:
    model = LtvModel()
    two_customers(model)
    model.publish("orders", order("c50", 50, "carol", 10, "spring"))
    model.publish("orders", order("c60", 60, "carol", 15, "spring"))
    carol_in_spring = {30: 25 * USD, 90: 25 * USD, 365: 25 * USD}
    assert model.ltv()[("spring", "unknown")] == carol_in_spring
    model.publish("orders", order("c45", 45, "carol", 5, "autumn"))  # read late, earlier
    # spring/unknown has it all taken back; autumn is owed days 45..75, 135, 410
    assert ("spring", "unknown") not in model.ltv()
    assert new_customers(model, "spring", "unknown") == 0
    assert model.ltv()[("autumn", "unknown")] == {30: 30 * USD, 90: 30 * USD, 365: 30 * USD}
    assert new_customers(model, "autumn", "unknown") == 1
    assert model.ltv()[("spring", "tiktok")] == SPRING  # alice and bob untouched
    # a later order of carol's goes to autumn now
    model.publish("orders", order("c130", 130, "carol", 7, "spring"))
    assert model.ltv()[("autumn", "unknown")] == {30: 30 * USD, 90: 37 * USD, 365: 37 * USD}


def test_a_redelivery_credits_nothing_more() -> None:
    model = LtvModel()
    two_customers(model)
    model.publish("orders", order("a10", 10, "alice", 20, "summer"))
    model.publish("orders", order("b0", 0, "bob", 40, "spring"))
    assert model.ltv() == {("spring", "tiktok"): SPRING}
    assert model.outcomes[("order", "duplicate")] == 2


def test_a_replayed_message_repeats_its_credits_under_the_same_ids() -> None:
    model = LtvModel(replays=True)
    two_customers(model)
    model.publish("orders", order("a-1", -1, "alice", 1, "winter"))  # a retraction too
    assert model.ltv()[("winter", "unknown")] == {30: 71 * USD, 90: 71 * USD, 365: 101 * USD}
    assert model.ltv()[("spring", "tiktok")] == {30: 40 * USD, 90: 100 * USD, 365: 100 * USD}
    assert len(model.credit_ids) == 2 * len(set(model.credit_ids))  # each sent twice


def test_a_restart_rebuilds_what_the_credits_need_from_the_table() -> None:
    model = LtvModel()
    two_customers(model)
    model.restart()
    model.publish("orders", order("b120", 120, "bob", 5, "summer"))
    assert model.ltv()[("spring", "tiktok")] == {**SPRING, 365: SPRING[365] + 5 * USD}
    model.restart()
    model.publish("orders", order("b-2", -2, "bob", 1, "winter"))  # takes bob from spring
    assert model.ltv()[("spring", "tiktok")] == {30: 70 * USD, 90: 70 * USD, 365: 100 * USD}
    # days -2 .. 28, 88 (bob's day 90 falls out), 363
    assert model.ltv()[("winter", "unknown")] == {30: 41 * USD, 90: 41 * USD, 365: 106 * USD}
    assert len(model.credit_ids) == len(set(model.credit_ids))


def test_an_order_flagged_new_acquires_from_its_own_time_and_one_flagged_not_acquires_no_one(
) -> None:
    model = LtvModel()
    # dave's first order says he is not new: no one acquires him there, nor is owed
    model.publish("orders", order("d0", 0, "dave", 10, "spring", new_customer=False))
    model.publish("orders", order("d20", 20, "dave", 20, "spring"))
    assert model.ltv() == {} and new_customers(model, "spring", "unknown") == 0
    # a later order flagged new acquires him (again) from its time: days 40 .. 40 + h
    model.publish("orders", order("d80", 80, "dave", 40, "spring"))
    model.publish("orders", order("d40", 40, "dave", 30, "summer", new_customer=True))
    assert new_customers(model, "summer", "unknown") == 1
    assert model.ltv() == {("summer", "unknown"): {30: 30 * USD, 90: 70 * USD, 365: 70 * USD}}


def test_orders_past_the_longest_horizon_are_forgotten_once_read_long_ago() -> None:
    model = LtvModel()
    model.publish("orders", order("e0", 0, "erin", 10, "spring"))
    for day in (100, 400, 500):  # 400 and 500: past 365 days after the first
        model.publish("orders", order(f"e{day}", day, "erin", 1, "spring"))
    model.tick(2 * DAY_MS)  # past the dedup window
    model.publish("orders", order("e600", 600, "erin", 1, "spring"))
    record = model.customers.books[model.part("erin")].records["erin"]
    assert sorted(ts for ts, _, _ in record.history) == [
        START, START + 100 * DAY_MS, START + 600 * DAY_MS]  # 600: read just now
    # a late earlier order still takes back exactly what was credited
    model.publish("orders", order("e-5", -5, "erin", 2, "summer"))
    assert ("spring", "unknown") not in model.ltv()
    assert model.ltv()[("summer", "unknown")] == {30: 12 * USD, 90: 12 * USD, 365: 13 * USD}


# --- the invariant, for random histories -------------------------------------------------

CAMPAIGNS = ("a", "b", "c")


def brute_force(orders: list[dict[str, Any]]) -> tuple[Counter[tuple[str, str]],
                                                       dict[tuple[str, str], dict[int, int]]]:
    """New customers and LTV credited per campaign-channel, straight from the orders.

    A customer is acquired by their first order (by time, then event id) unless its flag
    decides, and by every order flagged new; each acquisition is owed every order of the
    customer within each horizon after it."""
    customers: dict[str, list[dict[str, Any]]] = {}
    for o in orders:
        customers.setdefault(o["customer_id"], []).append(o)
    acquired: Counter[tuple[str, str]] = Counter()
    ltv: dict[tuple[str, str], dict[int, int]] = {}
    for own in customers.values():
        first = min(own, key=lambda o: (o["ts"], o["event_id"]))
        acquirers = [o for o in own if o.get("new_customer") is True]
        if first.get("new_customer") is None:
            acquirers.append(first)
        for a in acquirers:
            key = (a["campaign_id"], "unknown")
            acquired[key] += 1
            for days in LTV_HORIZON_DAYS:
                owed = sum(int(o["revenue"]) * USD for o in own
                           if a["ts"] <= o["ts"] <= a["ts"] + days * DAY_MS)
                credited = ltv.setdefault(key, {})
                credited[days] = credited.get(days, 0) + owed
    return acquired, {k: {d: v for d, v in c.items() if v} for k, c in ltv.items()
                      if any(c.values())}


def history(flags: st.SearchStrategy[bool | None]) -> st.SearchStrategy[list[dict[str, Any]]]:
    one = st.tuples(st.sampled_from(["x", "y", "z"]), st.integers(0, 800),
                    st.sampled_from([0, 0, DAY_MS // 2]), st.integers(0, 50),
                    st.sampled_from(CAMPAIGNS), flags)
    return st.lists(one, min_size=1, max_size=14).map(lambda rows: [
        order(f"o{i}", day + half / DAY_MS, customer, dollars, campaign,
              **({} if flag is None else {"new_customer": flag}))
        for i, (customer, day, half, dollars, campaign, flag) in enumerate(rows)])


def check(model: LtvModel, orders: list[dict[str, Any]]) -> None:
    acquired, ltv = brute_force(orders)
    assert model.ltv() == ltv
    new = {(c, ch): n for (c, ch, w), counts in model.rows().items()
           if w == "total" and (n := counts[NEW_CUSTOMERS])}
    assert new == +acquired
    assert sum(new.values()) == sum(acquired.values())
    assert len(model.credit_ids) == len(set(model.credit_ids)) * (2 if model.replays else 1)


@settings(max_examples=150, deadline=None)
@given(history(st.sampled_from([None, None, None, True, False])), st.randoms(),
       st.booleans(), st.integers(0, 14))
def test_credits_equal_a_recomputation_whatever_the_delivery(
        orders: list[dict[str, Any]], rnd: random.Random, replays: bool, restart_at: int,
) -> None:
    """Any order of reading, second deliveries, replays and a restart: the same totals."""
    model = LtvModel(replays=replays)
    deliveries = orders + rnd.sample(orders, k=len(orders) // 3)
    rnd.shuffle(deliveries)
    for i, o in enumerate(deliveries):
        if i == restart_at:
            model.restart()
        model.publish("orders", o)
    check(model, orders)


@settings(max_examples=100, deadline=None)
@given(history(st.none() | st.just(False)), st.randoms(), st.integers(0, 14))
def test_credits_stay_exact_when_old_orders_are_forgotten(
        orders: list[dict[str, Any]], rnd: random.Random, restart_at: int) -> None:
    """Read days apart (so each record keeps only what a horizon of its first needs),
    in any order, with second deliveries read at once and a restart."""
    model = LtvModel()
    rnd.shuffle(orders)
    for i, o in enumerate(orders):
        if i == restart_at:
            model.restart()
        model.publish("orders", o)
        if rnd.random() < 0.3:
            model.publish("orders", o)
        model.tick(rnd.choice([0, 2 * DAY_MS]))
    check(model, orders)


# --- the record's wire form, ids, the setting --------------------------------------------

def test_a_record_written_before_lifetime_value_reads_with_no_history() -> None:
    old = [START, "o1", ["a", "web", START, "o1"], NOW,
           {"o1": [NOW + DAY_MS, 0, 7, True, None]}]
    record = CustomerRecord.from_wire(old)
    assert (record.counted, record.version, record.history, record.acquired) == (
        ("a", "web", START, "o1"), 0, [], [])
    assert record.orders["o1"].credits == ()
    stage = CustomerStage(MemoryCustomerStore({"cust": old}), 400 * DAY_MS, DAY_MS,
                          LTV_HORIZON_DAYS)
    stage.rebuild({0}, lambda customer: 0)
    later = OrderRoute("o2", START + DAY_MS, "cust", None, 3 * USD, "b", "web", None)
    forwards, _ = stage.handle([later], 0, 8, NOW)
    # the later order is owed to the acquirer of old, from now on
    assert [(k, a) for k, _, _, _, a in forwards["a"]] == [("L", 3 * USD)] * 3
    assert orjson.loads(dumps(stage.table["cust"]))[5:] == [
        1, [[START + DAY_MS, 3 * USD, NOW + DAY_MS]], []]


def test_big_revenue_survives_the_records_wire_form() -> None:
    stage = CustomerStage(MemoryCustomerStore(), 400 * DAY_MS, DAY_MS, (30,))
    huge = 10**21  # past 64 bits: travels as a decimal string
    stage.handle([OrderRoute("o1", START, "cust", None, huge, "a", "web", None)], 0, 1, NOW)
    record = CustomerRecord.from_wire(orjson.loads(dumps(stage.table["cust"])))
    assert record.history == [(START, huge, NOW + DAY_MS)]
    assert record.orders["o1"].credits == (LtvCredit("a", "web", START, 30, huge, "o1"),)


def test_credit_ids_differ_for_each_acquisition_decision_and_horizon() -> None:
    a = LtvCredit("a", "web", START, 30, 1, "o:1")
    ids = {credit_id("c", a, 1), credit_id("c", a, 2),
           credit_id("c", a._replace(horizon_days=90), 1),
           credit_id("c", a._replace(acquired_id="o"), 1), credit_id("c:1", a, 1)}
    assert len(ids) == 5


def test_ltv_horizons_setting() -> None:
    assert settings_from({}, {}).ltv_horizons == (
        Horizon("30d", 30), Horizon("90d", 90), Horizon("365d", 365))
    doc = {"kpi": {"ltv_horizons": ["7d", "48h"]}}
    assert settings_from(doc, {}).ltv_horizons == (Horizon("7d", 7), Horizon("48h", 2))
    assert settings_from({"kpi": {"ltv_horizons": []}}, {}).ltv_horizons == ()


@pytest.mark.parametrize("value", [["36h"], ["0d"], ["30d", "720h"], "30d", [30], ["-1d"]])
def test_a_bad_ltv_horizon_fails_at_start_naming_the_setting(value: object) -> None:
    with pytest.raises(SettingsError) as error:
        settings_from({"kpi": {"ltv_horizons": value}}, {})
    assert error.value.setting == "[kpi] ltv_horizons"
