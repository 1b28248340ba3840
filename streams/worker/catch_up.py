"""Which changelog partitions a store is reading in bulk, and what Faust's recovery hands
over for them meanwhile.

A store on a wiped (or stale) disk reads each active changelog partition from the offset
it holds up to, to the end the partition had at the rebalance, itself
(streams.worker.rocks_store). Faust is told the store holds up to that end, so its
recovery reads only what came after; those later records may reach the store before the
bulk read is done, and must not be written under the older records it has still to
write. So a record of a partition still being read is held, and written once its read is
done; and a record older than what a bulk read covered (Faust's leftovers from a recovery
a rebalance cut short) is dropped: the store holds that offset's record or a later one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol, TypeVar

__all__ = ["CatchUp", "ChangelogRecord"]


class ChangelogRecord(Protocol):
    """A changelog record, as Faust's messages and aiokafka's records both carry it."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...


R = TypeVar("R", bound=ChangelogRecord)


class CatchUp:
    """Bulk reads under way (partition -> end offset), the records held for them, and the
    end each finished read covered (records below it are dropped)."""

    def __init__(self) -> None:
        self.reading: dict[int, int] = {}
        self.held: dict[int, list[ChangelogRecord]] = {}
        self.covered: dict[int, int] = {}

    def start(self, ends: Mapping[int, int], active: Iterable[int]) -> None:
        """Reads begin for ``ends`` (partition -> end offset), in place of any before (what
        was held for those is dropped: Faust's recovery reads it again); partitions no
        longer ``active`` forget what their reads covered."""
        keep = set(active)
        self.covered = {p: end for p, end in self.covered.items() if p in keep}
        self.reading = dict(ends)
        self.held = {p: [] for p in ends}

    def persisted(self, partition: int) -> int | None:
        """The offset to tell Faust the store holds up to (the last one being read), or
        None: ask the disk."""
        end = self.reading.get(partition)
        return None if end is None else end - 1

    def admit(self, records: Iterable[R]) -> list[R]:
        """Of recovery's records, those to write now (the rest held or dropped)."""
        now: list[R] = []
        for record in records:
            partition = record.partition
            if record.offset < self.covered.get(partition, 0):
                continue
            held = self.held.get(partition)
            if held is None:
                now.append(record)
            else:
                held.append(record)
        return now

    def finish(self, partition: int) -> list[ChangelogRecord]:
        """The bulk read of ``partition`` is done: the records held for it, to write now."""
        end = self.reading.pop(partition)
        self.covered[partition] = end
        return [r for r in self.held.pop(partition, []) if r.offset >= end]
