"""Click-id attribution, customer history and duplicate deliveries, without a broker."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.attribution.expiry import ExpiringKeys
from streams.stages.click_records import MemoryClickStore
from streams.windows.counts import CLICKS, NEW_CUSTOMERS, ORDERS, REVENUE, VIEWS
from tests.unit.flow_model import DAY_MS, WINDOWS, FlowModel

NOW = 1_795_430_000_000  # 2026-11-23, mid-minute
MIN = 60_000


def click(i: int, ts: int, campaign: str = "spring", channel: str = "tiktok") -> dict[str, Any]:
    return {"event_id": f"c-{i}", "ts": ts, "campaign_id": campaign, "channel": channel,
            "click_id": f"clk-{i}"}


def order(i: int, ts: int, customer: str = "cust-1", **fields: Any) -> dict[str, Any]:
    return {"event_id": f"o-{i}", "ts": ts, "order_id": f"A{i}", "customer_id": customer,
            "revenue": "10", "currency": "USD", **fields}


def total(model: FlowModel, campaign: str, channel: str, index: int) -> int:
    return model.rows().get((campaign, channel, "total"), [0] * 8)[index]


# --- click-id attribution -------------------------------------------------------------

def test_order_takes_campaign_and_channel_of_its_click() -> None:
    model = FlowModel(NOW)
    model.publish("clicks", click(1, NOW - 3 * DAY_MS, channel="instagram"))
    model.publish("orders", order(1, NOW, click_id="clk-1"))
    assert total(model, "spring", "instagram", ORDERS) == 1
    assert total(model, "spring", "instagram", REVENUE) == 10_000_000


@pytest.mark.parametrize(("click_age_ms", "attributed"), [
    (7 * DAY_MS, True),        # exactly the window before the order: still in
    (7 * DAY_MS + 1, False),   # one millisecond older: out
    (0, True),                 # same moment
    (-1, False),               # the click happened after the order
])
def test_attribution_window_edges(click_age_ms: int, attributed: bool) -> None:
    model = FlowModel(NOW, grace_ms=1_000)
    model.publish("clicks", click(1, NOW - 8 * DAY_MS))  # an older click of another id
    model.publish("clicks", click(2, NOW - click_age_ms))
    model.publish("orders", order(1, NOW, click_id="clk-2"))
    model.tick(advance_ms=2_000)
    assert total(model, "spring", "tiktok", ORDERS) == int(attributed)
    assert total(model, "unattributed", "unknown", ORDERS) == int(not attributed)


def test_campaign_id_beats_promo_code_beats_click_id() -> None:
    model = FlowModel(NOW, promo_codes={"SPRING10": "promo-campaign"})
    model.publish("clicks", click(1, NOW - MIN))
    model.publish("orders", order(1, NOW, campaign_id="own", click_id="clk-1",
                                  promo_code="SPRING10"))
    model.publish("orders", order(2, NOW, click_id="clk-1", promo_code="SPRING10"))
    model.publish("orders", order(3, NOW, click_id="clk-1", promo_code="UNKNOWN"))
    assert total(model, "own", "unknown", ORDERS) == 1
    # A mapped promo code attributes even to a campaign never seen before.
    assert total(model, "promo-campaign", "unknown", ORDERS) == 1
    assert total(model, "spring", "tiktok", ORDERS) == 1


def test_order_read_before_its_click_waits_for_it() -> None:
    model = FlowModel(NOW, grace_ms=60_000)
    model.publish("orders", order(1, NOW, click_id="clk-1"))
    assert total(model, "unattributed", "unknown", ORDERS) == 0  # waiting, not lost
    model.tick(advance_ms=20_000)
    model.publish("clicks", click(1, NOW - MIN))
    assert total(model, "spring", "tiktok", ORDERS) == 1
    model.tick(advance_ms=60_000)
    assert total(model, "unattributed", "unknown", ORDERS) == 0


def test_order_whose_click_never_comes_is_unattributed_after_the_grace() -> None:
    model = FlowModel(NOW, grace_ms=60_000)
    model.publish("orders", order(1, NOW, click_id="clk-404", channel="web"))
    model.tick(advance_ms=59_000)
    assert total(model, "unattributed", "web", ORDERS) == 0
    model.tick(advance_ms=1_000)
    assert total(model, "unattributed", "web", ORDERS) == 1


def test_clicks_expire_after_the_attribution_window() -> None:
    model = FlowModel(NOW)
    model.publish("clicks", click(1, NOW))
    model.tick(advance_ms=7 * DAY_MS + MIN)
    book = model.clicks.books[model.part("clk-1")]
    assert book.click("clk-1") is None
    assert not model.clicks.clicks_table  # its record is gone too


# --- customer history -----------------------------------------------------------------

def test_customer_is_new_once_across_campaigns() -> None:
    model = FlowModel(NOW)
    model.publish("orders", order(1, NOW, campaign_id="a"))
    model.publish("orders", order(2, NOW + 1, campaign_id="b"))
    model.publish("orders", order(3, NOW + 2, customer="cust-2", campaign_id="b"))
    assert total(model, "a", "unknown", NEW_CUSTOMERS) == 1
    assert total(model, "b", "unknown", NEW_CUSTOMERS) == 1
    assert total(model, "b", "unknown", ORDERS) == 2


def test_earlier_order_read_later_becomes_the_first() -> None:
    model = FlowModel(NOW)
    model.publish("orders", order(2, NOW, campaign_id="b"))
    model.publish("orders", order(1, NOW - 10 * MIN, campaign_id="a"))
    assert total(model, "a", "unknown", NEW_CUSTOMERS) == 1
    assert total(model, "b", "unknown", NEW_CUSTOMERS) == 0
    assert total(model, "b", "unknown", ORDERS) == 1
    # The retraction lands in the minute the later order was counted in.
    assert model.rows()[("b", "unknown", "5m")][NEW_CUSTOMERS] == 0


def test_flag_decides_for_its_order_and_counts_as_first() -> None:
    model = FlowModel(NOW)
    model.publish("orders", order(1, NOW, campaign_id="a", new_customer=False))
    model.publish("orders", order(2, NOW + 1, customer="cust-2", campaign_id="a",
                                  new_customer=True))
    model.publish("orders", order(3, NOW + 2, customer="cust-2", campaign_id="a"))
    assert total(model, "a", "unknown", NEW_CUSTOMERS) == 1


# --- duplicate deliveries -------------------------------------------------------------

def test_redelivery_counts_once_and_as_duplicate() -> None:
    model = FlowModel(NOW)
    view = {"event_id": "v-1", "ts": NOW, "campaign_id": "a"}
    model.publish("views", view)
    model.tick(advance_ms=5 * MIN)
    model.publish("views", [view, view])  # again, in a batch, minutes later
    assert total(model, "a", "unknown", VIEWS) == 1
    assert model.outcomes[("view", "accepted")] == 1
    assert model.outcomes[("view", "duplicate")] == 2


def test_same_event_id_on_different_types_are_different_events() -> None:
    model = FlowModel(NOW)
    model.publish("views", {"event_id": "x", "ts": NOW, "campaign_id": "a"})
    model.publish("clicks", {"event_id": "x", "ts": NOW, "campaign_id": "a"})
    assert total(model, "a", "unknown", VIEWS) == 1
    assert total(model, "a", "unknown", CLICKS) == 1


def test_ids_are_forgotten_after_the_dedup_window() -> None:
    model = FlowModel(NOW)
    model.publish("views", {"event_id": "v-1", "ts": NOW, "campaign_id": "a"})
    model.tick(advance_ms=DAY_MS + 1)
    model.publish("views", {"event_id": "v-2", "ts": NOW + DAY_MS, "campaign_id": "a"})
    ids = [value[1] for value in model.counts.id_table.values()]
    assert ids == [["view/a/v-2"]]
    # The first view's id is forgotten: it would count again.
    assert model.counts.id_store.recorded(0, ["view/a/v-1", "view/a/v-2"]).keys() == {
        "view/a/v-2"}


def test_expiring_keys_forget_oldest_first_and_refresh() -> None:
    keys = ExpiringKeys()
    keys.set("a", 10)
    keys.set("b", 5)
    keys.set("b", 20)  # refreshed: its old expiry no longer applies
    assert keys.expire(10) == ["a"]
    assert len(keys) == 1 and keys.expire(20) == ["b"] and len(keys) == 0


# --- properties -----------------------------------------------------------------------

_campaigns = st.sampled_from(["a", "b", "c"])
_event = st.one_of(
    st.builds(lambda i, c, dt: ("views", {"event_id": f"v{i}", "ts": NOW - dt,
                                          "campaign_id": c}),
              st.integers(0, 30), _campaigns, st.integers(0, 90 * MIN)),
    st.builds(lambda i, c, dt: ("clicks", {"event_id": f"c{i}", "ts": NOW - dt,
                                           "campaign_id": c, "click_id": f"k{i % 5}"}),
              st.integers(0, 30), _campaigns, st.integers(0, 90 * MIN)),
    st.builds(lambda i, cust, dt, k: ("orders", order(i, NOW - dt, customer=f"u{cust}",
                                                      click_id=f"k{k}")),
              st.integers(0, 30), st.integers(0, 3), st.integers(0, 90 * MIN),
              st.integers(0, 6)),
    st.builds(lambda i, c, cust, dt: ("orders", order(100 + i, NOW - dt, customer=f"u{cust}",
                                                      campaign_id=c)),
              st.integers(0, 30), _campaigns, st.integers(0, 3), st.integers(0, 90 * MIN)),
    st.builds(lambda i, c, amount: ("spend", {"event_id": f"s{i}", "ts": NOW, "campaign_id": c,
                                              "amount": amount, "currency": "EUR"}),
              st.integers(0, 30), _campaigns, st.integers(0, 10_000)),
)


def _run(events: list[tuple[str, dict[str, Any]]]) -> dict[tuple[str, str, str], list[int]]:
    model = FlowModel(NOW, grace_ms=30_000)
    for topic, event in events:
        model.publish(topic, event)
    model.tick(advance_ms=31_000)
    model.now_ms = NOW  # read the windows at the same moment in every run
    return {k: v for k, v in model.rows().items() if any(v)}


def _distinct(events: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    seen: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {}
    for topic, event in events:
        seen.setdefault((topic, event["event_id"]), (topic, event))
    return list(seen.values())


@settings(max_examples=60, deadline=None)
@given(st.lists(_event, max_size=40).map(_distinct), st.randoms(use_true_random=False))
def test_delivering_every_event_twice_in_any_order_changes_no_kpi(
    events: list[tuple[str, dict[str, Any]]], rnd: Any,
) -> None:
    # Clicks first in both runs: which click an order meets depends on what was read
    # before it (a click read after the order is a different story).
    def clicks_first(seq: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
        return sorted(seq, key=lambda e: e[0] != "clicks")

    once = _run(clicks_first(events))
    twice = events + events
    rnd.shuffle(twice)
    assert _run(clicks_first(twice)) == once


@settings(max_examples=60, deadline=None)
@given(st.lists(_event, max_size=40).map(_distinct), st.randoms(use_true_random=False))
def test_order_of_orders_does_not_change_new_customers(
    events: list[tuple[str, dict[str, Any]]], rnd: Any,
) -> None:
    clicks = [e for e in events if e[0] == "clicks"]
    rest = [e for e in events if e[0] != "clicks"]
    shuffled = list(rest)
    rnd.shuffle(shuffled)
    assert _run(clicks + shuffled) == _run(clicks + rest)


# --- crash replays --------------------------------------------------------------------

def test_replayed_message_applies_only_what_did_not_land() -> None:
    """A crash after some changelog records landed: the replay adds only the rest."""
    from streams.flow.forwards import Forwards
    from streams.stages.counting import CountStage
    from streams.windows.state import KpiState

    forwards = Forwards()
    for i in range(3):
        forwards.add("v", f"v{i}", NOW + i * MIN, "tiktok")
    from streams.stages.event_ids import MemoryIdStore

    landed: dict[Any, Any] = {}
    first = CountStage(KpiState(1440), landed, DAY_MS)
    first.handle("a", forwards, partition=0, offset=41, now_ms=NOW + 3 * MIN)
    # Keep every id, but lose the last bucket written and the total (not yet flushed).
    buckets = list(landed)
    for key in buckets[-2:]:
        del landed[key]
    recovered = CountStage(KpiState(1440), landed, DAY_MS,
                           id_table=MemoryIdStore(first.id_table))
    recovered.rebuild({0}, lambda campaign: True)
    again = recovered.handle("a", forwards, partition=0, offset=41, now_ms=NOW + 3 * MIN)
    # a replay: neither duplicates nor accepted again (the first reading counted them)
    assert not again.accepted and not again.duplicates
    rows = {w: c for _, _, w, c in recovered.state.rows(minute_of_now(), WINDOWS, lambda _: True)}
    assert rows["total"][0] == 3 and rows["5m"][0] == 3
    # A second delivery in another message is a duplicate.
    first_only = next(forwards.chunks(1))
    dup = recovered.handle("a", first_only, partition=0, offset=42, now_ms=NOW + 3 * MIN)
    assert dup.duplicates["view"] == 1 and not dup.deltas


def test_replayed_order_repeats_its_decision() -> None:
    from streams.attribution.customers import CustomerBook
    from streams.attribution.orders import OrderRoute

    book = CustomerBook(DAY_MS)
    first = OrderRoute("o-1", NOW, "alice", None, 1, "a", "web", None)
    assert book.decide(first, 0, 7, NOW).is_new
    replay = book.decide(OrderRoute("o-1", NOW, "alice", None, 1, "a", "web", None), 0, 7, NOW)
    assert replay.kind == "replayed" and replay.is_new
    again = book.decide(OrderRoute("o-1", NOW, "alice", None, 1, "a", "web", None), 1, 3, NOW)
    assert again.kind == "duplicate"


def minute_of_now() -> int:
    return (NOW + 3 * MIN) // MIN


def test_click_records_rebuild_the_same_clicks_and_go_with_their_newest_click() -> None:
    """One record per message, holding the clicks it kept; read back in changelog order, the
    records give each id the click live had."""
    from streams.stages.joining import ClickStage

    table = MemoryClickStore()
    live = ClickStage(table, {}, DAY_MS, 0)
    live.remember("k1", (NOW, "a", "web", None), partition=3, offset=10)
    live.remember("k2", (NOW + MIN, "a", "tv", "tutorial"), partition=3, offset=10)
    live.end_message(3, 10)
    live.remember("k1", (NOW - MIN, "b", "web", "live"), partition=3, offset=11)  # earlier: kept
    live.remember("k2", (NOW + 2 * MIN, "c", "tv", None), partition=3, offset=11)  # later: not
    live.end_message(3, 11)
    assert set(table) == {(3, 10), (3, 11)}
    assert len(table[(3, 11)]) == 1

    def clicks(stage: ClickStage) -> dict[str, Any]:
        return {k: stage.books[3].click(k) for k in ("k1", "k2")}

    expected = {"k1": (NOW - MIN, "b", "web", "live"), "k2": (NOW + MIN, "a", "tv", "tutorial")}
    recovered = ClickStage(MemoryClickStore(dict(table.items())), {}, DAY_MS, 0)
    recovered.rebuild({3}, lambda key: 3)
    recovered.tick(3, NOW + 2 * MIN, offset=12)
    assert clicks(recovered) == clicks(live) == expected
    not_owned = ClickStage(MemoryClickStore(dict(table.items())), {}, DAY_MS, 0)
    not_owned.rebuild({0}, lambda key: None)
    assert not not_owned.books and not not_owned.clicks_table

    # Message 11's only click leaves the window first; message 10's when k2 does. A click
    # exactly the window old can still claim an order: it goes a millisecond later.
    live.tick(3, NOW - MIN + DAY_MS, offset=12)
    assert set(table) == {(3, 10), (3, 11)}
    live.tick(3, NOW - MIN + DAY_MS + 1, offset=12)
    assert set(table) == {(3, 10)}
    assert clicks(live) == {"k1": None, "k2": expected["k2"]}  # k1's click went with 11
    live.tick(3, NOW + MIN + DAY_MS + 1, offset=13)
    assert not table and clicks(live) == {"k1": None, "k2": None}
