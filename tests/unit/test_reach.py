"""Reach sketches: stable user keys, estimates within the sketch's error of the exact distinct
count, and windowed answers (roll-ups, cache) equal to a plain union of the minute sketches."""

from __future__ import annotations

import math
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.windows.reach import LG_K, UserSketch, WindowReach, user_key

ROOT = Path(__file__).resolve().parents[2]
RSE = 0.693 / math.sqrt(1 << LG_K)
"""CPC's merged (ICON) relative standard error: 1.53 % at lg_k 11."""
NOW = 29_590_500  # a minute in November 2026
WINDOWS = (1, 5, 60, 61, 120, 1440)


def fed(keys: list[int]) -> UserSketch:
    sketch = UserSketch()
    sketch.add(keys)
    return sketch


def plain_union(sketches: list[UserSketch]) -> float:
    """The reference: one union of every sketch, no roll-up, no cache."""
    union = UserSketch()
    for sketch in sketches:
        union.merge(sketch)
    return union.estimate()


def random_keys(count: int, seed: int) -> list[int]:
    rng = random.Random(seed)
    return [rng.getrandbits(63) for _ in range(count)]


# ---------------------------------------------------------------------------------------
# user_key
# ---------------------------------------------------------------------------------------
def test_user_key_is_the_same_in_another_process_with_another_hash_seed() -> None:
    ids = ["user-42", "", "Ünïcode-用户", "x" * 300]
    code = "import sys; from streams.windows.reach import user_key; " \
           "print(*[user_key(i) for i in sys.argv[1:]])"
    for hash_seed in ("1", "977"):
        out = subprocess.run(
            [sys.executable, "-c", code, *ids], capture_output=True, text=True, check=True,
            env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONHASHSEED": hash_seed},
        ).stdout.split()
        assert [int(key) for key in out] == [user_key(i) for i in ids]


def test_user_key_is_pinned() -> None:
    # Sketches in the changelog hold keys of this function: a new hash would count every
    # returning viewer twice after a restart. This is the first 8 bytes of
    # blake2b("user-42", person="kpistream-user"), top bit cleared.
    assert user_key("user-42") == 6630624109297101534


@given(st.text())
def test_user_key_is_a_non_negative_63_bit_integer(user_id: str) -> None:
    assert 0 <= user_key(user_id) < 2**63


def test_distinct_ids_give_distinct_keys() -> None:
    keys = {user_key(f"user-{i}") for i in range(100_000)}
    assert len(keys) == 100_000


# ---------------------------------------------------------------------------------------
# UserSketch
# ---------------------------------------------------------------------------------------
def test_an_empty_sketch_is_false_and_estimates_zero() -> None:
    sketch = UserSketch()
    assert not sketch
    assert sketch.estimate() == 0.0
    sketch.add([])
    assert not sketch
    sketch.add([5])
    assert sketch
    assert sketch.estimate() == 1.0


@pytest.mark.parametrize("count", [1, 2, 10, 20])
def test_a_few_viewers_are_counted_to_the_unit(count: int) -> None:
    assert round(fed(random_keys(count, seed=count)).estimate()) == count


def test_a_viewer_seen_again_is_not_counted_again() -> None:
    keys = random_keys(3_000, seed=1)
    once, twice = fed(keys), fed(keys + keys[::-1])
    assert once.estimate() == twice.estimate()


@pytest.mark.parametrize("count", [1_000, 10_000, 100_000])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_estimate_within_three_standard_errors_of_the_exact_count(count: int, seed: int) -> None:
    keys = [user_key(f"viewer-{seed}-{i}") for i in range(count)]
    assert abs(fed(keys).estimate() / count - 1) <= 3 * RSE


def test_estimate_of_a_union_of_minutes_within_three_standard_errors() -> None:
    # 1,440 minutes of 100 viewers drawn from 50,000 (returning viewers, as in a day)
    rng = random.Random(11)
    pool = [user_key(f"v-{i}") for i in range(50_000)]
    reach, seen = WindowReach(), set()
    for minute in range(NOW - 1439, NOW + 1):
        keys = rng.sample(pool, 100)
        seen.update(keys)
        reach.add(minute, keys)
    assert abs(reach.estimate(NOW, 1440) / len(seen) - 1) <= 3 * RSE
    assert abs(reach.total_estimate() / len(seen) - 1) <= 3 * RSE


@pytest.mark.parametrize("count", [0, 1, 10, 1_000, 30_000])
def test_wire_round_trip_keeps_the_estimate(count: int) -> None:
    sketch = fed(random_keys(count, seed=count))
    text = sketch.to_wire()
    assert text.isascii()
    back = UserSketch.from_wire(text)
    assert back.estimate() == sketch.estimate()
    assert bool(back) == bool(sketch)
    assert back.to_wire() == text


def test_wire_rejects_what_is_not_a_sketch_of_this_size() -> None:
    with pytest.raises(ValueError, match="not a serialized user sketch"):
        UserSketch.from_wire("not base64!")
    with pytest.raises(ValueError, match="not a serialized user sketch"):
        UserSketch.from_wire(fed([1, 2, 3]).to_wire()[:12])
    from datasketches import cpc_sketch
    other = UserSketch(cpc_sketch(LG_K + 1))
    with pytest.raises(ValueError, match=f"lg_k {LG_K + 1}, expected {LG_K}"):
        UserSketch.from_wire(other.to_wire())


def test_a_copy_is_independent() -> None:
    sketch = fed(random_keys(500, seed=2))
    before = sketch.estimate()
    copy = sketch.copy()
    assert copy.estimate() == before
    copy.add(random_keys(500, seed=3))
    assert sketch.estimate() == before
    assert copy.estimate() > before


sizes = st.lists(st.sampled_from([0, 1, 3, 40, 300, 2_500, 12_000]), min_size=1, max_size=7)


@settings(max_examples=60, deadline=None)
@given(sizes, st.integers(0, 2**32))
def test_merge_order_and_grouping_do_not_change_the_estimate(
    part_sizes: list[int], seed: int,
) -> None:
    rng = random.Random(seed)
    # Overlapping parts: each draws from one pool, so viewers recur across parts.
    pool = random_keys(20_000, seed=5)
    parts = [rng.sample(pool, min(size, len(pool))) for size in part_sizes]
    sketches = [fed(keys) for keys in parts]
    forward = plain_union(sketches)
    assert plain_union(sketches[::-1]) == forward
    assert plain_union(rng.sample(sketches, len(sketches))) == forward
    cut = rng.randint(0, len(sketches))
    assert plain_union([fed([]), *[s.copy() for s in sketches], fed([])]) == forward
    left, right = UserSketch(), UserSketch()
    for sketch in sketches[:cut]:
        left.merge(sketch)
    for sketch in sketches[cut:]:
        right.merge(sketch)
    right.merge(left)
    assert right.estimate() == forward
    # and the same as one sketch fed every viewer directly
    assert fed([key for keys in parts for key in keys]).estimate() == forward


# ---------------------------------------------------------------------------------------
# WindowReach
# ---------------------------------------------------------------------------------------
def reference(reach: WindowReach, minutes: dict[int, UserSketch], now: int,
              window: int) -> float:
    start = now - window + 1
    return plain_union([s for m, s in minutes.items() if m >= start])


operation = st.one_of(
    st.tuples(st.just("add"), st.integers(-200, 140), st.integers(0, 60),
              st.sampled_from([0, 1, 5, 50, 800])),
    st.tuples(st.just("load"), st.integers(-200, 140), st.integers(0, 60),
              st.sampled_from([0, 3, 400])),
    st.tuples(st.just("drop"), st.integers(-220, 140), st.just(0), st.just(0)),
    st.tuples(st.just("ask"), st.integers(-100, 200), st.sampled_from(WINDOWS), st.just(0)),
)


@pytest.mark.parametrize("stored", [False, True], ids=["in-memory", "spilled-to-store"])
@settings(max_examples=200, deadline=None)
@given(operations=st.lists(operation, min_size=1, max_size=40))
def test_windowed_estimates_equal_a_plain_union_of_the_minutes(
    stored: bool, operations: list[tuple[str, int, int, int]],
) -> None:
    """``stored``: the minutes also in a store (as their buckets are in the kpi table's),
    so hours gone by leave their minutes there and read them back when needed."""
    store: dict[int, str] = {}

    def read(minute: int) -> UserSketch | None:
        wire = store.get(minute)
        return None if wire is None else UserSketch.from_wire(wire)

    reach = WindowReach(read if stored else None)
    minutes: dict[int, UserSketch] = {}
    every_key: list[int] = []
    pool = random_keys(3_000, seed=9)
    for i, (op, minute, a, b) in enumerate(operations):
        minute += NOW
        keys = pool[a * 40:a * 40 + b]
        if op == "add":
            store[minute] = reach.add(minute, keys).to_wire()  # the bucket, written
            minutes.setdefault(minute, UserSketch()).add(keys)
            every_key += keys
        elif op == "load":
            sketch = fed(random_keys(b, seed=i))
            reach.load(minute, UserSketch.from_wire(sketch.to_wire()))
            store[minute] = sketch.to_wire()
            minutes[minute] = sketch
        elif op == "drop":
            reach.drop_before(minute)
            minutes = {m: s for m, s in minutes.items() if m >= minute}
            for gone in [m for m in store if m < minute]:  # as KpiState._expire deletes
                del store[gone]  # the expired buckets from the kpi table
        for now in (minute, minute + a, NOW):
            for window in WINDOWS:
                assert reach.estimate(now, window) == reference(reach, minutes, now, window)
        assert reach.total_estimate() == fed(every_key).estimate()


def test_hours_gone_by_leave_their_minutes_in_the_store() -> None:
    """A day of minutes with viewers: after a 24 h estimate only the hours at the windows'
    edges and the newest two are in memory; a late view into an hour left in the store, and
    the next hour's edge, read it back, and every answer stays the plain union's."""
    store: dict[int, str] = {}
    reads: list[int] = []

    def read(minute: int) -> UserSketch | None:
        reads.append(minute)
        return UserSketch.from_wire(store[minute])

    reach, minutes = WindowReach(read), {}
    start = NOW // 60 * 60 - 1440
    for minute in range(start, NOW + 1):
        keys = random_keys(10, seed=minute)
        store[minute] = reach.add(minute, keys).to_wire()
        minutes[minute] = fed(keys)
    for window in (5, 60, 1440):
        assert reach.estimate(NOW, window) == reference(reach, minutes, NOW, window)
    # the 24 h edge's hour, the 1 h edge's, the newest's: every minute of the day else gone
    assert reach.minutes_in_memory == 60 + 60 + NOW % 60 + 1 and reads == []
    late = start + 300  # an hour in the store: only its minute read back for the view
    store[late] = reach.add(late, [12345]).to_wire()
    minutes[late].add([12345])
    assert reads == [late] and reach.minutes_in_memory == 60 + 60 + NOW % 60 + 1
    assert reach.estimate(NOW, 1440) == reference(reach, minutes, NOW, 1440)
    reads.clear()
    later = NOW // 60 * 60 + 61  # the 24 h window's edge moves into the next hour
    assert reach.estimate(later, 1440) == reference(reach, minutes, later, 1440)
    assert sorted(set(reads)) == list(range((later - 1439) // 60 * 60,
                                            (later - 1439) // 60 * 60 + 60))


def test_a_cached_answer_follows_a_change_inside_its_window_only() -> None:
    reach = WindowReach()
    reach.add(NOW - 10, random_keys(200, seed=1))
    reach.add(NOW, random_keys(200, seed=2))
    hour = reach.estimate(NOW, 60)
    assert reach.estimate(NOW, 60) == hour
    reach.add(NOW - 100, random_keys(300, seed=3))  # before the window: answer kept
    assert NOW - 59 in reach._answers
    assert reach.estimate(NOW, 60) == hour
    reach.add(NOW + 2, random_keys(300, seed=4))  # ahead of now: inside the window
    assert NOW - 59 not in reach._answers
    assert reach.estimate(NOW, 60) > hour
    assert reach.estimate(NOW, 60) == plain_union(
        [s for m in (NOW - 10, NOW, NOW + 2) if (s := reach.minute_sketch(m)) is not None])


def test_a_day_window_unions_at_most_9_minutes_a_block_union_the_middle_and_two_rollups(
) -> None:
    """Through an hour and a half, with retention dropping the minute that leaves the day
    each minute (as the state does), the 24 h and 1 h windows' trailing edges move minute
    by minute through hours gone by: each estimate takes at most 9 of their minutes and
    one union of the 10-minute blocks after them (in the newest hour, its minutes), and
    is the plain union's."""
    reach, minutes = WindowReach(), {}
    for minute in range(NOW - 1500, NOW + 1):
        keys = random_keys(3, seed=minute)
        reach.add(minute, keys)
        minutes[minute] = fed(keys)
    for now in range(NOW, NOW + 90):
        keys = random_keys(3, seed=now)
        reach.add(now, keys)
        minutes[now] = fed(keys)
        reach.drop_before(now - 1439)
        minutes = {m: s for m, s in minutes.items() if m >= now - 1439}
        for window in (5, 60, 1440):
            start = now - window + 1
            parts = reach._window_parts(start, window)
            if start // 60 < now // 60:  # the minutes from start to its block's end, a
                # block union, the middle, two roll-ups
                assert len(parts) <= (-start) % 10 + 1 + 1 + 2
            else:  # inside the newest hour: its minutes (or, from its start, its roll-up)
                assert len(parts) <= window
            assert reach.estimate(now, window) == reference(reach, minutes, now, window)


def test_a_backfill_into_hours_in_the_store_adds_to_the_middle_it_does_not_make_it_again(
) -> None:
    """Late views into hours left in the store (a backfill, a tracker's retries) add to
    the day window's middle, the union of the hours' roll-ups, where it was made again
    from them at the next estimate; every answer stays the plain union's. And a window
    keeps one middle, however often the hours move on."""
    store: dict[int, str] = {}
    reach, minutes = WindowReach(lambda m: UserSketch.from_wire(store[m])), {}
    start = NOW // 60 * 60 - 1440
    for minute in range(start, NOW + 1):
        keys = random_keys(5, seed=minute)
        store[minute] = reach.add(minute, keys).to_wire()
        minutes[minute] = fed(keys)
    assert reach.estimate(NOW, 1440) == reference(reach, minutes, NOW, 1440)
    middle = reach._settled[1440][1]
    for i, late in enumerate(range(start + 1000, start + 200, -37)):  # back over the day
        keys = random_keys(3, seed=10_000 + i)
        store[late] = reach.add(late, keys).to_wire()
        minutes[late].add(keys)
        assert reach.estimate(NOW, 1440) == reference(reach, minutes, NOW, 1440)
        assert reach._settled[1440][1] is middle
    for now in range(NOW, NOW + 200, 7):  # the hours move on: a new middle each hour
        assert reach.estimate(now, 1440) == reference(reach, minutes, now, 1440)
        assert list(reach._settled) == [1440]


def test_drop_before_forgets_minutes_but_not_the_total() -> None:
    reach = WindowReach()
    old, new = random_keys(1_000, seed=1), random_keys(1_000, seed=2)
    reach.add(NOW - 2000, old)
    reach.add(NOW, new)
    everyone = reach.total_estimate()
    reach.drop_before(NOW - 1439)
    assert reach.minute_sketch(NOW - 2000) is None
    assert reach.estimate(NOW, 100_000) == fed(new).estimate()
    assert reach.total_estimate() == everyone == fed(old + new).estimate()


def test_a_restart_from_the_wire_gives_the_same_answers() -> None:
    before = WindowReach()
    rng = random.Random(4)
    pool = random_keys(5_000, seed=4)
    changelog: dict[int, str] = {}
    for minute in range(NOW - 200, NOW + 3):
        changelog[minute] = before.add(minute, rng.sample(pool, rng.choice([0, 2, 30]))).to_wire()
    after = WindowReach()
    for minute, text in changelog.items():
        after.load(minute, UserSketch.from_wire(text))
    after.load_total(UserSketch.from_wire(before.total_sketch().to_wire()))
    for window in WINDOWS:
        assert after.estimate(NOW, window) == before.estimate(NOW, window)
    assert after.total_estimate() == before.total_estimate()


def test_a_frozen_sketch_answers_the_same_and_thaws_on_add() -> None:
    keys = random_keys(700, seed=6)
    live, frozen = fed(keys), fed(keys)
    frozen.freeze()
    assert frozen.frozen and not live.frozen
    assert frozen and frozen.estimate() == live.estimate()
    assert frozen.to_wire() == live.to_wire()
    assert plain_union([frozen, fed([1])]) == plain_union([live, fed([1])])
    more = random_keys(50, seed=7)
    frozen.add(more)
    live.add(more)
    assert not frozen.frozen
    assert frozen.estimate() == live.estimate()
    empty = UserSketch()
    empty.freeze()
    assert not empty and not empty.frozen
    assert UserSketch.from_wire(live.to_wire()).frozen


def test_the_minutes_of_the_hour_gone_by_freeze_though_its_rollup_was_kept_up() -> None:
    """Scraped through the hour, the newest hour's roll-up takes each minute's viewers as
    they come; once the next hour starts its minutes freeze all the same (they are held
    by their buckets too: live, each is 2-3 times the memory)."""
    reach = WindowReach()
    hour = NOW - NOW % 60
    for minute in range(hour, hour + 60):
        reach.add(minute, random_keys(20, seed=minute))
        if minute % 5 == 0:
            reach.estimate(minute, 60)
            reach.estimate(minute, 1440)
    for minute in range(hour + 60, hour + 70):
        reach.add(minute, random_keys(20, seed=minute))
        assert reach.estimate(minute, 60) == plain_union(
            [s for m in range(minute - 59, minute + 1)
             if (s := reach.minute_sketch(m)) is not None])
        reach.estimate(minute, 1440)
    assert all(s is not None and s.frozen
               for s in map(reach.minute_sketch, range(hour, hour + 68)))
    assert not any(s is None or s.frozen  # the two minutes viewers last went to
                   for s in map(reach.minute_sketch, range(hour + 68, hour + 70)))


def test_the_minutes_of_past_hours_freeze_when_their_rollup_is_built() -> None:
    reach = WindowReach()
    for minute in range(NOW - 120, NOW + 10):  # live, as read back for a late view
        reach.load(minute, fed(random_keys(20, seed=minute)))
    assert not any(s is None or s.frozen
                   for s in map(reach.minute_sketch, range(NOW - 120, NOW + 10)))
    day = reach.estimate(NOW, 1440)
    past = [reach.minute_sketch(m) for m in range(NOW - 120, NOW)]
    current = [reach.minute_sketch(m) for m in range(NOW, NOW + 10)]  # the newest hour
    assert all(s is not None and s.frozen for s in past)
    assert all(s is not None and not s.frozen for s in current)
    reach.add(NOW - 90, random_keys(20, seed=1))  # a late view thaws its minute
    late = reach.minute_sketch(NOW - 90)
    assert late is not None and not late.frozen
    assert reach.estimate(NOW, 1440) > day


def test_only_the_two_minutes_viewers_last_went_to_stay_live() -> None:
    """A minute's sketch freezes once viewers have gone to two other minutes since (live
    it is ~3 times the memory); a late view thaws it again, and every answer is the plain
    union's, however the views move between minutes."""
    reach = WindowReach()
    order = [NOW - 3, NOW - 2, NOW - 3, NOW - 3, NOW - 1, NOW, NOW - 2, NOW, NOW - 1, NOW]
    for n, minute in enumerate(order):
        reach.add(minute, random_keys(30, seed=100 + n))
        live = {m for m in range(NOW - 3, NOW + 1)
                if (s := reach.minute_sketch(m)) is not None and not s.frozen}
        last_two = list(dict.fromkeys(reversed(order[:n + 1])))[:2]  # distinct, newest first
        assert live == set(last_two)
        for window in (1, 2, 3, 4, 60):
            held = [reach.minute_sketch(m) for m in range(NOW - window + 1, NOW + 1)]
            assert reach.estimate(NOW, window) == plain_union(
                [s for s in held if s is not None])
