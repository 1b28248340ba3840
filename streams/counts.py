"""What one accepted event adds to a campaign's counters: the layout of every bucket."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from streams.events import Event

__all__ = ["FIELDS", "RETRACTION", "WIDTH", "Forward", "add_into", "event_counts", "zero"]

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

Forward = list[Any]
"""[type, event_id, ts_ms, channel, counters]: one event on its way to its campaign's state."""

RETRACTION: Final = "retraction"
"""Forward type of a correction (an order that is no longer a customer's first)."""


def zero() -> list[int]:
    """A bucket with nothing in it."""
    return [0] * WIDTH


def event_counts(event: Event, new_customer: bool) -> list[int]:
    """The counters one event adds; money in millionths of the reporting currency."""
    counts = zero()
    kind = event.type
    if kind == "view":
        counts[VIEWS] = 1
        counts[COMPLETED] = int(event.completed)
    elif kind == "engagement":
        counts[ENGAGEMENTS] = 1
    elif kind == "click":
        counts[CLICKS] = 1
    elif kind == "order":
        counts[ORDERS] = 1
        counts[NEW_CUSTOMERS] = int(new_customer)
        counts[REVENUE] = event.value_micros
    else:
        counts[SPEND] = event.value_micros
    return counts


def add_into(acc: list[int], delta: Sequence[int]) -> None:
    """Add the counters of ``delta`` to ``acc`` in place (extra trailing fields ignored)."""
    for i in range(WIDTH):
        acc[i] += delta[i]
