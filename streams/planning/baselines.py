"""Baselines of a KPI from its history, and targets a chosen improvement beyond them.

Pure: daily figures in, suggested limits out. A baseline is a median, so one freak day
(a bot storm, a tracker outage) does not move it. Weekdays differ (weekend shoppers,
weekday B2B): when every weekday has at least ``MIN_PER_WEEKDAY`` days of history the
baseline is the median of the seven weekday medians, so a lookback holding five
Saturdays and four Mondays does not lean to Saturdays; with less history, the median of
all days.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from statistics import median
from typing import Final, Literal

from metrics.names import RATIOS

__all__ = [
    "LOWER_IS_BETTER",
    "MIN_PER_WEEKDAY",
    "Baseline",
    "Day",
    "baseline",
    "day_figures",
    "suggested_limit",
]

MIN_PER_WEEKDAY: Final = 3
"""A median of three or more days shrugs off one freak day; of two it is their mean."""
LOWER_IS_BETTER: Final = frozenset({"cac"})
"""KPIs whose target is a maximum below the baseline."""
AT_MOST_ONE: Final = frozenset({"completion_ratio", "repeat_purchase_ratio"})
"""Shares of a whole: a target above 1 could never be met."""
Method = Literal["weekday", "all"]


@dataclass(frozen=True, slots=True)
class Day:
    """One day's figure of a KPI and the denominator it rests on."""

    day: dt.date
    value: Fraction
    volume: Fraction


@dataclass(frozen=True, slots=True)
class Baseline:
    """A KPI's baseline and what it rests on."""

    value: Fraction
    method: Method
    days: tuple[Day, ...]
    """The days with enough volume, oldest first."""

    @property
    def volume(self) -> Fraction:
        return sum((d.volume for d in self.days), Fraction(0))


def day_figures(kpi: str, sums: dict[str, Fraction]) -> tuple[Fraction, Fraction] | None:
    """(value, denominator) of a ratio KPI from one day's sums; None without denominator."""
    numerator, denominator = RATIOS[kpi]
    if any(m not in sums for m in (*numerator, denominator)):
        return None
    below = sums[denominator]
    if below <= 0:
        return None
    top = sums[numerator[0]] - sum((sums[m] for m in numerator[1:]), Fraction(0))
    return top / below, below


def baseline(days: Sequence[Day], min_volume: Fraction, min_days: int) -> Baseline | None:
    """The median baseline of the days with at least ``min_volume``; None if fewer than
    ``min_days`` of them."""
    kept = tuple(sorted((d for d in days if d.volume >= min_volume), key=lambda d: d.day))
    if len(kept) < max(min_days, 1):
        return None
    by_weekday: dict[int, list[Fraction]] = {}
    for d in kept:
        by_weekday.setdefault(d.day.weekday(), []).append(d.value)
    if len(by_weekday) == 7 and all(len(v) >= MIN_PER_WEEKDAY for v in by_weekday.values()):
        return Baseline(median([median(v) for v in by_weekday.values()]), "weekday", kept)
    return Baseline(median([d.value for d in kept]), "all", kept)


def suggested_limit(kpi: str, base: Fraction, uplift: Fraction) -> Decimal:
    """``uplift`` (0.1 is 10 %) better than ``base``: below it for CAC, above for the rest
    (for ROI, by a share of its size, as ROI may be negative)."""
    if kpi in LOWER_IS_BETTER:
        limit = base * (1 - uplift)
    else:
        limit = base + abs(base) * uplift
        if kpi in AT_MOST_ONE:
            limit = min(limit, Fraction(1))
    return _round(limit)


def _round(value: Fraction) -> Decimal:
    """Four significant digits: what the data can tell, and what a person reads."""
    if value == 0:
        return Decimal(0)
    return Decimal(f"{float(value):.4g}").normalize()
