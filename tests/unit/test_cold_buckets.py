"""Cold minutes (streams.windows.cold): a state that keeps only its hot minutes in memory and
reads older buckets back from the table gives every number a state holding all of them
gives, and holds a bounded number of buckets."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.collect_rows import Store
from streams.config.settings import Window
from streams.flow.wire import dumps
from streams.windows.blocks import block_entries, block_index, block_reach, is_hour_key
from streams.windows.cold import ColdMinutes, column_sums, hot_span
from streams.windows.counts import WIDTH
from streams.windows.extras import ExtrasDelta
from streams.windows.reach import minute_bits
from streams.windows.state import BucketKey, KpiState, RecordKey
from tests.unit.test_window_sums import CELLS, NOW, SCRAPES, TICKS, applies, bucket

DAY = 1440


class StoreTable(Store):
    """The kpi table as its store on disk holds it: each record as its changelog bytes."""

    def buckets(self) -> dict[BucketKey, Any]:
        """Every bucket's counters and offset, whether a minute record or in an hour
        block (a minute is never in both)."""
        return expanded({k: list(orjson.loads(raw)) for k, raw in self.items()})


def expanded(records: dict[RecordKey, list[Any] | None]) -> dict[BucketKey, Any]:
    """Records as the buckets they hold: an hour block's minutes one by one (a deleted
    block: none), a bucket's counters and offset (None: deleted)."""
    out: dict[BucketKey, Any] = {}
    for key, value in records.items():
        if is_hour_key(key):
            for minute, held in ({} if value is None else block_entries(value)).items():
                assert (key[0], key[1], minute) not in out, (key, minute)
                out[(key[0], key[1], minute)] = list(held[:WIDTH + 1])
        elif value is not None:
            assert key not in out, key
            out[key] = list(value[:WIDTH + 1])
        elif key not in out:  # else: the minute's record gives way to its hour block
            out[key] = None
    return out


def answers(state: KpiState, now: int, windows: list[Window]) -> tuple[Any, ...]:
    """Everything a scrape and the budget pacing read."""
    rows = sorted(state.rows(now, windows, lambda _: True))
    extras = sorted((c, ch, w, e.reach, e.products, e.content, e.ltv)
                    for c, ch, w, e in state.extras_rows(now, windows, lambda _: True))
    spend = state.campaign_sums({"a": (now - DAY + 1, now + 1), "b": (now - 30, now + 6),
                                 "c": None}, 7)
    return rows, extras, spend


def copied(extras: dict[BucketKey, ExtrasDelta]) -> dict[BucketKey, ExtrasDelta]:
    """A message's extras, one copy per state (a state keeps what it is given)."""
    return {k: ExtrasDelta(list(e.users), dict(e.products), dict(e.content), dict(e.ltv))
            for k, e in extras.items()}


def counters(changed: dict[BucketKey, list[Any] | None]) -> dict[BucketKey, Any]:
    return {k: None if v is None else v[:WIDTH + 1] for k, v in changed.items()}


# ---------------------------------------------------------------------------------------
# Examples
# ---------------------------------------------------------------------------------------
def test_hot_span_covers_every_window_but_the_longest() -> None:
    assert hot_span([5, 60, 1440]) == 61
    assert hot_span([1440]) == 10  # late events still land in memory
    assert hot_span([5, 30]) == 10


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["add", "discard", "put", "forget", "expire"]),
                          st.integers(0, 200), st.integers(-3, 9)), max_size=60),
       st.lists(st.integers(0, 210), min_size=1, max_size=5))
def test_cold_minutes_sum_any_window_as_their_buckets_do(
        ops: list[tuple[str, int, int]], starts: list[int]) -> None:
    """Minutes kept in order, and a window summed from roll-ups and edge minutes equals
    the sum of its buckets, whatever went cold, came back, was replaced or expired."""
    cold, model = ColdMinutes(), {}  # model: minute -> bucket, what the store holds
    for kind, minute, views in ops:
        if kind == "add" and minute not in model:
            model[minute] = bucket(views)
            cold.add(minute, model[minute])
        elif kind == "discard" and minute in model:
            cold.discard(minute, model.pop(minute))
        elif kind == "put":  # the store got another value first, as a rebuild's load has
            model[minute] = bucket(views)
            cold.put(minute, model[minute], model.__getitem__)
        elif kind == "forget" and minute in model:
            del model[minute]
            cold.put(minute, None, model.__getitem__)
        elif kind == "expire":
            gone = cold.pop_before(minute, model.__getitem__)
            assert gone == sorted((m, b) for m, b in model.items() if m < minute)
            for m, _ in gone:
                del model[m]
        assert list(cold) == sorted(model)
        assert len(cold) == len(model)
    for start in starts:
        expected = [sum(column) for column in zip(
            *[b for m, b in model.items() if m >= start], [0] * WIDTH, strict=False)]
        assert column_sums(cold.parts_from(start, model.__getitem__)) == expected
        for end in (start + 1, start + 59, start + 61, start + 150):
            inside = [b for m, b in model.items() if start <= m < end]
            assert column_sums(cold.parts_between(start, end, model.__getitem__)) == [
                sum(column) for column in zip(*inside, [0] * WIDTH, strict=False)]
    assert cold.between(50, 120) == sorted(m for m in model if 50 <= m < 120)
    assert cold.newest() == (max(model) if model else None)


def test_a_day_of_minute_traffic_keeps_only_the_hot_minutes_in_memory() -> None:
    table = StoreTable()
    hot = hot_span([5, 60, DAY])
    state = KpiState(DAY, hot, table.read)
    everything = KpiState(DAY)
    windows = [Window("5m", 5), Window("1h", 60), Window("24h", DAY)]
    for offset, minute in enumerate(range(NOW - DAY - 30, NOW + 1)):
        deltas = {(c, ch, minute): bucket(1 + offset % 7) for c, ch in CELLS}
        table.write(state.apply(deltas, minute, offset))
        everything.apply(deltas, minute, offset)
        if minute % 97 == 0:  # a scrape now and then moves the window sums
            assert answers(state, minute, windows) == answers(everything, minute, windows)
    # per cell: the hot minutes and the total, against a day and the total
    assert state.held_in_memory() == len(CELLS) * (hot + 1)
    assert everything.held_in_memory() == len(CELLS) * (DAY + 1)
    assert answers(state, NOW, windows) == answers(everything, NOW, windows)
    # the store holds every bucket of the day, none older: the hours wholly cold as hour
    # blocks, a record each (24 a cell at most), the rest as minute records
    assert len(table.buckets()) == len(CELLS) * (DAY + 1)
    blocks = [key for key in table if is_hour_key(key)]
    assert len(blocks) == len(CELLS) * 23
    assert len(table) == len(CELLS) * (1 + 23 + (NOW - (NOW - hot + 1) // 60 * 60 + 1))


def test_a_late_event_in_a_cold_minute_adds_to_the_bucket_on_disk() -> None:
    table = StoreTable()
    state = KpiState(DAY, 10, table.read)
    for offset, minute in enumerate(range(NOW - 100, NOW + 1)):
        table.write(state.apply({("a", "web", minute): bucket(1)}, minute, offset))
    late = {("a", "web", NOW - 50): bucket(4)}
    changed = state.apply(late, NOW, 1_000)
    assert changed[("a", "web", NOW - 50)][:WIDTH] == bucket(5)
    table.write(changed)
    assert state.held_in_memory() == 11  # back to cold once written
    rows = {w: v for _, _, w, v in state.rows(NOW, [Window("1h", 60)], lambda _: True)}
    assert rows["1h"] == bucket(60 + 4) and rows["total"] == bucket(101 + 4)
    # the same message again (a replay) changes nothing but is sent again
    again = state.apply(late, NOW, 1_000)
    assert again[("a", "web", NOW - 50)][:WIDTH] == bucket(5)


def test_retiring_a_campaign_channel_names_its_cold_buckets_too() -> None:
    table = StoreTable()
    state = KpiState(DAY, 10, table.read)
    for offset, minute in enumerate(range(NOW - 30, NOW + 1)):
        table.write(state.apply({("a", "web", minute): bucket(1)}, minute, offset))
    assert set(state.drop("a", "web")) == set(table)
    assert state.cells() == [] and state.held_in_memory() == 0


def test_a_rebuild_keeps_old_minutes_cold_and_answers_the_same() -> None:
    table = StoreTable()
    state = KpiState(DAY, 10, table.read)
    everything = KpiState(DAY)
    reach = ExtrasDelta([1, 2, 3], {"p1": [1, 500]}, {"live": [1, 0, 0, 0, 0]})
    for offset, minute in enumerate(range(NOW - 200, NOW + 1)):
        deltas = {(c, ch, minute): bucket(offset % 5) for c, ch in CELLS}
        extras = {("a", "web", minute): ExtrasDelta(
            [offset, offset + 1], {f"p{offset % 7}": [1, 500]}, dict(reach.content))}
        table.write(state.apply(deltas, minute, offset, copied(extras)))
        everything.apply(deltas, minute, offset, copied(extras))
    # window starts at an hour's first minute, inside an hour (most of it in the window,
    # or most of it out), and the 24h one before every bucket
    windows = [Window("5m", 5), Window("1h", 60), Window("70m", 70), Window("110m", 110),
               Window("24h", DAY)]
    expected = answers(everything, NOW, windows)
    assert answers(state, NOW, windows) == expected
    rebuilt = KpiState(DAY, 10, table.read)
    for key, raw in table.items():
        rebuilt.load(key, list(orjson.loads(raw)), NOW)
    assert rebuilt.held_in_memory() == len(CELLS) * 11
    assert answers(rebuilt, NOW, windows) == expected


VIEWERS_FROM = NOW - 360
"""Six hours of minutes with viewers, up to NOW."""
VIEWER_WINDOWS = [Window("5m", 5), Window("1h", 60), Window("3h", 180), Window("24h", DAY)]


def view(table: StoreTable, state: KpiState, everything: KpiState, minute: int,
         viewers: list[int], now: int, offset: int) -> None:
    """One view of campaign-channel a/web in ``minute`` by ``viewers``, counted at ``now``
    by both states, the tiered one's changes written to ``table``."""
    deltas = {("a", "web", minute): bucket(1)}
    extras = {("a", "web", minute): ExtrasDelta(viewers, {}, {})}
    table.write(state.apply(deltas, now, offset, copied(extras)))
    everything.apply(deltas, now, offset, copied(extras))


def test_viewers_of_hours_gone_by_are_read_back_from_the_store() -> None:
    """Six hours of minutes with viewers: the viewers of hours gone by are left in the
    store (their buckets'), read back for a late view into one of them and as the 24 h
    window's edge moves on, and reach answers as a state holding every minute does."""
    table = StoreTable()
    state, everything = KpiState(DAY, 61, table.read), KpiState(DAY)
    windows = VIEWER_WINDOWS
    for offset, minute in enumerate(range(VIEWERS_FROM, NOW + 1)):
        view(table, state, everything, minute, [offset, offset + 1, 7], minute, offset)
        if minute % 30 == 0:  # a scrape now and then
            assert answers(state, minute, windows) == answers(everything, minute, windows)
    assert answers(state, NOW, windows) == answers(everything, NOW, windows)
    # in memory: the hours of the 3 h window's edge and the newest two (NOW opens its hour)
    assert everything.viewer_minutes_in_memory() == 361
    assert state.viewer_minutes_in_memory() == 60 + 60 + 1
    late = VIEWERS_FROM + 20  # hours gone by: its hour's viewers are read back
    view(table, state, everything, late, [99_999], NOW, 10_000)
    assert state.viewer_minutes_in_memory() == 60 + 60 + 1  # the late one read and let go
    for now in (NOW, NOW + 1, NOW + 61):
        assert answers(state, now, windows) == answers(everything, now, windows)
    assert state.viewer_minutes_in_memory() < 4 * 60 + 2


class CountedReads(StoreTable):
    """A table that remembers the keys read from it."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[RecordKey] = []

    def read(self, key: tuple[Any, ...]) -> list[Any] | None:
        self.reads.append(key)  # type: ignore[arg-type]
        return super().read(key)


@pytest.mark.parametrize("order", ["store", "rocksdb", "reversed"])
def test_a_rebuild_leaves_the_viewers_of_blocked_hours_in_the_store(order: str) -> None:
    """Each hour block carries the union of its minutes' viewers: a rebuild holds only the
    viewers of minutes outside blocks (was: every minute's, until the first scrape let them
    go), whatever the order its records come in (RocksDB's: a cell's blocks first, by hour),
    reads a block back only at a window's edge, and reach answers as a state holding every
    minute does, after a late view into a blocked hour and a second rebuild too."""
    table = CountedReads()
    state, everything = KpiState(DAY, 61, table.read), KpiState(DAY)
    windows = VIEWER_WINDOWS
    for offset, minute in enumerate(range(VIEWERS_FROM, NOW + 1)):
        view(table, state, everything, minute, [offset, offset + 1, 7], minute, offset)
    blocks = [key for key in table if is_hour_key(key)]
    assert len(blocks) >= 4 and all(block_reach(orjson.loads(table[key])) for key in blocks)
    minute_records = [key for key in table if not is_hour_key(key) and key[2] >= 0]
    records = list(table.items())
    if order == "rocksdb":  # by the bytes of each JSON key
        records.sort(key=lambda item: orjson.dumps(list(item[0])))
    elif order == "reversed":
        records.reverse()
    rebuilt = KpiState(DAY, 61, table.read)
    for key, raw in records:
        rebuilt.load(key, list(orjson.loads(raw)), NOW)
    assert rebuilt.viewer_minutes_in_memory() == len(minute_records) < 2 * 60 + 1
    table.reads.clear()
    assert answers(rebuilt, NOW, windows) == answers(everything, NOW, windows)
    edge = (NOW - 179) // 60  # the 3 h window's trailing edge; the others are hot or empty
    assert {key for key in table.reads if is_hour_key(key)} == {("a", "web", "hour", edge)}
    late = VIEWERS_FROM + 20  # into a blocked hour: read back, and its block written again
    view(table, rebuilt, everything, late, [99_999], NOW, 10_000)
    for now in (NOW, NOW + 1, NOW + 61):
        assert answers(rebuilt, now, windows) == answers(everything, now, windows)
    again = rebuilt_from(table, 61, NOW + 61)
    assert answers(again, NOW + 61, windows) == answers(everything, NOW + 61, windows)


def as_written_before(value: list[Any], with_union: bool) -> list[Any]:
    """An hour block as the versions before 2026-12-07 wrote it: its buckets as JSON lists,
    no index, and its viewers' union (written from 2026-12-06 on) or not."""
    old = [*value[:3], [[m, b] for m, b in block_entries(value).items()]]
    return [*old, value[4]] if with_union and value[4] is not None else old


@pytest.mark.parametrize("written", ["now", "with the union, before the index",
                                     "before the union"])
def test_hour_blocks_of_every_version_rebuild_the_same_answers(written: str) -> None:
    """A block's buckets go in as one JSON text beside an index (its minutes and those with
    viewers) that a rebuild reads instead of them; blocks written before (buckets as
    lists, with the viewers' union or without) rebuild the same answers, and a late event
    rewrites one in the new form."""
    table = StoreTable()
    state, everything = KpiState(DAY, 61, table.read), KpiState(DAY)
    for offset, minute in enumerate(range(VIEWERS_FROM, NOW + 1)):
        deltas = {(c, "web", minute): bucket(1 + offset % 3) for c in ("a", "b", "c")}
        extras = {("c", "web", minute): ExtrasDelta([], {"p2": [1, 100]}, {})}  # no viewers
        if minute % 2 == 0 or minute % 3 == 0:  # "b": no extras at all
            extras[("a", "web", minute)] = ExtrasDelta(
                [offset, 7] if minute % 2 == 0 else [],
                {"p1": [1, 500]} if minute % 3 == 0 else {}, {})
        table.write(state.apply(deltas, minute, offset, copied(extras)))
        everything.apply(deltas, minute, offset, copied(extras))
    blocks = {key: list(orjson.loads(raw)) for key, raw in table.items() if is_hour_key(key)}
    assert {key[0] for key in blocks} == {"a", "b", "c"}
    for key, value in blocks.items():
        assert isinstance(value[3], str)
        buckets = block_entries(value)
        index = block_index(value)
        assert index is not None
        minutes, viewed = index
        assert minutes == sorted(buckets) and len(minutes) == 60
        assert viewed == minute_bits(key[3], [m for m, b in buckets.items()
                                               if isinstance(b[-1], dict) and "r" in b[-1]])
        assert (viewed != 0) == (key[0] == "a") == (block_reach(value) is not None)
    if written != "now":
        for key, value in blocks.items():
            table[key] = dumps(as_written_before(value, written.startswith("with")))
    rebuilt = rebuilt_from(table, 61, NOW)
    assert answers(rebuilt, NOW, VIEWER_WINDOWS) == answers(everything, NOW, VIEWER_WINDOWS)
    late = VIEWERS_FROM + 21  # into a blocked hour of "a": its block written again
    deltas = {("a", "web", late): bucket(1)}
    extras = {("a", "web", late): ExtrasDelta([99_999], {"p3": [2, 900]}, {})}
    table.write(rebuilt.apply(deltas, NOW, 10_000, copied(extras)))
    everything.apply(deltas, NOW, 10_000, copied(extras))
    rewritten = list(orjson.loads(table[("a", "web", "hour", late // 60)]))
    assert isinstance(rewritten[3], str) and block_index(rewritten) is not None
    for now in (NOW, NOW + 1, NOW + 61):
        assert answers(rebuilt, now, VIEWER_WINDOWS) == answers(everything, now,
                                                                 VIEWER_WINDOWS)
    again = rebuilt_from(table, 61, NOW + 61)
    assert answers(again, NOW + 61, VIEWER_WINDOWS) == answers(everything, NOW + 61,
                                                               VIEWER_WINDOWS)


def rebuilt_from(table: StoreTable, hot: int, now: int, backwards: bool = False) -> KpiState:
    """A state loaded from ``table`` (its records in either order: a block may come before
    or after the minute records of its hour)."""
    state = KpiState(DAY, hot, table.read)
    for key, raw in reversed(table.items()) if backwards else table.items():
        state.load(key, list(orjson.loads(raw)), now)
    return state


def test_a_crash_between_an_hour_block_and_its_tombstones_loses_nothing() -> None:
    """The block lands, its minutes' tombstones do not: the rebuild takes the block, and
    the left-over minute records get their tombstones at the cell's next scan."""
    table = StoreTable()
    state, everything = KpiState(DAY, 10, table.read), KpiState(DAY)
    blocked: list[Any] = []
    crashed = NOW
    for offset, minute in enumerate(range(NOW - 200, NOW + 1)):
        deltas = {("a", "web", minute): bucket(1 + offset % 3)}
        changed = state.apply(deltas, minute, offset)
        everything.apply(deltas, minute, offset)
        blocked += [key for key in changed if is_hour_key(key)]
        if len(blocked) == 2:  # the crash: only what comes before the tombstones lands
            crashed = minute
            table.write({k: v for k, v in changed.items() if v is not None})
            break
        table.write(changed)
    hour = blocked[1][3]
    left_over = [k for k in table if not is_hour_key(k) and k[2] // 60 == hour]
    assert len(left_over) == 60  # the hour's minute records, beside its block
    windows = [Window("1h", 60), Window("2h", 120)]
    expected = answers(everything, crashed, windows)
    for backwards in (False, True):
        rebuilt = rebuilt_from(table, 10, crashed, backwards)
        assert answers(rebuilt, crashed, windows) == expected
        assert set(left_over) <= set(rebuilt.drop("a", "web"))
    rebuilt = rebuilt_from(table, 10, crashed, backwards=True)
    table.write(rebuilt.apply({("a", "web", crashed): bucket(1)}, crashed, 10_000))
    everything.apply({("a", "web", crashed): bucket(1)}, crashed, 10_000)
    assert not set(left_over) & set(table)
    assert answers(rebuilt_from(table, 10, crashed), crashed, windows) == answers(
        everything, crashed, windows)


def test_an_event_in_a_blocked_hour_goes_into_its_block_whatever_the_clock() -> None:
    """A worker whose clock is behind (a rebalance) gets an event for a minute of an hour
    already blocked that is hot by its clock: the event still goes into the block, so a
    rebuild, which takes a block over minute records of its hour, keeps it."""
    table = StoreTable()
    state, everything = KpiState(DAY, 10, table.read), KpiState(DAY)
    start = NOW // 60 * 60 - 120
    for offset, minute in enumerate(range(start, start + 80)):
        deltas = {("a", "web", minute): bucket(1)}
        table.write(state.apply(deltas, minute, offset))
        everything.apply(deltas, minute, offset)
    assert (("a", "web", "hour", start // 60)) in table
    behind = start + 62  # hot from start + 53 by this clock: inside the blocked hour
    rebuilt = rebuilt_from(table, 10, behind)
    late = {("a", "web", start + 55): bucket(5)}
    table.write(rebuilt.apply(late, behind, 1_000))
    everything.apply(late, behind, 1_000)
    assert not [k for k in table if not is_hour_key(k) and start <= k[2] < start + 60]
    windows = [Window("2h", 120)]
    assert answers(rebuilt_from(table, 10, behind), behind, windows) == answers(
        everything, behind, windows)


def test_a_backfill_writes_each_hour_block_once_not_once_per_event() -> None:
    """History replayed into a fresh worker (a new deployment reading its topics from the
    start) lands minute by minute in hours already past the hot minutes: the hour becomes
    one block once the clock's minute moves on, not rewritten (all its minutes) with each
    event."""
    table = StoreTable()
    state, everything = KpiState(DAY, 10, table.read), KpiState(DAY)
    start = NOW // 60 * 60 - 300  # three hours of event time, hours before the clock
    blocks_written = 0
    for offset, minute in enumerate(range(start, start + 180)):
        deltas = {("a", "web", minute): bucket(1 + offset % 3)}
        changed = state.apply(deltas, NOW, offset)
        blocks_written += sum(1 for key in changed if is_hour_key(key))
        table.write(changed)
        everything.apply(deltas, NOW, offset)
    assert blocks_written == 0  # the clock's minute has not moved on
    assert not [key for key in table if is_hour_key(key)]
    # the next minute: the cell's next message blocks its three hours, one record each
    changed = state.apply({("a", "web", NOW + 1): bucket(1)}, NOW + 1, 1_000)
    everything.apply({("a", "web", NOW + 1): bucket(1)}, NOW + 1, 1_000)
    assert sorted(key[3] for key in changed if is_hour_key(key)) == [
        start // 60, start // 60 + 1, start // 60 + 2]
    table.write(changed)
    assert len(table) == 3 + 2  # the blocks, the new minute and the total
    windows = [Window("1d", DAY), Window("5m", 5)]
    assert answers(state, NOW + 1, windows) == answers(everything, NOW + 1, windows)
    assert answers(rebuilt_from(table, 10, NOW + 1), NOW + 1, windows) == answers(
        everything, NOW + 1, windows)


# ---------------------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------------------
EXTRAS = st.builds(
    lambda users, products, content, ltv: ExtrasDelta(users, products, content, ltv),
    st.lists(st.integers(1, 40), max_size=3),
    st.dictionaries(st.sampled_from(["p1", "p2"]),
                    st.tuples(st.integers(1, 3), st.integers(0, 10)).map(list), max_size=2),
    st.dictionaries(st.sampled_from(["tutorial", "live"]),
                    st.tuples(st.integers(1, 2), *[st.integers(0, 2)] * 4).map(list),
                    max_size=1),
    st.dictionaries(st.sampled_from([30, 90]), st.integers(0, 100), max_size=1))
OPS = st.one_of(
    applies(st.lists(EXTRAS, max_size=3)),
    TICKS,
    SCRAPES,
    st.tuples(st.just("rebuild")),
    st.tuples(st.just("drop"), st.sampled_from(CELLS)),
)


@settings(max_examples=300, deadline=None)
@given(retention=st.sampled_from([5, 60, 90, 150]), hot=st.integers(1, 12),
       ops=st.lists(OPS, max_size=40))
def test_cold_minutes_change_no_number(retention: int, hot: int,
                                       ops: list[tuple[Any, ...]]) -> None:
    """Against a state holding every bucket: the same changes to write, the same rows,
    extras and budget sums, the same keys to tombstone, over any history."""
    table, everything_table = StoreTable(), StoreTable()
    tiered = KpiState(retention, hot, table.read)
    everything = KpiState(retention)
    now, offset = NOW, 0
    windows = [Window("5m", 5)]
    for op in ops:
        kind = op[0]
        if kind == "apply":
            _, deltas, back, extras_list = op
            offset = max(0, offset + 1 + back)
            message = {(c, ch, now + m): d for ((c, ch), m), d in deltas.items()}
            extras = dict(zip(message, extras_list, strict=False))

            changed = tiered.apply(message, now, offset, copied(extras))
            expected = everything.apply(message, now, offset, copied(extras))
            sent = expanded(changed)  # every changed bucket is sent, in a block or not
            assert {k: sent.get(k) for k, v in counters(expected).items()
                    if v is not None} == {k: v for k, v in counters(expected).items()
                                          if v is not None}
            table.write(changed)
            everything_table.write(expected)
        elif kind == "tick":
            now = max(0, now + op[1])
        elif kind == "rows":
            windows = [Window(f"{m}m", m) for m in op[1]]
            assert answers(tiered, now, windows) == answers(everything, now, windows)
        elif kind == "drop":
            _, (c, ch) = op
            for key in tiered.drop(c, ch):
                del table[key]  # each key named is there
            for key in everything.drop(c, ch):
                everything_table.pop(key, None)
            assert not [key for key in table if key[:2] == (c, ch)]
        else:
            tiered.clear()
            everything.clear()
            for key, raw in table.items():
                tiered.load(key, list(orjson.loads(raw)), now)
            for key, raw in everything_table.items():
                everything.load(key, list(orjson.loads(raw)))
        # hot minutes and totals only, once a cell's last apply moved the old ones out
        assert tiered.held_in_memory() <= everything.held_in_memory()
        assert table.buckets() == everything_table.buckets()
    assert answers(tiered, now, windows) == answers(everything, now, windows)
    assert answers(tiered, now + 1, [Window("1d", DAY), Window("5m", 5)]) == answers(
        everything, now + 1, [Window("1d", DAY), Window("5m", 5)])
