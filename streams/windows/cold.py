"""Cold minutes: buckets of a campaign-channel kept only in the table's store, not in memory.

A worker holds 24 h of minute buckets per campaign-channel for its longest window, but only
the newest minutes change (events arrive within seconds; late ones are rare) and only the
buckets at a window's trailing edge are read (streams.windows.sums subtracts each as it
leaves). So ``KpiState`` keeps the hot minutes as Python lists and lets older ones go cold:
the table already holds every bucket (Faust's RocksDB store on the worker's disk), so a cold
bucket is read back from it when a window's edge passes it, a late event lands in it, or it
expires. What stays in memory per cold bucket is its minute, 4 bytes in a sorted array.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from streams.windows.minutes import TOTAL

__all__ = ["ColdMinutes", "ColdReader", "MixedBuckets", "hot_span"]

ColdReader = Callable[[tuple[str, str, int]], list[Any] | None]
"""A bucket as the table holds it (its changelog form), by ``(campaign, channel, minute)``;
None: not there."""

LATE_MINUTES = 10
"""Minutes kept hot even with short windows only: where late events mostly land."""


def hot_span(window_minutes: Sequence[int]) -> int:
    """Minutes to keep in memory for these windows: every window but the longest reads its
    trailing edge from memory (one more minute: the one that just left it)."""
    shorter = sorted(set(window_minutes))[:-1]
    return max([LATE_MINUTES, *[m + 1 for m in shorter]])


class ColdMinutes:
    """The minutes of one campaign-channel whose buckets are only in the store, in order."""

    __slots__ = ("_minutes",)

    def __init__(self) -> None:
        self._minutes = array("q")

    def __len__(self) -> int:
        return len(self._minutes)

    def __contains__(self, minute: object) -> bool:
        if not isinstance(minute, int):
            return False
        at = bisect_left(self._minutes, minute)
        return at < len(self._minutes) and self._minutes[at] == minute

    def __iter__(self) -> Iterator[int]:
        return iter(self._minutes)

    def add(self, minute: int) -> None:
        minutes = self._minutes
        if not minutes or minute > minutes[-1]:  # the usual case: the next minute goes cold
            minutes.append(minute)
            return
        at = bisect_left(minutes, minute)
        if at == len(minutes) or minutes[at] != minute:
            minutes.insert(at, minute)

    def discard(self, minute: int) -> bool:
        """Forget ``minute``; whether it was here."""
        minutes = self._minutes
        at = bisect_left(minutes, minute)
        if at < len(minutes) and minutes[at] == minute:
            del minutes[at]
            return True
        return False

    def pop_before(self, minute: int) -> list[int]:
        """Forget and return the minutes before ``minute`` (they expired)."""
        at = bisect_left(self._minutes, minute)
        gone = self._minutes[:at].tolist()
        del self._minutes[:at]
        return gone

    def newest(self) -> int | None:
        return self._minutes[-1] if self._minutes else None

    def between(self, low: int, high: int) -> list[int]:
        """The minutes in [low, high)."""
        minutes = self._minutes
        return minutes[bisect_left(minutes, low):bisect_left(minutes, high)].tolist()


class MixedBuckets(Mapping[int, Sequence[Any]]):
    """One campaign-channel's buckets, hot (in memory) and cold (read from the store), as
    one mapping of minute -> bucket, for the window sums that must see all of them."""

    __slots__ = ("_cell", "_cold", "_hot", "_read")

    def __init__(self, cell: tuple[str, str], hot: Mapping[int, Sequence[Any]],
                 cold: ColdMinutes, read: Callable[[tuple[str, str, int]], list[Any]]) -> None:
        self._cell, self._hot, self._cold, self._read = cell, hot, cold, read

    def __getitem__(self, minute: int) -> Sequence[Any]:
        bucket = self._hot.get(minute)
        if bucket is not None:
            return bucket
        if minute == TOTAL or minute not in self._cold:
            raise KeyError(minute)
        return self._read((*self._cell, minute))

    def get(self, minute: int, default: Any = None) -> Any:
        try:
            return self[minute]
        except KeyError:
            return default

    def __iter__(self) -> Iterator[int]:
        yield from self._hot
        yield from self._cold

    def __len__(self) -> int:
        return len(self._hot) + len(self._cold)

    def items_between(self, low: int, high: int) -> list[Sequence[Any]]:
        """The buckets of the minutes in [low, high) (TOTAL never among them)."""
        found = [b for m, b in self._hot.items() if low <= m < high and m != TOTAL]
        found += [self._read((*self._cell, m)) for m in self._cold.between(low, high)]
        return found
