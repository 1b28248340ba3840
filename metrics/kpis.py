"""KPI formulas over summed counters: pure, exact until the final division.

A ratio whose denominator is zero is absent at /metrics (None from ``kpi_values``, NaN in
a column of ``kpi_columns``), never 0; a present value is never NaN or infinite.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any

import numpy as np
import numpy.typing as npt

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
    VIEWS,
    WATCH_MS,
    WATCHED_VIEWS,
    WIDTH,
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
    "Column",
    "amount_column",
    "content_counts",
    "counter_matrix",
    "float_column",
    "frequency",
    "gross_profit_fraction",
    "int_matrix",
    "kpi_columns",
    "kpi_values",
    "ltv_values",
    "served_reach",
    "top_named",
]

MICROS = 1_000_000


def _ratio(numerator: int, denominator: int) -> float | None:
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
    return {name: None if math.isnan(value) else value
            for name, value in ((name, float(column[0]))
                                for name, column in kpi_columns([counts], margin).items())}


Column = npt.NDArray[np.float64]
"""A KPI's value of each row, NaN where it is absent (a ratio over zero)."""
_EXACT = 2**53
"""Integers up to this convert to floats exactly, so a float division of two of them is
the correctly rounded quotient, as ``int / int`` is."""


def kpi_columns(rows: Sequence[Sequence[int]] | npt.NDArray[Any],
                margin: Fraction | None = None) -> dict[str, Column]:
    """``kpi_values`` of many windows' counters, a column (one value per row) per metric,
    each formula over every row at once: in numpy, exact because every operand of a
    division is an integer below 2**53 (a counter past that, or a product past 2**62, is
    divided by Python's ``int / int`` instead, as are fractions of a margin)."""
    counts = counter_matrix(rows)

    def column(index: int) -> npt.NDArray[Any]:
        return counts[:, index]

    views, completed, engagements = column(VIEWS), column(COMPLETED), column(ENGAGEMENTS)
    clicks, orders, new = column(CLICKS), column(ORDERS), column(NEW_CUSTOMERS)
    revenue, spend = column(REVENUE), column(SPEND)
    watched, watch_ms = column(WATCHED_VIEWS), column(WATCH_MS)
    if margin is None:  # gross profit in whole millionths: no Fraction per row
        profit = column(COSTED_REVENUE) - column(COST)
        gross_profit = _ratio_column(profit, MICROS)
        poas = _ratio_column(profit, spend)
    else:
        fractions = [gross_profit_fraction(row, margin) for row in counts.tolist()]
        numerators = _objects([f.numerator for f in fractions])
        gross_profit = _ratio_column(numerators, _objects([f.denominator * MICROS
                                                           for f in fractions]))
        poas = _ratio_column(numerators, _objects(
            [f.denominator * s for f, s in zip(fractions, spend.tolist(), strict=True)]))
    return {
        "marketing_views": _floats(views),
        "marketing_completed_views": _floats(completed),
        "marketing_engagements": _floats(engagements),
        "marketing_clicks": _floats(clicks),
        "marketing_orders": _floats(orders),
        "marketing_new_customers": _floats(new),
        "marketing_revenue": _ratio_column(revenue, MICROS),
        "marketing_spend": _ratio_column(spend, MICROS),
        "marketing_click_through_ratio": _ratio_column(clicks, views),
        "marketing_engagement_ratio": _ratio_column(engagements, views),
        "marketing_completion_ratio": _ratio_column(completed, views),
        "marketing_conversion_ratio": _ratio_column(orders, clicks),
        "marketing_roas_ratio": _ratio_column(revenue, spend),
        "marketing_roi_ratio": _ratio_column(revenue - spend, spend),
        "marketing_cac": _ratio_column(spend, new * MICROS),
        "marketing_aov": _ratio_column(revenue, orders * MICROS),
        "marketing_repeat_purchase_ratio": _ratio_column(orders - new, orders),
        "marketing_watch_seconds": _ratio_column(watch_ms, 1000),
        "marketing_average_watch_seconds": _ratio_column(watch_ms, watched * 1000),
        "marketing_gross_profit": gross_profit,
        "marketing_orders_without_cost": _floats(orders - column(COSTED_ORDERS)),
        "marketing_poas_ratio": poas,
    }


def counter_matrix(rows: Sequence[Sequence[int]] | npt.NDArray[Any]) -> npt.NDArray[Any]:
    """The rows' counters as a matrix: int64, or Python ints (dtype object) if one is so
    large that a sum, difference or product by 10**6 might not fit in 64 bits. A matrix
    is already one."""
    if isinstance(rows, np.ndarray):
        return rows
    matrix = int_matrix(rows, WIDTH)
    if matrix.dtype == object or not len(matrix):
        return matrix
    multiplied = matrix[:, _MULTIPLIED]
    if (matrix.max() >= 2**62 or matrix.min() <= -(2**62)
            or multiplied.max() >= 2**62 // MICROS or multiplied.min() <= -(2**62) // MICROS):
        return matrix.astype(object)
    return matrix


def int_matrix(rows: Sequence[Sequence[int]], width: int) -> npt.NDArray[Any]:
    """Rows of ``width`` integers as a matrix: int64, or Python ints (dtype object) if
    one is past 64 bits."""
    if not rows:
        return np.zeros((0, width), dtype=np.int64)
    try:
        return np.array(rows, dtype=np.int64)
    except OverflowError:
        return np.array(rows, dtype=object)


def amount_column(micros: npt.NDArray[Any]) -> Column:
    """Millionths as amounts, each ``int / 10**6`` (correctly rounded)."""
    return _ratio_column(micros, MICROS)


def float_column(values: npt.NDArray[Any]) -> Column:
    """Integers as floats, each ``float(int)``."""
    if values.dtype == object:
        return np.array([float(v) for v in values.tolist()], dtype=np.float64)
    return values.astype(np.float64)


_MULTIPLIED = [ORDERS, NEW_CUSTOMERS, WATCHED_VIEWS]
"""The counters a formula multiplies (by 10**6 or 1000); the others are only added and
subtracted, two at a time."""


def _objects(values: list[int]) -> npt.NDArray[Any]:
    return np.array(values, dtype=object)


def _floats(values: npt.NDArray[Any]) -> Column:
    """``float`` of each integer, correctly rounded (numpy's conversion is, as Python's)."""
    floats: Column = values.astype(np.float64)
    return floats


def _ratio_column(numerators: npt.NDArray[Any], denominators: npt.NDArray[Any] | int
                  ) -> Column:
    """``n / d`` of each pair, NaN where ``d`` is 0: in floats when every operand is below
    2**53 (then exact: each converts exactly and the division rounds once), else by
    Python's ``int / int``."""
    d = np.broadcast_to(np.asarray(denominators), numerators.shape)
    if (numerators.dtype != object and d.dtype != object
            and _below_exact(numerators) and _below_exact(d)):
        out: Column = np.full(numerators.shape, np.nan)
        np.divide(numerators, d, out=out, where=d != 0)
        return out
    return np.array([n / q if q else math.nan
                     for n, q in zip(numerators.tolist(), d.tolist(), strict=True)],
                    dtype=np.float64)


def _below_exact(values: npt.NDArray[Any]) -> bool:
    return not values.size or (int(values.max()) <= _EXACT and int(values.min()) >= -_EXACT)


def served_reach(user_views: int, estimate: float) -> float:
    """The sketch's estimate as a number of people: rounded, and never more than the views
    that carry a user id (an estimate a little above them is its error, and the truth
    cannot be)."""
    return float(min(round(estimate), user_views))


def frequency(user_views: int, reach: float) -> float | None:
    """Views that carry a user id per distinct viewer (None: no viewer)."""
    return user_views / reach if reach > 0 else None


def top_named(named: Named, top: int, rank_by: int) -> list[tuple[str, list[int]]]:
    """The ``top`` names with the most of counter ``rank_by`` (ties: by name), then
    ``other``: every other name summed, those folded past the cap included, so the sum
    over the list is the sum over ``named``. A name spelled ``other`` is in ``other``.
    The lists shown are ``named``'s own (a scrape's copy, only read)."""
    # (-count, name) tuples sort as the key (-count, name) would, without a key call
    # per name: at a scrape this runs for every row's products and content types.
    ranked = sorted([(-counts[rank_by], name) for name, counts in named.items()
                     if name not in _FOLDED])
    shown = [(name, named[name]) for _, name in ranked[:top]]
    rest = [named[name] for _, name in ranked[top:]]
    rest += [named[name] for name in _FOLDED if name in named]
    if rest:
        shown.append(("other", [sum(column) for column in zip(*rest, strict=True)]))
    return shown


_FOLDED = (OTHER, "other")
"""Names always summed into ``other``: the fold of names past the cap, and ``other``."""


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
