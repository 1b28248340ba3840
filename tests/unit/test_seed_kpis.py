"""The seed articles' KPIs (SPEC 2: reach, actions, watch time, profit, products, content
types) through the whole pipeline in memory, on numbers worked out by hand, in every
window, and the same after a restart from the changelog."""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from metrics.kpi_gauges import KpiCollector, SeedKpis, exposition, text_of
from metrics.kpis import served_reach
from streams.config.settings import Window
from streams.flow.forwards import Extra, Forwards
from streams.flow.wire import dumps
from streams.stages.aggregate import fold
from streams.stages.counting import CountStage
from streams.windows.extras import PRODUCT_CAP
from streams.windows.minutes import minute_of
from streams.windows.state import KpiState
from tests.unit.flow_model import FlowModel

NOW = 1_795_428_000_000  # a whole minute
MIN = 60_000
WINDOWS = (Window("5m", 5), Window("1h", 60), Window("24h", 1440))
ALL = ("5m", "1h", "24h", "total")


def registry_of(model: FlowModel, state: KpiState | None = None, *,
                margin: Fraction | None = None, top_products: int = 10,
                top_content: int = 10) -> CollectorRegistry:
    held = model.counts.state if state is None else state
    now = minute_of(model.now_ms)
    registry = CollectorRegistry()
    registry.register(KpiCollector(
        lambda: held.rows(now, WINDOWS, lambda _: True), "USD",
        SeedKpis(lambda: held.live_extras_rows(now, WINDOWS, lambda _: True), margin,
                 top_products, top_content)))
    return registry


def reader(registry: CollectorRegistry) -> Callable[..., float | None]:
    def value(name: str, window: str, campaign: str = "a", channel: str = "tiktok",
              **labels: str) -> float | None:
        return registry.get_sample_value(name, {"campaign": campaign, "channel": channel,
                                                "window": window, **labels})
    return value


def view(model: FlowModel, event_id: str, ago_ms: int, **fields: Any) -> None:
    model.publish("views", {"event_id": event_id, "ts": model.now_ms - ago_ms,
                            "campaign_id": "a", "channel": "tiktok", **fields})


def spread_views(model: FlowModel) -> None:
    """Views 2 minutes, 30 minutes, 5 hours and 25 hours ago: in 5m, 1h, 24h, total."""
    for ago, users, watch in ((2 * MIN, ["u1", "u2"], [1000, 3000]),
                              (30 * MIN, ["u1", "u3", "u3"], [500, None, 2500]),
                              (5 * 60 * MIN, ["u4"], [10_000]),
                              (25 * 60 * MIN, ["u5", "u1"], [None, 7000])):
        for i, (user, ms) in enumerate(zip(users, watch, strict=True)):
            fields: dict[str, Any] = {"user_id": user}
            if ms is not None:
                fields["watch_ms"] = ms
            view(model, f"v{ago}-{i}", ago, **fields)


def test_reach_frequency_and_watch_time_in_every_window() -> None:
    model = FlowModel(NOW + 30 * 60 * MIN)
    spread_views(model)
    view(model, "anonymous", 2 * MIN)  # no user id, no watch time: a view, not a viewer
    value = reader(registry_of(model))
    # window: viewers, views with a user id, watch ms, views with watch_ms
    hand = {"5m": ({"u1", "u2"}, 2, 4000, 2),
            "1h": ({"u1", "u2", "u3"}, 5, 7000, 4),
            "24h": ({"u1", "u2", "u3", "u4"}, 6, 17_000, 5),
            "total": ({"u1", "u2", "u3", "u4", "u5"}, 8, 24_000, 6)}
    for window, (viewers, user_views, watch_ms, watched) in hand.items():
        assert value("marketing_reach", window) == len(viewers), window
        assert value("marketing_frequency", window) == user_views / len(viewers)
        assert value("marketing_watch_seconds", window) == watch_ms / 1000
        assert value("marketing_average_watch_seconds", window) == watch_ms / 1000 / watched
        assert value("marketing_views", window) == user_views + 1


def test_no_user_id_no_reach_and_no_watch_time_no_average() -> None:
    model = FlowModel(NOW)
    view(model, "v1", MIN)
    value = reader(registry_of(model))
    for window in ALL:
        assert value("marketing_reach", window) is None
        assert value("marketing_frequency", window) is None
        assert value("marketing_average_watch_seconds", window) is None
        assert value("marketing_watch_seconds", window) == 0.0


def test_engagement_actions_each_counted_and_summing_to_engagements() -> None:
    model = FlowModel(NOW)
    actions = ["follow", "follow", "profile_visit", "like", "share", "follow", "save",
               "comment", "like"]
    for i, action in enumerate(actions):
        model.publish("engagements", {"event_id": f"e{i}", "ts": NOW - (i * 20) * MIN,
                                      "campaign_id": "a", "channel": "tiktok",
                                      "action": action})
    model.publish("engagements", {"event_id": "e0", "ts": NOW, "campaign_id": "a",
                                  "channel": "tiktok", "action": "like"})  # a redelivery
    value = reader(registry_of(model))
    minutes_ago = {i: i * 20 for i in range(len(actions))}
    for window, span in (("5m", 5), ("1h", 60), ("24h", 1440), ("total", 10**9)):
        inside = [a for i, a in enumerate(actions) if minutes_ago[i] < span]
        for action in ("like", "comment", "share", "save", "follow", "profile_visit"):
            assert value("marketing_engagement_actions", window, action=action) == \
                inside.count(action), (window, action)
        assert value("marketing_engagements", window) == len(inside)


def order(model: FlowModel, event_id: str, revenue: str, *, ago_ms: int = 0,
          customer: str = "x", **fields: Any) -> None:
    model.publish("orders", {"event_id": event_id, "ts": model.now_ms - ago_ms,
                             "order_id": event_id, "customer_id": customer,
                             "campaign_id": "a", "channel": "tiktok", "revenue": revenue,
                             "currency": "USD", **fields})


def test_gross_profit_poas_and_orders_without_cost() -> None:
    model = FlowModel(NOW)
    order(model, "o1", "100", cost="40")                       # profit 60
    order(model, "o2", "50.5", cost="50.25", ago_ms=30 * MIN)  # profit 0.25
    order(model, "o3", "80", ago_ms=3 * MIN)                   # no cost
    order(model, "o4", "200", cost="250", ago_ms=2 * 60 * MIN)  # profit -50
    model.publish("orders", {"event_id": "o5", "ts": NOW, "order_id": "o5",
                             "customer_id": "y", "campaign_id": "a", "channel": "tiktok",
                             "revenue": "10", "cost": "9", "currency": "EUR"})  # 10.8 - 9.72
    model.publish("spend", {"event_id": "s1", "ts": NOW, "campaign_id": "a",
                            "channel": "tiktok", "amount": 20, "currency": "USD"})
    plain = reader(registry_of(model))
    margin = reader(registry_of(model, margin=Fraction(35, 100)))
    hand = {"5m": (Fraction("60") + Fraction("1.08"), 1, Fraction("80")),
            "1h": (Fraction("60.25") + Fraction("1.08"), 1, Fraction("80")),
            "24h": (Fraction("10.25") + Fraction("1.08"), 1, Fraction("80")),
            "total": (Fraction("10.25") + Fraction("1.08"), 1, Fraction("80"))}
    for window, (profit, uncosted, uncosted_revenue) in hand.items():
        assert plain("marketing_gross_profit", window, currency="USD") == float(profit)
        assert plain("marketing_orders_without_cost", window) == uncosted
        assert plain("marketing_poas_ratio", window) == float(profit / 20)
        with_margin = profit + uncosted_revenue * Fraction(35, 100)
        assert margin("marketing_gross_profit", window, currency="USD") == float(with_margin)
        assert margin("marketing_poas_ratio", window) == float(with_margin / 20)


def test_poas_is_absent_without_spend() -> None:
    model = FlowModel(NOW)
    order(model, "o1", "100", cost="40")
    value = reader(registry_of(model))
    assert value("marketing_gross_profit", "total", currency="USD") == 60.0
    assert value("marketing_poas_ratio", "total") is None


def items(*lines: tuple[str, int, str]) -> list[dict[str, Any]]:
    return [{"product_id": p, "quantity": q, "revenue": r} for p, q, r in lines]


def test_top_products_then_other_with_exact_sums() -> None:
    model = FlowModel(NOW)
    order(model, "o1", "100", items=items(("sku-a", 2, "60"), ("sku-b", 1, "40")))
    order(model, "o2", "75", items=items(("sku-c", 5, "50"), ("sku-a", 1, "25")),
          ago_ms=2 * 60 * MIN)
    order(model, "o3", "9", items=items(("other", 3, "9")))  # a product named other
    value = reader(registry_of(model, top_products=2))
    # 24h: sku-a 85 (3 units), sku-c 50 (5), sku-b 40 (1), "other" 9 (3)
    assert value("marketing_product_revenue", "24h", product="sku-a", currency="USD") == 85
    assert value("marketing_product_units", "24h", product="sku-a") == 3
    assert value("marketing_product_revenue", "24h", product="sku-c", currency="USD") == 50
    assert value("marketing_product_revenue", "24h", product="sku-b", currency="USD") is None
    assert value("marketing_product_revenue", "24h", product="other", currency="USD") == 49
    assert value("marketing_product_units", "24h", product="other") == 4
    # 5m: sku-a 60, sku-b 40, then other: the "other" product's 9
    assert value("marketing_product_revenue", "5m", product="sku-a", currency="USD") == 60
    assert value("marketing_product_revenue", "5m", product="sku-b", currency="USD") == 40
    assert value("marketing_product_units", "5m", product="other") == 3


def test_a_scrape_keeps_the_figures_it_collected_while_the_state_counts_on() -> None:
    """The collector reads the state's own maps of products and content types (as the
    worker's does); what it collected is written as it was then, whatever is counted
    while the text is written (the writer's process or thread is behind the loop)."""
    model = FlowModel(NOW)
    order(model, "o1", "100", items=items(("sku-a", 2, "60"), ("sku-b", 1, "40")))
    view(model, "v1", 0, content_type="live")
    registry = registry_of(model)
    families = list(registry.collect())
    order(model, "o2", "75", items=items(("sku-a", 5, "75")))
    view(model, "v2", 0, content_type="live")
    view(model, "v3", 0, content_type="reel")

    def sample(text: bytes, name: str, label: str) -> bytes:
        [line] = [line for line in text.splitlines()
                  if line.startswith(name.encode() + b"{") and label.encode() in line
                  and b'window="5m"' in line]
        return line.rsplit(b" ", 1)[1]
    then = b"".join(map(text_of, families))
    assert sample(then, "marketing_product_units", 'product="sku-a"') == b"2.0"
    assert sample(then, "marketing_product_revenue", 'product="sku-a"') == b"60.0"
    assert sample(then, "marketing_content_views", 'content_type="live"') == b"1.0"
    assert b'content_type="reel"' not in then
    now = exposition(registry)
    assert sample(now, "marketing_product_units", 'product="sku-a"') == b"7.0"
    assert sample(now, "marketing_product_revenue", 'product="sku-a"') == b"135.0"
    assert sample(now, "marketing_content_views", 'content_type="live"') == b"2.0"
    assert sample(now, "marketing_content_views", 'content_type="reel"') == b"1.0"


def test_products_past_the_cap_count_as_other_for_good() -> None:
    model = FlowModel(NOW)
    for i in range(PRODUCT_CAP + 5):
        order(model, f"o{i}", "1", items=items((f"p{i:04d}", 1, "1")), customer=f"c{i}")
    order(model, "late", "1", items=items(("p0001", 1, "1"), (f"p{PRODUCT_CAP + 1:04d}", 2, "1")))
    state = model.counts.state
    [total] = [e for c, ch, w, e in state.extras_rows(minute_of(NOW), WINDOWS, lambda _: True)
               if w == "total"]
    assert len(total.products) == PRODUCT_CAP + 1  # the cap, and the folded ones
    assert total.products[""] == [5 + 2, 6_000_000]
    assert total.products["p0001"] == [2, 2_000_000]
    value = reader(registry_of(model, top_products=10))
    units = sum(value("marketing_product_units", "total", product=p) or 0
                for p in [f"p{i:04d}" for i in range(PRODUCT_CAP + 5)] + ["other"])
    assert units == PRODUCT_CAP + 5 + 3


def test_content_types_from_views_engagements_clicks_and_attributed_orders() -> None:
    model = FlowModel(NOW)
    for i in range(4):
        view(model, f"t{i}", MIN, content_type="tutorial")
    for i in range(2):
        view(model, f"u{i}", MIN, content_type="unboxing")
    view(model, "plain", MIN)
    model.publish("engagements", {"event_id": "e1", "ts": NOW, "campaign_id": "a",
                                  "channel": "tiktok", "action": "like",
                                  "content_type": "unboxing"})
    model.publish("clicks", {"event_id": "c1", "ts": NOW - MIN, "campaign_id": "a",
                             "channel": "tiktok", "click_id": "k1",
                             "content_type": "tutorial"})
    model.publish("clicks", {"event_id": "c2", "ts": NOW - MIN, "campaign_id": "a",
                             "channel": "tiktok", "click_id": "k2"})
    for event_id, click, revenue in (("o1", "k1", "30"), ("o2", "k2", "12"), ("o3", None, "5")):
        body: dict[str, Any] = {"event_id": event_id, "ts": NOW, "order_id": event_id,
                                "customer_id": event_id, "revenue": revenue,
                                "currency": "USD"}
        if click:
            body["click_id"] = click
        else:
            body["campaign_id"], body["channel"] = "a", "tiktok"
        model.publish("orders", body)
    model.tick(MIN)
    value = reader(registry_of(model))
    expect = {"tutorial": (4, 0, 1, 1, 30), "unboxing": (2, 1, 0, 0, 0),
              "unknown": (1, 0, 1, 2, 17)}
    names = ("views", "engagements", "clicks", "orders", "revenue")
    for window in ALL:
        for content_type, numbers in expect.items():
            for name, number in zip(names, numbers, strict=True):
                labels = {"currency": "USD"} if name == "revenue" else {}
                assert value(f"marketing_content_{name}", window, content_type=content_type,
                             **labels) == number, (window, content_type, name)
    top_one = reader(registry_of(model, top_content=1))
    assert top_one("marketing_content_views", "5m", content_type="tutorial") == 4
    assert top_one("marketing_content_views", "5m", content_type="other") == 3
    assert top_one("marketing_content_revenue", "5m", content_type="other",
                   currency="USD") == 17


def recovered(model: FlowModel) -> KpiState:
    """The counting stage rebuilt from its table as the changelog would give it back."""
    table = {key: orjson.loads(dumps(value)) for key, value in model.counts.table.items()}
    stage = CountStage(KpiState(1440), table, model.counts.dedup_window_ms)
    stage.rebuild(set(range(model.partitions)), lambda campaign: True, model.now_ms)
    return stage.state


def test_a_restart_from_the_changelog_serves_the_same_figures() -> None:
    model = FlowModel(NOW + 30 * 60 * MIN)
    spread_views(model)
    order(model, "o1", "100", cost="40", items=items(("sku-a", 2, "60")))
    model.publish("clicks", {"event_id": "c1", "ts": model.now_ms, "campaign_id": "a",
                             "channel": "tiktok", "content_type": "live"})
    before = exposition(registry_of(model))
    assert b"marketing_reach" in before and b'product="sku-a"' in before
    assert exposition(registry_of(model, recovered(model))) == before


def test_fold_of_extras_equals_folding_one_event_at_a_time() -> None:
    forwards = Forwards()
    forwards.add("v", "v1", NOW, "tiktok", 0, Extra(user=7, watch_ms=1500, content="live"))
    forwards.add("V", "v2", NOW, "tiktok", 0, Extra(user=8))
    forwards.add("v", "v1", NOW, "tiktok", 0, Extra(user=9, watch_ms=10))  # a repeat
    forwards.add("n", "o1", NOW, "web", 5_000_000,
                 Extra(cost=2_000_000, items=(("p", 2, 5_000_000),), content="live"))
    forwards.add("L", "l1", NOW, "web", 3_000_000, Extra(horizon_days=30))
    seen: set[str] = set()

    def first_time(keys: list[str]) -> list[bool]:
        fresh = []
        for key in keys:  # a repeat inside one batch is not new either
            fresh.append(key not in seen)
            seen.add(key)
        return fresh

    whole = fold("a", forwards, first_time)
    seen.clear()
    parts = [fold("a", part, first_time) for part in forwards.chunks(1)]
    tiktok, web = ("a", "tiktok", NOW // MIN), ("a", "web", NOW // MIN)
    assert whole.extras[tiktok].users == [7, 8]
    assert whole.extras[tiktok].content == {"live": [1, 0, 0, 0, 0]}
    assert whole.extras[web].products == {"p": [2, 5_000_000]}
    assert whole.extras[web].content == {"live": [0, 0, 0, 1, 5_000_000]}
    assert whole.extras[web].ltv == {30: 3_000_000}
    users = [u for part in parts for key, e in part.extras.items() if key == tiktok
             for u in e.users]
    assert users == whole.extras[tiktok].users


@pytest.mark.parametrize("wire", [
    b'["v",["a"],[1],["t"],[0],[[1,2]]]',        # an extra of two fields
    b'["v",["a"],[1],["t"],[0],[]]',             # a column of another length
    b'["v",["a"],[1],["t"],[0],[null],[null]]',  # seven columns
])
def test_malformed_extras_are_refused(wire: bytes) -> None:
    from streams.flow.forwards import MalformedForwards
    with pytest.raises(MalformedForwards):
        Forwards.from_wire(wire)


def test_five_column_messages_of_the_earlier_version_still_count() -> None:
    old = Forwards.from_wire(b'["ve",["a","b"],[1,2],["t","t"],[0,0]]')
    assert old.extras is None and old.kinds == ["v", "e"]
    state = KpiState(1440)
    state.load(("a", "t", 5), [1, 0, 0, 0, 0, 0, 0, 0, 17])  # a bucket of 8 counters
    [row] = [r for r in state.rows(5, (Window("5m", 5),), lambda _: True) if r[2] == "5m"]
    assert row[3][0] == 1 and len(row[3]) == 20 and not any(row[3][1:])


@pytest.mark.parametrize(("estimate", "served"), [(3.4, 3), (3.6, 4), (5.0, 5), (5.49, 5),
                                                  (6.2, 5), (0.0, 0)])
def test_reach_is_a_whole_number_never_above_the_views_with_a_user_id(
    estimate: float, served: int
) -> None:
    assert served_reach(5, estimate) == served
