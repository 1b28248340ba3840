"""The counters of a bucket: their names and order."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

__all__ = ["FIELDS", "WIDTH", "add_into", "zero"]

FIELDS: Final = (
    "views",
    "completed_views",
    "engagements",
    "clicks",
    "orders",
    "new_customers",
    "revenue_micros",
    "spend_micros",
)
WIDTH: Final = len(FIELDS)
VIEWS, COMPLETED, ENGAGEMENTS, CLICKS, ORDERS, NEW_CUSTOMERS, REVENUE, SPEND = range(WIDTH)


def zero() -> list[int]:
    """A bucket with nothing in it."""
    return [0] * WIDTH


def add_into(acc: list[int], delta: Sequence[int]) -> None:
    """Add the counters of ``delta`` to ``acc`` in place (extra trailing fields ignored)."""
    for i in range(WIDTH):
        acc[i] += delta[i]
