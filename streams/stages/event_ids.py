"""Remembered event ids: which ids a partition has counted, and until when.

The ids first seen in a source message are one record of the event-ids table, keyed
``(partition, offset)`` with the value ``[expires_ms, ids]``, written while the message
is handled, so it lands in the changelog partition of the message's own partition. The
table's store indexes the records by id, so the counting stage asks it which of a
message's ids some message recorded before. ``MemoryIdStore`` is that store in memory (the
unit tests, the tools); a worker keeps it on disk, in RocksDB (streams.worker.id_store),
and memory does not grow with the ids remembered.

Records are forgotten in offset order once their time is up: the stage writes them with
``expires = now + dedup_window``, so a partition's later records expire later, but for a
clock that moved back a little between owners, which only delays a forgetting.
"""

from __future__ import annotations

from bisect import insort
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from typing import Any, Protocol

__all__ = ["IdRecord", "IdStore", "MemoryIdStore", "RecordKey", "record_of"]

RecordKey = tuple[int, int]
"""(partition, offset of the source message)."""
IdRecord = list[Any]
"""[expires_ms, ids]: the ids first seen in a message, remembered until expires_ms."""


def record_of(key: Any, value: Any) -> tuple[int, int, int, list[str]]:
    """(partition, offset, expires_ms, ids) of a record as the changelog carries it (JSON
    lists); raises ValueError for anything else."""
    partition, offset = key
    expires_ms, ids = value
    if not (type(partition) is int and type(offset) is int and type(expires_ms) is int
            and isinstance(ids, list) and all(type(i) is str for i in ids)):
        raise ValueError(f"not an event-ids record: {key!r}")
    return partition, offset, expires_ms, ids


class IdStore(Protocol):
    """The store of the event-ids table: records by (partition, offset), indexed by id."""

    def __setitem__(self, key: RecordKey, value: IdRecord) -> None: ...

    def __delitem__(self, key: RecordKey) -> None: ...

    def __contains__(self, key: object) -> bool: ...

    def recorded(self, partition: int, ids: Iterable[str]) -> dict[str, int]:
        """Those of ``ids`` a message of ``partition`` recorded: id -> its offset."""
        ...

    def due(self, partition: int, now_ms: int) -> list[int]:
        """Offsets of the partition's records whose time is up at ``now_ms``, oldest first."""
        ...


class MemoryIdStore(MutableMapping[Any, Any]):
    """The event-ids records and their index, in dicts."""

    def __init__(self, records: Mapping[Any, Any] | None = None) -> None:
        self._records: dict[RecordKey, IdRecord] = {}
        self._offset_of: dict[int, dict[str, int]] = {}
        self._offsets: dict[int, list[int]] = {}
        """partition -> offsets of its records, in order."""
        for key, value in (records or {}).items():
            self[key] = value

    def recorded(self, partition: int, ids: Iterable[str]) -> dict[str, int]:
        offset_of = self._offset_of.get(partition)
        if not offset_of:
            return {}
        return {i: offset_of[i] for i in ids if i in offset_of}

    def due(self, partition: int, now_ms: int) -> list[int]:
        due = []
        for offset in self._offsets.get(partition, ()):
            if self._records[(partition, offset)][0] > now_ms:
                break
            due.append(offset)
        return due

    def __setitem__(self, key: Any, value: Any) -> None:
        partition, offset, expires_ms, ids = record_of(key, value)
        if (partition, offset) not in self._records:
            insort(self._offsets.setdefault(partition, []), offset)
        self._records[(partition, offset)] = [expires_ms, list(ids)]
        self._offset_of.setdefault(partition, {}).update(dict.fromkeys(ids, offset))

    def __delitem__(self, key: Any) -> None:
        partition, offset = key
        _, ids = self._records.pop((partition, offset))
        self._offsets[partition].remove(offset)
        offset_of = self._offset_of[partition]
        for i in ids:
            if offset_of.get(i) == offset:
                del offset_of[i]

    def __getitem__(self, key: Any) -> Any:
        partition, offset = key
        return self._records[(partition, offset)]

    def __iter__(self) -> Iterator[Any]:
        return iter(list(self._records))

    def __len__(self) -> int:
        return len(self._records)
