"""The column-at-a-time fold gives what counting the events one by one gives."""

from __future__ import annotations

from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from streams.config.durations import MINUTE_MS
from streams.flow.forwards import KIND_TYPES, NOT_EVENTS, Forwards, add_event
from streams.stages.aggregate import Folded, fold
from streams.stages.counting import CountStage
from streams.windows.counts import WIDTH
from streams.windows.state import KpiState

T0 = 1_795_428_000_000

events = st.lists(
    st.tuples(
        st.sampled_from(sorted(KIND_TYPES)),
        st.sampled_from(["e1", "e2", "e3", "e4", "e5", "e6"]),  # repeats on purpose
        st.integers(T0, T0 + 5 * MINUTE_MS),
        st.sampled_from(["tiktok", "youtube"]),
        st.integers(0, 10**9),
    ),
    max_size=40,
)


def one_by_one(campaign: str, forwards: Forwards, seen_before: set[str]) -> Folded:
    """The reference: each event in order, a key new unless seen before or earlier here."""
    folded = Folded()
    seen = set(seen_before)
    for kind, event_id, ts_ms, channel, amount in forwards:
        event_type = KIND_TYPES[kind]
        key = f"{event_type}/{campaign}/{event_id}"
        if key in seen:
            if event_type not in NOT_EVENTS:
                folded.duplicates[event_type] += 1
            continue
        seen.add(key)
        acc = folded.deltas.setdefault((campaign, channel, ts_ms // MINUTE_MS), [0] * WIDTH)
        add_event(acc, kind, amount if kind in "son" else 0)
        if event_type not in NOT_EVENTS:
            folded.accepted[event_type] += 1
            folded.newest_ts_ms[event_type] = max(ts_ms,
                                                  folded.newest_ts_ms.get(event_type, -1))
    return folded


def forwards_of(items: list[tuple[str, str, int, str, int]]) -> Forwards:
    forwards = Forwards()
    for kind, event_id, ts_ms, channel, amount in items:
        forwards.add(kind, event_id, ts_ms, channel, amount if kind in "son" else 0)
    return forwards


@given(events, st.sets(st.sampled_from(["view/a/e1", "click/a/e2", "spend/a/e3"])))
def test_fold_equals_counting_one_by_one(
    items: list[tuple[str, str, int, str, int]], seen_before: set[str],
) -> None:
    forwards = forwards_of(items)

    def first_time(keys: list[str]) -> list[bool]:
        seen = set(seen_before)
        fresh = []
        for key in keys:
            fresh.append(key not in seen)
            seen.add(key)
        return fresh

    folded = fold("a", forwards, first_time)
    expected = one_by_one("a", forwards, seen_before)
    assert folded.deltas == expected.deltas
    assert folded.accepted == expected.accepted
    assert folded.duplicates == expected.duplicates
    assert folded.newest_ts_ms == expected.newest_ts_ms


@given(events)
def test_count_stage_counts_each_id_once_within_and_across_messages(
    items: list[tuple[str, str, int, str, int]],
) -> None:
    stage = CountStage(KpiState(1440), {}, dedup_window_ms=86_400_000)
    first = stage.handle("a", forwards_of(items), 0, 10, T0 + 6 * MINUTE_MS)
    distinct = {(KIND_TYPES[kind], event_id) for kind, event_id, *_ in items}
    want = Counter(event_type for event_type, _ in distinct if event_type not in NOT_EVENTS)
    assert first.accepted == want
    # The same events again in a later message: every one a duplicate.
    again = stage.handle("a", forwards_of(items), 0, 11, T0 + 6 * MINUTE_MS)
    assert not again.accepted and not again.deltas
    # The first message replayed (a crash before its offset was committed): not
    # duplicates, folded again (the buckets tell what they hold), but accepted only once.
    replay = stage.handle("a", forwards_of(items), 0, 10, T0 + 6 * MINUTE_MS)
    assert replay.deltas == first.deltas
    assert not replay.accepted and not replay.duplicates
