"""Remembered clicks: the RocksDB store (streams.worker.click_store) answers exactly as the
in-memory one (streams.stages.click_records), survives a restart, recovers from changelog
records, and the click-join stage on it attributes as on the memory store."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import faust
import orjson
import pytest
from faust.types import TP
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.attribution.orders import OrderRoute
from streams.stages.click_records import MemoryClickStore
from streams.stages.joining import ClickStage
from streams.worker.click_store import STORE_URL, ClickRecordStore

DAY_MS = 86_400_000
NOW_MS = 1_700_000_000_000
TOPIC = "clicks-test-clicks-changelog"


def open_store(datadir: Path, partitions: int = 2) -> ClickRecordStore:
    """A clicks table on the RocksDB store, as the worker makes it (not started)."""
    app = faust.App("clicks-test", datadir=str(datadir), store="memory://",
                    autodiscover=False)
    table = app.Table("clicks", default=None, partitions=partitions, store=STORE_URL)
    store = table.data
    assert isinstance(store, ClickRecordStore)
    return store


def close(store: ClickRecordStore) -> None:
    """Close its databases, as Faust does when the partitions go."""
    topic = store.table.changelog_topic.get_topic_name()
    store.revoke_partitions(store.table, {TP(topic, p) for p in range(2)})


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ClickRecordStore]:
    opened = open_store(tmp_path)
    yield opened
    close(opened)


# One step on both stores: ("put", partition, offset, clicks), ("del", partition, offset),
# ("ask", partition, click_id), ("due", partition, before_ms).
CLICK_IDS = [f"ttclid-{i}" for i in range(6)]
clicks_ = st.lists(st.tuples(st.sampled_from(CLICK_IDS), st.integers(-5, 40),
                             st.sampled_from(["summer", "winter"]),
                             st.sampled_from([None, "tutorial"])),
                   min_size=1, max_size=4, unique_by=lambda c: c[0])
steps = st.lists(st.one_of(
    st.tuples(st.just("put"), st.integers(0, 1), st.integers(0, 20), clicks_),
    st.tuples(st.just("del"), st.integers(0, 1), st.integers(0, 20)),
    st.tuples(st.just("ask"), st.integers(0, 1), st.sampled_from(CLICK_IDS)),
    st.tuples(st.just("due"), st.integers(0, 1), st.integers(-10, 50)),
), max_size=40)


def _record(clicks: list[tuple[str, int, str, str | None]]) -> list[list[Any]]:
    return [[click_id, NOW_MS + ts, campaign, "tiktok", content]
            for click_id, ts, campaign, content in clicks]


@settings(max_examples=150, deadline=None)
@given(steps=steps)
def test_rocksdb_store_answers_as_the_memory_store(steps: list[tuple[Any, ...]]) -> None:
    with tempfile.TemporaryDirectory() as datadir:
        store = open_store(Path(datadir))
        try:
            model = MemoryClickStore()
            for step in steps:
                kind, partition = step[0], step[1]
                if kind == "put":
                    model[(partition, step[2])] = _record(step[3])
                    store[(partition, step[2])] = _record(step[3])
                elif kind == "del":
                    key = (partition, step[2])
                    assert (key in store) == (key in model)
                    if key in model:
                        del model[key]
                        del store[key]
                elif kind == "ask":
                    assert store.click(partition, step[2]) == model.click(partition, step[2])
                else:
                    before = NOW_MS + step[2]
                    assert store.due(partition, before) == model.due(partition, before)
            assert sorted(store) == sorted(model)
            assert {k: store[k] for k in store} == dict(model.items())
        finally:
            close(store)


def test_forgetting_a_record_keeps_a_click_a_later_record_holds(
        store: ClickRecordStore) -> None:
    store[(0, 1)] = [["k1", NOW_MS, "summer", "tiktok", None]]
    store[(0, 2)] = [["k1", NOW_MS - 5, "winter", "tiktok", None],
                     ["k2", NOW_MS, "winter", "web", "live"]]  # k1 earlier: its click now
    del store[(0, 1)]
    assert store.click(0, "k1") == ((NOW_MS - 5, "winter", "tiktok", None), 2)
    assert store.click(0, "k2") == ((NOW_MS, "winter", "web", "live"), 2)
    assert store.click(1, "k1") is None  # another partition's clicks are its own
    del store[(0, 2)]
    assert store.click(0, "k1") is None and not list(store)


def test_records_survive_a_restart_with_their_changelog_offset(tmp_path: Path) -> None:
    first = open_store(tmp_path)
    first[(0, 5)] = [["k1", NOW_MS, "summer", "tiktok", "tutorial"]]
    first[(1, 9)] = [["k2", NOW_MS + 7, "winter", "web", None]]
    first.set_persisted_offset(TP(TOPIC, 0), 41)
    close(first)

    again = open_store(tmp_path)
    try:
        assert again.persisted_offset(TP(TOPIC, 0)) == 41
        assert again.click(0, "k1") == ((NOW_MS, "summer", "tiktok", "tutorial"), 5)
        assert again.click(1, "k2") == ((NOW_MS + 7, "winter", "web", None), 9)
        assert again.due(0, NOW_MS + 1) == [5] and again.due(1, NOW_MS + 1) == []
    finally:
        close(again)


def _changelog_event(partition: int, offset: int, key: Any, value: Any) -> Any:
    message = SimpleNamespace(key=orjson.dumps(key), value=None if value is None
                              else orjson.dumps(value), tp=TP(TOPIC, partition),
                              topic=TOPIC, partition=partition, offset=offset)
    return SimpleNamespace(message=message)


def test_recovery_applies_records_and_tombstones_in_order(store: ClickRecordStore) -> None:
    batch = [
        _changelog_event(0, 0, [0, 10], [["k1", NOW_MS, "summer", "tiktok"]]),  # before
        # content types were kept: none
        _changelog_event(0, 1, [0, 11], [["k1", NOW_MS - 9, "winter", "tiktok", "live"]]),
        _changelog_event(0, 2, [0, 12], [["k2", NOW_MS, "summer", "web", None]]),
        _changelog_event(0, 3, [0, 12], None),  # gone: its tombstone
        _changelog_event(1, 0, [1, 3], [["k3", NOW_MS, "autumn", "tv", None]]),
    ]
    store.apply_changelog_batch(batch, lambda k: k, lambda v: v)
    assert store.click(0, "k1") == ((NOW_MS - 9, "winter", "tiktok", "live"), 11)
    assert store.click(0, "k2") is None
    assert store.click(1, "k3") == ((NOW_MS, "autumn", "tv", None), 3)
    assert sorted(store) == [(0, 10), (0, 11), (1, 3)]
    assert store.persisted_offset(TP(TOPIC, 0)) == 3
    assert store.persisted_offset(TP(TOPIC, 1)) == 0


def _order(event_id: str, click_id: str, ts_ms: int) -> list[Any]:
    return ["o", *OrderRoute(event_id, ts_ms, "customer-1", None, 1_000_000, None, "web",
                             click_id).to_wire()]


def _attributed(orders: list[OrderRoute]) -> list[tuple[str, str | None, str]]:
    return [(o.event_id, o.campaign, o.channel) for o in orders]


class Written(MutableMapping[Any, Any]):
    """A table on ``data`` that lists the keys written (its changelog records)."""

    def __init__(self, data: ClickRecordStore) -> None:
        self.data = data
        self.written: list[Any] = []

    def __getitem__(self, key: Any) -> Any:
        return self.data[key]

    def __setitem__(self, key: Any, value: Any) -> None:
        self.data[key] = value
        self.written.append(key)

    def __delitem__(self, key: Any) -> None:
        del self.data[key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)


def test_click_stage_on_the_rocksdb_store(store: ClickRecordStore) -> None:
    """An order claims its click, waits for a click to come, and after the attribution
    window goes on unattributed; a message read again after a crash writes its record
    again; records go when their newest click leaves the window."""
    table = Written(store)
    stage = ClickStage(table, {}, 7 * DAY_MS, 60_000)
    sent, failures = stage.handle_message(
        [["c", "k1", NOW_MS, "summer", "tiktok", "tutorial"], _order("o1", "k1", NOW_MS + 5),
         _order("o2", "k2", NOW_MS + 6)], 0, 10, NOW_MS)
    assert failures == [] and _attributed(sent) == [("o1", "summer", "tiktok")]
    assert store[(0, 10)] == [["k1", NOW_MS, "summer", "tiktok", "tutorial"]]
    sent, _ = stage.handle_message([["c", "k2", NOW_MS + 1, "winter", "web", None]], 0, 11,
                                   NOW_MS + 1_000)
    assert _attributed(sent) == [("o2", "winter", "web")]  # it was waiting for k2
    for lost in (False, True):  # read again after a crash, its record on disk or not
        if lost:
            del store[(0, 11)]
        table.written.clear()
        sent, _ = stage.handle_message([["c", "k2", NOW_MS + 1, "winter", "web", None]], 0,
                                       11, NOW_MS + 2_000)
        assert _attributed(sent) == [("o2", "winter", "web")]  # the replay sends it again
        assert table.written == [(0, 11)]  # and its record
        assert store[(0, 11)] == [["k2", NOW_MS + 1, "winter", "web", None]]
    # a later click of k1 is not its click: not written
    stage.handle_message([["c", "k1", NOW_MS + 9, "autumn", "tv", None]], 0, 12, NOW_MS)
    assert (0, 12) not in store
    sent, _ = stage.handle_message([_order("o3", "k1", NOW_MS + 7 * DAY_MS)], 0, 13,
                                   NOW_MS + 7 * DAY_MS)
    assert _attributed(sent) == [("o3", "summer", "tiktok")]  # exactly the window: counts
    sent, _ = stage.handle_message([_order("o4", "k1", NOW_MS + 7 * DAY_MS + 1)], 0, 14,
                                   NOW_MS + 7 * DAY_MS + 1)
    assert sent == [] and (0, 10) not in store and store.click(0, "k1") is None
    assert list(store) == [(0, 11)]
