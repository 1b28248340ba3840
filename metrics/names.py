"""Metric names, help texts and labels: the contract of SPEC section 2 in one place."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

__all__ = ["KPI_HELP", "KPI_LABELS", "MONEY_METRICS", "OUTCOMES", "RATIOS", "TYPE_LABELS"]

KPI_LABELS: Final = ("campaign", "channel", "window")
MONEY_METRICS: Final = frozenset(
    {"marketing_revenue", "marketing_spend", "marketing_cac", "marketing_aov"}
)
OUTCOMES: Final = ("accepted", "duplicate", "invalid")
TYPE_LABELS: Final = ("view", "engagement", "click", "order", "spend", "unknown")

KPI_HELP: Final = {
    "marketing_views": "Views (impressions and video views).",
    "marketing_completed_views": "Views watched to the end.",
    "marketing_engagements": "Engagements: likes, comments, shares, saves, follows, visits.",
    "marketing_clicks": "Clicks on the ad's link.",
    "marketing_orders": "Orders attributed to the campaign.",
    "marketing_new_customers": "Orders from first-time customers.",
    "marketing_revenue": "Order revenue in the reporting currency.",
    "marketing_spend": "Spend in the reporting currency.",
    "marketing_click_through_ratio": "Clicks / views.",
    "marketing_engagement_ratio": "Engagements / views.",
    "marketing_completion_ratio": "Completed views / views.",
    "marketing_conversion_ratio": "Orders / clicks.",
    "marketing_roas_ratio": "Revenue / spend.",
    "marketing_roi_ratio": "(Revenue - spend) / spend.",
    "marketing_cac": "Customer acquisition cost: spend / new customers.",
    "marketing_aov": "Average order value: revenue / orders.",
    "marketing_repeat_purchase_ratio": "(Orders - new customers) / orders.",
}

RATIOS: Final[Mapping[str, tuple[tuple[str, ...], str]]] = {
    "click_through_ratio": (("clicks",), "views"),
    "engagement_ratio": (("engagements",), "views"),
    "completion_ratio": (("completed_views",), "views"),
    "conversion_ratio": (("orders",), "clicks"),
    "roas_ratio": (("revenue",), "spend"),
    "roi_ratio": (("revenue", "spend"), "spend"),
    "cac": (("spend",), "new_customers"),
    "aov": (("revenue",), "orders"),
    "repeat_purchase_ratio": (("orders", "new_customers"), "orders"),
}
"""Ratio KPI (without ``marketing_``) -> (numerator: first minus the rest, denominator),
for re-deriving ratios from sums across workers and channels (rules, dashboards)."""
