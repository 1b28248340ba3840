"""Baselines from daily figures and the limits suggested beyond them (pure)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from fractions import Fraction as F

import pytest

from streams.planning.baselines import Day, baseline, day_figures, suggested_limit

MONDAY = dt.date(2026, 11, 2)


def days(values: list[int], volume: int = 100) -> list[Day]:
    return [Day(MONDAY + dt.timedelta(days=i), F(v), F(volume)) for i, v in enumerate(values)]


@pytest.mark.parametrize(("values", "min_days", "expected", "method"), [
    # under two weeks: the plain median (an even count: the mean of the middle two)
    ([1, 2, 3, 100], 3, F(5, 2), "all"),
    # three of each weekday: the median of the weekday medians, the freak 700 ignored
    ([1, 2, 3, 4, 5, 6, 7] * 2 + [1, 2, 3, 700, 5, 6, 7], 7, F(4), "weekday"),
    # two of each: a weekday median would be a mean of two; the plain median of 14 days
    ([1, 2, 3, 4, 5, 6, 7, 1, 2, 3, 700, 5, 6, 7], 7, F(9, 2), "all"),
])
def test_baseline(values: list[int], min_days: int, expected: F, method: str) -> None:
    base = baseline(days(values), F(100), min_days)
    assert base is not None
    assert (base.value, base.method, len(base.days)) == (expected, method, len(values))


def test_days_under_the_minimum_volume_do_not_count_and_too_few_give_none() -> None:
    mixed = [*days([1, 2, 3]), Day(MONDAY + dt.timedelta(days=9), F(50), F(99))]
    base = baseline(mixed, F(100), 3)
    assert base is not None and base.value == 2 and base.volume == 300
    assert baseline(mixed, F(100), 4) is None


@pytest.mark.parametrize(("kpi", "base", "uplift", "expected"), [
    ("roas_ratio", F(26, 10), F(1, 10), Decimal("2.86")),
    ("cac", F(40), F(15, 100), Decimal("34")),  # lower is better: 15 % below
    ("roi_ratio", F(-1, 2), F(1, 5), Decimal("-0.4")),  # a negative ROI improves upwards
    ("completion_ratio", F(95, 100), F(1, 5), Decimal("1")),  # a share never above 1
    ("click_through_ratio", F(1, 3), F(1, 10), Decimal("0.3667")),  # 4 significant digits
])
def test_suggested_limit(kpi: str, base: F, uplift: F, expected: Decimal) -> None:
    assert suggested_limit(kpi, base, uplift) == expected


def test_day_figures_rederive_ratios_from_sums() -> None:
    assert day_figures("roi_ratio", {"revenue": F(300), "spend": F(100)}) == (F(2), F(100))
    assert day_figures("roas_ratio", {"revenue": F(3), "spend": F(0)}) is None
    assert day_figures("roas_ratio", {"revenue": F(3)}) is None
