"""Remembered customers: the RocksDB store (streams.worker.customer_store) answers exactly as
the in-memory one (streams.stages.customer_records), survives a restart, recovers from
changelog records, and the customer stage on it decides as on the memory store."""

from __future__ import annotations

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

from streams.attribution.customers import CustomerRecord
from streams.attribution.orders import OrderRoute
from streams.flow.wire import dumps
from streams.kafka.partitions import partition_for
from streams.stages.customer_history import CustomerStage
from streams.stages.customer_records import MemoryCustomerStore
from streams.worker.customer_store import STORE_URL, CustomerRecordStore

DAY_MS = 86_400_000
NOW_MS = 1_700_000_000_000
TOPIC = "customers-test-customers-changelog"
CUSTOMERS = [f"customer-{i}" for i in range(8)]


def part(customer: str) -> int:
    return partition_for(customer, 2)


def open_store(datadir: Path) -> CustomerRecordStore:
    """A customers table on the RocksDB store, as the worker makes it (not started)."""
    app = faust.App("customers-test", datadir=str(datadir), store="memory://",
                    autodiscover=False)
    table = app.Table("customers", default=None, partitions=2, store=STORE_URL)
    store = table.data
    assert isinstance(store, CustomerRecordStore)
    return store


def close(store: CustomerRecordStore) -> None:
    """Close its databases, as Faust does when the partitions go."""
    topic = store.table.changelog_topic.get_topic_name()
    store.revoke_partitions(store.table, {TP(topic, p) for p in range(2)})


@pytest.fixture
def store(tmp_path: Path) -> Iterator[CustomerRecordStore]:
    opened = open_store(tmp_path)
    yield opened
    close(opened)


def record(last_seen: int, first_id: str = "o-1") -> CustomerRecord:
    return CustomerRecord(NOW_MS - DAY_MS, first_id, None, NOW_MS + last_seen, {})


def wire(value: Any) -> Any:
    return orjson.loads(dumps(value))


# One step on both stores: ("put", customer, last seen), ("del", customer), ("ask", customer),
# ("due", partition, seen until).
steps = st.lists(st.one_of(
    st.tuples(st.just("put"), st.sampled_from(CUSTOMERS), st.integers(-5, 30)),
    st.tuples(st.just("del"), st.sampled_from(CUSTOMERS)),
    st.tuples(st.just("ask"), st.sampled_from(CUSTOMERS)),
    st.tuples(st.just("due"), st.integers(0, 1), st.integers(-10, 40)),
), max_size=40)


@settings(max_examples=150, deadline=None)
@given(steps=steps)
def test_rocksdb_store_answers_as_the_memory_store(steps: list[tuple[Any, ...]]) -> None:
    with tempfile.TemporaryDirectory() as datadir:
        store = open_store(Path(datadir))
        try:
            model = MemoryCustomerStore(partition_of=part)
            for step in steps:
                if step[0] == "put":
                    model[step[1]] = record(step[2], step[1])
                    store[step[1]] = record(step[2], step[1])
                elif step[0] == "del":
                    assert (step[1] in store) == (step[1] in model)
                    if step[1] in model:
                        del model[step[1]]
                        del store[step[1]]
                elif step[0] == "ask":
                    customer = step[1]
                    assert (wire(store.record(part(customer), customer))
                            == wire(model.record(part(customer), customer)))
                else:
                    until = NOW_MS + step[2]
                    assert store.due(step[1], until) == model.due(step[1], until)
            assert sorted(store) == sorted(model)
            assert {c: wire(store[c]) for c in store} == {c: wire(model[c]) for c in model}
        finally:
            close(store)


def test_records_survive_a_restart_with_their_changelog_offset(tmp_path: Path) -> None:
    first = open_store(tmp_path)
    first["customer-1"] = record(0)
    first.set_persisted_offset(TP(TOPIC, part("customer-1")), 41)
    close(first)

    again = open_store(tmp_path)
    try:
        assert again.persisted_offset(TP(TOPIC, part("customer-1"))) == 41
        assert wire(again["customer-1"]) == wire(record(0))
        assert again.due(part("customer-1"), NOW_MS) == ["customer-1"]
        assert again.due(part("customer-1"), NOW_MS - 1) == []
    finally:
        close(again)


def _changelog_event(partition: int, offset: int, key: Any, value: Any) -> Any:
    message = SimpleNamespace(key=orjson.dumps(key), value=None if value is None
                              else dumps(value), tp=TP(TOPIC, partition),
                              topic=TOPIC, partition=partition, offset=offset)
    return SimpleNamespace(message=message)


def test_recovery_applies_records_and_tombstones_in_order(store: CustomerRecordStore) -> None:
    a, b = "customer-1", "customer-2"
    batch = [
        _changelog_event(part(a), 0, a, record(0)),
        _changelog_event(part(a), 1, a, record(9)),  # seen again: replaces it
        _changelog_event(part(b), 2, b, record(3)),
        _changelog_event(part(b), 3, b, None),  # forgotten: its tombstone
    ]
    store.apply_changelog_batch(batch, lambda k: k, lambda v: v)
    assert wire(store.record(part(a), a)) == wire(record(9))
    assert store.record(part(b), b) is None and list(store) == [a]
    assert store.due(part(a), NOW_MS + 8) == [] and store.due(part(a), NOW_MS + 9) == [a]
    assert store.persisted_offset(TP(TOPIC, part(b))) == 3


def test_customer_stage_on_the_rocksdb_store(store: CustomerRecordStore) -> None:
    """A customer's first order is new and the next is not; a second delivery is a
    duplicate and a replay repeats its decision; a customer not seen for the customer
    window is forgotten, and new again."""
    stage = CustomerStage(store, 400 * DAY_MS, DAY_MS, (30,))
    customer = "customer-7"
    p = part(customer)

    def order(event_id: str, ts_ms: int) -> OrderRoute:
        return OrderRoute(event_id, ts_ms, customer, None, 5_000_000, "summer", "web", None)

    def new_customers(forwards: Any) -> int:
        return sum(1 for kind, *_ in forwards["summer"] if kind == "n")

    first, _ = stage.handle([order("o-1", NOW_MS)], p, 10, NOW_MS)
    later, duplicates = stage.handle([order("o-2", NOW_MS + 1), order("o-1", NOW_MS)], p, 11,
                                     NOW_MS + 1)
    assert (new_customers(first), new_customers(later), duplicates) == (1, 0, 1)
    replay, duplicates = stage.handle([order("o-1", NOW_MS)], p, 10, NOW_MS + 2)
    assert new_customers(replay) == 1 and duplicates == 0
    assert store[customer].last_seen_ms == NOW_MS + 1
    stage.handle([], p, 12, NOW_MS + 1 + 400 * DAY_MS - 1)
    assert customer in store
    stage.handle([], p, 13, NOW_MS + 1 + 400 * DAY_MS)
    assert customer not in store
    again, _ = stage.handle([order("o-3", NOW_MS + 400 * DAY_MS)], p, 14,
                            NOW_MS + 400 * DAY_MS + 2)
    assert new_customers(again) == 1
