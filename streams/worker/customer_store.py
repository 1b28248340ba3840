"""The customers table's store: Faust's RocksDB store, with the records in the order their
customers go, on disk.

A worker remembers every customer for ``customer_window`` (400 days by default); in Python
objects each cost 906 bytes. Here the records live in RocksDB, one database per partition
as Faust's store keeps them (a customer's partition is its id's, as the customer-orders
topic is keyed), under two kinds of key:

- ``b"r" + customer id``: when the customer was last seen (8 bytes) and the record as its
  changelog carries it (JSON, streams.attribution.customers ``to_wire``);
- ``b"s" + last seen + customer id``: empty, so customers sort by when they go (``due``
  reads from the front).

As for the event ids (streams.worker.id_store), Faust's store persists the changelog offset
it holds up to, so a restarted worker recovers only the changelog's tail.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import orjson
from faust.types import TP
from rocksdict import Rdict, WriteBatch

from streams.attribution.customers import CustomerRecord
from streams.flow.wire import dumps
from streams.kafka.partitions import partition_for
from streams.stages.customer_records import record_of
from streams.worker.catch_up import ChangelogRecord
from streams.worker.rocks_store import RocksStore

__all__ = ["STORE_URL", "CustomerRecordStore"]

STORE_URL = "kpistream-customers:customers"
"""The customers table's store: this class, by its ``faust.stores`` entry point
(pyproject.toml)."""
_RECORD = b"r"
_SEEN = b"s"
_TS_BIAS = 1 << 63
"""Added to a timestamp so that any int64 sorts as unsigned bytes."""


def _seen_bytes(last_seen_ms: int) -> bytes:
    return (last_seen_ms + _TS_BIAS).to_bytes(8, "big")


class CustomerRecordStore(RocksStore):
    """Records ``customer id -> CustomerRecord``, in the order they go."""

    def __init__(self, url: Any, app: Any, table: Any, **kwargs: Any) -> None:
        super().__init__(url, app, table, **kwargs)
        self._oldest: dict[int, int | None] = {}
        """partition -> at most when the customer who goes first was last seen (None: no
        customer); absent: not known (``due`` reads it from the database)."""

    # What the customer stage asks (streams.stages.customer_records.CustomerStore).

    def record(self, partition: int, customer: str) -> CustomerRecord | None:
        raw = self._db(partition).get(_RECORD + customer.encode())
        return None if raw is None else CustomerRecord.from_wire(orjson.loads(raw[8:]))

    def due(self, partition: int, seen_until_ms: int) -> list[str]:
        if partition in self._oldest:
            first = self._oldest[partition]
            if first is None or first > seen_until_ms:
                return []
        keys = self._db(partition).iter()
        keys.seek(_SEEN)
        due: list[str] = []
        oldest: int | None = None
        while keys.valid():
            key = keys.key()
            if not key.startswith(_SEEN):
                break
            seen = int.from_bytes(key[1:9], "big") - _TS_BIAS
            if seen > seen_until_ms:
                oldest = seen
                break
            due.append(key[9:].decode())
            keys.next()
        del keys
        if due:
            self._oldest.pop(partition, None)  # these go now: read it again after
        else:
            self._oldest[partition] = oldest
        return due

    # The table's mapping: customer id -> record.

    def __setitem__(self, key: Any, value: Any) -> None:
        self._put(self._partition_of(key), key, record_of(value).last_seen_ms, dumps(value))

    def __delitem__(self, key: Any) -> None:
        if not self._delete(self._partition_of(key), key):
            raise KeyError(key)

    def __getitem__(self, key: Any) -> Any:
        record = self.record(self._partition_of(key), key)
        if record is None:
            raise KeyError(key)
        return record

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        return self._db(self._partition_of(key)).get(_RECORD + key.encode()) is not None

    def __iter__(self) -> Iterator[Any]:
        for _, customer, _ in self._records():
            yield customer

    def __len__(self) -> int:
        return sum(1 for _ in self._records())

    # Faust's hooks, for what reads the store as bytes (keys as the changelog has them).

    def _iterkeys(self) -> Iterator[bytes]:
        for _, customer, _ in self._records():
            yield orjson.dumps(customer)

    def _itervalues(self) -> Iterator[bytes]:
        for _, _, raw in self._records():
            yield raw[8:]

    def _iteritems(self) -> Iterator[tuple[bytes, bytes]]:
        return zip(self._iterkeys(), self._itervalues(), strict=True)

    def _size(self) -> int:
        return len(self)

    def write_changelog(self, records: Iterable[ChangelogRecord]) -> None:
        """Each changelog record (a tombstone: ``None``) into its partition's database, in
        order, then the offset each partition reached."""
        reached: dict[int, tuple[str, int]] = {}
        for record in records:
            reached[record.partition] = (record.topic, record.offset)
            if record.key is None:  # every table change has one
                continue
            customer = orjson.loads(record.key)
            if record.value is None:
                self._delete(record.partition, customer)
            else:
                last_seen_ms = orjson.loads(record.value)[3]
                self._put(record.partition, customer, last_seen_ms, record.value)
        for partition, (topic, at) in reached.items():
            self.set_persisted_offset(TP(topic, partition), at)

    def reset_state(self) -> None:
        self._oldest.clear()
        super().reset_state()

    def revoke_partitions(self, table: Any, tps: Any) -> None:
        for tp in tps:
            self._oldest.pop(tp.partition, None)
        super().revoke_partitions(table, tps)

    # Inside.

    def _partition_of(self, customer: str) -> int:
        partitions: int = self.table.partitions or self.app.conf.topic_partitions
        return partition_for(customer, partitions)

    def _db(self, partition: int) -> Rdict:
        db: Rdict = self._db_for_partition(partition)
        return db

    def _records(self) -> Iterator[tuple[int, str, bytes]]:
        for partition in list(self._dbs):
            records = self._db(partition).iter()
            records.seek(_RECORD)
            while records.valid() and records.key().startswith(_RECORD):
                yield partition, records.key()[1:].decode(), records.value()
                records.next()

    def _put(self, partition: int, customer: str, last_seen_ms: int, wire: bytes) -> None:
        db = self._db(partition)
        key = customer.encode()
        seen = _seen_bytes(last_seen_ms)
        batch = WriteBatch(raw_mode=True)
        old = db.get(_RECORD + key)
        if old is not None and old[:8] != seen:
            batch.delete(_SEEN + old[:8] + key)
        batch.put(_RECORD + key, seen + wire)
        batch.put(_SEEN + seen + key, b"")
        db.write(batch)
        if partition in self._oldest:  # never later than the first's: due reads again
            first = self._oldest[partition]
            if first is None or last_seen_ms < first:
                self._oldest[partition] = last_seen_ms

    def _delete(self, partition: int, customer: str) -> bool:
        """Forget a customer's record; False: none there."""
        db = self._db(partition)
        key = customer.encode()
        old = db.get(_RECORD + key)
        if old is None:
            return False
        batch = WriteBatch(raw_mode=True)
        batch.delete(_RECORD + key)
        batch.delete(_SEEN + old[:8] + key)
        db.write(batch)
        return True
