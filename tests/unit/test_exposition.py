"""/metrics text: the KPI families' own writer gives generate_latest's bytes exactly."""

from __future__ import annotations

import math
import pickle
from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from bench import scrape
from bench.scrape_rows import made_up_rows
from metrics.health_gauges import HealthCollector
from metrics.kpi_gauges import (
    KpiCollector,
    KpiFamily,
    ScrapeRows,
    SeedKpis,
    SentRows,
    exposition,
    go_float,
    go_floats,
    text_of,
)
from metrics.kpis import kpi_values
from metrics.names import KPI_HELP, KPI_LABELS, LABELLED_HELP, MONEY_METRICS
from streams.windows.counts import (
    ACTION_FIELDS,
    CLICKS,
    ENGAGEMENTS,
    FIELDS,
    ORDERS,
    REVENUE,
    VIEWS,
    WIDTH,
)
from streams.windows.state import KpiRow, WindowExtras

CONTENT_COUNTERS = (("marketing_content_views", VIEWS),
                    ("marketing_content_engagements", ENGAGEMENTS),
                    ("marketing_content_clicks", CLICKS),
                    ("marketing_content_orders", ORDERS),
                    ("marketing_content_revenue", REVENUE))


class ReferenceCollector(Collector):
    """KpiCollector as it was: plain GaugeMetricFamily, every sample built eagerly.

    Rows without extras (no viewers, products or content types, no LTV horizons), so of
    the labelled KPIs each row has its engagement actions and, when it holds anything,
    its views, engagements, clicks, orders and revenue as ``content_type="unknown"``.
    """

    def __init__(self, rows: list[KpiRow], currency: str) -> None:
        self._rows = rows
        self._currency = currency

    def collect(self) -> Iterator[GaugeMetricFamily]:
        def labels(name: str, extra: tuple[str, ...] = ()) -> list[str]:
            return [*KPI_LABELS, *(["currency"] if name in MONEY_METRICS else []), *extra]

        families = {name: GaugeMetricFamily(name, help_text, labels=labels(name))
                    for name, help_text in KPI_HELP.items()}
        labelled = {name: GaugeMetricFamily(name, help_text, labels=labels(name, extra))
                    for name, (help_text, extra) in LABELLED_HELP.items()}
        for campaign, channel, window, counts in self._rows:
            plain = [campaign, channel, window]
            money = [*plain, self._currency]
            for name, value in kpi_values(counts).items():
                if value is not None:
                    families[name].add_metric(money if name in MONEY_METRICS else plain, value)
            for action, index in ACTION_FIELDS.items():
                labelled["marketing_engagement_actions"].add_metric(
                    [*plain, action], float(counts[index]))
            if any(counts[index] for _, index in CONTENT_COUNTERS):
                for name, index in CONTENT_COUNTERS:
                    value = (counts[index] / 1_000_000 if name in MONEY_METRICS
                             else float(counts[index]))
                    labelled[name].add_metric(
                        [*(money if name in MONEY_METRICS else plain), "unknown"], value)
        yield from families.values()
        yield from labelled.values()


def registries(rows: list[KpiRow], currency: str) -> tuple[CollectorRegistry, CollectorRegistry]:
    """The same series twice, with the KPI collector of now and of before, among others."""
    events = Counter("kpistream_events", "Events read.", ["type"], registry=None)
    events.labels("v").inc()
    last = Gauge("kpistream_last", 'A "gauge"\nafter.', registry=None)
    last.set(1.5e9)
    made = []
    for kpis in (KpiCollector(lambda: rows, currency), ReferenceCollector(rows, currency)):
        registry = CollectorRegistry()
        registry.register(events)
        registry.register(kpis)
        registry.register(last)
        registry.register(HealthCollector(lambda: True, lambda: {("g\\", "t\\"): 7}))
        made.append(registry)
    return made[0], made[1]


LABEL_TEXT = st.text(max_size=6) | st.sampled_from(["", '"', "\\", "\n", 'a\\"b\n', "ü€𝄞"])
COUNTER = st.integers(-5, 20) | st.integers(-(10**25), 10**25) | st.just(0)


@settings(max_examples=150, deadline=None)
@given(
    rows=st.lists(st.tuples(LABEL_TEXT, LABEL_TEXT, LABEL_TEXT,
                            st.lists(COUNTER, min_size=WIDTH, max_size=WIDTH)), max_size=6),
    currency=st.sampled_from(["USD", "EUR", 'X"\\\n']),
)
def test_exposition_is_generate_latest_byte_for_byte(
    rows: list[KpiRow], currency: str
) -> None:
    new, reference = registries(rows, currency)
    expected = generate_latest(reference)
    assert exposition(new) == expected
    assert generate_latest(new) == expected  # prometheus_client reading KpiFamily.samples


def test_bench_sized_scrape_is_identical() -> None:
    state = scrape.build_state(12, 90)
    rows = list(state.rows(scrape.NOW, scrape.WINDOWS, lambda _: True))
    new, reference = registries(rows, "USD")
    assert exposition(new) == generate_latest(reference)


def test_no_rows_no_kpi_lines() -> None:
    registry = CollectorRegistry()
    registry.register(KpiCollector(lambda: [], "USD"))
    assert exposition(registry) == generate_latest(registry)
    assert exposition(CollectorRegistry()) == b""


def test_kpi_family_is_still_a_gauge_family() -> None:
    counts = [0] * WIDTH
    counts[VIEWS] = 3
    [family] = [f for f in KpiCollector(lambda: [("a", "web", "5m", counts)], "USD").collect()
                if f.name == "marketing_views"]
    assert isinstance(family, GaugeMetricFamily)
    [sample] = family.samples
    assert (sample.name, sample.labels, sample.value) == (
        "marketing_views", {"campaign": "a", "channel": "web", "window": "5m"}, 3.0)
    with pytest.raises(TypeError):
        family.add_metric(["a", "web", "1h"], 1.0)
    with pytest.raises(TypeError):
        family.samples = [sample]


class _Static(Collector):
    def __init__(self, families: list[GaugeMetricFamily]) -> None:
        self._families = families

    def collect(self) -> Iterator[GaugeMetricFamily]:
        return iter(self._families)


def test_bench_smoke_runs() -> None:
    assert scrape.main(["--smoke"]) == 0


@settings(max_examples=100, deadline=None)
@given(value=st.floats(allow_nan=True, allow_infinity=True)
       | st.sampled_from([1e6, 999_999.99, 1e16, 1e-7, -1e6, -0.0, 123456789.0]))
def test_go_float_is_prometheus_clients(value: float) -> None:
    assert go_float(value) == floatToGoString(value)


@settings(max_examples=100, deadline=None)
@given(
    extra=st.sampled_from(["action", "content_type", "horizon", "product", "zone", "cur"]),
    money=st.booleans(),
    rows=st.lists(st.tuples(LABEL_TEXT, LABEL_TEXT, st.sampled_from(["5m", "total"]),
                            st.lists(st.tuples(LABEL_TEXT, st.floats(allow_nan=False)
                                               | st.none()), max_size=3)),
                  max_size=6),
)
def test_a_family_with_a_label_past_the_rows_writes_generate_latests_text(
    extra: str, money: bool, rows: list[tuple[str, str, str, list[tuple[str, float | None]]]]
) -> None:
    """Wherever the extra label sorts among the row's (before campaign, between channel
    and currency or window, after window), any number of samples a row, absent ones
    (None) left out, in pieces of any size."""
    names = [*KPI_LABELS, *(["currency"] if money else []), extra]
    scrape = ScrapeRows([(c, ch, w, [0] * WIDTH) for c, ch, w, _ in rows], [], "EUR",
                        SeedKpis())
    family = KpiFamily("marketing_x", "X.", names, scrape,
                       row_samples=lambda _: ([[e for e, _ in row[3]] for row in rows],
                                              [[v for _, v in row[3]] for row in rows]))
    reference = GaugeMetricFamily("marketing_x", "X.", labels=names)
    for campaign, channel, window, samples in rows:
        for value_of_extra, value in samples:
            if value is not None:
                reference.add_metric([campaign, channel, window, *(["EUR"] if money else []),
                                      value_of_extra], value)
    expected = generate_latest(_Static([reference]))
    assert generate_latest(_Static([family])) == expected  # through .samples
    assert family.exposition() == expected
    assert b"".join(family.chunks(lines=1)) == expected


def test_labels_the_row_text_is_not_written_for_are_refused() -> None:
    scrape = ScrapeRows([], [], "EUR", SeedKpis())
    with pytest.raises(ValueError, match="'cat' sorts between campaign and channel"):
        KpiFamily("marketing_x", "X.", [*KPI_LABELS, "cat"], scrape,
                  row_samples=lambda _: ([], []))
    with pytest.raises(ValueError, match="row labels are"):
        KpiFamily("marketing_x", "X.", ["campaign", "window"], scrape, column="marketing_x")
    with pytest.raises(ValueError, match="a column or row samples"):
        KpiFamily("marketing_x", "X.", list(KPI_LABELS), scrape)


@settings(max_examples=60, deadline=None)
@given(
    names=st.lists(LABEL_TEXT | st.just("other"), min_size=1, max_size=4, unique=True),
    counters=st.lists(st.integers(0, 10**12), min_size=5, max_size=5),
    reach=st.none() | st.floats(0, 1e6),
    ltv=st.dictionaries(st.sampled_from([30, 90]), st.integers(0, 10**9), max_size=2),
)
def test_every_seed_kpi_family_writes_generate_latests_text(
    names: list[str], counters: list[int], reach: float | None, ltv: dict[int, int]
) -> None:
    """Products, content types, LTV horizons, reach and frequency, from extras: the text
    the families write is prometheus_client's own writing of their samples."""
    counts = [7] * WIDTH
    extras = WindowExtras(reach=reach, products={n: counters[:2] for n in names},
                          content={n: list(counters) for n in names}, ltv=ltv)
    rows: list[KpiRow] = [("c", "web", "5m", counts), ("c", "web", "total", counts),
                          ("d", "tiktok", "total", [0] * WIDTH)]
    registry = CollectorRegistry()
    registry.register(KpiCollector(lambda: rows, "USD", SeedKpis(
        lambda: [("c", "web", "5m", extras), ("c", "web", "total", extras)],
        top_products=2, top_content_types=2, ltv_horizons=[("30d", 30), ("90d", 90)])))
    text = exposition(registry)
    assert text == generate_latest(registry)
    assert b"marketing_product_units{" in text and b"marketing_content_views{" in text
    assert b'marketing_ltv{campaign="c",channel="web",currency="USD",horizon="30d"' in text


@settings(max_examples=80, deadline=None)
@given(
    counters=st.lists(st.lists(COUNTER, min_size=WIDTH, max_size=WIDTH), min_size=1,
                      max_size=3),
    reach=st.none() | st.floats(0, 1e6),
    names=st.lists(LABEL_TEXT, max_size=3, unique=True),
    ltv=st.dictionaries(st.sampled_from([30, 90]), st.integers(0, 10**20), max_size=2),
)
def test_a_scrape_sent_to_the_writer_writes_the_same_text(
    counters: list[list[int]], reach: float | None, names: list[str], ltv: dict[int, int]
) -> None:
    """What the /metrics writer process gets (the rows pickled, in columns) writes what
    the rows themselves do, with counters past 64 bits, extras of a campaign-channel that
    has no row, and rows without any."""
    rows: list[KpiRow] = [(f"c{i}", "web", window, counts) for i, counts in enumerate(counters)
                          for window in ("5m", "total")]
    extras = [("c0", "web", window, WindowExtras(
        reach=reach, products={n: [1, 2] for n in names},
        content={n: [3, 1, 1, 0, 5] for n in names}, ltv=ltv if window == "total" else {}))
        for window in ("5m", "total")] + [("gone", "web", "5m", WindowExtras(reach=3.0))]
    registry = CollectorRegistry()
    registry.register(KpiCollector(lambda: rows, "USD", SeedKpis(
        lambda: extras, ltv_horizons=[("30d", 30), ("90d", 90)])))
    sent = pickle.loads(pickle.dumps(list(registry.collect())))
    assert b"".join(map(text_of, sent)) == generate_latest(registry)


NAMED_INT = st.integers(0, 2**53) | st.integers(2**63 - 2, 2**70)


@settings(max_examples=80, deadline=None)
@given(
    products=st.dictionaries(LABEL_TEXT, st.lists(NAMED_INT, min_size=2, max_size=2),
                             max_size=4),
    content=st.dictionaries(LABEL_TEXT, st.lists(NAMED_INT, min_size=5, max_size=5),
                            max_size=3),
    ltv=st.dictionaries(st.sampled_from([30, 90, 365]), NAMED_INT, max_size=3),
)
def test_the_extras_sent_to_the_writer_are_the_states_exactly(
    products: dict[str, list[int]], content: dict[str, list[int]], ltv: dict[int, int]
) -> None:
    """Products, content types and LTV credits reach the writer as the state held them:
    any name, integers past 64 bits (orjson refuses those: then they go pickled), LTV's
    days as integers; a row without any sends nothing."""
    extras = [("c", "web", "5m", WindowExtras(reach=1.0, products=products, content=content)),
              ("c", "web", "total", WindowExtras(ltv=ltv)),
              ("d", "web", "5m", WindowExtras(reach=2.0))]
    sent = pickle.loads(pickle.dumps(SentRows.of([], extras)))
    expected = {j: (e.products, e.content, e.ltv) for j, (*_, e) in enumerate(extras)
                if e.products or e.content or e.ltv}
    assert sent.named_extras() == expected
    assert sent.reach.tolist()[0] == 1.0 and math.isnan(sent.reach.tolist()[1])


def test_a_scrape_in_pieces_of_any_size_is_the_same_text() -> None:
    state = scrape.build_state(12, 90)
    rows = list(state.rows(scrape.NOW, scrape.WINDOWS, lambda _: True))
    families = list(KpiCollector(lambda: rows, "USD").collect())
    whole = [family.exposition() for family in families]
    for lines in (1, 7, 1000):
        assert [b"".join(family.chunks(lines)) for family in families] == whole
    # past HELP and TYPE, pieces of at most 7 lines (a row's 6 engagement actions go
    # together)
    assert max(len(piece.splitlines()) for family in families
               for piece in list(family.chunks(7))[1:]) == 7


def test_a_scrape_with_products_and_content_types_in_pieces_of_any_size_is_the_same_text(
) -> None:
    """Rows with different numbers of products and content types (their values in one
    column, ``FlatValues``) split at any row: each piece's values stay with their rows."""
    rows, extras = made_up_rows(12)
    extras = [(c, ch, w, e) if i % 3 else (c, ch, w, WindowExtras(reach=e.reach))
              for i, (c, ch, w, e) in enumerate(extras)]  # some rows without any
    registry = CollectorRegistry()
    registry.register(KpiCollector(lambda: rows, "USD", SeedKpis(
        lambda: extras, top_products=3, ltv_horizons=[("30d", 30)])))
    families = list(registry.collect())
    whole = generate_latest(registry)
    for lines in (1, 2, 7, 9, 1000):
        assert b"".join(b"".join(family.chunks(lines)) for family in families) == whole
    assert b"marketing_product_revenue{" in whole and b"marketing_content_views{" in whole


@settings(max_examples=300, deadline=None)
@given(values=st.lists(st.floats(allow_nan=True, allow_infinity=True)
                       | st.floats(-1e7, 1e7) | st.floats(-1e-3, 1e-3) | st.none()
                       | st.sampled_from([1e-4, 9.999e-5, 1e6, 999_999.9, -1e6, 1e16, 0.0,
                                          -0.0, 5e-05, 0.1 + 0.2]), max_size=40))
def test_go_floats_are_go_float_of_each(values: list[float | None]) -> None:
    """The batch writer gives prometheus_client's text of every value, whatever mix of
    tiny, huge, negative, infinite or NaN values shares a piece."""
    written = go_floats(values)
    assert [w for w, v in zip(written, values, strict=True) if v is not None] == [
        floatToGoString(v).encode() for v in values if v is not None]


@settings(max_examples=300, deadline=None)
@given(values=st.lists(st.floats(allow_infinity=True) | st.floats(-1e7, 1e7)
                       | st.floats(-1e-3, 1e-3)
                       | st.sampled_from([1e-4, 9.999e-5, 1e6, 999_999.9, -1e6, 1e16, 0.0,
                                          -0.0, 5e-05, math.nan]), max_size=40))
def test_go_floats_of_a_kpi_column_are_go_float_of_each(values: list[float]) -> None:
    """The same for a numpy column (NaN: absent, written ``null`` and dropped)."""
    written = go_floats(np.array(values, dtype=np.float64))
    assert [w for w, v in zip(written, values, strict=True) if not math.isnan(v)] == [
        floatToGoString(v).encode() for v in values if not math.isnan(v)]


@settings(max_examples=100, deadline=None)
@given(rows=st.lists(st.lists(st.integers(0, 3) | st.integers(0, 2**60), min_size=WIDTH,
                              max_size=WIDTH), min_size=1, max_size=8))
def test_without_content_types_each_row_is_all_unknown(rows: list[list[int]]) -> None:
    """SPEC 2: a content type absent is ``unknown``. When no row has one (a deployment
    whose trackers send none), every row's content families are its views, engagements,
    clicks, orders and revenue under ``unknown``, absent where all five are 0."""
    registry = CollectorRegistry()
    keyed = [(f"c{i}", "web", "total", counts) for i, counts in enumerate(rows)]
    registry.register(KpiCollector(lambda: keyed, "USD"))
    text = exposition(registry).decode()
    assert text == generate_latest(registry).decode()
    found = {(s.name, s.labels["campaign"]): (s.labels["content_type"], s.value)
             for family in text_string_to_metric_families(text)
             for s in family.samples if s.name.startswith("marketing_content_")}
    for i, counts in enumerate(rows):
        named = dict(zip(FIELDS, counts, strict=True))
        expected = {"marketing_content_views": float(named["views"]),
                    "marketing_content_engagements": float(named["engagements"]),
                    "marketing_content_clicks": float(named["clicks"]),
                    "marketing_content_orders": float(named["orders"]),
                    "marketing_content_revenue": named["revenue_micros"] / 10**6}
        shown = any(expected.values())
        for name, value in expected.items():
            if shown:
                assert found[name, f"c{i}"] == ("unknown", value), name
            else:
                assert (name, f"c{i}") not in found
