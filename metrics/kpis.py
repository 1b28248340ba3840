"""KPI formulas over summed counters: pure, exact until the final division.

A ratio whose denominator is zero is None (absent at /metrics), never 0 or NaN.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from fractions import Fraction

from streams.windows.counts import (
    CLICKS,
    COMPLETED,
    COST,
    COSTED_ORDERS,
    COSTED_REVENUE,
    ENGAGEMENTS,
    NEW_CUSTOMERS,
    ORDERS,
    REVENUE,
    SPEND,
    USER_VIEWS,
    VIEWS,
    WATCH_MS,
    WATCHED_VIEWS,
)
from streams.windows.extras import (
    C_CLICKS,
    C_ENGAGEMENTS,
    C_ORDERS,
    C_REVENUE,
    C_VIEWS,
    OTHER,
    PRODUCT_REVENUE,
    Named,
)

__all__ = [
    "MICROS",
    "content_counts",
    "frequency",
    "gross_profit_fraction",
    "kpi_values",
    "ltv_values",
    "served_reach",
    "top_named",
]

MICROS = 1_000_000


def _ratio(numerator: int, denominator: int) -> float | None:
    # int / int is correctly rounded in CPython, even for very large integers.
    return numerator / denominator if denominator else None


def gross_profit_fraction(counts: Sequence[int], margin: Fraction | None) -> Fraction:
    """Gross profit in millionths, exact: revenue - cost over orders with a cost, plus
    revenue x ``margin`` over those without (nothing without a margin)."""
    costed = counts[COSTED_REVENUE] - counts[COST]
    if margin is None:
        return Fraction(costed)
    return costed + (counts[REVENUE] - counts[COSTED_REVENUE]) * margin


def kpi_values(counts: Sequence[int],
               margin: Fraction | None = None) -> dict[str, float | None]:
    """Every KPI of SPEC section 2 with only the labels campaign, channel and window (and
    currency), from one window's counters, keyed by metric name. ``margin``: ``[kpi]
    default_gross_margin``."""
    views, completed, engagements = counts[VIEWS], counts[COMPLETED], counts[ENGAGEMENTS]
    clicks, orders, new = counts[CLICKS], counts[ORDERS], counts[NEW_CUSTOMERS]
    revenue, spend = counts[REVENUE], counts[SPEND]
    watched, watch_ms = counts[WATCHED_VIEWS], counts[WATCH_MS]
    profit = gross_profit_fraction(counts, margin)
    return {
        "marketing_views": float(views),
        "marketing_completed_views": float(completed),
        "marketing_engagements": float(engagements),
        "marketing_clicks": float(clicks),
        "marketing_orders": float(orders),
        "marketing_new_customers": float(new),
        "marketing_revenue": revenue / MICROS,
        "marketing_spend": spend / MICROS,
        "marketing_click_through_ratio": _ratio(clicks, views),
        "marketing_engagement_ratio": _ratio(engagements, views),
        "marketing_completion_ratio": _ratio(completed, views),
        "marketing_conversion_ratio": _ratio(orders, clicks),
        "marketing_roas_ratio": _ratio(revenue, spend),
        "marketing_roi_ratio": _ratio(revenue - spend, spend),
        "marketing_cac": _ratio(spend, new * MICROS),
        "marketing_aov": _ratio(revenue, orders * MICROS),
        "marketing_repeat_purchase_ratio": _ratio(orders - new, orders),
        "marketing_watch_seconds": watch_ms / 1000,
        "marketing_average_watch_seconds": _ratio(watch_ms, watched * 1000),
        "marketing_gross_profit": _ratio(profit.numerator, profit.denominator * MICROS),
        "marketing_orders_without_cost": float(orders - counts[COSTED_ORDERS]),
        "marketing_poas_ratio": _ratio(profit.numerator, profit.denominator * spend),
    }


def served_reach(counts: Sequence[int], estimate: float) -> float:
    """The sketch's estimate as a number of people: rounded, and never more than the views
    that carry a user id (an estimate a little above them is its error, and the truth
    cannot be)."""
    return float(min(round(estimate), counts[USER_VIEWS]))


def frequency(counts: Sequence[int], reach: float) -> float | None:
    """Views that carry a user id per distinct viewer (None: no viewer)."""
    return counts[USER_VIEWS] / reach if reach > 0 else None


def top_named(named: Named, top: int, rank_by: int) -> list[tuple[str, list[int]]]:
    """The ``top`` names with the most of counter ``rank_by`` (ties: by name), then
    ``other``: every other name summed, those folded past the cap included, so the sum
    over the list is the sum over ``named``. A name spelled ``other`` is in ``other``."""
    ranked = sorted((name for name in named if name not in (OTHER, "other")),
                    key=lambda name: (-named[name][rank_by], name))
    shown = [(name, list(named[name])) for name in ranked[:top]]
    rest = [named[name] for name in ranked[top:]]
    rest += [named[name] for name in (OTHER, "other") if name in named]
    if rest:
        shown.append(("other", [sum(column) for column in zip(*rest, strict=True)]))
    return shown


def content_counts(counts: Sequence[int], content: Named) -> Named:
    """Per content type, its views, engagements, clicks, orders and revenue, with
    ``unknown``: what no known content type accounts for (SPEC: absent content type)."""
    known = [0] * 5
    for row in content.values():
        for i, value in enumerate(row):
            known[i] += value
    unknown = [counts[VIEWS] - known[C_VIEWS], counts[ENGAGEMENTS] - known[C_ENGAGEMENTS],
               counts[CLICKS] - known[C_CLICKS], counts[ORDERS] - known[C_ORDERS],
               counts[REVENUE] - known[C_REVENUE]]
    out = {name: list(row) for name, row in content.items() if name != "unknown"}
    held = content.get("unknown")
    if held is not None:
        unknown = [a + b for a, b in zip(unknown, held, strict=True)]
    if any(unknown):
        out["unknown"] = unknown
    return out


def ltv_values(ltv: Mapping[int, int], horizons: Sequence[tuple[str, int]],
               counts: Sequence[int]) -> list[tuple[str, float, float | None]]:
    """(horizon label, lifetime value, LTV:CAC) for each horizon, from the credited revenue
    per horizon in days and the campaign-channel's total counters (no new customer: none).

    LTV:CAC = (credited / new customers) / (spend / new customers) = credited / spend.
    """
    new, spend = counts[NEW_CUSTOMERS], counts[SPEND]
    if new <= 0:
        return []
    return [(label, ltv.get(days, 0) / (new * MICROS), _ratio(ltv.get(days, 0), spend))
            for label, days in horizons]


PRODUCT_RANK = PRODUCT_REVENUE
CONTENT_RANK = C_VIEWS
