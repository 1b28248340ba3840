"""The clicks table's store: Faust's RocksDB store, indexed by click id, on disk.

A worker remembers every click for the attribution window (7 days by default); in Python
objects each cost 406 bytes. Here the records of streams.stages.click_records live in
RocksDB, one database per partition as Faust's store keeps them, under three kinds of key:

- ``b"m" + offset`` (8 bytes, big-endian): the JSON list of the record's clicks;
- ``b"n" + newest click ts + offset`` (8 + 8 bytes): empty, so records sort by when they
  go (``due`` reads from the front);
- ``b"c" + click id``: the offset (8 bytes) of the record that holds the id's click, then
  the click as JSON ``[ts, campaign, channel, content type]``.

A lookup is one read of a ``c`` key; its Bloom filters answer most absent ids without
reading a block. Memory is RocksDB's write buffers, block cache and filters, bounded per
process (streams.worker.rocks_store), not by the number of clicks.

As for the event ids (streams.worker.id_store), Faust's store persists the changelog offset
it holds up to, so a restarted worker recovers only the changelog's tail; a record in the
store but not yet in the changelog is one whose message is not acked, and handled again,
the message writes it again (streams.attribution.clicks ``keep_earliest``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, cast

import orjson
from faust.types import TP
from rocksdict import Rdict, WriteBatch

from streams.attribution.clicks import Click
from streams.stages.click_records import clicks_of, newest_ts
from streams.worker.catch_up import ChangelogRecord
from streams.worker.rocks_store import RocksStore

__all__ = ["STORE_URL", "ClickRecordStore"]

STORE_URL = "kpistream-clicks:clicks"
"""The clicks table's store: this class, by its ``faust.stores`` entry point
(pyproject.toml)."""
_RECORD = b"m"
_NEWEST = b"n"
_CLICK = b"c"
_TS_BIAS = 1 << 63
"""Added to a timestamp so that any int64 sorts as unsigned bytes."""
_EMPTY = -1
"""``_oldest`` of a partition with no record."""


def _at(offset: int) -> bytes:
    return offset.to_bytes(8, "big")


def _newest_key(newest: int, offset: int) -> bytes:
    return _NEWEST + (newest + _TS_BIAS).to_bytes(8, "big") + _at(offset)


class ClickRecordStore(RocksStore):
    """Records ``(partition, offset) -> [[click_id, ts, campaign, channel, content]]``,
    the click each id has, and the records in the order they go."""

    def __init__(self, url: Any, app: Any, table: Any, **kwargs: Any) -> None:
        super().__init__(url, app, table, **kwargs)
        self._oldest: dict[int, int | None] = {}
        """partition -> at most the newest click ts of the record that goes first (None:
        no record); absent: not known (``due`` reads it from the database)."""

    # What the click-join stage asks (streams.stages.click_records.ClickStore).

    def click(self, partition: int, click_id: str) -> tuple[Click, int] | None:
        raw = self._db(partition).get(_CLICK + click_id.encode())
        if raw is None:
            return None
        ts, campaign, channel, content = orjson.loads(raw[8:])
        return (ts, campaign, channel, content), int.from_bytes(raw[:8], "big")

    def due(self, partition: int, before_ms: int) -> list[int]:
        if partition in self._oldest:
            first = self._oldest[partition]
            if first is None or first >= before_ms:
                return []
        records = self._db(partition).iter()
        records.seek(_NEWEST)
        due: list[int] = []
        oldest: int | None = None
        while records.valid():
            key = records.key()
            if not key.startswith(_NEWEST):
                break
            newest = int.from_bytes(key[1:9], "big") - _TS_BIAS
            if newest >= before_ms:
                oldest = newest
                break
            due.append(int.from_bytes(key[9:], "big"))
            records.next()
        del records
        if due:
            self._oldest.pop(partition, None)  # these go now: read it again after
        else:
            self._oldest[partition] = oldest
        return due

    # The table's mapping: (partition, offset) -> the record's clicks.

    def __setitem__(self, key: Any, value: Any) -> None:
        self._put(key, value)

    def __delitem__(self, key: Any) -> None:
        partition, offset = key
        if not self._delete(partition, offset):
            raise KeyError(key)

    def __getitem__(self, key: Any) -> Any:
        partition, offset = key
        raw = self._db(partition).get(_RECORD + _at(offset))
        if raw is None:
            raise KeyError(key)
        return orjson.loads(raw)

    def __contains__(self, key: object) -> bool:
        if not (isinstance(key, tuple | list) and len(key) == 2):
            return False
        partition, offset = key
        return self._db(partition).get(_RECORD + _at(offset)) is not None

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
            yield raw

    def _iteritems(self) -> Iterator[tuple[bytes, bytes]]:
        return zip(self._iterkeys(), self._itervalues(), strict=True)

    def _size(self) -> int:
        return len(self)

    def write_changelog(self, records: Iterable[ChangelogRecord]) -> None:
        """Each changelog record (a tombstone: ``None``) into the store, in order, then the
        offset each partition reached."""
        reached: dict[int, tuple[str, int]] = {}
        for record in records:
            reached[record.partition] = (record.topic, record.offset)
            if record.key is None:  # every table change has one
                continue
            key = orjson.loads(record.key)
            if record.value is None:
                self._delete(*key)
            else:
                self._put(key, orjson.loads(record.value))
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

    def _db(self, partition: int) -> Rdict:
        db: Rdict = self._db_for_partition(partition)
        return db

    def _records(self) -> Iterator[tuple[int, int, bytes]]:
        for partition in list(self._dbs):
            records = self._db(partition).iter()
            records.seek(_RECORD)
            while records.valid() and records.key().startswith(_RECORD):
                yield partition, int.from_bytes(records.key()[1:], "big"), records.value()
                records.next()

    def _put(self, key: Any, value: Any) -> None:
        partition, offset, clicks = clicks_of(key, value)
        if self._db(partition).get(_RECORD + _at(offset)) is not None:
            self._delete(partition, offset)  # written again (a replay): as new
        db = self._db(partition)
        at = _at(offset)
        newest = newest_ts(clicks)
        batch = WriteBatch(raw_mode=True)
        batch.put(_RECORD + at, orjson.dumps(value))
        batch.put(_newest_key(newest, offset), b"")
        for click_id, click in clicks:
            batch.put(_CLICK + click_id.encode(), at + orjson.dumps(click))
        db.write(batch)
        if partition in self._oldest:  # never later than the first's: due reads again
            first = self._oldest[partition]
            if first is None or newest < first:
                self._oldest[partition] = newest

    def _delete(self, partition: int, offset: int) -> bool:
        """Forget a record and those of its clicks no later record holds; False: none."""
        db = self._db(partition)
        at = _at(offset)
        raw = db.get(_RECORD + at)
        if raw is None:
            return False
        _, _, clicks = clicks_of([partition, offset], orjson.loads(raw))
        click_keys = [_CLICK + click_id.encode() for click_id, _ in clicks]
        asked: Any = click_keys
        held_at = cast(list[bytes | None], db.get(asked))
        batch = WriteBatch(raw_mode=True)
        batch.delete(_RECORD + at)
        newest = newest_ts(clicks)
        batch.delete(_newest_key(newest, offset))
        for click_key, held in zip(click_keys, held_at, strict=True):
            if held is not None and held[:8] == at:
                batch.delete(click_key)
        db.write(batch)
        return True
