"""Running window sums: always what re-summing every bucket (``window_sums``) would give."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.config.settings import Window
from streams.windows.counts import WIDTH
from streams.windows.extras import ExtrasDelta, summed_named
from streams.windows.minutes import TOTAL, window_sums
from streams.windows.state import BucketKey, KpiRow, KpiState
from streams.windows.sums import RunningSums, fresh_sums

NOW = 29_590_500  # a minute in November 2026
CELLS = [("a", "tiktok"), ("a", "web"), ("b", "tiktok")]


def bucket(views: int) -> list[int]:
    """Every counter a different multiple of ``views``, so any field mixed up shows."""
    return [views * (i + 1) for i in range(WIDTH)]


def naive_rows(state: KpiState, now: int, windows: Sequence[Window],
               owned: Callable[[str], bool]) -> Iterator[KpiRow]:
    """KpiState.rows as it was: every bucket of every cell summed at each call."""
    for (campaign, channel), cell in state._cells.items():
        if not owned(campaign):
            continue
        sums = window_sums(cell, now, [w.minutes for w in windows])
        for w, acc in zip(windows, sums, strict=True):
            yield campaign, channel, w.label, acc
        yield campaign, channel, "total", list(cell.get(TOTAL, [0] * WIDTH)[:WIDTH])


def naive_named(state: KpiState, now: int, windows: Sequence[Window],
                ) -> dict[tuple[str, str, str], tuple[Any, Any]]:
    """Products and content types of every window, every bucket's maps summed afresh."""
    out = {}
    for (campaign, channel), cell in state._cells.items():
        for w in windows:
            inside = [b[WIDTH + 1] for m, b in cell.items()
                      if m != TOTAL and m > now - w.minutes and len(b) > WIDTH + 1]
            products = summed_named(e.products for e in inside)
            content = summed_named(e.content for e in inside)
            if products or content:
                out[(campaign, channel, w.label)] = (products, content)
    return out


def assert_rows_match(state: KpiState, now: int, windows: Sequence[Window]) -> None:
    def owned(campaign: str) -> bool:
        return campaign != "b" or now % 2 == 0

    assert list(state.rows(now, windows, owned)) == list(naive_rows(state, now, windows, owned))
    named = {(c, ch, w): (e.products, e.content)
             for c, ch, w, e in state.extras_rows(now, windows, lambda _: True)
             if w != "total" and (e.products or e.content)}
    assert named == naive_named(state, now, windows)


# ---------------------------------------------------------------------------------------
# Examples
# ---------------------------------------------------------------------------------------
def test_buckets_leave_the_window_as_the_clock_moves_on() -> None:
    buckets = {NOW - 4: bucket(1), NOW: bucket(2), NOW + 2: bucket(4), TOTAL: bucket(100)}
    sums = RunningSums()
    cells = {("a", "web"): buckets}
    [i] = sums.at(cells, NOW, [5])
    assert sums.of(("a", "web")) == [bucket(7)]
    sums.at(cells, NOW + 1, [5])  # NOW - 4 left
    assert sums.of(("a", "web"))[i] == bucket(6)  # type: ignore[index]
    sums.at(cells, NOW + 10_000, [5])  # a jump far beyond every bucket
    assert sums.of(("a", "web")) == [bucket(0)]
    sums.at(cells, NOW - 3, [5])  # and back: NOW - 4 is in again, as are the others
    assert sums.of(("a", "web")) == [bucket(7)]


def test_a_new_window_length_is_summed_from_the_buckets_once() -> None:
    buckets = {NOW - 30: bucket(1), NOW: bucket(2)}
    sums = RunningSums()
    cells = {("a", "web"): buckets}
    assert sums.at(cells, NOW, [5]) == [0]
    assert sums.at(cells, NOW, [60, 5, 60]) == [1, 0, 1]
    assert sums.of(("a", "web")) == [bucket(2), bucket(3)]
    # a bucket change reaches every length whose window it is in
    buckets[NOW - 30][0] += 10
    sums.changed(("a", "web"), NOW - 30, [10] + [0] * (WIDTH - 1))
    assert sums.of(("a", "web")) == [bucket(2), [13, *bucket(3)[1:]]]


def test_rows_for_totals_only_do_not_move_the_sums() -> None:
    state = KpiState(60)
    state.apply({("a", "web", NOW): bucket(1)}, NOW, 0)
    windows = [Window("5m", 5)]
    assert_rows_match(state, NOW, windows)
    assert [r[2] for r in state.rows(0, (), lambda _: True)] == ["total"]
    assert state._sums._now == NOW
    assert_rows_match(state, NOW, windows)


def test_late_future_expired_and_replayed_buckets() -> None:
    state = KpiState(60)
    windows = [Window("5m", 5), Window("1h", 60)]
    assert_rows_match(state, NOW, windows)  # start tracking before any bucket
    state.apply({("a", "web", NOW): bucket(1), ("a", "web", NOW + 5): bucket(2)}, NOW, 1)
    state.apply({("a", "web", NOW - 30): bucket(4)}, NOW, 2)  # late: in 1h, not in 5m
    state.apply({("a", "web", NOW - 30): bucket(4)}, NOW, 2)  # a replay: skipped
    assert_rows_match(state, NOW, windows)
    assert [r[3][0] for r in state.rows(NOW, windows, lambda _: True)] == [3, 7, 7]
    # the clock moves on 45 minutes: NOW - 30 expires (the apply drops it)
    state.apply({("a", "web", NOW + 45): bucket(8)}, NOW + 45, 3)
    assert_rows_match(state, NOW + 45, windows)
    assert_rows_match(state, NOW, windows)  # asked about an earlier minute again


def test_rebuild_after_clear_gives_the_same_rows() -> None:
    state = KpiState(60)
    windows = [Window("5m", 5), Window("1h", 60)]
    table: dict[BucketKey, list[int]] = {}
    for minute in range(NOW - 80, NOW):
        for key, counts in state.apply({("a", "web", minute): bucket(1)}, minute, minute).items():
            if counts is None:
                table.pop(key, None)
            else:
                table[key] = list(counts)
        if minute % 7 == 0:
            assert_rows_match(state, minute, windows)
    before = list(state.rows(NOW, windows, lambda _: True))
    state.clear()
    assert list(state.rows(NOW, windows, lambda _: True)) == []
    for key, counts in table.items():
        state.load(key, list(counts))
    assert list(state.rows(NOW, windows, lambda _: True)) == before
    assert_rows_match(state, NOW, windows)


def test_loaded_cells_are_summed_at_the_next_scrape_unless_cleared_first() -> None:
    state = KpiState(60)
    windows = [Window("5m", 5)]
    assert_rows_match(state, NOW, windows)
    state.load(("a", "web", NOW), [*bucket(1), 0])  # summed afresh at the next rows()
    state.load(("a", "web", NOW - 1), [*bucket(2), 0])
    assert [r[3] for r in state.rows(NOW, windows, lambda _: True)] == [bucket(3), [0] * WIDTH]
    state.load(("b", "web", NOW), [*bucket(1), 0])
    state.clear()  # a rebuild starting over before any scrape
    state.load(("a", "web", NOW), [*bucket(4), 0])
    assert list(state.rows(NOW, windows, lambda _: True)) == [
        ("a", "web", "5m", bucket(4)), ("a", "web", "total", [0] * WIDTH)]


# ---------------------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------------------
@settings(max_examples=100, deadline=None)
@given(
    buckets=st.dictionaries(st.integers(-1, 40), st.integers(-3, 50).map(bucket), max_size=20),
    now=st.integers(-5, 50),
    lengths=st.lists(st.integers(0, 60), max_size=4),
)
def test_fresh_sums_are_window_sums(buckets: dict[int, list[int]], now: int,
                                    lengths: list[int]) -> None:
    assert fresh_sums(buckets, now, lengths) == window_sums(buckets, now, lengths)


MINUTES = st.integers(-70, 8)  # relative to the clock: late, expired, on time, early
COUNTS = st.integers(-2, 9).map(bucket)
NAMED_EXTRAS = st.builds(
    lambda products, content: ExtrasDelta([], products, content),
    st.dictionaries(st.sampled_from(["p1", "p2", "other-sku"]),
                    st.tuples(st.integers(1, 3), st.integers(0, 10)).map(list), max_size=2),
    st.dictionaries(st.sampled_from(["tutorial", "live"]),
                    st.tuples(st.integers(1, 2), *[st.integers(0, 2)] * 4).map(list),
                    max_size=2))
WINDOW_SETS = st.lists(st.sampled_from([1, 5, 60, 90, 1440]), min_size=1, max_size=4, unique=True)



def applies(extras: st.SearchStrategy[list[ExtrasDelta]]) -> st.SearchStrategy[Any]:
    """One source message: deltas for some minutes of some cells, an offset step (back:
    a replay) and each delta's extras."""
    return st.tuples(st.just("apply"),
                     st.dictionaries(st.tuples(st.sampled_from(CELLS), MINUTES), COUNTS,
                                     min_size=1, max_size=4),
                     st.integers(-3, 1), extras)


# the clock moves on (sometimes a lot, sometimes back a little)
TICKS = st.tuples(st.just("tick"), st.one_of(st.integers(-3, 3), st.integers(0, 3000)))
# a scrape, with some set of windows
SCRAPES = st.tuples(st.just("rows"), WINDOW_SETS)

OPS = st.one_of(
    applies(st.lists(NAMED_EXTRAS, max_size=4)),
    TICKS,
    SCRAPES,
    # a bucket put back from the table (recovery), over what is there or not
    st.tuples(st.just("load"), st.sampled_from(CELLS), st.one_of(MINUTES, st.just(None)),
              COUNTS),
    # the whole state rebuilt from the table
    st.tuples(st.just("rebuild")),
)


@settings(max_examples=300, deadline=None)
@given(start=st.sampled_from([NOW, 75]), retention=st.sampled_from([5, 60]),
       ops=st.lists(OPS, max_size=40))
def test_rows_equal_naive_window_sums_over_any_history(
    start: int, retention: int, ops: list[tuple[Any, ...]]
) -> None:
    state = KpiState(retention)
    table: dict[BucketKey, list[int]] = {}
    now, offset = start, 0
    windows = [Window("5m", 5)]
    for op in ops:
        kind = op[0]
        if kind == "apply":
            _, deltas, back, named = op
            offset = max(0, offset + 1 + back)
            message = {(c, ch, max(0, now + m)): d for ((c, ch), m), d in deltas.items()}
            extras = dict(zip(message, named, strict=False))  # products and content types
            for key, counts in state.apply(message, now, offset, extras).items():
                if counts is None:
                    table.pop(key, None)
                else:
                    table[key] = list(counts)
        elif kind == "tick":
            now = max(0, now + op[1])
        elif kind == "rows":
            windows = [Window(f"{m}m", m) for m in op[1]]
            assert_rows_match(state, now, windows)
        elif kind == "load":
            _, (c, ch), m, counts = op
            key = (c, ch, TOTAL if m is None else max(0, now + m))
            table[key] = [*counts, offset]
            state.load(key, list(table[key]))
        else:
            state.clear()
            for key, counts in table.items():
                state.load(key, list(counts))
        # the state keeps exactly the buckets the table has (the changelog contract)
        kept = {(c, ch, m): b[:WIDTH] for (c, ch), cell in state._cells.items()
                for m, b in cell.items()}
        assert {k: v[:WIDTH] for k, v in table.items()} == {
            k: v for k, v in kept.items() if k in table or any(v)}
    assert_rows_match(state, now, windows)
    assert_rows_match(state, now + 1, [Window("1d", 1440), Window("5m", 5)])


def test_total_never_moves_in_or_out_near_the_epoch() -> None:
    # windows starting around minute -1, where the TOTAL key (-1) would fall numerically
    buckets = {TOTAL: bucket(100), 0: bucket(1), 2: bucket(2)}
    cells = {("a", "web"): buckets}
    sums = RunningSums()
    sums.at(cells, 1, [3, 1440])
    for now in [2, 0, 1, 3, 4, 2, 1500, 1, 0]:
        sums.at(cells, now, [3, 1440])
        assert sums.of(("a", "web")) == window_sums(buckets, now, [3, 1440]), now
