"""Remembered event ids: the RocksDB store (streams.worker.id_store) answers exactly as the
in-memory one (streams.stages.event_ids), survives a restart, recovers from changelog
records, and never calls a new id a duplicate."""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import faust
import orjson
import pytest
from faust.types import TP
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.flow.forwards import Forwards
from streams.stages.counting import CountStage
from streams.stages.event_ids import MemoryIdStore
from streams.windows.state import KpiState
from streams.worker.changelog import ChangelogTable
from streams.worker.id_store import STORE_URL, EventIdStore

DAY_MS = 86_400_000
NOW_MS = 1_700_000_000_000
TOPIC = "ids-test-event-ids-changelog"


def open_store(datadir: Path, partitions: int = 2) -> tuple[Any, EventIdStore]:
    """An event-ids table on the RocksDB store, as the worker makes it (not started)."""
    app = faust.App("ids-test", datadir=str(datadir), store="memory://", autodiscover=False)
    table = app.Table("event-ids", default=None, partitions=partitions, store=STORE_URL)
    store = table.data
    assert isinstance(store, EventIdStore)
    return table, store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EventIdStore]:
    _, opened = open_store(tmp_path)
    yield opened
    close(opened)


def close(store: EventIdStore) -> None:
    """Close its databases, as Faust does when the partitions go."""
    topic = store.table.changelog_topic.get_topic_name()
    store.revoke_partitions(store.table, {TP(topic, p) for p in range(2)})


# One step on both stores: ("put", partition, offset, expires, ids), ("del", partition,
# offset), ("ask", partition, ids), ("due", partition, now_ms).
ids_ = st.lists(st.sampled_from([f"view/c/e{i}" for i in range(12)]), max_size=4,
                unique=True)
steps = st.lists(st.one_of(
    st.tuples(st.just("put"), st.integers(0, 1), st.integers(0, 30), st.integers(0, 50), ids_),
    st.tuples(st.just("del"), st.integers(0, 1), st.integers(0, 30)),
    st.tuples(st.just("ask"), st.integers(0, 1), ids_),
    st.tuples(st.just("due"), st.integers(0, 1), st.integers(0, 60)),
), max_size=40)


@settings(max_examples=150, deadline=None)
@given(steps=steps)
def test_rocksdb_store_answers_as_the_memory_store(steps: list[tuple[Any, ...]]) -> None:
    with tempfile.TemporaryDirectory() as datadir:
        _, store = open_store(Path(datadir))
        try:
            _same_answers(store, steps)
        finally:
            close(store)


def _same_answers(store: EventIdStore, steps: list[tuple[Any, ...]]) -> None:
    model = MemoryIdStore()
    for step in steps:
        kind, partition = step[0], step[1]
        if kind == "put":
            _, _, offset, expires, ids = step
            model[(partition, offset)] = [expires, ids]
            store[(partition, offset)] = [expires, ids]
        elif kind == "del":
            key = (partition, step[2])
            assert (key in store) == (key in model)
            if key in model:
                del model[key]
                del store[key]
        elif kind == "ask":
            assert store.recorded(partition, step[2]) == model.recorded(partition, step[2])
        else:
            assert store.due(partition, step[2]) == model.due(partition, step[2])
    assert sorted(store) == sorted(model)
    assert {k: store[k] for k in store} == dict(model.items())


def test_no_new_id_is_ever_called_recorded(store: EventIdStore) -> None:
    """RocksDB's Bloom filters may only spare a read: 100,000 absent ids, none found."""
    rng = random.Random(7)
    recorded = [f"view/c/{rng.getrandbits(64):x}" for _ in range(100_000)]
    for offset in range(0, len(recorded), 100):
        store[(0, offset)] = [NOW_MS + DAY_MS, recorded[offset:offset + 100]]
    absent = [f"view/c/{rng.getrandbits(64):x}-new" for _ in range(100_000)]
    assert store.recorded(0, absent) == {}
    assert len(store.recorded(0, recorded)) == len(recorded)
    assert store.recorded(1, recorded) == {}  # another partition's ids are its own


def test_records_survive_a_restart_with_their_changelog_offset(tmp_path: Path) -> None:
    _, first = open_store(tmp_path)
    first[(0, 5)] = [NOW_MS + DAY_MS, ["view/a/v-1", "view/a/v-2"]]
    first[(1, 9)] = [NOW_MS + 2 * DAY_MS, ["click/a/k-1"]]
    first.set_persisted_offset(TP(TOPIC, 0), 41)
    close(first)

    _, again = open_store(tmp_path)
    assert again.persisted_offset(TP(TOPIC, 0)) == 41
    assert again.recorded(0, ["view/a/v-1", "view/a/v-2", "view/a/v-3"]) == {
        "view/a/v-1": 5, "view/a/v-2": 5}
    assert again.recorded(1, ["click/a/k-1"]) == {"click/a/k-1": 9}
    assert again.due(0, NOW_MS + DAY_MS) == [5]
    assert again.due(1, NOW_MS + DAY_MS) == []


def _changelog_event(partition: int, offset: int, key: Any, value: Any) -> Any:
    message = SimpleNamespace(key=orjson.dumps(key), value=None if value is None
                              else orjson.dumps(value), tp=TP(TOPIC, partition),
                              topic=TOPIC, partition=partition, offset=offset)
    return SimpleNamespace(message=message)


def test_recovery_applies_records_and_tombstones(store: EventIdStore) -> None:
    batch = [
        _changelog_event(0, 0, [0, 10], [NOW_MS, ["view/a/v-1", "view/a/v-2"]]),
        _changelog_event(0, 1, [0, 11], [NOW_MS + 5, ["view/a/v-3"]]),
        _changelog_event(0, 2, [0, 10], None),  # expired: its tombstone
        _changelog_event(1, 0, [1, 3], [NOW_MS, ["view/b/v-1"]]),
    ]
    store.apply_changelog_batch(batch, lambda k: k, lambda v: v)
    assert store.recorded(0, ["view/a/v-1", "view/a/v-2", "view/a/v-3"]) == {
        "view/a/v-3": 11}
    assert store.recorded(1, ["view/b/v-1"]) == {"view/b/v-1": 3}
    assert store.persisted_offset(TP(TOPIC, 0)) == 2
    assert store.persisted_offset(TP(TOPIC, 1)) == 0


def test_forgetting_a_record_keeps_an_id_a_later_record_holds(store: EventIdStore) -> None:
    store[(0, 1)] = [NOW_MS, ["view/a/v-1"]]
    store[(0, 2)] = [NOW_MS + 1, ["view/a/v-1", "view/a/v-2"]]  # re-recorded after expiry
    del store[(0, 1)]
    assert store.recorded(0, ["view/a/v-1", "view/a/v-2"]) == {"view/a/v-1": 2,
                                                             "view/a/v-2": 2}


def views(*ids: str) -> Forwards:
    forwards = Forwards()
    for event_id in ids:
        forwards.add("v", event_id, NOW_MS, "tiktok", 0)
    return Forwards.from_wire(forwards.to_wire())


def test_count_stage_on_the_rocksdb_store(store: EventIdStore) -> None:
    """Second deliveries are duplicates, a replay is neither a duplicate nor accepted
    again, and after the dedup window an id counts again."""
    stage = CountStage(KpiState(1440), {}, DAY_MS, id_table=store)
    assert stage.handle("a", views("v-1", "v-2"), 0, 10, NOW_MS).accepted == {"view": 2}
    again = stage.handle("a", views("v-1", "v-3", "v-3"), 0, 11, NOW_MS + 1_000)
    assert again.accepted == {"view": 1} and again.duplicates == {"view": 2}
    # after a crash, the same message again
    replay = stage.handle("a", views("v-1", "v-3", "v-3"), 0, 11, NOW_MS + 2_000)
    assert replay.accepted == {} and replay.duplicates == {}
    assert replay.deltas == again.deltas  # folded again: the buckets tell what they hold
    assert store[(0, 11)] == [NOW_MS + 2_000 + DAY_MS, ["view/a/v-3"]]  # written again
    later = stage.handle("a", views("v-1"), 0, 12, NOW_MS + DAY_MS)
    assert later.accepted == {"view": 1}  # v-1's record expired with message 10's
    assert sorted(store) == [(0, 11), (0, 12)]


class _Sender:
    """Deliveries that complete with the changelog offset they were given."""

    def __init__(self) -> None:
        self.offset = -1

    async def send_change(self, topic: str, key: bytes, value: bytes | None,
                          partition: int) -> asyncio.Future[Any]:
        self.offset += 1
        delivery: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        delivery.set_result(SimpleNamespace(offset=self.offset))
        return delivery


def test_a_persisting_table_tells_the_store_the_offset_delivered(tmp_path: Path) -> None:
    table, store = open_store(tmp_path)
    changelog = ChangelogTable(table, _Sender())

    async def run() -> None:
        changelog[(0, 7)] = [NOW_MS + DAY_MS, ["view/a/v-1"]]
        changelog[(0, 8)] = [NOW_MS + DAY_MS, ["view/a/v-2"]]
        await asyncio.gather(*await changelog.send(0))
        await asyncio.sleep(0)  # the deliveries' callbacks run on the loop's next turn

    asyncio.run(run())
    topic = table.changelog_topic.get_topic_name()
    assert store.persisted_offset(TP(topic, 0)) == 1
    assert store.recorded(0, ["view/a/v-1", "view/a/v-2"]) == {"view/a/v-1": 7,
                                                             "view/a/v-2": 8}


def test_a_replay_sends_its_ids_record_again(tmp_path: Path) -> None:
    """The store kept message 11's record, but the crash came before its changelog
    record was delivered: handled again, the message writes it again, for the changelog."""
    table, store = open_store(tmp_path)
    sender = _Sender()
    changelog = ChangelogTable(table, sender)
    stage = CountStage(KpiState(1440), {}, DAY_MS, id_table=changelog)

    async def run() -> list[Any]:
        stage.handle("a", views("v-1", "v-2"), 0, 11, NOW_MS)
        await changelog.send(0)  # "lost": the worker is killed before the delivery counts
        again = stage.handle("a", views("v-1", "v-2"), 0, 11, NOW_MS + 5)
        assert again.accepted == {} and again.duplicates == {}  # counted the first time
        return await changelog.send(0)

    resent = asyncio.run(run())
    assert len(resent) == 1
    assert store[(0, 11)][1] == ["view/a/v-1", "view/a/v-2"]


_KILLED_WRITER = """
import os, signal, sys
from pathlib import Path
from faust.types import TP
from tests.unit.test_event_ids import NOW_MS, TOPIC, open_store
_, store = open_store(Path(sys.argv[1]))
for offset in range(int(sys.argv[2])):
    store[(0, offset)] = [NOW_MS, [f"view/c/{offset}-{i:03d}-{'x' * 40}" for i in range(40)]]
    if offset % 100 == 99:  # as deliveries complete: the offset the store holds up to
        store.set_persisted_offset(TP(TOPIC, 0), offset)
os.kill(os.getpid(), signal.SIGKILL)  # no close: what was not flushed is gone
"""


def test_a_killed_worker_s_database_holds_every_record_up_to_its_offset(
        tmp_path: Path) -> None:
    """The stores write without RocksDB's write-ahead log: a SIGKILL loses what the
    memtables held. What survives must be a prefix that includes every record up to the
    offset the database says it holds (the restart reads the changelog from there)."""
    written = 6_000  # ~3.5 KiB a record: several 4 MiB write buffers flushed, one not
    child = subprocess.run([sys.executable, "-c", _KILLED_WRITER, str(tmp_path),
                            str(written)], cwd=Path(__file__).parents[2], check=False)
    assert child.returncode == -signal.SIGKILL
    _, again = open_store(tmp_path)
    held = again.persisted_offset(TP(TOPIC, 0))
    assert held is not None and 0 < held < written - 1  # flushed some, lost the tail
    for offset in range(held + 1):
        ids = [f"view/c/{offset}-{i:03d}-{'x' * 40}" for i in range(40)]
        assert again.recorded(0, ids) == dict.fromkeys(ids, offset), offset
    close(again)
