"""End to end on the real broker: every new field in, every seed-KPI series exact at /metrics.

The data set, worked by hand (campaign ``seed``, channel ``tiktok``, all inside the last
minute so every window holds all of it; 1 EUR = 1.08 USD; ``default_gross_margin`` 0.25):

- 30 views: 24 carry one of 12 user ids (reach 12, frequency 2); views 0-19 carry watch
  times 0, 1, ..., 19 s (190 s over 20 views: 9.5 s each); 10 are tutorials, 10 unboxings,
  10 have no content type.
- 7 engagements: 3 likes (2 of them on tutorials), 2 follows, 1 profile visit, 1 share.
- 4 clicks: k0 and k1 on tutorials, k2 on a live stream, k3 without a type.
- 3 orders: o1 through k0, 100 EUR (108 USD) with a cost of 40 EUR (43.20 USD) and lines
  sku-a 2 x 60 EUR, sku-b 1 x 40 EUR; o2 through k2, 50 USD, no cost, sku-a 1 x 50 USD;
  o3 named by campaign, 30 USD costing 10 USD, by o1's customer.
- 100 USD of spend.

Gross profit 108 - 43.20 + 30 - 10 + 50 x 0.25 = 97.30; POAS 0.973. New customers 2 (o1's
and o2's), whose orders bring 108 + 30 + 50 = 188 within every horizon: LTV 94, CAC 50,
LTV:CAC 1.88.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.integration.harness import Deployment, Samples, value, wait_until

MIN = 60_000
SETTINGS = """
[fx]
EUR = 1.08

[kpi]
default_gross_margin = 0.25
"""
WINDOWS = ("5m", "1h", "24h", "total")
CELL = {"campaign": "seed", "channel": "tiktok"}
VALID = 30 + 7 + 4 + 3 + 1


def _dataset(now: int) -> list[tuple[str, Any, bytes | None]]:
    def ev(event_id: str, ts: int = now, **fields: Any) -> dict[str, Any]:
        return {"event_id": event_id, "ts": ts, "campaign_id": "seed", "channel": "tiktok",
                **fields}

    msgs: list[tuple[str, Any, bytes | None]] = []
    for i in range(30):
        view = ev(f"v{i}", completed=i % 3 == 0)
        if i < 24:
            view["user_id"] = f"viewer-{i % 12}"
        if i < 20:
            view["watch_ms"] = i * 1000
        if i % 3 < 2:
            view["content_type"] = ("tutorial", "unboxing")[i % 3]
        msgs.append(("views", view, b"seed"))
    actions = ["like", "like", "like", "follow", "follow", "profile_visit", "share"]
    for i, action in enumerate(actions):
        engagement = ev(f"e{i}", action=action)
        if i < 2:
            engagement["content_type"] = "tutorial"
        msgs.append(("engagements", engagement, None))
    for i, content_type in enumerate(["tutorial", "tutorial", "live", None]):
        click = ev(f"c{i}", ts=now - 5_000, click_id=f"k{i}")
        if content_type is not None:
            click["content_type"] = content_type
        msgs.append(("clicks", click, None))
    msgs.append(("orders", {
        "event_id": "o1", "ts": now - 2_000, "order_id": "A1", "customer_id": "alice",
        "revenue": "100", "currency": "EUR", "cost": "40", "click_id": "k0",
        "items": [{"product_id": "sku-a", "quantity": 2, "revenue": "60"},
                  {"product_id": "sku-b", "quantity": 1, "revenue": "40"}]}, b"alice"))
    msgs.append(("orders", {
        "event_id": "o2", "ts": now - 1_000, "order_id": "A2", "customer_id": "bob",
        "revenue": 50, "currency": "USD", "click_id": "k2",
        "items": [{"product_id": "sku-a", "quantity": 1, "revenue": 50}]}, None))
    msgs.append(("orders", {
        "event_id": "o3", "ts": now, "order_id": "A3", "customer_id": "alice",
        "campaign_id": "seed", "channel": "tiktok", "revenue": "30", "currency": "USD",
        "cost": 10}, None))
    msgs.append(("spend", ev("s1", amount="100", currency="USD"), None))
    return msgs


def _orders_counted(samples: Samples) -> bool:
    return all(value(samples, "marketing_orders", **CELL, window=w) == 3 for w in WINDOWS) and \
        value(samples, "marketing_ltv", **CELL, window="total", currency="USD",
              horizon="30d") is not None


@pytest.fixture(scope="module")
def samples(deploy_module: Callable[..., Deployment]) -> Samples:
    deployment = deploy_module(extra_toml=SETTINGS)
    worker = deployment.start_worker()
    now = int(time.time() * 1000)
    if now % MIN > 50_000 or now % MIN < 6_000:  # keep the data set inside one minute
        time.sleep((MIN - now % MIN) / 1000 + 6.1)
        now = int(time.time() * 1000)
    deployment.publish(_dataset(now))
    wait_until(lambda: _orders_counted(worker.samples()), 60, "the three orders and their LTV")
    return worker.samples()


def _series(samples: Samples, name: str, label: str) -> dict[str, dict[str, float]]:
    """window -> label value -> sample, for one metric of the seed cell."""
    out: dict[str, dict[str, float]] = {}
    for (metric, labels), v in samples.items():
        got = dict(labels)
        if metric == name and got.get("campaign") == "seed" and got.get("channel") == "tiktok":
            out.setdefault(got["window"], {})[got[label]] = v
    return out


def test_reach_frequency_and_watch_time(samples: Samples) -> None:
    for window in WINDOWS:
        cell = {**CELL, "window": window}
        assert value(samples, "marketing_reach", **cell) == 12, window
        assert value(samples, "marketing_frequency", **cell) == 2, window
        assert value(samples, "marketing_watch_seconds", **cell) == 190, window
        assert value(samples, "marketing_average_watch_seconds", **cell) == 9.5, window


def test_engagement_actions(samples: Samples) -> None:
    expected = {"like": 3, "comment": 0, "share": 1, "save": 0, "follow": 2,
                "profile_visit": 1}
    assert _series(samples, "marketing_engagement_actions", "action") == {
        w: expected for w in WINDOWS}


def test_gross_profit_poas_and_orders_without_cost(samples: Samples) -> None:
    for window in WINDOWS:
        cell = {**CELL, "window": window}
        assert value(samples, "marketing_gross_profit", **cell, currency="USD") == \
            pytest.approx(97.3, rel=1e-12), window
        assert value(samples, "marketing_poas_ratio", **cell) == pytest.approx(0.973,
                                                                               rel=1e-12)
        assert value(samples, "marketing_orders_without_cost", **cell) == 1


def test_lifetime_value_per_horizon_in_the_total_window_only(samples: Samples) -> None:
    assert _series(samples, "marketing_ltv", "horizon") == {
        "total": {"30d": pytest.approx(94), "90d": pytest.approx(94), "365d": pytest.approx(94)}}
    assert _series(samples, "marketing_ltv_cac_ratio", "horizon") == {
        "total": {h: pytest.approx(1.88, rel=1e-12) for h in ("30d", "90d", "365d")}}


def test_products_from_the_order_lines(samples: Samples) -> None:
    # sku-a: 2 x (60 EUR = 64.80 USD) + 1 x 50 USD; sku-b: 40 EUR = 43.20 USD
    units = {"sku-a": 3, "sku-b": 1}
    revenue = {"sku-a": pytest.approx(114.8, rel=1e-12), "sku-b": pytest.approx(43.2, rel=1e-12)}
    assert _series(samples, "marketing_product_units", "product") == {w: units for w in WINDOWS}
    assert _series(samples, "marketing_product_revenue", "product") == {
        w: revenue for w in WINDOWS}


def test_content_types_with_orders_through_their_clicks(samples: Samples) -> None:
    expected = {
        "marketing_content_views": {"tutorial": 10, "unboxing": 10, "unknown": 10},
        "marketing_content_engagements": {"tutorial": 2, "unboxing": 0, "unknown": 5},
        "marketing_content_clicks": {"tutorial": 2, "live": 1, "unboxing": 0, "unknown": 1},
        "marketing_content_orders": {"tutorial": 1, "live": 1, "unboxing": 0, "unknown": 1},
        "marketing_content_revenue": {"tutorial": pytest.approx(108), "live": 50,
                                      "unboxing": 0, "unknown": 30},
    }
    for name, by_type in expected.items():
        got = _series(samples, name, "content_type")
        assert got.keys() == set(WINDOWS), name
        for window in WINDOWS:
            assert {k: v for k, v in got[window].items() if v or k in by_type} == by_type, (
                name, window)


def test_no_user_or_customer_id_reaches_a_label(samples: Samples) -> None:
    labels = {v for _, pairs in samples for _, v in pairs}
    assert not {"viewer-0", "alice", "bob"} & labels
