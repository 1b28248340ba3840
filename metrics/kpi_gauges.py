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
from dataclasses import dataclass
from fractions import Fraction

from prometheus_client import generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.openmetrics.exposition import escape_label_name, escape_metric_name
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample, Timestamp
from prometheus_client.utils import floatToGoString

from metrics.kpis import (
    CONTENT_RANK,
    PRODUCT_RANK,
    content_counts,
    frequency,
    kpi_values,
    ltv_values,
    served_reach,
    top_named,
)
from metrics.names import KPI_HELP, KPI_LABELS, LABELLED_HELP, MONEY_METRICS
from streams.windows.counts import ACTION_FIELDS
from streams.windows.extras import C_CLICKS, C_ENGAGEMENTS, C_ORDERS, C_REVENUE, C_VIEWS
from streams.windows.state import ExtrasRow, KpiRow, WindowExtras

__all__ = [
    "KpiCollector", "KpiFamily", "LabelSet", "SeedKpis", "Series", "exposition", "text_of",
]

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
        self._escaped: dict[str, str] = {}
        """value -> its escaped text: a scrape writes the same campaign, window and
        action names over and over (a LabelSet lives for one scrape). 1,133 ns a
        five-label series instead of 1,532, escaping each value every time."""

    def series(self, values: Sequence[str]) -> Series:
        if len(values) != len(self.names):
            raise ValueError(f"labels {self.names}, got values {values}")
        escaped = self._escaped
        parts = []
        for opening, i in zip(self._opening, self._order, strict=True):
            value = values[i]
            text = escaped.get(value)
            if text is None:
                text = escaped[value] = _escape_value(value)
            parts.append(f'{opening}{text}"')
        return tuple(values), ",".join(parts)


class _Only(Collector):
    def __init__(self, family: Metric) -> None:
        self._family = family

    def collect(self) -> Iterator[Metric]:
        yield self._family


class KpiFamily(GaugeMetricFamily):
    """A KPI gauge whose samples are kept as parallel lists of series and values until read.

    Parallel lists, not a tuple per sample: a scrape then leaves few objects for the
    cyclic GC, whose full passes over the state's buckets take ~0.2 s at 1,000 series.
    A family made by ``KpiCollector.collect`` is filled when first read (``fill``): the
    collector copies the rows then, the KPI values and their text are worked out later,
    off the event loop if the reader is (streams.worker.web).
    """

    def __init__(self, name: str, documentation: str, labels: Sequence[str],
                 fill: Callable[[], None] | None = None) -> None:
        self._series: list[Series] = []
        self._values: list[float] = []
        self._fill = fill
        super().__init__(name, documentation, labels=labels)
        self._label_set = LabelSet(self._labelnames)
        """Built once: checking and escaping the names took ~a fifth of a scrape per sample."""

    def _filled(self) -> None:
        fill, self._fill = self._fill, None
        if fill is not None:
            fill()

    @property
    def series(self) -> list[Series]:
        self._filled()
        return self._series

    @property
    def values(self) -> list[float]:
        self._filled()
        return self._values

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
        self._series.append(self._label_set.series(labels))
        self._values.append(value)

    def appenders(self) -> tuple[Callable[[Series], None], Callable[[float], None]]:
        """Add a sample's series and its value: ``add_metric`` without its checks, for the
        collector's hot loop."""
        return self._series.append, self._values.append

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
    return b"".join(map(text_of, registry.collect()))


def text_of(family: Metric) -> bytes:
    """One collected family's text, as ``generate_latest`` writes it."""
    return family.exposition() if isinstance(family, KpiFamily) else generate_latest(
        _Only(family))


_CONTENT_METRICS = (("marketing_content_views", C_VIEWS),
                    ("marketing_content_engagements", C_ENGAGEMENTS),
                    ("marketing_content_clicks", C_CLICKS),
                    ("marketing_content_orders", C_ORDERS),
                    ("marketing_content_revenue", C_REVENUE))
_NO_EXTRAS = WindowExtras()


@dataclass(frozen=True, slots=True)
class SeedKpis:
    """What the KPIs of the seed articles need beside the counters (SPEC 2)."""

    extras: Callable[[], Iterable[ExtrasRow]] = lambda: ()
    margin: Fraction | None = None
    """[kpi] default_gross_margin."""
    top_products: int = 10
    top_content_types: int = 10
    ltv_horizons: Sequence[tuple[str, int]] = ()
    """(label, days) of [kpi] ltv_horizons."""


class KpiCollector(Collector):
    """Every KPI gauge of the campaigns this worker owns, computed when scraped."""

    def __init__(self, rows: Callable[[], Iterable[KpiRow]], reporting_currency: str,
                 seed: SeedKpis | None = None) -> None:
        self._rows = rows
        self._currency = reporting_currency
        self._seed = SeedKpis() if seed is None else seed

    def collect(self) -> Iterator[KpiFamily]:
        """The KPI families of the rows as they are now (copied here); their values and
        text are worked out when a family is first read."""
        seed = self._seed
        rows = list(self._rows())
        extras = list(seed.extras())
        plain_labels, money_labels = LabelSet(KPI_LABELS), LabelSet([*KPI_LABELS, "currency"])

        filled = False

        def fill() -> None:  # every family at once, at the first read of any
            nonlocal filled
            if not filled:
                filled = True
                _fill(families, labelled, rows, extras, self._currency, seed,
                      plain_labels, money_labels)
                # each family now holds its own samples: a reader that lets go of one
                # after writing it frees it (streams.worker.web)
                families.clear()
                labelled.clear()
                rows.clear()
                extras.clear()

        families = {
            name: KpiFamily(name, help_text,
                            (money_labels if name in MONEY_METRICS else plain_labels).names,
                            fill)
            for name, help_text in KPI_HELP.items()
        }
        labelled = {
            name: KpiFamily(name, help_text, [*KPI_LABELS, *(
                ["currency"] if name in MONEY_METRICS else []), *extra], fill)
            for name, (help_text, extra) in LABELLED_HELP.items()
        }
        collected = [*families.values(), *labelled.values()]  # fill() empties the dicts
        yield from collected

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())


def _fill(families: dict[str, KpiFamily], labelled: dict[str, KpiFamily],
          rows: Iterable[KpiRow], extras_rows: Iterable[ExtrasRow], currency: str,
          seed: SeedKpis, plain_labels: LabelSet, money_labels: LabelSet) -> None:
    """Every sample of the rows into the families."""
    appends = {name: (*f.appenders(), name in MONEY_METRICS) for name, f in families.items()}
    extras = {(c, ch, w): e for c, ch, w, e in extras_rows}
    for campaign, channel, window, counts in rows:
        plain = plain_labels.series((campaign, channel, window))
        money = money_labels.series((campaign, channel, window, currency))
        for name, value in kpi_values(counts, seed.margin).items():
            if value is not None:
                add_series, add_value, is_money = appends[name]
                add_series(money if is_money else plain)
                add_value(value)
        _seed_series(labelled, (campaign, channel, window), currency, counts,
                     extras.get((campaign, channel, window), _NO_EXTRAS), seed)


def _seed_series(families: dict[str, KpiFamily], row: tuple[str, str, str], currency: str,
                 counts: Sequence[int], extras: WindowExtras, seed: SeedKpis) -> None:
    """One row's series of the KPIs with labels beyond campaign, channel and window."""
    def add(name: str, value: float | None, *labels: str) -> None:
        if value is not None:
            family = families[name]
            money = (currency,) if name in MONEY_METRICS else ()
            family.add_metric((*row, *money, *labels), value)

    if extras.reach is not None:
        reach = served_reach(counts, extras.reach)
        add("marketing_reach", reach)
        add("marketing_frequency", frequency(counts, reach))
    for action, index in ACTION_FIELDS.items():
        add("marketing_engagement_actions", float(counts[index]), action)
    for product, (units, revenue) in top_named(extras.products, seed.top_products,
                                               PRODUCT_RANK):
        add("marketing_product_units", float(units), product)
        add("marketing_product_revenue", revenue / 1_000_000, product)
    content = content_counts(counts, extras.content)
    for content_type, values in top_named(content, seed.top_content_types, CONTENT_RANK):
        for name, index in _CONTENT_METRICS:
            value = values[index]
            add(name, value / 1_000_000 if name in MONEY_METRICS else float(value),
                content_type)
    if row[2] == "total":
        for horizon, ltv, ratio in ltv_values(extras.ltv, seed.ltv_horizons, counts):
            add("marketing_ltv", ltv, horizon)
            add("marketing_ltv_cac_ratio", ratio, horizon)
