"""Table snapshot -> Prometheus gauges, read at scrape time.

With 10,000 campaign-channels a scrape holds ~1,300,000 KPI samples, and prometheus_client's
text exposition spends ~6 us on each (label escaping per sample): too slow for /metrics.
So a KPI family keeps each sample as a reference to its row's label text (escaped once
per row and shared by every family of that row), the value in an array of doubles and,
for a family with a label beyond the row's, that label's value and the row's text on either
side of it. ``KpiFamily.chunks`` writes the sample lines from that, byte for byte what
``generate_latest`` writes (tests hold it to that); prometheus_client's own ``samples``
are built only when something else reads the family. ~16 bytes a sample held, ~40 with
an extra label, where a Sample or a tuple per sample is ~300.
"""

from __future__ import annotations

from array import array
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
    "KpiCollector", "KpiFamily", "LabelSet", "LabelledKpiFamily", "SeedKpis", "Series",
    "exposition", "go_float", "text_of",
]

_go_float: Callable[[float], str] = floatToGoString  # untyped in prometheus_client
_MINUS_INF = float("-inf")
_CHUNK = 20_000
"""Sample lines written, encoded and handed on at a time: a family's whole text (~25 MB
for the largest at 10,000 campaign-channels) is never held at once, nor its lines."""

Series = tuple[tuple[str, ...], str]
"""A series' label values and its ``name="value",...`` text as the exposition writes it."""


def go_float(value: float) -> str:
    """``floatToGoString``: ``repr`` for a finite value below 1e6 (all it would do there),
    the rest by prometheus_client. The exposition inlines the same test."""
    return repr(value) if _MINUS_INF < value < 1e6 else _go_float(value)


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

    def escaped(self, value: str) -> str:
        text = self._escaped.get(value)
        if text is None:
            text = self._escaped[value] = _escape_value(value)
        return text

    def parts(self, values: Sequence[str]) -> list[str]:
        """Each ``name="value"``, in the text's order."""
        if len(values) != len(self.names):
            raise ValueError(f"labels {self.names}, got values {values}")
        escaped = self.escaped
        return [f'{opening}{escaped(values[i])}"'
                for opening, i in zip(self._opening, self._order, strict=True)]

    def series(self, values: Sequence[str]) -> Series:
        return tuple(values), ",".join(self.parts(values))


class _Splice:
    """Where a family's one label beyond its row's labels goes in the sorted label text:
    a row's text before it (up to its opening quote) and after it (from its closing one)."""

    def __init__(self, row_labels: LabelSet, extra: str) -> None:
        self._row_labels = row_labels
        self._at = sum(name < extra for name in row_labels.names)
        self._opening = f'{escape_label_name(extra)}="'
        self._row: Series | None = None
        self._around = ("", "")

    def around(self, row: Series) -> tuple[str, str]:
        """(head, tail) of a row's series: the row last asked for is kept, since the
        collector adds a row's samples together."""
        if row is not self._row:
            parts = self._row_labels.parts(row[0])
            head, tail = parts[:self._at], parts[self._at:]
            self._row = row
            self._around = (",".join([*head, self._opening]) if head else self._opening,
                            '",' + ",".join(tail) if tail else '"')
        return self._around


class _Only(Collector):
    def __init__(self, family: Metric) -> None:
        self._family = family

    def collect(self) -> Iterator[Metric]:
        yield self._family


class KpiFamily(GaugeMetricFamily):
    """A KPI gauge whose samples are kept as series references and an array of values
    until read.

    A family made by ``KpiCollector.collect`` is filled when first read (``fill``): the
    collector copies the rows then, the KPI values and their text are worked out later,
    off the event loop if the reader is (streams.worker.web).
    """

    def __init__(self, name: str, documentation: str, labels: Sequence[str],
                 fill: Callable[[], None] | None = None) -> None:
        self._series: list[Series] = []
        self._values = array("d")
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
    def values(self) -> array[float]:
        self._filled()
        return self._values

    def _labels(self) -> Iterator[dict[str, str]]:
        names = self._labelnames
        return (dict(zip(names, labels, strict=True)) for labels, _ in self.series)

    @property
    def samples(self) -> list[Sample]:
        """prometheus_client's view (registry.get_sample_value, generate_latest)."""
        return [Sample(self.name, labels, value)
                for labels, value in zip(self._labels(), self.values, strict=True)]

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

    def add_series(self, series: Series, value: float) -> None:
        """``add_metric`` of a series already written (a row's, shared)."""
        self._series.append(series)
        self._values.append(value)

    def appenders(self) -> tuple[Callable[[Series], None], Callable[[float], None]]:
        """Add a sample's series and its value: ``add_metric`` without its checks, for the
        collector's hot loop."""
        return self._series.append, self._values.append

    def chunks(self, lines: int = _CHUNK) -> Iterator[bytes]:
        """``generate_latest`` of this family alone, in pieces: HELP and TYPE by
        prometheus_client, then the sample lines, about ``lines`` at a time."""
        yield generate_latest(_Only(GaugeMetricFamily(self.name, self.documentation)))
        name = escape_metric_name(self.name)
        series, values = self.series, self.values
        for start in range(0, len(values), lines):
            yield "".join([
                f"{name}{{{labels}}} "
                f"{repr(value) if _MINUS_INF < value < 1e6 else _go_float(value)}\n"
                for (_, labels), value in zip(series[start:start + lines],
                                              values[start:start + lines], strict=True)
            ]).encode()

    def exposition(self) -> bytes:
        return b"".join(self.chunks())


_Group = tuple[Series, str, str, Sequence[str], Sequence[float]]
"""One row's samples of a labelled family: the row's series, its text before and after
the extra label, the extra label's values and the samples' values."""


class LabelledKpiFamily(KpiFamily):
    """A KPI gauge with one label beyond its rows' (action, product, content type,
    horizon: the last of ``labels``), its samples kept a row at a time: the row's series
    and its text on either side of the extra label, then the extra label's values (the
    same sequence for every row, for actions) and the samples' values."""

    def __init__(self, name: str, documentation: str, labels: Sequence[str],
                 fill: Callable[[], None] | None = None,
                 splices: dict[tuple[str, ...], _Splice] | None = None) -> None:
        """``splices``: shared by the families with the same labels, which add the same
        rows, so that each row's text around the extra label is written once."""
        super().__init__(name, documentation, labels, fill)
        self._row_labels = LabelSet(self._labelnames[:-1])
        splices = {} if splices is None else splices
        splice = splices.get(self._labelnames)
        if splice is None:
            splice = splices[self._labelnames] = _Splice(self._row_labels, self._labelnames[-1])
        self._splice = splice
        self._groups: list[_Group] = []

    @property
    def series(self) -> list[Series]:
        self._filled()
        return [row for row, _, _, _, values in self._groups for _ in values]

    @property
    def values(self) -> array[float]:
        self._filled()
        return array("d", [value for *_, values in self._groups for value in values])

    def _labels(self) -> Iterator[dict[str, str]]:
        self._filled()
        names = self._labelnames
        return (dict(zip(names, (*row, extra), strict=True))
                for (row, _), _, _, extras, _ in self._groups for extra in extras)

    def add_metric(self, labels: Sequence[str], value: float,
                   timestamp: Timestamp | float | None = None) -> None:
        if timestamp is not None:
            raise TypeError("KPI gauges have no timestamps")
        if len(labels) != len(self._labelnames):
            raise ValueError(f"labels {self._labelnames}, got values {labels}")
        self.add_row(self._row_labels.series(labels[:-1]), (labels[-1],), (value,))

    def add_row(self, row: Series, extras: Sequence[str], values: Sequence[float]) -> None:
        """Samples of one row, the extra label's value and the sample's value of each.
        ``row`` is a series of the labels before the extra one."""
        if len(extras) != len(values):
            raise ValueError(f"{len(extras)} label values for {len(values)} samples")
        if values:  # doubles: written as floats even if given ints, and 8 bytes each
            self._groups.append((row, *self._splice.around(row), extras, array("d", values)))

    def chunks(self, lines: int = _CHUNK) -> Iterator[bytes]:
        self._filled()
        yield generate_latest(_Only(GaugeMetricFamily(self.name, self.documentation)))
        name = escape_metric_name(self.name)
        escaped: dict[str, str] = {}
        groups = self._groups
        step = max(1, lines // 8)  # a row has ~6-11 samples
        for start in range(0, len(groups), step):
            part = groups[start:start + step]
            for *_, extras, _ in part:
                for extra in extras:
                    if extra not in escaped:
                        escaped[extra] = _escape_value(extra)
            yield "".join([
                f"{name}{{{head}{escaped[extra]}{tail}}} "
                f"{repr(value) if _MINUS_INF < value < 1e6 else _go_float(value)}\n"
                for _, head, tail, extras, values in part
                for extra, value in zip(extras, values, strict=True)]).encode()


def exposition(registry: Collector) -> bytes:
    """``generate_latest(registry)``, with KPI families written by their faster path."""
    return b"".join(map(text_of, registry.collect()))


def chunks_of(family: Metric) -> Iterator[bytes]:
    """One collected family's text, as ``generate_latest`` writes it, in pieces."""
    if isinstance(family, KpiFamily):
        return family.chunks()
    return iter((generate_latest(_Only(family)),))


def text_of(family: Metric) -> bytes:
    """One collected family's text, as ``generate_latest`` writes it."""
    return b"".join(chunks_of(family))


_CONTENT_METRICS = (("marketing_content_views", C_VIEWS),
                    ("marketing_content_engagements", C_ENGAGEMENTS),
                    ("marketing_content_clicks", C_CLICKS),
                    ("marketing_content_orders", C_ORDERS),
                    ("marketing_content_revenue", C_REVENUE))
_NO_EXTRAS = WindowExtras()
_ACTIONS = tuple(ACTION_FIELDS)
_ACTION_INDEXES = tuple(ACTION_FIELDS.values())


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
        splices: dict[tuple[str, ...], _Splice] = {}
        labelled: dict[str, KpiFamily] = {}
        for name, (help_text, extra) in LABELLED_HELP.items():
            labels = [*KPI_LABELS, *(["currency"] if name in MONEY_METRICS else []), *extra]
            labelled[name] = (LabelledKpiFamily(name, help_text, labels, fill, splices)
                              if extra else KpiFamily(name, help_text, labels, fill))
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
    seeded = _SeedFamilies(labelled)
    for campaign, channel, window, counts in rows:
        plain = plain_labels.series((campaign, channel, window))
        money = money_labels.series((campaign, channel, window, currency))
        for name, value in kpi_values(counts, seed.margin).items():
            if value is not None:
                add_series, add_value, is_money = appends[name]
                add_series(money if is_money else plain)
                add_value(value)
        seeded.add(plain, money, counts, extras.get((campaign, channel, window), _NO_EXTRAS),
                   seed)


class _SeedFamilies:
    """The KPIs with labels beyond campaign, channel and window, filled a row at a time."""

    def __init__(self, families: dict[str, KpiFamily]) -> None:
        def labelled(name: str) -> LabelledKpiFamily:
            family = families[name]
            assert isinstance(family, LabelledKpiFamily)
            return family

        self._reach = families["marketing_reach"]
        self._frequency = families["marketing_frequency"]
        self._actions = labelled("marketing_engagement_actions")
        self._product_units = labelled("marketing_product_units")
        self._product_revenue = labelled("marketing_product_revenue")
        self._content = [(labelled(name), index, name in MONEY_METRICS)
                         for name, index in _CONTENT_METRICS]
        self._ltv = labelled("marketing_ltv")
        self._ltv_cac = labelled("marketing_ltv_cac_ratio")

    def add(self, plain: Series, money: Series, counts: Sequence[int],
            extras: WindowExtras, seed: SeedKpis) -> None:
        """One row's samples: ``plain`` and ``money`` its series without and with the
        currency."""
        if extras.reach is not None:
            reach = served_reach(counts, extras.reach)
            self._reach.add_series(plain, reach)
            often = frequency(counts, reach)
            if often is not None:
                self._frequency.add_series(plain, often)
        self._actions.add_row(plain, _ACTIONS, [float(counts[i]) for i in _ACTION_INDEXES])
        products = top_named(extras.products, seed.top_products, PRODUCT_RANK)
        if products:
            names = [product for product, _ in products]
            self._product_units.add_row(plain, names, [float(units) for _, (units, _) in products])
            self._product_revenue.add_row(
                money, names, [revenue / 1_000_000 for _, (_, revenue) in products])
        content = top_named(content_counts(counts, extras.content), seed.top_content_types,
                            CONTENT_RANK)
        if content:
            names = [content_type for content_type, _ in content]
            for family, index, is_money in self._content:
                family.add_row(money if is_money else plain, names, [
                    values[index] / 1_000_000 if is_money else float(values[index])
                    for _, values in content])
        if plain[0][2] == "total":
            horizons = ltv_values(extras.ltv, seed.ltv_horizons, counts)
            self._ltv.add_row(money, [horizon for horizon, _, _ in horizons],
                              [ltv for _, ltv, _ in horizons])
            ratios = [(horizon, ratio) for horizon, _, ratio in horizons if ratio is not None]
            self._ltv_cac.add_row(plain, [horizon for horizon, _ in ratios],
                                  [ratio for _, ratio in ratios])
