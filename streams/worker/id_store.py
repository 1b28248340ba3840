"""The event-ids table's store: Faust's RocksDB store, indexed by event id, on disk.

A worker remembers every event id for ``dedup_window`` (24 h by default); in Python
objects each cost 156 bytes, so a day at 1,000 events/s took 13.5 GB. Here the records of
streams.stages.event_ids live in RocksDB, one database per partition as Faust's store
keeps them, under two kinds of key:

- ``b"m" + offset`` (8 bytes, big-endian, so records sort by offset):
  ``expires_ms`` (8 bytes) + the JSON list of the record's ids;
- ``b"i" + id``: the offset (8 bytes) of the record that holds the id.

A lookup is RocksDB's multi-get on the ``i`` keys; its Bloom filters answer most absent ids
without reading a block, and an id is only ever called recorded when its key is there: the
answer is exact. Memory is RocksDB's write buffers, block cache and filters, bounded per
partition (streams.worker.rocks_store), not by the number of ids.

Faust's store persists, beside the data, the changelog offset it holds up to
(``set_persisted_offset``), so a restarted worker recovers only the changelog's tail;
streams.worker.changelog sets it as the records' deliveries complete. A record in the store
but not (yet) in the changelog is one whose message is not acked: handled again, the
message finds its own ids recorded by itself, which counts them as new (a replay).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, cast

import orjson
from faust.types import TP
from rocksdict import Rdict, WriteBatch

from streams.stages.event_ids import record_of
from streams.worker.catch_up import ChangelogRecord
from streams.worker.rocks_store import RocksStore

__all__ = ["STORE_URL", "EventIdStore"]

STORE_URL = "kpistream-ids:event-ids"
"""The event-ids table's store: this class, by the scheme's ``faust.stores`` entry point
(pyproject.toml); its path names the databases (``event-ids-<partition>.db`` in Faust's
table directory). ``kpistream-ids://`` would not do: Faust takes a URL without host or path
for none and uses the app's store."""
_RECORD = b"m"
_ID = b"i"
_EMPTY = (-1, -1)
"""A partition with no record (in ``_first``)."""


def _offset_key(offset: int) -> bytes:
    return _RECORD + offset.to_bytes(8, "big")


class EventIdStore(RocksStore):
    """Records ``(partition, offset) -> [expires_ms, ids]``, and which record holds an id."""

    def __init__(self, url: Any, app: Any, table: Any, **kwargs: Any) -> None:
        super().__init__(url, app, table, **kwargs)
        self._first: dict[int, tuple[int, int]] = {}
        """partition -> (offset, expires_ms) of its oldest record, or _EMPTY; absent: not
        known (read it from the database)."""

    # What the counting stage asks (streams.stages.event_ids.IdStore).

    def recorded(self, partition: int, ids: Iterable[str]) -> dict[str, int]:
        ids = list(ids)
        if not ids:
            return {}
        found = self._get_many(partition, [_ID + i.encode() for i in ids])
        return {i: int.from_bytes(at, "big")
                for i, at in zip(ids, found, strict=True) if at is not None}

    def due(self, partition: int, now_ms: int) -> list[int]:
        first = self._first.get(partition)
        if first is not None and (first == _EMPTY or first[1] > now_ms):
            return []
        db = self._db(partition)
        due: list[int] = []
        records = db.iter()
        records.seek(_RECORD)
        self._first[partition] = _EMPTY
        while records.valid():
            key = records.key()
            if not key.startswith(_RECORD):
                break
            offset = int.from_bytes(key[1:], "big")
            expires_ms = int.from_bytes(records.value()[:8], "big")
            if not due:
                self._first[partition] = (offset, expires_ms)
            if expires_ms > now_ms:
                break
            due.append(offset)
            records.next()
        del records
        return due

    # The table's mapping: (partition, offset) -> [expires_ms, ids].

    def __setitem__(self, key: Any, value: Any) -> None:
        partition, offset, expires_ms, ids = record_of(key, value)
        self._put(partition, offset, expires_ms, ids)

    def __delitem__(self, key: Any) -> None:
        partition, offset = key
        if not self._delete(partition, offset):
            raise KeyError(key)

    def __getitem__(self, key: Any) -> Any:
        partition, offset = key
        raw = self._db(partition).get(_offset_key(offset))
        if raw is None:
            raise KeyError(key)
        return [int.from_bytes(raw[:8], "big"), orjson.loads(raw[8:])]

    def __contains__(self, key: object) -> bool:
        if not (isinstance(key, tuple | list) and len(key) == 2):
            return False
        partition, offset = key
        return self._db(partition).get(_offset_key(offset)) is not None

    def __iter__(self) -> Iterator[Any]:
        for partition, offset, _ in self._records():
            yield (partition, offset)

    def __len__(self) -> int:
        return sum(1 for _ in self._records())

    # Faust's hooks, for what reads the store as bytes (keys as the changelog has them).

    def _iterkeys(self) -> Iterator[bytes]:
        for partition, offset, _ in self._records():
            yield orjson.dumps([partition, offset])

    def _itervalues(self) -> Iterator[bytes]:
        for _, _, raw in self._records():
            yield orjson.dumps([int.from_bytes(raw[:8], "big"), orjson.Fragment(raw[8:])])

    def _iteritems(self) -> Iterator[tuple[bytes, bytes]]:
        return zip(self._iterkeys(), self._itervalues(), strict=True)

    def _size(self) -> int:
        return len(self)

    def write_changelog(self, records: Iterable[ChangelogRecord]) -> None:
        """Each changelog record (a tombstone: ``None``) into the store, then the offset
        each partition reached."""
        reached: dict[int, tuple[str, int]] = {}
        for record in records:
            reached[record.partition] = (record.topic, record.offset)
            if record.key is None:  # every table change has one
                continue
            key = orjson.loads(record.key)
            if record.value is None:
                partition, offset = key
                self._delete(partition, offset)
            else:
                partition, offset, expires_ms, ids = record_of(key, orjson.loads(record.value))
                self._put(partition, offset, expires_ms, ids)
        for partition, (topic, at) in reached.items():
            self.set_persisted_offset(TP(topic, partition), at)

    def reset_state(self) -> None:
        self._first.clear()
        super().reset_state()

    def revoke_partitions(self, table: Any, tps: Any) -> None:
        for tp in tps:
            self._first.pop(tp.partition, None)
        super().revoke_partitions(table, tps)

    # Inside.

    def _db(self, partition: int) -> Rdict:
        db: Rdict = self._db_for_partition(partition)
        return db

    def _get_many(self, partition: int, keys: list[bytes]) -> list[bytes | None]:
        """RocksDB's multi-get: each key's value, None where absent."""
        asked: list[Any] = keys
        return cast(list[bytes | None], self._db(partition).get(asked))

    def _records(self) -> Iterator[tuple[int, int, bytes]]:
        for partition in list(self._dbs):
            records = self._db(partition).iter()
            records.seek(_RECORD)
            while records.valid() and records.key().startswith(_RECORD):
                yield partition, int.from_bytes(records.key()[1:], "big"), records.value()
                records.next()

    def _put(self, partition: int, offset: int, expires_ms: int, ids: list[str]) -> None:
        db = self._db(partition)
        at = offset.to_bytes(8, "big")
        batch = WriteBatch(raw_mode=True)
        batch.put(_RECORD + at, expires_ms.to_bytes(8, "big") + orjson.dumps(ids))
        for i in ids:
            batch.put(_ID + i.encode(), at)
        db.write(batch)
        first = self._first.get(partition)
        if first is not None and (first == _EMPTY or offset <= first[0]):
            self._first[partition] = (offset, expires_ms)

    def _delete(self, partition: int, offset: int) -> bool:
        """Forget a record and those of its ids no later record holds; False: none there."""
        db = self._db(partition)
        at = offset.to_bytes(8, "big")
        raw = db.get(_RECORD + at)
        if raw is None:
            return False
        id_keys = [_ID + i.encode() for i in orjson.loads(raw[8:])]
        batch = WriteBatch(raw_mode=True)
        batch.delete(_RECORD + at)
        for id_key, held_at in zip(id_keys, self._get_many(partition, id_keys), strict=True):
            if held_at == at:
                batch.delete(id_key)
        db.write(batch)
        first = self._first.get(partition)
        if first is not None and first != _EMPTY and first[0] == offset:
            del self._first[partition]
        return True
