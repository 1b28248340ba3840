"""Table snapshot -> Prometheus gauges, read at scrape time.

With 1,000 campaign-channels a scrape holds ~68,000 KPI samples, and prometheus_client's
text exposition spends ~6 us on each (label escaping per sample): too slow for /metrics.
So a KPI family keeps its series as label values plus their label text, escaped once per
row; ``KpiFamily.exposition`` writes the sample lines from that, byte for byte what
``generate_latest`` writes (tests hold it to that), and prometheus_client's own
``samples`` are built only when something else reads the family.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence

from prometheus_client import generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.openmetrics.exposition import escape_label_name, escape_metric_name
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample, Timestamp
from prometheus_client.utils import floatToGoString

from metrics.kpis import kpi_values
from metrics.names import KPI_HELP, KPI_LABELS, MONEY_METRICS
from streams.windows.state import KpiRow

__all__ = ["KpiCollector", "KpiFamily", "LabelSet", "Series", "exposition"]

_go_float: Callable[[float], str] = floatToGoString  # untyped in prometheus_client

Series = tuple[tuple[str, ...], str]
"""A series' label values and its ``name="value",...`` text as the exposition writes it."""


def _escape_value(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r'\"')


class LabelSet:
    """Writes the label text of series with these label names as generate_latest does:
    sorted by name, ``name="value"`` with the value escaped."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = tuple(names)
        self._order = sorted(range(len(names)), key=lambda i: names[i])
        self._opening = [f'{escape_label_name(names[i])}="' for i in self._order]

    def series(self, values: Sequence[str]) -> Series:
        if len(values) != len(self.names):
            raise ValueError(f"labels {self.names}, got values {values}")
        return tuple(values), ",".join([
            f'{opening}{_escape_value(values[i])}"'
            for opening, i in zip(self._opening, self._order, strict=True)])


class _Only(Collector):
    def __init__(self, family: Metric) -> None:
        self._family = family

    def collect(self) -> Iterator[Metric]:
        yield self._family


class KpiFamily(GaugeMetricFamily):
    """A KPI gauge whose samples are kept as parallel lists of series and values until read.

    Parallel lists, not a tuple per sample: a scrape then leaves few objects for the
    cyclic GC, whose full passes over the state's buckets take ~0.2 s at 1,000 series.
    """

    def __init__(self, name: str, documentation: str, labels: Sequence[str]) -> None:
        self.series: list[Series] = []
        self.values: list[float] = []
        super().__init__(name, documentation, labels=labels)

    @property
    def samples(self) -> list[Sample]:
        """prometheus_client's view (registry.get_sample_value, generate_latest)."""
        names = self._labelnames
        return [Sample(self.name, dict(zip(names, labels, strict=True)), value)
                for (labels, _), value in zip(self.series, self.values, strict=True)]

    @samples.setter
    def samples(self, value: list[Sample]) -> None:
        if value:  # Metric.__init__ sets [] and nothing else may: series/values are the data
            raise TypeError("add KPI samples with add_metric")

    def add_metric(self, labels: Sequence[str], value: float,
                   timestamp: Timestamp | float | None = None) -> None:
        if timestamp is not None:
            raise TypeError("KPI gauges have no timestamps")
        self.series.append(LabelSet(self._labelnames).series(labels))
        self.values.append(value)

    def exposition(self) -> bytes:
        """``generate_latest`` of this family alone: HELP and TYPE by prometheus_client,
        then one line per sample."""
        head = generate_latest(_Only(GaugeMetricFamily(self.name, self.documentation)))
        name = escape_metric_name(self.name)
        lines = [f"{name}{{{labels}}} {_go_float(value)}\n"
                 for (_, labels), value in zip(self.series, self.values, strict=True)]
        return head + "".join(lines).encode()


def exposition(registry: Collector) -> bytes:
    """``generate_latest(registry)``, with KPI families written by their faster path."""
    return b"".join(
        family.exposition() if isinstance(family, KpiFamily) else generate_latest(_Only(family))
        for family in registry.collect()
    )


class KpiCollector(Collector):
    """Every KPI gauge of the campaigns this worker owns, computed when scraped."""

    def __init__(self, rows: Callable[[], Iterable[KpiRow]], reporting_currency: str) -> None:
        self._rows = rows
        self._currency = reporting_currency

    def collect(self) -> Iterator[KpiFamily]:
        plain_labels, money_labels = LabelSet(KPI_LABELS), LabelSet([*KPI_LABELS, "currency"])
        families = {
            name: KpiFamily(name, help_text,
                            (money_labels if name in MONEY_METRICS else plain_labels).names)
            for name, help_text in KPI_HELP.items()
        }
        appends = {name: (f.series.append, f.values.append, name in MONEY_METRICS)
                   for name, f in families.items()}
        for campaign, channel, window, counts in self._rows():
            plain = plain_labels.series((campaign, channel, window))
            money = money_labels.series((campaign, channel, window, self._currency))
            for name, value in kpi_values(counts).items():
                if value is not None:
                    add_series, add_value, is_money = appends[name]
                    add_series(money if is_money else plain)
                    add_value(value)
        yield from families.values()

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())
