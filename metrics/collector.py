"""Table snapshot -> Prometheus gauges, read at scrape time."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from metrics.kpis import kpi_values
from metrics.names import KPI_HELP, KPI_LABELS, MONEY_METRICS
from streams.state import KpiRow

__all__ = ["KpiCollector"]


class KpiCollector(Collector):
    """Every KPI gauge of the campaigns this worker owns, computed when scraped."""

    def __init__(self, rows: Callable[[], Iterable[KpiRow]], reporting_currency: str) -> None:
        self._rows = rows
        self._currency = reporting_currency

    def collect(self) -> Iterator[GaugeMetricFamily]:
        families = {
            name: GaugeMetricFamily(
                name, help_text,
                labels=[*KPI_LABELS, "currency"] if name in MONEY_METRICS else list(KPI_LABELS),
            )
            for name, help_text in KPI_HELP.items()
        }
        for campaign, channel, window, counts in self._rows():
            plain = [campaign, channel, window]
            money = [*plain, self._currency]
            for name, value in kpi_values(counts).items():
                if value is not None:
                    families[name].add_metric(money if name in MONEY_METRICS else plain, value)
        yield from families.values()

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())
