"""KPI targets as gauges, resolved per campaign at scrape time.

Each campaign this worker owns gets the target that holds for it (its own entry, else
the default), so an alert rule or a Grafana panel joins a KPI with its target
``on (campaign, window)`` and never needs to know about defaults and overrides.
A lifetime-value target also carries ``horizon`` (joined ``on (campaign, window,
horizon)``); the others have no such label, as before.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from streams.config.targets import Target, resolve_targets

__all__ = ["HORIZON_LABEL", "MIN_DENOMINATOR_METRIC", "TARGET_LABELS", "TARGET_METRIC",
           "TargetCollector"]

TARGET_METRIC = "marketing_kpi_target"
MIN_DENOMINATOR_METRIC = "marketing_kpi_target_min_denominator"
TARGET_LABELS = ("campaign", "kpi", "bound", "window")
HORIZON_LABEL = "horizon"
"""Added to the labels of targets that have a horizon (lifetime value)."""


class TargetCollector(Collector):
    """``marketing_kpi_target`` and its min denominator for every owned campaign."""

    def __init__(self, targets: Sequence[Target], campaigns: Callable[[], Iterable[str]]) -> None:
        self._targets = tuple(targets)
        self._campaigns = campaigns

    def collect(self) -> Iterator[GaugeMetricFamily]:
        target = GaugeMetricFamily(
            TARGET_METRIC,
            "KPI target of the campaign (bound min or max), in the KPI's unit.",
            labels=list(TARGET_LABELS),
        )
        guard = GaugeMetricFamily(
            MIN_DENOMINATOR_METRIC,
            "Least denominator (spend, views, clicks or orders in the window) for the "
            "target to be judged.",
            labels=list(TARGET_LABELS),
        )
        if self._targets:
            for campaign in sorted(set(self._campaigns())):
                for t in resolve_targets(self._targets, campaign):
                    labels = dict(zip(TARGET_LABELS, (campaign, t.kpi, t.bound, t.window),
                                      strict=True))
                    if t.horizon:
                        labels[HORIZON_LABEL] = t.horizon
                    # add_sample, not add_metric: the horizon label only where there is one
                    target.add_sample(TARGET_METRIC, labels, float(t.value))
                    if t.guard is not None:
                        guard.add_sample(MIN_DENOMINATOR_METRIC, labels, float(t.min_denominator))
        yield target
        yield guard

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())
