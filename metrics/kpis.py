"""KPI formulas over summed counters: pure, exact until the final division.

A ratio whose denominator is zero is None (absent at /metrics), never 0 or NaN.
"""

from __future__ import annotations

from collections.abc import Sequence

from streams.windows.counts import (
    CLICKS,
    COMPLETED,
    ENGAGEMENTS,
    NEW_CUSTOMERS,
    ORDERS,
    REVENUE,
    SPEND,
    VIEWS,
)

__all__ = ["MICROS", "kpi_values"]

MICROS = 1_000_000


def _ratio(numerator: int, denominator: int) -> float | None:
    # int / int is correctly rounded in CPython, even for very large integers.
    return numerator / denominator if denominator else None


def kpi_values(counts: Sequence[int]) -> dict[str, float | None]:
    """Every KPI of SPEC section 2 from one window's counters, keyed by metric name."""
    views, completed, engagements = counts[VIEWS], counts[COMPLETED], counts[ENGAGEMENTS]
    clicks, orders, new = counts[CLICKS], counts[ORDERS], counts[NEW_CUSTOMERS]
    revenue, spend = counts[REVENUE], counts[SPEND]
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
    }
