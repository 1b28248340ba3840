"""KpiState: deltas into minute buckets and totals, expiry, rows per window."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import pytest

from streams.config.settings import Window
from streams.flow.forwards import Forwards
from streams.stages.counting import CountStage
from streams.stages.event_ids import MemoryIdStore
from streams.windows.counts import FIELDS, WIDTH
from streams.windows.minutes import TOTAL
from streams.windows.state import BucketKey, KpiState

NOW = 29_590_500  # a minute in November 2026
RETENTION = 60
WINDOWS = (Window("5m", 5), Window("1h", 60))
DAY_MS = 24 * 3600 * 1000
FUTURE_SLACK = 5  # validation lets event times run 5 minutes ahead of the worker


def views(n: int) -> list[int]:
    counts = [0] * WIDTH
    counts[FIELDS.index("views")] = n
    return counts


def rows_of(state: KpiState, now: int = NOW,
            windows: Sequence[Window] = WINDOWS) -> dict[tuple[str, str, str], int]:
    """(campaign, channel, window) -> views."""
    return {(c, ch, w): counts[0] for c, ch, w, counts in state.rows(now, windows, lambda _: True)}


def apply_to_table(table: dict[BucketKey, list[int]],
                   changed: Mapping[BucketKey, list[int] | None]) -> None:
    """What the count agent does with the changed buckets: write them, or delete them."""
    for key, counts in changed.items():
        if counts is None:
            table.pop(key, None)
        else:
            table[key] = list(counts)


def counters(changed: Mapping[BucketKey, list[int] | None]) -> dict[BucketKey, list[int] | None]:
    """The changed buckets' counters (without what else a bucket stores)."""
    return {k: None if v is None else v[:WIDTH] for k, v in changed.items()}


class Source:
    """A source partition: each message applied gets the next offset."""

    def __init__(self, state: KpiState) -> None:
        self.state = state
        self.offsets = itertools.count()

    def apply(self, deltas: Mapping[BucketKey, list[int]],
              now: int) -> dict[BucketKey, list[int] | None]:
        return counters(self.state.apply(deltas, now, next(self.offsets)))


def test_total_includes_everything_and_windows_only_their_minutes() -> None:
    state = KpiState(RETENTION)
    source = Source(state)
    source.apply({
        ("a", "tiktok", NOW - 200): views(1),  # older than retention
        ("a", "tiktok", NOW - 30): views(2),
        ("a", "tiktok", NOW): views(4),
        ("a", "tiktok", NOW + 3): views(8),  # a tracker clock a little fast
    }, NOW)
    assert rows_of(state) == {
        ("a", "tiktok", "5m"): 4 + 8,
        ("a", "tiktok", "1h"): 2 + 4 + 8,
        ("a", "tiktok", "total"): 1 + 2 + 4 + 8,
    }


def test_deltas_add_up_over_several_applies() -> None:
    state = KpiState(RETENTION)
    source = Source(state)
    source.apply({("a", "tiktok", NOW): views(1)}, NOW)
    source.apply({("a", "tiktok", NOW): views(2), ("a", "youtube", NOW): views(5)}, NOW)
    changed = source.apply({("a", "tiktok", NOW - 1): views(3)}, NOW)
    assert changed == {("a", "tiktok", NOW - 1): views(3), ("a", "tiktok", TOTAL): views(6)}
    assert rows_of(state) == {
        ("a", "tiktok", "5m"): 6, ("a", "tiktok", "1h"): 6, ("a", "tiktok", "total"): 6,
        ("a", "youtube", "5m"): 5, ("a", "youtube", "1h"): 5, ("a", "youtube", "total"): 5,
    }


def test_late_event_lands_in_the_minute_it_happened() -> None:
    state = KpiState(RETENTION)
    source = Source(state)
    source.apply({("a", "tiktok", NOW): views(1)}, NOW)
    changed = source.apply({("a", "tiktok", NOW - 7): views(10)}, NOW)
    assert changed[("a", "tiktok", NOW - 7)] == views(10)
    assert ("a", "tiktok", NOW) not in changed
    # not in the 5 minutes ending now, but in the 5 minutes ending at NOW - 3 (where the
    # bucket of NOW, ahead of that minute, counts too)
    assert rows_of(state)[("a", "tiktok", "5m")] == 1
    assert rows_of(state, NOW - 3)[("a", "tiktok", "5m")] == 10 + 1
    assert rows_of(state, NOW - 2)[("a", "tiktok", "5m")] == 1
    assert rows_of(state)[("a", "tiktok", "1h")] == 11


def test_event_older_than_retention_only_reaches_the_total() -> None:
    state = KpiState(RETENTION)
    source = Source(state)
    oldest = NOW - RETENTION + 1
    changed = source.apply({("a", "tiktok", oldest - 1): views(1)}, NOW)
    assert changed == {("a", "tiktok", TOTAL): views(1)}
    # the oldest minute still inside the longest window is kept
    changed = source.apply({("a", "tiktok", oldest): views(2)}, NOW)
    assert changed == {("a", "tiktok", oldest): views(2), ("a", "tiktok", TOTAL): views(3)}
    assert rows_of(state) == {
        ("a", "tiktok", "5m"): 0, ("a", "tiktok", "1h"): 2, ("a", "tiktok", "total"): 3,
    }


def test_expired_bucket_is_returned_as_none() -> None:
    state = KpiState(RETENTION)
    source = Source(state)
    source.apply({("a", "tiktok", NOW): views(1)}, NOW)
    # one minute before it leaves the longest window: kept
    changed = source.apply({("a", "tiktok", NOW + RETENTION - 1): views(1)}, NOW + RETENTION - 1)
    assert ("a", "tiktok", NOW) not in changed
    # now it is out of every window: dropped, and reported so the table drops it too
    changed = source.apply({("a", "tiktok", NOW + RETENTION): views(1)}, NOW + RETENTION)
    assert changed[("a", "tiktok", NOW)] is None
    assert changed[("a", "tiktok", TOTAL)] == views(3)
    assert rows_of(state, NOW + RETENTION)[("a", "tiktok", "total")] == 3


def test_memory_stays_bounded_and_the_table_rebuilds_the_same_state() -> None:
    state = KpiState(RETENTION)
    table: dict[BucketKey, list[int]] = {}
    bound = RETENTION + FUTURE_SLACK
    for now in range(NOW, NOW + 4 * RETENTION):
        deltas = {
            ("a", "tiktok", now): views(1),
            ("a", "tiktok", now - 3): views(1),  # late
            ("a", "tiktok", now + FUTURE_SLACK): views(1),  # early
            ("a", "tiktok", now - RETENTION - 10): views(1),  # too late for any window
            ("b", "web", now - RETENTION + 1): views(1),  # just inside the longest window
        }
        apply_to_table(table, state.apply(deltas, now, now))
        for cell in [("a", "tiktok"), ("b", "web")]:
            minutes = [k[2] for k in table if k[:2] == cell and k[2] != TOTAL]
            assert len(minutes) <= bound, (now, cell, len(minutes))
            assert min(minutes) >= now - RETENTION + 1
    last = NOW + 4 * RETENTION - 1
    assert table[("a", "tiktok", TOTAL)][:WIDTH] == views(4 * 4 * RETENTION)
    # after a restart the state is loaded back from the table
    rebuilt = KpiState(RETENTION)
    for key, counts in table.items():
        rebuilt.load(key, list(counts))
    assert rows_of(rebuilt, last) == rows_of(state, last)
    # 5m at `last`: its on-time events of 5 minutes, late ones of 2, early ones of 10
    assert rows_of(state, last)[("a", "tiktok", "5m")] == 5 + 2 + 10
    assert rows_of(state, last)[("a", "tiktok", "total")] == 4 * 4 * RETENTION


def test_rows_only_of_owned_campaigns() -> None:
    state = KpiState(RETENTION)
    source = Source(state)
    source.apply({("mine", "tiktok", NOW): views(1), ("mine", "web", NOW): views(2),
                 ("theirs", "tiktok", NOW): views(3)}, NOW)
    rows = list(state.rows(NOW, WINDOWS, lambda campaign: campaign == "mine"))
    assert sorted((c, ch, w) for c, ch, w, _ in rows) == [
        ("mine", "tiktok", "1h"), ("mine", "tiktok", "5m"), ("mine", "tiktok", "total"),
        ("mine", "web", "1h"), ("mine", "web", "5m"), ("mine", "web", "total"),
    ]
    assert list(state.rows(NOW, WINDOWS, lambda campaign: False)) == []


def test_rows_are_copies() -> None:
    state = KpiState(RETENTION)
    source = Source(state)
    source.apply({("a", "tiktok", NOW): views(1)}, NOW)
    for _, _, _, counts in state.rows(NOW, WINDOWS, lambda _: True):
        counts[0] = 999
    assert rows_of(state)[("a", "tiktok", "total")] == 1


def test_clear_forgets_everything() -> None:
    state = KpiState(RETENTION)
    source = Source(state)
    source.apply({("a", "tiktok", NOW): views(1)}, NOW)
    state.clear()
    assert rows_of(state) == {}


# ---------------------------------------------------------------------------------------
# Replays: a source message applied again after a crash is counted once.
# ---------------------------------------------------------------------------------------
def test_same_message_applied_twice_counts_once() -> None:
    state = KpiState(RETENTION)
    deltas = {("a", "tiktok", NOW): views(1), ("a", "tiktok", NOW - 2): views(2)}
    assert counters(state.apply(deltas, NOW, 7)) == {
        ("a", "tiktok", NOW): views(1), ("a", "tiktok", NOW - 2): views(2),
        ("a", "tiktok", TOTAL): views(3)}
    # Replayed: nothing added, but each bucket comes back unchanged, to be sent again (a
    # store on disk may hold it from before a crash that kept it from the changelog).
    assert counters(state.apply(deltas, NOW, 7)) == {
        ("a", "tiktok", NOW): views(1), ("a", "tiktok", NOW - 2): views(2),
        ("a", "tiktok", TOTAL): views(3)}
    assert rows_of(state)[("a", "tiktok", "total")] == 3
    # the next message of the partition counts again
    state.apply(deltas, NOW, 8)
    assert rows_of(state)[("a", "tiktok", "total")] == 6


MESSAGE = {("a", "tiktok", NOW): views(1), ("a", "tiktok", NOW - 1): views(10),
           ("a", "web", NOW): views(100)}


@pytest.mark.parametrize("landed", [
    set(),  # the crash came before any record of the message was written
    {("a", "tiktok", TOTAL)},  # only the total landed
    {("a", "tiktok", NOW), ("a", "web", TOTAL)},  # a minute of one cell, the total of another
    set(MESSAGE) | {("a", "tiktok", TOTAL), ("a", "web", TOTAL)},  # all of it
])
def test_replay_after_a_crash_counts_each_bucket_once(landed: set[BucketKey]) -> None:
    earlier = {("a", "tiktok", NOW): views(1000), ("a", "web", NOW - 3): views(5000)}
    table: dict[BucketKey, list[int]] = {}
    state = KpiState(RETENTION)
    apply_to_table(table, state.apply(earlier, NOW, 1))
    changed = state.apply(MESSAGE, NOW, 2)
    # the worker dies with only some of the message's records in the changelog
    apply_to_table(table, {k: v for k, v in changed.items() if k in landed})
    recovered = KpiState(RETENTION)
    for key, counts in table.items():
        recovered.load(key, list(counts))
    recovered.apply(MESSAGE, NOW, 2)  # the message is read again
    once = KpiState(RETENTION)
    once.apply(earlier, NOW, 1)
    once.apply(MESSAGE, NOW, 2)
    assert rows_of(recovered) == rows_of(once)
    assert rows_of(recovered)[("a", "tiktok", "total")] == 1011
    assert rows_of(recovered)[("a", "web", "total")] == 5100


# ---------------------------------------------------------------------------------------
# The count stage: dedup by event id, then the state; replays are not duplicates.
# ---------------------------------------------------------------------------------------
Forward = tuple[str, str, int, str, int]


def view_forward(event_id: str, minute: int = NOW, channel: str = "tiktok") -> Forward:
    return ("v", event_id, minute * 60_000 + 5_000, channel, 0)


def message(*events: Forward) -> Forwards:
    """One kpi-events message, through its wire form as the agent reads it."""
    forwards = Forwards()
    for event in events:
        forwards.add(*event)
    return Forwards.from_wire(forwards.to_wire())


def stage_rows(stage: CountStage) -> dict[tuple[str, str, str], int]:
    return rows_of(stage.state)


def test_count_stage_counts_a_second_delivery_once() -> None:
    stage = CountStage(KpiState(RETENTION), {}, DAY_MS)
    now_ms = NOW * 60_000 + 30_000
    folded = stage.handle("a", message(view_forward("v-1"), view_forward("v-2")), 0, 10, now_ms)
    assert folded.accepted == {"view": 2}
    # the same event again in a later message of the partition, and twice in one message
    again = message(view_forward("v-1"), view_forward("v-3"), view_forward("v-3"))
    folded = stage.handle("a", again, 0, 11, now_ms)
    assert folded.accepted == {"view": 1}
    assert folded.duplicates == {"view": 2}
    assert stage_rows(stage)[("a", "tiktok", "total")] == 3


def test_count_stage_replay_of_a_message_is_not_a_duplicate() -> None:
    table: dict[object, list[int]] = {}
    stage = CountStage(KpiState(RETENTION), table, DAY_MS)
    now_ms = NOW * 60_000 + 30_000
    stage.handle("a", message(view_forward("v-1")), 0, 10, now_ms)
    second = message(view_forward("v-2"), view_forward("v-3", NOW - 1))
    stage.handle("a", second, 0, 11, now_ms)
    # crash: the ids of message 11 landed, its buckets did not; rebuilt from the table
    landed = {k: v for k, v in table.items() if k[2] != NOW - 1}
    landed[("a", "tiktok", TOTAL)] = [*views(1), 10]
    landed[("a", "tiktok", NOW)] = [*views(1), 10]
    assert stage.id_store.recorded(0, ["view/a/v-2"]) == {"view/a/v-2": 11}
    recovered = CountStage(KpiState(RETENTION), dict(landed), DAY_MS,
                           id_table=MemoryIdStore(stage.id_table))
    recovered.rebuild({0}, lambda campaign: True)
    folded = recovered.handle("a", second, 0, 11, now_ms)  # read again
    assert folded.duplicates == {}
    assert stage_rows(recovered) == stage_rows(stage)
    assert stage_rows(recovered)[("a", "tiktok", "total")] == 3


def test_count_stage_replay_counts_each_event_accepted_once() -> None:
    """A message read again (a rebalance seeks back to an uncommitted offset, or a crash)
    leaves ``kpistream_events_total{outcome="accepted"}`` where the first reading put it:
    after a 30 s broker freeze on Kafka the counter said 4,000 while views said 2,000,
    because the first 2,000 were read again before the commit had landed."""
    table: dict[object, list[int]] = {}
    stage = CountStage(KpiState(RETENTION), table, DAY_MS)
    now_ms = NOW * 60_000 + 30_000
    first = message(view_forward("v-1"), view_forward("v-2"))
    assert stage.handle("a", first, 0, 10, now_ms).accepted == {"view": 2}
    mixed = message(view_forward("v-3"), view_forward("v-1"))  # v-1: a second delivery
    folded = stage.handle("a", mixed, 0, 11, now_ms)
    assert (folded.accepted, folded.duplicates) == ({"view": 1}, {"view": 1})
    # the same process reads both again
    for offset, again in ((10, first), (11, mixed)):
        folded = stage.handle("a", again, 0, offset, now_ms)
        assert (folded.accepted, folded.duplicates) == ({}, {})
    assert stage_rows(stage)[("a", "tiktok", "total")] == 3
    # a new process, rebuilt from the table, reads message 11 again
    recovered = CountStage(KpiState(RETENTION), dict(table), DAY_MS,
                           id_table=MemoryIdStore(stage.id_table))
    recovered.rebuild({0}, lambda campaign: True)
    folded = recovered.handle("a", mixed, 0, 11, now_ms)
    assert (folded.accepted, folded.duplicates) == ({}, {})
    assert stage_rows(recovered)[("a", "tiktok", "total")] == 3


def test_sums_made_at_a_rebuild_move_on_to_the_first_scrapes_minute() -> None:
    """A worker sums every window when its rebuild ends (ServedKpis.prime); the first
    scrape comes minutes later and must see exactly the windows at its own minute."""
    windows = (Window("5m", 5), Window("1h", 60))
    state = KpiState(60)
    now = 29_000_000
    for minute in range(now - 70, now + 1):  # 1 view at each minute, 100 at the last
        state.load(("a", "web", minute), [*([100 if minute == now else 1] + [0] * (WIDTH - 1)),
                                          minute])
    for _ in state.rows(now - 4, windows, lambda _: True):  # primed 4 minutes earlier
        pass
    rows = {(w, counts[0]) for _, _, w, counts in state.rows(now, windows, lambda _: True)}
    # 5m: 4 ones and the 100; 1h: 59 ones and the 100; total: no total record loaded
    assert rows == {("5m", 104), ("1h", 159), ("total", 0)}
