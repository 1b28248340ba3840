"""Minute buckets and trailing windows: a window of N minutes at minute ``now`` holds the
buckets ``now - N + 1`` and later (future buckets included); TOTAL is in no window."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.windows.counts import FIELDS, WIDTH
from streams.windows.minutes import TOTAL, minute_of, oldest_kept_minute, window_sums

NOW = 29_590_500  # a minute in November 2026


def bucket(views: int) -> list[int]:
    """A bucket whose every counter is a multiple of ``views``, so sums show which buckets
    were added whatever the field."""
    return [views * (i + 1) for i in range(WIDTH)]


def views_of(buckets: dict[int, int]) -> dict[int, list[int]]:
    return {minute: bucket(views) for minute, views in buckets.items()}


WINDOW_EDGES = [
    # the current minute is in a 1-minute window
    pytest.param({NOW: 1}, NOW, [1], [1], id="current-minute"),
    # a 1-minute window holds only the current minute
    pytest.param({NOW - 1: 1}, NOW, [1], [0], id="previous-minute-out-of-1m"),
    # the bucket exactly at the window start (now - N + 1) is in
    pytest.param({NOW - 4: 1}, NOW, [5], [1], id="start-is-in"),
    # one minute before the start is out
    pytest.param({NOW - 5: 1}, NOW, [5], [0], id="before-start-is-out"),
    # future buckets (a fast tracker clock) count in every window
    pytest.param({NOW + 5: 1, NOW + 1: 2}, NOW, [1, 5, 60], [3, 3, 3], id="future-counts"),
    # TOTAL is never in a window, even where -1 would fall inside numerically
    pytest.param({TOTAL: 100, 0: 1}, 2, [5], [1], id="total-excluded-near-epoch"),
    # TOTAL alone gives empty windows
    pytest.param({TOTAL: 100}, NOW, [5, 60], [0, 0], id="total-only"),
    # no buckets at all
    pytest.param({}, NOW, [5], [0], id="empty"),
    # nested windows at once: 1m, 5m, 1h
    pytest.param({NOW: 1, NOW - 4: 2, NOW - 5: 4, NOW - 59: 8, NOW - 60: 16}, NOW, [1, 5, 60],
                 [1, 3, 15], id="nested"),
    # results follow the order the windows were asked in
    pytest.param({NOW: 1, NOW - 4: 2, NOW - 5: 4, NOW - 59: 8, NOW - 60: 16}, NOW, [60, 5],
                 [15, 3], id="order-kept"),
    # a 24h window: start is now - 1439
    pytest.param({NOW - 1439: 1, NOW - 1440: 2}, NOW, [1440], [1], id="24h-edge"),
]


@pytest.mark.parametrize(("buckets", "now", "windows", "expected_views"), WINDOW_EDGES)
def test_window_edges(
    buckets: dict[int, int], now: int, windows: list[int], expected_views: list[int]
) -> None:
    sums = window_sums(views_of(buckets), now, windows)
    assert sums == [bucket(views) for views in expected_views]


@pytest.mark.parametrize(("ts_ms", "minute"), [
    (0, 0),  # the epoch
    (59_999, 0),  # last millisecond of the first minute
    (60_000, 1),  # first millisecond of the next
    (NOW * 60_000, NOW),
    (NOW * 60_000 + 59_999, NOW),
    (NOW * 60_000 - 1, NOW - 1),
])
def test_minute_of(ts_ms: int, minute: int) -> None:
    assert minute_of(ts_ms) == minute


@pytest.mark.parametrize("retention", [1, 5, 60, 1440])
def test_oldest_kept_minute_drops_nothing_still_in_the_longest_window(retention: int) -> None:
    oldest = oldest_kept_minute(NOW, retention)
    [inside] = window_sums({oldest: bucket(1)}, NOW, [retention])
    [outside] = window_sums({oldest - 1: bucket(1)}, NOW, [retention])
    assert inside == bucket(1)
    assert outside == bucket(0)


def test_every_counter_is_summed() -> None:
    buckets = {
        NOW: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20],
        NOW - 1: [10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120, 130, 140, 150, 160, 170,
                  180, 190, 200],
    }
    assert len(FIELDS) == 20
    assert window_sums(buckets, NOW, [5]) == [
        [11, 22, 33, 44, 55, 66, 77, 88, 99, 110, 121, 132, 143, 154, 165, 176, 187, 198, 209,
         220]]


def test_window_sums_does_not_change_the_buckets() -> None:
    buckets = views_of({NOW: 1, NOW - 1: 2})
    before = {m: list(c) for m, c in buckets.items()}
    window_sums(buckets, NOW, [5, 60])
    assert buckets == before


@settings(max_examples=100, deadline=None)
@given(
    buckets=st.dictionaries(
        st.integers(NOW - 120, NOW + 6), st.lists(st.integers(-5, 1000), min_size=WIDTH,
                                                  max_size=WIDTH), max_size=30),
    total=st.lists(st.integers(0, 10**6), min_size=WIDTH, max_size=WIDTH),
    windows=st.lists(st.integers(1, 150), min_size=1, max_size=5),
)
def test_window_sums_match_a_naive_model(
    buckets: dict[int, list[int]], total: list[int], windows: list[int]
) -> None:
    stored = {**buckets, TOTAL: total}
    expected = []
    for n in windows:
        acc = [0] * WIDTH
        for minute, counts in buckets.items():
            if minute > NOW - n:  # inside the trailing window, or ahead of now
                acc = [a + c for a, c in zip(acc, counts, strict=True)]
        expected.append(acc)
    assert window_sums(stored, NOW, windows) == expected
