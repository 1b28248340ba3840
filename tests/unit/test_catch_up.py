"""Catching up on a changelog in bulk (streams.worker.catch_up, streams.worker.rocks_store):
whatever order the bulk read's batches and Faust's recovery records come in, the store
ends as the changelog read in offset order would leave it."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from types import SimpleNamespace
from typing import Any, NamedTuple

import faust
import pytest
from faust.types import TP
from hypothesis import given
from hypothesis import strategies as st

from streams.worker.bucket_store import STORE_URL, BucketStore
from streams.worker.catch_up import CatchUp

TOPIC = "catch-up-test-kpi-changelog"


class Record(NamedTuple):
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


def _replayed(records: list[Record]) -> dict[bytes | None, bytes | None]:
    """The changelog read in offset order: each key's last value (tombstones drop it)."""
    state: dict[bytes | None, bytes | None] = {}
    for r in sorted(records, key=lambda r: r.offset):
        if r.value is None:
            state.pop(r.key, None)
        else:
            state[r.key] = r.value
    return state


def _write(state: dict[bytes | None, bytes | None], records: list[Record]) -> None:
    for r in records:
        if r.value is None:
            state.pop(r.key, None)
        else:
            state[r.key] = r.value


@st.composite
def catch_ups(draw: Any) -> tuple[list[Record], int, list[tuple[str, list[Record]]]]:
    """A partition's changelog, the end its bulk read stops at, and the order in which
    the bulk read's batches, Faust's recovery batches (from the end minus one, as Faust
    seeks) and leftovers of a recovery a rebalance cut short reach the store."""
    n = draw(st.integers(1, 30))
    records = [Record(TOPIC, 0, i, draw(st.sampled_from([b"a", b"b", b"c"])),
                      draw(st.one_of(st.none(), st.binary(min_size=1, max_size=2))))
               for i in range(n)]
    end = draw(st.integers(1, n))
    bulk = records[:end]
    recovery = records[end - 1:]
    leftover_from = draw(st.integers(0, n - 1))
    leftovers = records[leftover_from:draw(st.integers(leftover_from + 1, n))]

    def chunks(rs: list[Record]) -> list[list[Record]]:
        cuts = sorted(draw(st.lists(st.integers(0, len(rs)), max_size=3)))
        bounds = [0, *cuts, len(rs)]
        return [rs[a:b] for a, b in pairwise(bounds) if b > a]

    # Faust's recovery hands its records over in the order it read them: leftovers of the
    # cut-short recovery first. Each source keeps its order; the two interleave at random.
    faust_batches = (chunks(leftovers) if draw(st.booleans()) else []) + chunks(recovery)
    events = ([("bulk", c) for c in chunks(bulk)], [("faust", c) for c in faust_batches])
    order: list[tuple[str, list[Record]]] = []
    queues = [list(q) for q in events]
    while any(queues):
        q = draw(st.sampled_from([q for q in queues if q]))
        order.append(q.pop(0))
    return records, end, order


@given(catch_ups())
def test_any_interleaving_ends_as_the_changelog_in_offset_order(
        case: tuple[list[Record], int, list[tuple[str, list[Record]]]]) -> None:
    records, end, order = case
    catch_up = CatchUp()
    catch_up.start({0: end}, active=[0])
    assert catch_up.persisted(0) == end - 1
    state: dict[bytes | None, bytes | None] = {}
    bulk_left = sum(len(batch) for source, batch in order if source == "bulk")
    for source, batch in order:
        if source == "bulk":
            _write(state, batch)
            bulk_left -= len(batch)
            if bulk_left == 0:
                _write(state, catch_up.finish(0))  # type: ignore[arg-type]
        else:
            _write(state, catch_up.admit(batch))
    assert catch_up.persisted(0) is None
    assert state == _replayed(records)


def test_a_rebalance_holds_until_the_next_reads_and_keeps_what_finished_reads_covered() -> None:
    catch_up = CatchUp()
    catch_up.start({0: 10, 1: 4}, active=[0, 1])
    old = Record(TOPIC, 1, 2, b"k", b"old")
    assert catch_up.admit([Record(TOPIC, 0, 12, b"k", b"v")]) == []  # held
    assert catch_up.finish(1) == []
    # partition 0's read is cancelled by a rebalance: until the next reads start, what
    # Faust's recovery hands over for it is still held, not written
    assert catch_up.admit([Record(TOPIC, 0, 13, b"k", b"w")]) == []
    catch_up.start({}, active=[0, 1])  # the next rebalance: no read for either
    assert catch_up.persisted(0) is None
    assert catch_up.admit([Record(TOPIC, 0, 14, b"k", b"x")]) == [Record(TOPIC, 0, 14, b"k", b"x")]
    assert catch_up.admit([old]) == []  # partition 1's read covered offset 2
    catch_up.start({}, active=[0])  # partition 1 is gone: its cover with it
    assert catch_up.admit([old]) == [old]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[BucketStore]:
    app = faust.App("catch-up-test", datadir=str(tmp_path), store="memory://",
                    autodiscover=False)
    table = app.Table("kpi", default=None, partitions=1, store=STORE_URL)
    opened = table.data
    assert isinstance(opened, BucketStore)
    yield opened
    opened.revoke_partitions(table, {TP(table.changelog_topic.get_topic_name(), 0)})


def _event(record: Record) -> Any:
    return SimpleNamespace(message=record)


def test_the_store_holds_recovery_records_until_its_bulk_read_is_done(
        store: BucketStore) -> None:
    tp = TP(TOPIC, 0)
    changelog = [Record(TOPIC, 0, i, b'"k"', f'"v{i}"'.encode()) for i in range(6)]
    store.catch_up.start({0: 4}, active=[0])
    assert store.persisted_offset(tp) == 3  # what Faust's recovery reads on from
    # Faust's recovery hands over offsets 3..5 before the bulk read wrote 0..3
    store.apply_changelog_batch([_event(r) for r in changelog[3:]], None, None)
    assert store._db_for_partition(0).get(b'"k"') is None
    store.write_changelog(changelog[:4])
    store.write_changelog(store.catch_up.finish(0))
    assert store._db_for_partition(0).get(b'"k"') == b'"v5"'
    assert store.persisted_offset(tp) == 5
