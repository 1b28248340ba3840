"""Metric names, help texts and labels: the contract of SPEC section 2 in one place."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

__all__ = ["KPI_HELP", "KPI_LABELS", "LABELLED_HELP", "MONEY_METRICS", "OUTCOMES", "RATIOS",
           "TYPE_LABELS"]

KPI_LABELS: Final = ("campaign", "channel", "window")
MONEY_METRICS: Final = frozenset(
    {"marketing_revenue", "marketing_spend", "marketing_cac", "marketing_aov",
     "marketing_gross_profit", "marketing_ltv", "marketing_product_revenue",
     "marketing_content_revenue"}
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
    "marketing_watch_seconds": "Watch time of the views that carry watch_ms, in seconds.",
    "marketing_average_watch_seconds": "Watch seconds / views that carry watch_ms.",
    "marketing_gross_profit": "Revenue - cost over orders (default_gross_margin where no cost).",
    "marketing_orders_without_cost": "Orders that carry no cost.",
    "marketing_poas_ratio": "Profit on ad spend: gross profit / spend.",
}

LABELLED_HELP: Final = {
    "marketing_reach": ("Unique viewers (distinct user_id among views), estimated.", ()),
    "marketing_frequency": ("Views that carry a user_id / reach.", ()),
    "marketing_engagement_actions": ("Engagements by action (follow: follower growth).",
                                     ("action",)),
    "marketing_product_units": ("Units sold per product (top products, then other).",
                                ("product",)),
    "marketing_product_revenue": ("Revenue per product (top products, then other).",
                                  ("product",)),
    "marketing_content_views": ("Views per content type (top by views, then other).",
                                ("content_type",)),
    "marketing_content_engagements": ("Engagements per content type.", ("content_type",)),
    "marketing_content_clicks": ("Clicks per content type.", ("content_type",)),
    "marketing_content_orders": ("Orders per content type of the click that attributed them.",
                                 ("content_type",)),
    "marketing_content_revenue": ("Revenue per content type of the attributing click.",
                                  ("content_type",)),
    "marketing_ltv": ("Lifetime value: revenue within the horizon of the customers acquired / "
                      "those customers (window total only).", ("horizon",)),
    "marketing_ltv_cac_ratio": ("Lifetime value / customer acquisition cost (window total "
                                "only).", ("horizon",)),
}
"""KPIs with labels beyond campaign, channel and window: help text, extra label names."""

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
    "poas_ratio": (("gross_profit",), "spend"),
}
"""Ratio KPI (without ``marketing_``) -> (numerator: first minus the rest, denominator),
for re-deriving ratios from sums across workers and channels (rules, dashboards)."""
