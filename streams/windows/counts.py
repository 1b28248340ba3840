"""The counters of a bucket: their names and order."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

__all__ = ["ACTION_FIELDS", "FIELDS", "LEGACY_WIDTH", "WIDTH", "add_into", "take_from", "widened",
           "zero"]

FIELDS: Final = (
    "views",
    "completed_views",
    "engagements",
    "clicks",
    "orders",
    "new_customers",
    "revenue_micros",
    "spend_micros",
    # Added for the seed KPIs (SPEC 2); a bucket written before them is read with zeros.
    "likes",
    "comments",
    "shares",
    "saves",
    "follows",
    "profile_visits",
    "user_views",
    "watched_views",
    "watch_ms",
    "costed_orders",
    "costed_revenue_micros",
    "cost_micros",
)
WIDTH: Final = len(FIELDS)
LEGACY_WIDTH: Final = 8
"""Counters of a bucket written before the seed KPIs' fields."""
(VIEWS, COMPLETED, ENGAGEMENTS, CLICKS, ORDERS, NEW_CUSTOMERS, REVENUE, SPEND,
 LIKES, COMMENTS, SHARES, SAVES, FOLLOWS, PROFILE_VISITS,
 USER_VIEWS, WATCHED_VIEWS, WATCH_MS, COSTED_ORDERS, COSTED_REVENUE, COST) = range(WIDTH)
ACTION_FIELDS: Final = {
    "like": LIKES, "comment": COMMENTS, "share": SHARES, "save": SAVES,
    "follow": FOLLOWS, "profile_visit": PROFILE_VISITS,
}
"""Engagement action -> its counter."""


def zero() -> list[int]:
    """A bucket with nothing in it."""
    return [0] * WIDTH


def add_into(acc: list[int], delta: Sequence[int]) -> None:
    """Add the counters of ``delta`` to ``acc`` in place (extra trailing fields ignored)."""
    for i in range(WIDTH):
        acc[i] += delta[i]


def take_from(acc: list[int], delta: Sequence[int]) -> None:
    """Take the counters of ``delta`` out of ``acc`` in place (extra trailing fields
    ignored)."""
    for i in range(WIDTH):
        acc[i] -= delta[i]


def widened(counts: list[int]) -> list[int]:
    """A bucket's counters and offset (``[*counters, offset]``) as written by any version:
    one written before the seed KPIs' fields gets zeros for them."""
    if len(counts) == LEGACY_WIDTH + 1:
        return [*counts[:LEGACY_WIDTH], *[0] * (WIDTH - LEGACY_WIDTH), counts[LEGACY_WIDTH]]
    return counts
