"""Table snapshot -> Prometheus gauges, read at scrape time.

With 10,000 campaign-channels and the seed KPIs a scrape has ~2,000,000 KPI samples, and
prometheus_client's text exposition spends ~6 us on each (a Sample built, its labels
escaped, ``repr`` of its value) and holds ~300 bytes a sample until written: too slow, and
too big, for /metrics. So a scrape's families share its rows (``ScrapeRows``): each row's
label text escaped once (and kept for the next scrape of the same rows, ``RowText``), each
KPI worked out for every row at once in numpy (``kpi_columns``), and a family writes its
lines straight from those, a piece at a time
(``KpiFamily.chunks``): the values' digits by orjson for a whole piece at once
(``go_floats``) and the lines joined from their parts in C, byte for byte what
``generate_latest`` writes (tests hold it to that). Nothing is held per sample line;
prometheus_client's ``samples`` are built only if something else reads a family.
"""

from __future__ import annotations

import functools
import math
import pickle
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from itertools import accumulate, chain, compress, pairwise, repeat
from operator import is_not
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import orjson
from prometheus_client import generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.openmetrics.exposition import escape_label_name, escape_metric_name
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample, Timestamp
from prometheus_client.utils import floatToGoString

from metrics.kpis import (
    CONTENT_RANK,
    PRODUCT_RANK,
    Column,
    amount_column,
    content_counts,
    counter_matrix,
    float_column,
    frequency,
    int_matrix,
    kpi_columns,
    ltv_values,
    served_reach,
    top_named,
)
from metrics.names import KPI_HELP, KPI_LABELS, LABELLED_HELP, MONEY_METRICS
from streams.windows.counts import (
    ACTION_FIELDS,
    CLICKS,
    ENGAGEMENTS,
    ORDERS,
    REVENUE,
    USER_VIEWS,
    VIEWS,
)
from streams.windows.extras import C_CLICKS, C_ENGAGEMENTS, C_ORDERS, C_REVENUE, C_VIEWS, Named
from streams.windows.state import ExtrasRow, KpiRow

__all__ = ["FlatValues", "KpiCollector", "KpiFamily", "RowSamples", "RowValues", "ScrapeRows",
           "SeedKpis", "chunks_of", "exposition", "go_float", "go_floats", "text_of"]

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
    from, worked out at the first read of any family (``fill``: in the /metrics writer
    process, streams.worker.scrape_process, which gets them pickled as ``SentRows``).
    Nothing is held per sample line: a family writes its lines from these, a piece of rows
    at a time."""

    def __init__(self, rows: Sequence[KpiRow], extras: Sequence[ExtrasRow], currency: str,
                 seed: SeedKpis, sent: SentRows | None = None) -> None:
        """``rows`` and ``extras`` are taken into columns here, at once: they may hold the
        state's own lists and maps (``KpiState.live_extras_rows``)."""
        self._sent: SentRows | None = SentRows.of(rows, extras) if sent is None else sent
        """The rows and extras taken into columns (the writer gets only these)."""
        self.currency = currency
        self.seed = seed
        self._filled = False
        self.keys: list[tuple[str, str, str]] = []
        """(campaign, channel, window) of each row."""
        self.text = RowText([], currency)
        """Each row's label text (kept from the last scrape when its rows were the same)."""
        self.columns: dict[str, Column] = {}
        """KPI name -> its value of each row (NaN: absent), and of the labelled ones
        without an extra label (reach, frequency)."""
        self.named: dict[str, RowValues] = {}
        """Labelled KPI name -> its extra label's values of each row and their samples."""

    def __reduce__(self) -> tuple[type[ScrapeRows], tuple[object, ...]]:
        """A scrape not yet filled pickles as its rows in columns (``SentRows``) and its
        settings (to be written in another process, streams.worker.scrape_process);
        where the extras came from stays behind."""
        if self._filled:
            raise TypeError("a scrape's rows are sent before its values are worked out")
        return ScrapeRows, ([], [], self.currency, replace(self.seed, extras=_no_extras),
                            self._sent)

    def fill(self) -> None:
        if self._filled:
            return
        self._filled = True
        sent, self._sent = self._sent, None
        assert sent is not None
        self.keys = keys = sent.keys
        self.text = RowText.of(keys, self.currency)
        seed = self.seed
        matrix = sent.matrix
        self.columns = kpi_columns(matrix, seed.margin)
        extra_of = {key: j for j, key in enumerate(sent.extra_keys)}  # the last one's
        at = [extra_of.get(key, -1) for key in keys]  # each row's place in them, or -1
        del extra_of
        estimates = sent.reach.tolist()
        user_views = matrix[:, USER_VIEWS].tolist()
        reach = [None if j < 0 or math.isnan(estimates[j])
                 else served_reach(views, estimates[j])
                 for j, views in zip(at, user_views, strict=True)]
        self.columns["marketing_reach"] = _column_of(reach)
        self.columns["marketing_frequency"] = _column_of([
            None if r is None else frequency(views, r)
            for views, r in zip(user_views, reach, strict=True)])
        del estimates, user_views, reach
        named_of = sent.named_extras()
        named = [named_of.get(j, _NO_NAMED) for j in at]  # each row's NamedExtras
        del at, named_of
        self.named = {"marketing_engagement_actions": (
            [_ACTION_NAMES] * len(keys), matrix[:, _ACTION_INDEXES].astype(np.float64))}
        products = [top_named(p, seed.top_products, PRODUCT_RANK) if p else ()
                    for p, _, _ in named]
        product_names, starts, units_revenue = _flat_named(products, 2)
        del products
        self.named["marketing_product_units"] = (
            product_names, FlatValues(float_column(units_revenue[:, 0]), starts))
        self.named["marketing_product_revenue"] = (
            product_names, FlatValues(amount_column(units_revenue[:, 1]), starts))
        del product_names, units_revenue
        top_content = seed.top_content_types
        if top_content >= 1 and not any(content for _, content, _ in named):
            self._only_unknown_content(matrix)
        else:
            # not kept past here: ~27 MB at 10,000 campaign-channels x 4 windows
            counts = matrix.tolist()
            content = [top_named(content_counts(c, held), top_content, CONTENT_RANK)
                       if held or top_content < 1 else _unknown_content(c)
                       for c, (_, held, _) in zip(counts, named, strict=True)]
            del counts
            content_names, starts, content_values = _flat_named(content, 5)
            del content
            for name, index, _ in _CONTENT_COUNTERS:
                column = content_values[:, index]
                self.named[name] = (content_names, FlatValues(
                    amount_column(column) if name in MONEY_METRICS else float_column(column),
                    starts))
            del content_names, content_values
        ltv = [ltv_values(credits, seed.ltv_horizons, matrix[i].tolist())
               if window == "total" else ()
               for i, ((*_, window), (_, _, credits)) in enumerate(zip(keys, named,
                                                                       strict=True))]
        horizons = [[label for label, _, _ in values] for values in ltv]
        self.named["marketing_ltv"] = horizons, [[value for _, value, _ in v] for v in ltv]
        self.named["marketing_ltv_cac_ratio"] = (
            horizons, [[ratio for _, _, ratio in v] for v in ltv])

    def _only_unknown_content(self, matrix: npt.NDArray[Any]) -> None:
        """The content families when no row has a content type: each row's counters are
        all ``unknown``'s (``_unknown_content``), a column each, absent where the five
        are 0; no list per row."""
        fields = [source for _, _, source in _CONTENT_COUNTERS]
        some = (matrix[:, [_COUNTER_OF[f] for f in fields]] != 0).any(axis=1)
        unknown = [_UNKNOWN] * len(matrix)
        for name, _, source in _CONTENT_COUNTERS:
            self.named[name] = (unknown, np.where(some, self.columns[source], np.nan)[:, None])

    def around(self, names: Sequence[str]) -> tuple[list[bytes], list[bytes]]:
        """``RowText.around`` of this scrape's rows."""
        self.fill()
        return self.text.around(names)


@dataclass(frozen=True, slots=True)
class FlatValues:
    """A labelled family's values of every row in one column, row after row: row ``i``'s
    are ``column[starts[i]:starts[i + 1]]`` (NaN: absent). Worked out for all rows at
    once, where a list of floats per row took ~0.4 s of the writer's answer at 10,000
    campaign-channels with products and content types."""

    column: Column
    starts: list[int]

    def rows(self) -> list[list[float]]:
        starts = self.starts
        return [self.column[a:b].tolist() for a, b in pairwise(starts)]

    def between(self, first: int, end: int) -> Column:
        """The values of rows [first, end)."""
        last = len(self.starts) - 1
        return self.column[self.starts[min(first, last)]:self.starts[min(end, last)]]


def _flat_named(tops: Sequence[Sequence[tuple[str, Sequence[int]]]], width: int
                ) -> tuple[list[list[str]], list[int], npt.NDArray[Any]]:
    """Each row's names, where each row's start in the flat list of them all, and their
    ``width`` counters as one matrix (``int_matrix``)."""
    names = [[name for name, _ in top] for top in tops]
    starts = list(accumulate(map(len, names), initial=0))
    return names, starts, int_matrix([values for top in tops for _, values in top], width)


NamedExtras = tuple[Named, Named, dict[int, int]]
"""A window's products, content types and LTV credits."""


@dataclass(frozen=True, slots=True)
class SentRows:
    """A scrape's rows as the writer process gets them: their keys, their counters as one
    matrix (``counter_matrix``) and their extras in columns, the reach a float each (NaN:
    none) and the products, content types and LTV credits of the rows that have any
    encoded at once, in C (``named_extras`` reads them back). Made on the event loop from
    rows that may hold the state's own maps (``KpiState.live_extras_rows``): no Python
    object per counter or per name, to copy, pickle or free there."""

    keys: list[tuple[str, str, str]]
    matrix: npt.NDArray[Any]
    extra_keys: list[tuple[str, str, str]]
    reach: Column
    named: bytes
    """``_encoded_named``: [place in ``extra_keys``, products, content types, LTV credits]
    of each extras row that has any."""

    @classmethod
    def of(cls, rows: Sequence[KpiRow], extras: Sequence[ExtrasRow]) -> SentRows:
        return cls([(campaign, channel, window) for campaign, channel, window, _ in rows],
                   counter_matrix([counts for *_, counts in rows]),
                   [(campaign, channel, window) for campaign, channel, window, _ in extras],
                   np.array([math.nan if e.reach is None else e.reach for *_, e in extras],
                            dtype=np.float64),
                   _encoded_named([(j, e.products, e.content, e.ltv)
                                   for j, (*_, e) in enumerate(extras)
                                   if e.products or e.content or e.ltv]))

    def named_extras(self) -> dict[int, NamedExtras]:
        """Place in ``extra_keys`` -> its products, content types and LTV credits, where it
        has any."""
        return _decoded_named(self.named)

    def __reduce__(self) -> tuple[type[SentRows], tuple[object, ...]]:
        return SentRows, (self.keys, self.matrix, self.extra_keys, self.reach, self.named)


_JSON, _PICKLE = b"j", b"p"


def _encoded_named(named: list[tuple[int, Named, Named, dict[int, int]]]) -> bytes:
    """The extras' maps as bytes: orjson's JSON (~0.2 s at 10,000 campaign-channels with
    30 products each, where a list copied per name on the loop, pickled and freed took
    ~1.5 s), or pickle's if orjson refuses (an integer past 64 bits): exact either way."""
    try:
        return _JSON + orjson.dumps(named, option=orjson.OPT_NON_STR_KEYS)
    except orjson.JSONEncodeError:
        return _PICKLE + pickle.dumps(named, protocol=pickle.HIGHEST_PROTOCOL)


def _decoded_named(encoded: bytes) -> dict[int, NamedExtras]:
    if encoded[:1] == _PICKLE:
        named: list[Any] = pickle.loads(encoded[1:])  # made by _encoded_named
        return {j: (products, content, ltv) for j, products, content, ltv in named}
    return {j: (products, content, {int(days): v for days, v in ltv.items()} if ltv else {})
            for j, products, content, ltv in orjson.loads(encoded[1:])}


class RowText:
    """The label text of a scrape's rows, each row's escaped once; a scrape whose rows are
    the last one's (the same campaign-channels and windows in the same order, as between
    two scrapes without a new or retired campaign-channel) reuses the last one's (``of``):
    ~0.2 s at 10,000 campaign-channels."""

    _last: RowText | None = None

    def __init__(self, keys: list[tuple[str, str, str]], currency: str) -> None:
        self.keys = keys
        self.currency = currency
        text = _Text()

        @functools.cache
        def pair(campaign: str, channel: str) -> str:
            return f'campaign="{text.escaped(campaign)}",channel="{text.escaped(channel)}"'

        @functools.cache
        def window_label(window: str) -> str:
            return f'window="{text.escaped(window)}"'

        self.pair_text = [pair(c, ch) for c, ch, _ in keys]
        """``campaign="...",channel="..."`` of each row."""
        self.window_text = [window_label(w) for *_, w in keys]
        self.currency_text = text.label("currency", currency)
        self.plain = [f"{p},{w}}} ".encode()
                      for p, w in zip(self.pair_text, self.window_text, strict=True)]
        """Each row's label text and the brace after it, without the currency and with it
        (``money``): ``campaign="..",channel="..",window=".."} ``."""
        self.money = [f"{p},{self.currency_text},{w}}} ".encode()
                      for p, w in zip(self.pair_text, self.window_text, strict=True)]
        self._around: dict[tuple[bool, int, str], tuple[list[bytes], list[bytes]]] = {}

    @classmethod
    def of(cls, keys: list[tuple[str, str, str]], currency: str) -> RowText:
        last = cls._last
        if last is not None and last.currency == currency and last.keys == keys:
            return last
        made = cls._last = cls(keys, currency)
        return made

    def around(self, names: Sequence[str]) -> tuple[list[bytes], list[bytes]]:
        """For a family with labels ``names`` (the row's and one more, the last): each
        row's label text before that one's value (up to its opening quote) and after it
        (from its closing quote, with the brace and space before the value), shared by
        the families with the same extra label and currency or not."""
        key = (*_place(names), names[-1])
        made = self._around.get(key)
        if made is None:
            currency, around = self.currency_text, _around_at(*key)
            parts = [around(p, currency, w)
                     for p, w in zip(self.pair_text, self.window_text, strict=True)]
            # One object for each distinct piece: the tail is the same in every row where
            # the extra label sorts last, the head where it sorts first, and only the
            # window's in between (~20 MB less at 10,000 campaign-channels).
            pieces = _Encoded()
            made = self._around[key] = ([pieces[h] for h, _ in parts],
                                        [pieces[f"{t}}} "] for _, t in parts])
        return made


RowValues = tuple[Sequence[Sequence[str]],
                  Sequence[Sequence[float | None]] | Column | FlatValues]
"""A labelled family's samples, by row: the values of its extra label in each row, and
each one's sample value (None: absent), or a matrix of them when every row has the same
extra labels (engagement actions), or all of them in one column (``FlatValues``)."""


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


RowSamples = Callable[[ScrapeRows], RowValues]
"""A labelled family's samples of every row of a (filled) scrape."""


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
        if row_samples is not None:
            _place(self._labelnames)  # refuses an extra label it cannot place
        self._scrape = scrape
        self._column = column
        self._row_samples = row_samples

    @property
    def samples(self) -> list[Sample]:
        """prometheus_client's view (registry.get_sample_value, generate_latest)."""
        scrape, names = self._scrape, self._labelnames
        scrape.fill()
        currency = (scrape.currency,) if self._money else ()
        if self._row_samples is None:
            assert self._column is not None
            return [Sample(self.name, dict(zip(names, (*key, *currency), strict=True)), value)
                    for key, value in zip(scrape.keys, scrape.columns[self._column].tolist(),
                                          strict=True) if not math.isnan(value)]
        extras, values = self._row_samples(scrape)
        if isinstance(values, np.ndarray):
            values = values.tolist()
        elif isinstance(values, FlatValues):
            values = values.rows()
        return [Sample(self.name, dict(zip(names, (*key, *currency, extra), strict=True)),
                       value)
                for key, row_extras, row_values in zip(scrape.keys, extras, values,
                                                       strict=True)
                for extra, value in zip(row_extras, row_values, strict=True)
                if value is not None and not math.isnan(value)]

    @samples.setter
    def samples(self, value: list[Sample]) -> None:
        if value:  # Metric.__init__ sets [] and nothing else may: the rows are the data
            raise TypeError("KPI families are written from their rows")

    def add_metric(self, labels: Sequence[str], value: float,
                   timestamp: Timestamp | float | None = None) -> None:
        raise TypeError("KPI families are written from their rows")

    def chunks(self, lines: int = _CHUNK) -> Iterator[bytes]:
        """``generate_latest`` of this family alone, in pieces: HELP and TYPE by
        prometheus_client, then the sample lines, about ``lines`` at a time (the samples
        of a row stay together)."""
        scrape = self._scrape
        scrape.fill()
        yield generate_latest(_Only(GaugeMetricFamily(self.name, self.documentation)))
        name = escape_metric_name(self.name).encode()
        count = len(scrape.keys)
        if self._row_samples is None:
            assert self._column is not None
            texts = scrape.text.money if self._money else scrape.text.plain
            column = scrape.columns[self._column]
            for start in range(0, count, lines):
                yield _lines(name, (texts[start:start + lines],), column[start:start + lines])
            return
        heads, tails = scrape.around(self._labelnames)
        extras, values = self._row_samples(scrape)
        escaped = _EscapedBytes()
        step = max(1, lines // 8)  # a row has ~6-11 samples
        for start in range(0, count, step):
            stop = start + step
            row_extras = extras[start:stop]
            lengths = list(map(len, row_extras))
            # per sample: the row's text before the extra label's value, the value
            # escaped, the row's text after it
            yield _lines(name, (chain.from_iterable(map(repeat, heads[start:stop], lengths)),
                                map(escaped.__getitem__, chain.from_iterable(row_extras)),
                                chain.from_iterable(map(repeat, tails[start:stop], lengths))),
                         values[start:stop].ravel() if isinstance(values, np.ndarray)
                         else values.between(start, stop) if isinstance(values, FlatValues)
                         else list(chain.from_iterable(values[start:stop])))

    def exposition(self) -> bytes:
        return b"".join(self.chunks())


def _lines(name: bytes, labels: Sequence[Iterable[bytes]],
           values: Sequence[float | None] | Column) -> bytes:
    """Sample lines ``name{labels}value``, one per value (None or NaN: no line), with each
    line's label text in pieces, one from each of ``labels``, the last up to the value
    (``...} ``). Joined in one go, in C: no line is made on its own, and each value comes
    with the newline and the next line's ``name{`` (two pieces a line for a plain KPI,
    where four took ~40 % longer)."""
    start = name + b"{"
    written = go_floats(values, b"\n" + start)
    present = _present(values)
    last = _last_present(present, len(written))
    if last is None:
        return b""
    written[last] = written[last][:-len(start)]  # the last line: its newline only
    pieces: Iterator[tuple[bytes, ...]] = zip(*labels, written, strict=True)
    if present is not None:
        pieces = compress(pieces, present)
    return b"".join(chain((start,), chain.from_iterable(pieces)))


def _present(values: Sequence[float | None] | Column) -> list[bool] | None:
    """Whether each value is there (not None, not NaN); None: all are."""
    if isinstance(values, np.ndarray):
        absent = np.isnan(values)
        return cast("list[bool]", (~absent).tolist()) if absent.any() else None
    return list(map(is_not, values, repeat(None))) if None in values else None


def _last_present(present: list[bool] | None, count: int) -> int | None:
    if present is None:
        return count - 1 if count else None
    return len(present) - 1 - present[::-1].index(True) if True in present else None


def go_floats(values: Sequence[float | None] | Column, after: bytes = b"") -> list[bytes]:
    """``go_float`` of each value, encoded, and ``after`` it (None, NaN: ``null``): orjson
    writes the shortest digits that read back as the value, as ``repr`` does, and between
    1e-4 and 1e6 (and 0) in the same form, ~8 times faster than ``repr`` one by one; the
    few outside that are prometheus_client's."""
    if isinstance(values, np.ndarray):
        return _go_floats_of_column(values, after)
    if not values:
        return []
    text = orjson.dumps(values)
    out = _split(text, after)
    present = cast("list[float]", [v for v in values if v is not None]
                   if b"null" in text else values)
    if present and (b"e" in text or b"0.0000" in text or b"null" in text
                    or max(present) >= 1e6 or min(present) <= -1e6):
        for i, value in enumerate(values):
            if value is not None and not (1e-4 <= abs(value) < 1e6 or value == 0):
                out[i] = go_float(value).encode() + after
    return out


def _go_floats_of_column(values: Column, after: bytes) -> list[bytes]:
    """``go_floats`` of a KPI column, the values outside orjson's range found by numpy."""
    if not values.size:
        return []
    out = _split(orjson.dumps(np.ascontiguousarray(values),
                              option=orjson.OPT_SERIALIZE_NUMPY), after)
    size = np.abs(values)
    usual = ((size >= 1e-4) & (size < 1e6)) | (values == 0) | np.isnan(values)
    for i in np.flatnonzero(~usual).tolist():
        out[i] = go_float(float(values[i])).encode() + after
    return out


def _split(array_text: bytes, after: bytes) -> list[bytes]:
    """orjson's ``[a,b,...]`` as ``[a + after, b + after, ...]`` (``after`` has no comma)."""
    inner = array_text[1:-1]
    if after:
        inner = inner.replace(b",", after + b",") + after
    return inner.split(b",")


def _column_of(values: Sequence[float | None]) -> Column:
    return np.array([math.nan if v is None else v for v in values], dtype=np.float64)


class _Encoded(dict[str, bytes]):
    """Text -> its UTF-8 bytes, each distinct text encoded once."""

    def __missing__(self, text: str) -> bytes:
        encoded = self[text] = text.encode()
        return encoded


class _EscapedBytes(dict[str, bytes]):
    """A label value -> its text, escaped and encoded, each value once a family."""

    def __missing__(self, value: str) -> bytes:
        text = self[value] = _escape_value(value).encode()
        return text


def _place(names: Sequence[str]) -> tuple[bool, int]:
    """Where a family's extra label (the last of its labels: campaign, channel, window,
    maybe currency, and it) goes in its sorted label text: whether there is a currency,
    and how many of the row's parts (campaign and channel, currency, window) come first."""
    extra = names[-1]
    order = sorted(names)
    if order.index("channel") != order.index("campaign") + 1:
        raise ValueError(f"{extra!r} sorts between campaign and channel")
    money = "currency" in names
    return money, sum(name < extra for name in ("campaign", *(["currency"] if money else []),
                                                   "window"))


def _around_at(money: bool, before: int, extra: str) -> Callable[[str, str, str],
                                                                  tuple[str, str]]:
    """A row's label text before the extra label's value (up to its opening quote) and
    after it (from its closing quote), from the row's campaign-and-channel text, the
    currency's (unused without a currency label) and the window's."""
    o = f'{escape_label_name(extra)}="'
    return {  # (pair, currency, window)
        (True, 0): lambda p, c, w: (o, f'",{p},{c},{w}'),
        (True, 1): lambda p, c, w: (f"{p},{o}", f'",{c},{w}'),
        (True, 2): lambda p, c, w: (f"{p},{c},{o}", f'",{w}'),
        (True, 3): lambda p, c, w: (f"{p},{c},{w},{o}", '"'),
        (False, 0): lambda p, c, w: (o, f'",{p},{w}'),
        (False, 1): lambda p, c, w: (f"{p},{o}", f'",{w}'),
        (False, 2): lambda p, c, w: (f"{p},{w},{o}", '"'),
    }[money, before]


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


_NO_NAMED: NamedExtras = ({}, {}, {})


def _no_extras() -> Iterable[ExtrasRow]:
    return ()


@dataclass(frozen=True, slots=True)
class SeedKpis:
    """What the KPIs of the seed articles need beside the counters (SPEC 2)."""

    extras: Callable[[], Iterable[ExtrasRow]] = _no_extras
    """Each row's extras, read through at once when collected (they may hold the state's
    own maps)."""
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


def _named(name: str, scrape: ScrapeRows) -> RowValues:
    return scrape.named[name]


_ACTION_NAMES = tuple(ACTION_FIELDS)
_ACTION_INDEXES = list(ACTION_FIELDS.values())
_CONTENT_COUNTERS = (  # family, its content counter, the KPI of the same counter
    ("marketing_content_views", C_VIEWS, "marketing_views"),
    ("marketing_content_engagements", C_ENGAGEMENTS, "marketing_engagements"),
    ("marketing_content_clicks", C_CLICKS, "marketing_clicks"),
    ("marketing_content_orders", C_ORDERS, "marketing_orders"),
    ("marketing_content_revenue", C_REVENUE, "marketing_revenue"))
_COUNTER_OF = {"marketing_views": VIEWS, "marketing_engagements": ENGAGEMENTS,
               "marketing_clicks": CLICKS, "marketing_orders": ORDERS,
               "marketing_revenue": REVENUE}
_UNKNOWN = ("unknown",)
_ROW_SAMPLES: dict[str, RowSamples] = {  # partials of a module's function: they pickle
    name: functools.partial(_named, name) for name, (_, extra) in LABELLED_HELP.items()
    if extra}
