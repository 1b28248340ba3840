"""Table snapshot -> Prometheus gauges, read at scrape time.

With 10,000 campaign-channels a scrape has ~1,300,000 KPI samples, and prometheus_client's
text exposition spends ~6 us on each (a Sample built, its labels escaped) and holds ~300
bytes a sample until written: too slow, and too big, for /metrics. So a scrape's families
share its rows (``ScrapeRows``): each row's label text escaped once, each KPI worked out for
every row in one pass (``kpi_columns``), and a family writes its lines straight from those,
a piece at a time (``KpiFamily.chunks``), byte for byte what ``generate_latest`` writes
(tests hold it to that). Nothing is held per sample; prometheus_client's ``samples`` are
built only if something else reads a family.
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
    MICROS,
    PRODUCT_RANK,
    content_counts,
    frequency,
    kpi_columns,
    ltv_values,
    served_reach,
    top_named,
)
from metrics.names import KPI_HELP, KPI_LABELS, LABELLED_HELP, MONEY_METRICS
from streams.windows.counts import ACTION_FIELDS, CLICKS, ENGAGEMENTS, ORDERS, REVENUE, VIEWS
from streams.windows.extras import C_CLICKS, C_ENGAGEMENTS, C_ORDERS, C_REVENUE, C_VIEWS
from streams.windows.state import ExtrasRow, KpiRow, WindowExtras

__all__ = ["KpiCollector", "KpiFamily", "RowSamples", "ScrapeRows", "SeedKpis", "chunks_of",
           "exposition", "go_float", "text_of"]

_go_float: Callable[[float], str] = floatToGoString  # untyped in prometheus_client
_MINUS_INF = float("-inf")
_CHUNK = 20_000
"""Sample lines written, encoded and handed on at a time: a family's whole text (~25 MB
for the largest at 10,000 campaign-channels) is never held at once, nor its lines."""

def go_float(value: float) -> str:
    """``floatToGoString``: ``repr`` for a finite value below 1e6 (all it would do there),
    the rest by prometheus_client. The exposition inlines the same test."""
    return repr(value) if _MINUS_INF < value < 1e6 else _go_float(value)


def _escape_value(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r'\"')


class _Text:
    """Label text as generate_latest writes it: ``name="value"`` with the value escaped,
    each value escaped once per scrape (the same campaigns, channels and windows come
    back in every family)."""

    def __init__(self) -> None:
        self._escaped: dict[str, str] = {}

    def escaped(self, value: str) -> str:
        text = self._escaped.get(value)
        if text is None:
            text = self._escaped[value] = _escape_value(value)
        return text

    def label(self, name: str, value: str) -> str:
        return f'{escape_label_name(name)}="{self.escaped(value)}"'


class ScrapeRows:
    """One scrape's rows, their label text and what their families' samples are made
    from, worked out at the first read of any family (``fill``: off the event loop if the
    reader is, streams.worker.web). Nothing is held per sample: a family writes its lines
    from these, a piece of rows at a time."""

    def __init__(self, rows: list[KpiRow], extras: list[ExtrasRow], currency: str,
                 seed: SeedKpis) -> None:
        self._rows = rows
        self._extras_rows = extras
        self.currency = currency
        self.seed = seed
        self._filled = False
        self.keys: list[tuple[str, str, str]] = []
        """(campaign, channel, window) of each row."""
        self.counts: list[Sequence[int]] = []
        self.pair_text: list[str] = []
        """``campaign="...",channel="..."`` of each row."""
        self.window_text: list[str] = []
        self.currency_text = ""
        self.plain: list[str] = []
        """Each row's label text without the currency, and with it (``money``)."""
        self.money: list[str] = []
        self.columns: dict[str, list[float | None]] = {}
        """KPI name -> its value of each row (None: absent), and of the labelled ones
        without an extra label (reach, frequency)."""
        self.products: list[Sequence[tuple[str, list[int]]]] = []
        self.content: list[Sequence[tuple[str, list[int]]]] = []
        self.ltv: list[Sequence[tuple[str, float, float | None]]] = []

    def fill(self) -> None:
        if self._filled:
            return
        self._filled = True
        text = _Text()
        rows, self._rows = self._rows, []
        extras = {(c, ch, w): e for c, ch, w, e in self._extras_rows}
        self._extras_rows = []
        self.keys = [(campaign, channel, window) for campaign, channel, window, _ in rows]
        self.counts = [counts for *_, counts in rows]
        self.pair_text = [f"{text.label('campaign', c)},{text.label('channel', ch)}"
                          for c, ch, _ in self.keys]
        self.window_text = [text.label("window", w) for *_, w in self.keys]
        self.currency_text = text.label("currency", self.currency)
        self.plain = [f"{pair},{window}"
                      for pair, window in zip(self.pair_text, self.window_text, strict=True)]
        self.money = [f"{pair},{self.currency_text},{window}"
                      for pair, window in zip(self.pair_text, self.window_text, strict=True)]
        seed = self.seed
        self.columns = kpi_columns(self.counts, seed.margin)
        row_extras = [extras.get(key, _NO_EXTRAS) for key in self.keys]
        reach = [None if e.reach is None else served_reach(counts, e.reach)
                 for counts, e in zip(self.counts, row_extras, strict=True)]
        self.columns["marketing_reach"] = reach
        self.columns["marketing_frequency"] = [
            None if r is None else frequency(counts, r)
            for counts, r in zip(self.counts, reach, strict=True)]
        self.products = [top_named(e.products, seed.top_products, PRODUCT_RANK)
                         if e.products else () for e in row_extras]
        top_content = seed.top_content_types
        self.content = [top_named(content_counts(counts, e.content), top_content, CONTENT_RANK)
                        if e.content or top_content < 1 else _unknown_content(counts)
                        for counts, e in zip(self.counts, row_extras, strict=True)]
        self.ltv = [ltv_values(e.ltv, seed.ltv_horizons, counts) if window == "total" else ()
                    for (*_, window), counts, e in zip(self.keys, self.counts, row_extras,
                                                       strict=True)]


def _unknown_content(counts: Sequence[int]) -> Sequence[tuple[str, list[int]]]:
    """``top_named(content_counts(counts, {}), top)`` for any ``top`` of 1 or more,
    without the work: all is ``unknown``."""
    unknown = [counts[VIEWS], counts[ENGAGEMENTS], counts[CLICKS], counts[ORDERS],
               counts[REVENUE]]
    return (("unknown", unknown),) if any(unknown) else ()


class _Only(Collector):
    def __init__(self, family: Metric) -> None:
        self._family = family

    def collect(self) -> Iterator[Metric]:
        yield self._family


RowSamples = Callable[[ScrapeRows, int], Sequence[tuple[str, float | None]]]
"""A labelled family's samples of one row (by index): its extra label's value, and the
sample's value (None: absent)."""


class KpiFamily(GaugeMetricFamily):
    """A KPI gauge of one scrape's rows, written from them (``chunks``): a value per row
    (``column``), or with ``row_samples`` any number per row, each with a value of the
    one label past the row's (the last of ``labels``: action, product, content type,
    horizon). prometheus_client's ``samples`` are built only if something else reads it.
    """

    def __init__(self, name: str, documentation: str, labels: Sequence[str], scrape: ScrapeRows,
                 *, column: str | None = None, row_samples: RowSamples | None = None) -> None:
        super().__init__(name, documentation, labels=labels)
        if (column is None) == (row_samples is None):
            raise ValueError("a KPI family has a column or row samples")
        self._money = "currency" in self._labelnames
        row_labels = (*KPI_LABELS, *(["currency"] if self._money else []))
        given = self._labelnames if row_samples is None else self._labelnames[:-1]
        if given != row_labels:  # what the scrape's row text is written for
            raise ValueError(f"a KPI family's row labels are {row_labels}, got {given}")
        self._scrape = scrape
        self._column = column
        self._row_samples = row_samples
        self._around = None if row_samples is None else _around(self._labelnames)

    @property
    def samples(self) -> list[Sample]:
        """prometheus_client's view (registry.get_sample_value, generate_latest)."""
        scrape, names = self._scrape, self._labelnames
        scrape.fill()
        currency = (scrape.currency,) if self._money else ()
        if self._row_samples is None:
            assert self._column is not None
            return [Sample(self.name, dict(zip(names, (*key, *currency), strict=True)), value)
                    for key, value in zip(scrape.keys, scrape.columns[self._column],
                                          strict=True) if value is not None]
        return [Sample(self.name, dict(zip(names, (*key, *currency, extra), strict=True)),
                       value)
                for i, key in enumerate(scrape.keys)
                for extra, value in self._row_samples(scrape, i) if value is not None]

    @samples.setter
    def samples(self, value: list[Sample]) -> None:
        if value:  # Metric.__init__ sets [] and nothing else may: the rows are the data
            raise TypeError("KPI families are written from their rows")

    def add_metric(self, labels: Sequence[str], value: float,
                   timestamp: Timestamp | float | None = None) -> None:
        raise TypeError("KPI families are written from their rows")

    def chunks(self, lines: int = _CHUNK) -> Iterator[bytes]:
        """``generate_latest`` of this family alone, in pieces: HELP and TYPE by
        prometheus_client, then the sample lines, about ``lines`` at a time."""
        scrape = self._scrape
        scrape.fill()
        yield generate_latest(_Only(GaugeMetricFamily(self.name, self.documentation)))
        name = escape_metric_name(self.name)
        count = len(scrape.keys)
        if self._row_samples is None:
            assert self._column is not None
            texts = scrape.money if self._money else scrape.plain
            values = scrape.columns[self._column]
            for start in range(0, count, lines):
                yield "".join([
                    f"{name}{{{labels}}} "
                    f"{repr(value) if _MINUS_INF < value < 1e6 else _go_float(value)}\n"
                    for labels, value in zip(texts[start:start + lines],
                                             values[start:start + lines], strict=True)
                    if value is not None]).encode()
            return
        assert self._around is not None
        around, row_samples, text = self._around, self._row_samples, _Text()
        pairs, windows, currency = scrape.pair_text, scrape.window_text, scrape.currency_text
        step = max(1, lines // 8)  # a row has ~6-11 samples
        for start in range(0, count, step):
            yield "".join([
                f"{name}{{{head}{text.escaped(extra)}{tail}}} "
                f"{repr(value) if _MINUS_INF < value < 1e6 else _go_float(value)}\n"
                for i in range(start, min(start + step, count))
                for samples in (row_samples(scrape, i),) if samples
                for head, tail in (around(pairs[i], currency, windows[i]),)
                for extra, value in samples if value is not None]).encode()

    def exposition(self) -> bytes:
        return b"".join(self.chunks())


def _around(names: Sequence[str]) -> Callable[[str, str, str], tuple[str, str]]:
    """For labels campaign, channel, window, maybe currency and one more (the last): a
    row's label text before that one's value (up to its opening quote) and after it (from
    its closing quote), from the row's campaign-and-channel text, the currency's (unused
    without a currency label) and the window's, as sorted by name."""
    extra = names[-1]
    order = sorted(names)
    if order.index("channel") != order.index("campaign") + 1:
        raise ValueError(f"{extra!r} sorts between campaign and channel")
    money = "currency" in names
    # how many of the row's parts (campaign and channel, currency, window) come first
    before = sum(name < extra for name in ("campaign", *(["currency"] if money else []),
                                            "window"))
    o = f'{escape_label_name(extra)}="'
    around: Callable[[str, str, str], tuple[str, str]] = {  # (pair, currency, window)
        (True, 0): lambda p, c, w: (o, f'",{p},{c},{w}'),
        (True, 1): lambda p, c, w: (f"{p},{o}", f'",{c},{w}'),
        (True, 2): lambda p, c, w: (f"{p},{c},{o}", f'",{w}'),
        (True, 3): lambda p, c, w: (f"{p},{c},{w},{o}", '"'),
        (False, 0): lambda p, c, w: (o, f'",{p},{w}'),
        (False, 1): lambda p, c, w: (f"{p},{o}", f'",{w}'),
        (False, 2): lambda p, c, w: (f"{p},{w},{o}", '"'),
    }[money, before]
    return around


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
        scrape = ScrapeRows(list(self._rows()), list(self._seed.extras()), self._currency,
                         self._seed)

        def labels(name: str, *extra: str) -> list[str]:
            return [*KPI_LABELS, *(["currency"] if name in MONEY_METRICS else []), *extra]

        for name, help_text in KPI_HELP.items():
            yield KpiFamily(name, help_text, labels(name), scrape, column=name)
        for name, (help_text, extra) in LABELLED_HELP.items():
            if extra:
                yield KpiFamily(name, help_text, labels(name, *extra), scrape,
                                row_samples=_ROW_SAMPLES[name])
            else:
                yield KpiFamily(name, help_text, labels(name), scrape, column=name)

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())


def _actions(scrape: ScrapeRows, row: int) -> Sequence[tuple[str, float | None]]:
    counts = scrape.counts[row]
    return [(action, float(counts[index])) for action, index in _ACTION_FIELDS]


def _content(index: int, scale: int | None) -> RowSamples:
    def samples(scrape: ScrapeRows, row: int) -> Sequence[tuple[str, float | None]]:
        return [(content_type, float(values[index]) if scale is None else values[index] / scale)
                for content_type, values in scrape.content[row]]
    return samples


def _product_units(scrape: ScrapeRows, row: int) -> Sequence[tuple[str, float | None]]:
    return [(product, float(units)) for product, (units, _) in scrape.products[row]]


def _product_revenue(scrape: ScrapeRows, row: int) -> Sequence[tuple[str, float | None]]:
    return [(product, revenue / MICROS) for product, (_, revenue) in scrape.products[row]]


def _ltv(scrape: ScrapeRows, row: int) -> Sequence[tuple[str, float | None]]:
    return [(horizon, ltv) for horizon, ltv, _ in scrape.ltv[row]]


def _ltv_cac(scrape: ScrapeRows, row: int) -> Sequence[tuple[str, float | None]]:
    return [(horizon, ratio) for horizon, _, ratio in scrape.ltv[row]]


_ACTION_FIELDS = tuple(ACTION_FIELDS.items())
_ROW_SAMPLES: dict[str, RowSamples] = {
    "marketing_engagement_actions": _actions,
    "marketing_product_units": _product_units,
    "marketing_product_revenue": _product_revenue,
    **{name: _content(index, MICROS if name in MONEY_METRICS else None)
       for name, index in (("marketing_content_views", C_VIEWS),
                           ("marketing_content_engagements", C_ENGAGEMENTS),
                           ("marketing_content_clicks", C_CLICKS),
                           ("marketing_content_orders", C_ORDERS),
                           ("marketing_content_revenue", C_REVENUE))},
    "marketing_ltv": _ltv,
    "marketing_ltv_cac_ratio": _ltv_cac,
}
