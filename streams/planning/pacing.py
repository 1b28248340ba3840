"""Budget pacing arithmetic: the period a moment falls in, its elapsed share, the pacing.

Pure functions over integer epoch milliseconds. A daily budget's period runs from local
midnight in the budget's zone to the next local midnight, so it lasts 23 or 25 hours on
the days clocks change; a lifetime budget's from its start to its end.
"""

from __future__ import annotations

import datetime as dt
from fractions import Fraction
from typing import NamedTuple
from zoneinfo import ZoneInfo

from streams.config.budgets import Budget

__all__ = ["Pacing", "day_bounds", "elapsed_share", "pacing", "period_bounds"]


class Pacing(NamedTuple):
    """What the worker exports for one budget at one moment."""

    elapsed: Fraction
    """Share of the period gone by, 0 to 1."""
    ratio: float | None
    """Spend / (amount x elapsed); None while no time has elapsed (before a start)."""


def day_bounds(now_ms: int, zone: ZoneInfo) -> tuple[int, int]:
    """[start, end) in epoch ms of the local day of ``zone`` that holds ``now_ms``."""
    local = dt.datetime.fromtimestamp(now_ms / 1000, tz=zone).date()
    following = local + dt.timedelta(days=1)
    return (_local_midnight_ms(local, zone), _local_midnight_ms(following, zone))


def _local_midnight_ms(day: dt.date, zone: ZoneInfo) -> int:
    moment = dt.datetime(day.year, day.month, day.day, tzinfo=zone)
    return round(moment.timestamp() * 1000)


def period_bounds(budget: Budget, now_ms: int) -> tuple[int, int]:
    """[start, end) of the budget's period at ``now_ms``."""
    if budget.start_ms is not None and budget.end_ms is not None:
        return budget.start_ms, budget.end_ms
    return day_bounds(now_ms, budget.zone)


def elapsed_share(start_ms: int, end_ms: int, now_ms: int) -> Fraction:
    """How much of [start, end) has gone by at ``now_ms``: 0 before, 1 after."""
    return Fraction(min(max(now_ms - start_ms, 0), end_ms - start_ms), end_ms - start_ms)


def pacing(spend: Fraction, amount: Fraction, elapsed: Fraction) -> Pacing:
    """Spend so far against the budget's share for the time elapsed (1 = on pace)."""
    if elapsed == 0:
        return Pacing(elapsed, None)
    return Pacing(elapsed, float(spend / (amount * elapsed)))
