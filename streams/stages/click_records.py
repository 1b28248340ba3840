"""Remembered clicks: the click records of a partition, indexed by click id.

The clicks a source message of the click-join topic keeps are one record of the clicks
table, keyed ``(partition, offset)`` with the value ``[[click_id, ts, campaign, channel,
content type], ...]`` (no content type: written before it was kept). The click book
(streams.attribution.clicks) writes a click only when it becomes its id's click (the
earliest known), so the index is the last click written for each id: replayed in
changelog order, the records give back exactly the clicks the live worker held. A record
goes when its newest click leaves the attribution window, and with it the ids it holds.

``MemoryClickStore`` is that store in dicts (unit tests, tools); a worker keeps it on disk
in RocksDB (streams.worker.click_store), so memory does not grow with the clicks kept.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from typing import Any, Protocol

from streams.attribution.clicks import Click

__all__ = ["ClickStore", "MemoryClickStore", "clicks_of", "newest_ts"]

Held = tuple[Click, int]
"""A remembered click and the offset of the record that holds it."""


def clicks_of(key: Any, value: Any) -> tuple[int, int, list[tuple[str, Click]]]:
    """(partition, offset, [(click_id, click)]) of a record as the changelog carries it
    (JSON lists); raises ValueError for anything else."""
    partition, offset = key
    if not (type(partition) is int and type(offset) is int and isinstance(value, list)
            and value):
        raise ValueError(f"not a clicks record: {key!r}")
    clicks: list[tuple[str, Click]] = []
    for click_id, ts, campaign, channel, *content in value:
        if not (type(click_id) is str and type(ts) is int and type(campaign) is str
                and type(channel) is str and len(content) <= 1):
            raise ValueError(f"not a clicks record: {key!r}")
        clicks.append((click_id, (ts, campaign, channel, content[0] if content else None)))
    return partition, offset, clicks


def newest_ts(clicks: Iterable[tuple[str, Click]]) -> int:
    """The record goes when this leaves the attribution window."""
    return max(click[0] for _, click in clicks)


class ClickStore(Protocol):
    """The store of the clicks table: records by (partition, offset), indexed by click id."""

    def __setitem__(self, key: tuple[int, int], value: list[list[Any]]) -> None: ...

    def __delitem__(self, key: tuple[int, int]) -> None: ...

    def __contains__(self, key: object) -> bool: ...

    def click(self, partition: int, click_id: str) -> Held | None:
        """The click id's click in ``partition`` and the offset of its record, if kept."""
        ...

    def due(self, partition: int, before_ms: int) -> list[int]:
        """Offsets of the partition's records whose newest click is before ``before_ms``."""
        ...


class MemoryClickStore(MutableMapping[Any, Any]):
    """The click records and their index, in dicts."""

    def __init__(self, records: Mapping[Any, Any] | None = None) -> None:
        self._records: dict[tuple[int, int], list[list[Any]]] = {}
        self._held: dict[int, dict[str, Held]] = {}
        self._newest: dict[int, list[tuple[int, int]]] = {}
        """partition -> (newest click ts, offset) of its records, in order."""
        for key, value in (records or {}).items():
            self[key] = value

    def click(self, partition: int, click_id: str) -> Held | None:
        return self._held.get(partition, {}).get(click_id)

    def due(self, partition: int, before_ms: int) -> list[int]:
        newest = self._newest.get(partition, [])
        return [offset for _, offset in newest[:bisect_left(newest, (before_ms, -1))]]

    def __setitem__(self, key: Any, value: Any) -> None:
        partition, offset, clicks = clicks_of(key, value)
        if (partition, offset) in self._records:
            del self[(partition, offset)]
        self._records[(partition, offset)] = value
        insort(self._newest.setdefault(partition, []), (newest_ts(clicks), offset))
        held = self._held.setdefault(partition, {})
        for click_id, click in clicks:
            held[click_id] = (click, offset)

    def __delitem__(self, key: Any) -> None:
        partition, offset = key
        _, _, clicks = clicks_of(key, self._records.pop((partition, offset)))
        self._newest[partition].remove((newest_ts(clicks), offset))
        held = self._held[partition]
        for click_id, _ in clicks:
            if click_id in held and held[click_id][1] == offset:
                del held[click_id]

    def __getitem__(self, key: Any) -> Any:
        partition, offset = key
        return self._records[(partition, offset)]

    def __iter__(self) -> Iterator[Any]:
        return iter(list(self._records))

    def __len__(self) -> int:
        return len(self._records)
