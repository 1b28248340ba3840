"""KPI formulas of SPEC section 2 and the gauges the collector serves."""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from metrics.kpi_gauges import KpiCollector
from metrics.kpis import (
    amount_column,
    float_column,
    int_matrix,
    kpi_columns,
    kpi_values,
    top_named,
)
from streams.windows.counts import FIELDS
from streams.windows.state import KpiRow

COUNTS = ("views", "completed_views", "engagements", "clicks", "orders", "new_customers")
RATIOS = (
    "marketing_click_through_ratio", "marketing_engagement_ratio", "marketing_completion_ratio",
    "marketing_conversion_ratio", "marketing_roas_ratio", "marketing_roi_ratio",
    "marketing_cac", "marketing_aov", "marketing_repeat_purchase_ratio",
    "marketing_average_watch_seconds", "marketing_poas_ratio",
)
SPEC_METRICS = (
    "marketing_views", "marketing_completed_views", "marketing_engagements", "marketing_clicks",
    "marketing_orders", "marketing_new_customers", "marketing_revenue", "marketing_spend",
    "marketing_watch_seconds", "marketing_gross_profit", "marketing_orders_without_cost",
    *RATIOS,
)
"""The KPIs with only the labels campaign, channel and window (and currency)."""
ACTIONS = ("like", "comment", "share", "save", "follow", "profile_visit")
CONTENT_METRICS = (
    "marketing_content_views", "marketing_content_engagements", "marketing_content_clicks",
    "marketing_content_orders", "marketing_content_revenue",
)
LABELLED_METRICS = (
    "marketing_reach", "marketing_frequency", "marketing_engagement_actions",
    "marketing_product_units", "marketing_product_revenue", *CONTENT_METRICS,
    "marketing_ltv", "marketing_ltv_cac_ratio",
)
"""The KPIs of SPEC 2 with a label beyond those (the collector serves the budget ones not)."""
MONEY = {"marketing_revenue", "marketing_spend", "marketing_cac", "marketing_aov",
         "marketing_gross_profit", "marketing_content_revenue"}


def counters(**values: int) -> list[int]:
    """A bucket from field names: views=..., revenue_micros=..., ..."""
    unknown = set(values) - set(FIELDS)
    assert not unknown, unknown
    return [values.get(name, 0) for name in FIELDS]


# 200 views (50 completed, 160 with a user id, 80 with 1,000 s of watch time in all),
# 30 engagements (12 likes, 6 comments, 5 shares, 3 saves, 3 follows, 1 profile visit),
# 20 clicks, 5 orders (2 from new customers; 3 with a cost: 180.00 of their revenue against
# 110.00 of cost), 250.50 of revenue, 100.00 of spend.
CAMPAIGN = counters(views=200, completed_views=50, engagements=30, clicks=20, orders=5,
                    new_customers=2, revenue_micros=250_500_000, spend_micros=100_000_000,
                    likes=12, comments=6, shares=5, saves=3, follows=3, profile_visits=1,
                    user_views=160, watched_views=80, watch_ms=1_000_000, costed_orders=3,
                    costed_revenue_micros=180_000_000, cost_micros=110_000_000)
# Worked out by hand; every ratio is exact in decimal, so compared with == to the literal.
CAMPAIGN_KPIS = {
    "marketing_views": 200.0,
    "marketing_completed_views": 50.0,
    "marketing_engagements": 30.0,
    "marketing_clicks": 20.0,
    "marketing_orders": 5.0,
    "marketing_new_customers": 2.0,
    "marketing_revenue": 250.5,
    "marketing_spend": 100.0,
    "marketing_click_through_ratio": 0.1,  # 20 / 200
    "marketing_engagement_ratio": 0.15,  # 30 / 200
    "marketing_completion_ratio": 0.25,  # 50 / 200
    "marketing_conversion_ratio": 0.25,  # 5 / 20
    "marketing_roas_ratio": 2.505,  # 250.50 / 100
    "marketing_roi_ratio": 1.505,  # (250.50 - 100) / 100
    "marketing_cac": 50.0,  # 100 / 2
    "marketing_aov": 50.1,  # 250.50 / 5
    "marketing_repeat_purchase_ratio": 0.6,  # (5 - 2) / 5
    "marketing_watch_seconds": 1000.0,  # 1,000,000 ms
    "marketing_average_watch_seconds": 12.5,  # 1,000 s / 80 views with watch time
    "marketing_gross_profit": 70.0,  # 180 - 110; the 2 orders without a cost add nothing
    "marketing_orders_without_cost": 2.0,  # 5 - 3
    "marketing_poas_ratio": 0.7,  # 70 / 100
}


def test_every_spec_kpi_on_hand_computed_numbers() -> None:
    assert kpi_values(CAMPAIGN) == CAMPAIGN_KPIS


def test_default_gross_margin_counts_for_the_orders_without_cost() -> None:
    # 70 + (250.50 - 180.00) x 1/4 = 70 + 17.625 = 87.625, over 100 of spend
    assert kpi_values(CAMPAIGN, Fraction(1, 4)) == {
        **CAMPAIGN_KPIS, "marketing_gross_profit": 87.625, "marketing_poas_ratio": 0.87625}


def test_losing_campaign_has_negative_roi_and_roas_below_one() -> None:
    kpis = kpi_values(counters(revenue_micros=40_000_000, spend_micros=160_000_000, orders=4,
                               new_customers=4))
    assert kpis["marketing_roas_ratio"] == 0.25  # 40 / 160
    assert kpis["marketing_roi_ratio"] == -0.75  # (40 - 160) / 160
    assert kpis["marketing_cac"] == 40.0  # 160 / 4
    assert kpis["marketing_aov"] == 10.0  # 40 / 4
    assert kpis["marketing_repeat_purchase_ratio"] == 0.0  # every customer new


def test_money_keeps_millionths() -> None:
    kpis = kpi_values(counters(revenue_micros=22_050_000, spend_micros=1, orders=3))
    assert kpis["marketing_revenue"] == 22.05
    assert kpis["marketing_spend"] == 0.000001
    assert kpis["marketing_aov"] == 7.35  # 22.05 / 3


WATCHED = {"watched_views": 4, "watch_ms": 10_000}
ZERO_DENOMINATORS = [
    # no views: the three view ratios and the average watch time are absent, the others not
    pytest.param(counters(clicks=3, engagements=2, orders=1, new_customers=1,
                          revenue_micros=5, spend_micros=7),
                 {"marketing_click_through_ratio", "marketing_engagement_ratio",
                  "marketing_completion_ratio", "marketing_average_watch_seconds"},
                 id="no-views"),
    # views, but none with watch time: only the average watch time absent
    pytest.param(counters(views=10, completed_views=3, engagements=2, clicks=2, orders=1,
                          new_customers=1, revenue_micros=5, spend_micros=7),
                 {"marketing_average_watch_seconds"}, id="no-watch-time"),
    # no clicks: conversion absent
    pytest.param(counters(views=10, orders=2, new_customers=1, revenue_micros=5,
                          spend_micros=7, **WATCHED),
                 {"marketing_conversion_ratio"}, id="no-clicks"),
    # no spend: ROAS, ROI and POAS absent (CAC is 0 spend / new customers = 0, present)
    pytest.param(counters(views=10, clicks=2, orders=2, new_customers=1, revenue_micros=5,
                          costed_orders=1, costed_revenue_micros=5, cost_micros=2, **WATCHED),
                 {"marketing_roas_ratio", "marketing_roi_ratio", "marketing_poas_ratio"},
                 id="no-spend"),
    # no new customers: CAC absent
    pytest.param(counters(views=10, clicks=2, orders=2, revenue_micros=5, spend_micros=7,
                          **WATCHED),
                 {"marketing_cac"}, id="no-new-customers"),
    # no orders: AOV, repeat purchase (and CAC: no new customers either) absent; POAS is
    # 0 gross profit / spend = 0, present
    pytest.param(counters(views=10, clicks=2, spend_micros=7, **WATCHED),
                 {"marketing_aov", "marketing_repeat_purchase_ratio", "marketing_cac"},
                 id="no-orders"),
    # nothing at all: every ratio absent
    pytest.param(counters(), set(RATIOS), id="nothing"),
]


@pytest.mark.parametrize(("counts", "absent"), ZERO_DENOMINATORS)
def test_ratio_with_zero_denominator_is_absent(counts: list[int], absent: set[str]) -> None:
    kpis = kpi_values(counts)
    assert set(kpis) == set(SPEC_METRICS)
    assert {name for name, value in kpis.items() if value is None} == absent
    for name, value in kpis.items():
        if value is not None:
            assert value == value and abs(value) != float("inf"), name  # never NaN or inf


def test_counts_and_money_are_present_even_when_zero() -> None:
    kpis = kpi_values(counters())
    for name in (*(f"marketing_{c}" for c in COUNTS), "marketing_revenue", "marketing_spend",
                 "marketing_watch_seconds", "marketing_gross_profit",
                 "marketing_orders_without_cost"):
        assert kpis[name] == 0.0


# ---------------------------------------------------------------------------------------
# The collector: one gauge family per KPI, labels campaign/channel/window (+ currency).
# ---------------------------------------------------------------------------------------
def registry_with(rows: Any, currency: str = "USD") -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(KpiCollector(rows, currency))
    return registry


def labels(campaign: str, channel: str, window: str, name: str,
           currency: str = "USD", **extra: str) -> dict[str, str]:
    plain = {"campaign": campaign, "channel": channel, "window": window, **extra}
    return {**plain, "currency": currency} if name in MONEY else plain


def scrape(registry: CollectorRegistry) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of the text exposition: (name, labels) -> value."""
    text = generate_latest(registry).decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


# CAMPAIGN's series with an extra label, by hand: each engagement action, and (no content
# type known: a bare counters row) everything as content_type="unknown". No reach (no
# viewer sketch), products or LTV in a bare counters row.
CAMPAIGN_LABELLED = {
    **{("marketing_engagement_actions", ("action", action)): value
       for action, value in zip(ACTIONS, (12.0, 6.0, 5.0, 3.0, 3.0, 1.0), strict=True)},
    ("marketing_content_views", ("content_type", "unknown")): 200.0,
    ("marketing_content_engagements", ("content_type", "unknown")): 30.0,
    ("marketing_content_clicks", ("content_type", "unknown")): 20.0,
    ("marketing_content_orders", ("content_type", "unknown")): 5.0,
    ("marketing_content_revenue", ("content_type", "unknown")): 250.5,
}


def test_collector_serves_every_kpi_with_exact_values_and_labels() -> None:
    rows: list[KpiRow] = [("summer-sale", "tiktok", "1h", CAMPAIGN)]
    registry = registry_with(lambda: rows, "EUR")
    for name, value in CAMPAIGN_KPIS.items():
        assert registry.get_sample_value(
            name, labels("summer-sale", "tiktok", "1h", name, "EUR")) == value, name
    for (name, (label, label_value)), value in CAMPAIGN_LABELLED.items():
        assert registry.get_sample_value(name, labels(
            "summer-sale", "tiktok", "1h", name, "EUR", **{label: label_value})) == value, name
    # the same through the text format, with exactly the SPEC's labels
    samples = scrape(registry)
    assert samples == {
        **{(name, frozenset(labels("summer-sale", "tiktok", "1h", name, "EUR").items())): value
           for name, value in CAMPAIGN_KPIS.items()},
        **{(name, frozenset(labels("summer-sale", "tiktok", "1h", name, "EUR",
                                   **{label: label_value}).items())): value
           for (name, (label, label_value)), value in CAMPAIGN_LABELLED.items()},
    }


def test_money_gauges_need_the_currency_label() -> None:
    registry = registry_with(lambda: [("a", "web", "total", CAMPAIGN)])
    plain = {"campaign": "a", "channel": "web", "window": "total"}
    assert registry.get_sample_value("marketing_revenue", plain) is None
    assert registry.get_sample_value("marketing_revenue", {**plain, "currency": "USD"}) == 250.5
    assert registry.get_sample_value("marketing_views", {**plain, "currency": "USD"}) is None


def test_every_metric_is_a_gauge() -> None:
    text = generate_latest(registry_with(lambda: [("a", "web", "5m", CAMPAIGN)])).decode()
    types = {f.name: f.type for f in text_string_to_metric_families(text)}
    assert types == dict.fromkeys((*SPEC_METRICS, *LABELLED_METRICS), "gauge")


def test_absent_ratio_series_are_really_absent() -> None:
    no_views = counters(clicks=4, orders=1, new_customers=1, revenue_micros=9_990_000)
    rows: list[KpiRow] = [("a", "web", "5m", no_views), ("b", "web", "5m", CAMPAIGN)]
    registry = registry_with(lambda: rows)
    text = generate_latest(registry).decode()
    assert "NaN" not in text and "Inf" not in text
    samples = scrape(registry)
    # of the labelled KPIs, a bare counters row has its engagement actions and content
    served_labelled = {"marketing_engagement_actions", *CONTENT_METRICS}
    names_a = {name for name, lbls in samples if ("campaign", "a") in lbls}
    assert names_a == set(SPEC_METRICS) - {
        "marketing_click_through_ratio", "marketing_engagement_ratio",
        "marketing_completion_ratio", "marketing_roas_ratio", "marketing_roi_ratio",
        "marketing_average_watch_seconds", "marketing_poas_ratio",
    } | served_labelled
    # the other campaign still has them
    names_b = {name for name, lbls in samples if ("campaign", "b") in lbls}
    assert names_b == set(SPEC_METRICS) | served_labelled
    assert registry.get_sample_value(
        "marketing_click_through_ratio", labels("a", "web", "5m", "x")) is None
    assert registry.get_sample_value("marketing_views", labels("a", "web", "5m", "x")) == 0.0


def test_each_window_and_channel_is_its_own_series() -> None:
    rows: list[KpiRow] = [
        ("a", "tiktok", "5m", counters(views=1)),
        ("a", "tiktok", "total", counters(views=7)),
        ("a", "youtube", "5m", counters(views=2)),
    ]
    registry = registry_with(lambda: rows)
    got = {
        (dict(lbls)["channel"], dict(lbls)["window"]): value
        for (name, lbls), value in scrape(registry).items() if name == "marketing_views"
    }
    assert got == {("tiktok", "5m"): 1.0, ("tiktok", "total"): 7.0, ("youtube", "5m"): 2.0}


def test_rows_are_read_at_scrape_time() -> None:
    rows: list[KpiRow] = [("a", "web", "total", counters(views=1))]
    registry = registry_with(lambda: list(rows))
    assert registry.get_sample_value("marketing_views", labels("a", "web", "total", "x")) == 1.0
    # the campaign moved to another worker, another one arrived
    rows[:] = [("b", "web", "total", counters(views=3))]
    assert registry.get_sample_value("marketing_views", labels("a", "web", "total", "x")) is None
    assert registry.get_sample_value("marketing_views", labels("b", "web", "total", "x")) == 3.0


def test_no_rows_no_series() -> None:
    assert scrape(registry_with(lambda: [])) == {}


def _top_named_by_key(named: dict[str, list[int]], top: int,
                      rank_by: int) -> list[tuple[str, list[int]]]:
    """top_named as it was written first: a sort key per name."""
    ranked = sorted((n for n in named if n not in ("", "other")),
                    key=lambda n: (-named[n][rank_by], n))
    shown = [(n, list(named[n])) for n in ranked[:top]]
    rest = [named[n] for n in ranked[top:]] + [named[n] for n in ("", "other") if n in named]
    if rest:
        shown.append(("other", [sum(c) for c in zip(*rest, strict=True)]))
    return shown


@settings(max_examples=200, deadline=None)
@given(named=st.dictionaries(st.sampled_from(["", "other", "a", "b", "B", "ab", "z", "é"])
                             | st.text(max_size=3),
                             st.lists(st.integers(-3, 5), min_size=2, max_size=2),
                             max_size=9),
       top=st.integers(0, 6), rank_by=st.integers(0, 1))
def test_top_named_ranks_by_count_then_name_and_folds_the_rest(
        named: dict[str, list[int]], top: int, rank_by: int) -> None:
    shown = top_named(named, top, rank_by)
    assert shown == _top_named_by_key(named, top, rank_by)
    assert [sum(c) for c in zip(*(v for _, v in shown), strict=True)] == (
        [sum(c) for c in zip(*named.values(), strict=True)] if named else [])


_RATIOS_OF_COUNTERS = {  # metric -> numerator, denominator, from the counters by name
    "marketing_click_through_ratio": (lambda c: c["clicks"], lambda c: c["views"]),
    "marketing_engagement_ratio": (lambda c: c["engagements"], lambda c: c["views"]),
    "marketing_conversion_ratio": (lambda c: c["orders"], lambda c: c["clicks"]),
    "marketing_roas_ratio": (lambda c: c["revenue_micros"], lambda c: c["spend_micros"]),
    "marketing_roi_ratio": (lambda c: c["revenue_micros"] - c["spend_micros"],
                            lambda c: c["spend_micros"]),
    "marketing_cac": (lambda c: c["spend_micros"], lambda c: c["new_customers"] * 10**6),
    "marketing_aov": (lambda c: c["revenue_micros"], lambda c: c["orders"] * 10**6),
    "marketing_repeat_purchase_ratio": (lambda c: c["orders"] - c["new_customers"],
                                        lambda c: c["orders"]),
    "marketing_average_watch_seconds": (lambda c: c["watch_ms"],
                                        lambda c: c["watched_views"] * 1000),
    "marketing_revenue": (lambda c: c["revenue_micros"], lambda c: 10**6),
    "marketing_gross_profit": (lambda c: c["costed_revenue_micros"] - c["cost_micros"],
                               lambda c: 10**6),
    "marketing_poas_ratio": (lambda c: c["costed_revenue_micros"] - c["cost_micros"],
                             lambda c: c["spend_micros"]),
}
_COUNTER = (st.integers(0, 12) | st.integers(0, 2**53 + 10) | st.integers(2**53 - 5, 2**53 + 5)
            | st.integers(0, 2**70) | st.integers(-(2**62), 2**62))


@settings(max_examples=200, deadline=None)
@given(rows=st.lists(st.lists(_COUNTER, min_size=len(FIELDS), max_size=len(FIELDS)),
                     max_size=6))
def test_every_ratio_is_the_correctly_rounded_quotient_or_absent(rows: list[list[int]]) -> None:
    """Many rows at once (numpy, or Python's ints where a counter is too large for floats
    to be exact) give each row's exact quotient rounded once, as ``int / int`` does, and
    absent over zero: small counts, counts around 2**53 and past 2**64 mixed in a scrape."""
    columns = kpi_columns(rows)
    for i, row in enumerate(rows):
        named = dict(zip(FIELDS, row, strict=True))
        for metric, (numerator, denominator) in _RATIOS_OF_COUNTERS.items():
            n, d = numerator(named), denominator(named)
            value = float(columns[metric][i])
            if d == 0:
                assert math.isnan(value), metric
            else:
                assert value == n / d, (metric, n, d)
        assert float(columns["marketing_views"][i]) == float(named["views"])


@settings(max_examples=150, deadline=None)
@given(rows=st.lists(st.lists(st.integers(-(2**60), 2**60) | st.integers(-(10**25), 10**25)
                              | st.sampled_from([0, 2**53 + 1, 2**63 - 1, 2**63]),
                              min_size=2, max_size=2), max_size=6))
def test_named_counters_as_columns_are_pythons_own_division_and_floats(
        rows: list[list[int]]) -> None:
    """A scrape's products and content types, all rows in one column: each amount is
    ``int / 10**6`` and each count ``float(int)``, in and past 64 bits."""
    matrix = int_matrix(rows, 2)
    assert matrix.shape == (len(rows), 2)
    assert float_column(matrix[:, 0]).tolist() == [float(units) for units, _ in rows]
    assert amount_column(matrix[:, 1]).tolist() == [micros / 10**6 for _, micros in rows]
