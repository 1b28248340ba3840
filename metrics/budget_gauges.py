"""Budgets and their pacing as gauges, computed at scrape time.

The worker that owns a campaign's partition exports its budgets, whether or not it has
seen the campaign's events yet (no spend at all is the worst underspending), so every
budget is served by exactly one worker.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from fractions import Fraction
from typing import Protocol

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from metrics.kpis import MICROS
from streams.config.settings import Settings
from streams.planning.pacing import elapsed_share, pacing, period_bounds
from streams.windows.counts import SPEND
from streams.windows.minutes import minute_of
from streams.windows.state import MinuteRange

__all__ = [
    "BUDGET_METRIC",
    "ELAPSED_METRIC",
    "PACING_METRIC",
    "SPEND_METRIC",
    "BudgetCollector",
    "Ownership",
    "SpendSource",
]

BUDGET_METRIC = "marketing_budget"
PACING_METRIC = "marketing_budget_pacing_ratio"
SPEND_METRIC = "marketing_budget_spend"
ELAPSED_METRIC = "marketing_budget_elapsed_ratio"


class SpendSource(Protocol):
    """The KPI state's read-only sums (streams.windows.state.KpiState)."""

    def campaign_sums(self, ranges: Mapping[str, MinuteRange], field: int) -> dict[str, int]: ...


class Ownership(Protocol):
    """Which campaigns this worker serves (streams.worker.app.KpiApp)."""

    def owned_partitions(self, topic: str = ...) -> set[int]: ...

    def partition(self, key: str) -> int: ...


class BudgetCollector(Collector):
    """``marketing_budget``, its spend so far, elapsed share and pacing, per owned budget."""

    def __init__(self, settings: Settings, state: SpendSource, owner: Ownership,
                 clock_ms: Callable[[], int]) -> None:
        self._budgets = settings.budgets
        self._currency = settings.reporting_currency
        self._state = state
        self._owner = owner
        self._clock = clock_ms

    def collect(self) -> Iterator[GaugeMetricFamily]:
        money = ["campaign", "period", "currency"]
        budget = GaugeMetricFamily(BUDGET_METRIC, "The campaign's spend budget for the "
                                   "period, from [[budgets]].", labels=money)
        spend = GaugeMetricFamily(SPEND_METRIC, "The campaign's spend (all channels) so far "
                                  "in the budget's period.", labels=money)
        elapsed = GaugeMetricFamily(ELAPSED_METRIC, "Share of the budget's period gone by "
                                    "(0 to 1).", labels=["campaign", "period"])
        ratio = GaugeMetricFamily(PACING_METRIC, "Spend so far in the period / the budget's "
                                  "share for the time elapsed (1 = on pace).",
                                  labels=["campaign", "period"])
        if self._budgets:
            owned = self._owner.owned_partitions()
            mine = [b for b in self._budgets if self._owner.partition(b.campaign) in owned]
            now_ms = self._clock()
            periods = {(b.campaign, b.period): period_bounds(b, now_ms) for b in mine}
            # Lifetime budgets count the campaign's whole spend (its total): buckets are
            # kept only for the longest window, so spend before the start cannot be told
            # apart. One pass over the state per period kind, not one per budget.
            spent = {
                "day": self._state.campaign_sums(
                    {b.campaign: _minutes(*periods[(b.campaign, b.period)], now_ms)
                     for b in mine if b.period == "day"}, SPEND),
                "lifetime": self._state.campaign_sums(
                    {b.campaign: None for b in mine if b.period == "lifetime"}, SPEND),
            }
            for b in mine:
                share = elapsed_share(*periods[(b.campaign, b.period)], now_ms)
                amount = Fraction(b.amount)
                budget.add_metric([b.campaign, b.period, self._currency], float(amount))
                elapsed.add_metric([b.campaign, b.period], float(share))
                if share == 0:
                    continue  # before a lifetime budget's start: nothing to pace yet
                so_far = Fraction(spent[b.period][b.campaign], MICROS)
                spend.add_metric([b.campaign, b.period, self._currency], float(so_far))
                paced = pacing(so_far, amount, share).ratio
                if paced is not None:
                    ratio.add_metric([b.campaign, b.period], paced)
        yield budget
        yield spend
        yield elapsed
        yield ratio

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())


def _minutes(start_ms: int, end_ms: int, now_ms: int) -> MinuteRange:
    """The minute buckets of [start, end) that can hold events by now (validation lets an
    event be at most five minutes ahead)."""
    return (minute_of(start_ms), min(minute_of(end_ms - 1), minute_of(now_ms) + 5) + 1)
