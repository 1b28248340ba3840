"""Cold minutes: buckets of a campaign-channel kept only in the table's store, not in memory.

A worker holds 24 h of minute buckets per campaign-channel for its longest window, but only
the newest minutes change (events arrive within seconds; late ones are rare) and only the
buckets at a window's trailing edge are read (streams.windows.sums subtracts each as it
leaves). So ``KpiState`` keeps the hot minutes as Python lists and lets older ones go cold:
the table already holds every bucket (Faust's RocksDB store on the worker's disk), so a cold
bucket is read back from it when a window's edge passes it, a late event lands in it, or it
expires. What stays in memory per cold bucket is its minute, 4 bytes in a sorted array,
and per hour of cold minutes the sum of their counters, products and content types (a
roll-up): a window summed afresh (the first scrape after a start or a rebalance) adds
whole hours from the roll-ups and reads at most 30 cold minutes at each edge (an edge
hour's minutes inside the range, or its roll-up less the minutes outside). An hour whose
minutes are all cold is one record in the store, an hour block (streams.windows.blocks),
and a rebuild takes its roll-up from it.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterator, Mapping, Sequence
from itertools import islice
from typing import Any

from streams.windows.counts import WIDTH, add_into, take_from, zero
from streams.windows.extras import BucketExtras, Named, add_named, shift_named
from streams.windows.minutes import TOTAL

__all__ = ["HOUR", "ColdMinutes", "ColdReader", "MixedBuckets", "NamedSums", "column_sums",
           "extras_of", "hot_span"]

ColdReader = Callable[[tuple[Any, ...]], list[Any] | None]
"""A record as the table holds it (its changelog form), by key: a bucket by ``(campaign,
channel, minute)``, an hour block by ``streams.windows.blocks.HourKey``; None: not there."""

Read = Callable[[int], Sequence[Any]]
"""A cold bucket of one campaign-channel, by minute."""

NamedSums = tuple[Named, Named]
"""(products, content types)."""

HOUR = 60
"""Minutes in an hour (of roll-ups and hour blocks)."""

LATE_MINUTES = 10
"""Minutes kept hot even with short windows only: where late events mostly land."""


def hot_span(window_minutes: Sequence[int]) -> int:
    """Minutes to keep in memory for these windows: every window but the longest reads its
    trailing edge from memory (one more minute: the one that just left it)."""
    shorter = sorted(set(window_minutes))[:-1]
    return max([LATE_MINUTES, *[m + 1 for m in shorter]])


def column_sums(buckets: Sequence[Sequence[int]]) -> list[int]:
    """The counters of ``buckets`` summed (column sums, in C; trailing fields ignored)."""
    return [sum(column) for column in islice(zip(*buckets, strict=False), WIDTH)] or zero()


def extras_of(bucket: Sequence[Any] | None) -> BucketExtras | None:
    """A bucket's extras (after its counters and offset), if it has any."""
    return bucket[WIDTH + 1] if bucket is not None and len(bucket) > WIDTH + 1 else None


def _add_names(into: NamedSums, bucket: Sequence[Any], sign: int = 1) -> None:
    extras = extras_of(bucket)
    if extras is not None:
        if sign > 0:
            add_named(into[0], extras.products)
            add_named(into[1], extras.content)
        else:
            shift_named(into[0], extras.products, -1)
            shift_named(into[1], extras.content, -1)


class ColdMinutes:
    """The minutes of one campaign-channel whose buckets are only in the store, in order,
    with the counters of each hour's cold buckets summed."""

    __slots__ = ("_blocked", "_hours", "_minutes", "_names")

    def __init__(self) -> None:
        self._minutes = array("i")
        self._blocked: set[int] = set()
        """Hours whose cold minutes are one hour block in the store (streams.windows.blocks),
        not minute records."""
        self._hours: dict[int, list[int]] = {}
        self._names: dict[int, NamedSums] = {}
        """Hour -> products and content types of its cold minutes (hours with any)."""

    def __len__(self) -> int:
        return len(self._minutes)

    def __contains__(self, minute: object) -> bool:
        if not isinstance(minute, int):
            return False
        at = bisect_left(self._minutes, minute)
        return at < len(self._minutes) and self._minutes[at] == minute

    def __iter__(self) -> Iterator[int]:
        return iter(self._minutes)

    def add(self, minute: int, bucket: Sequence[int]) -> None:
        """``minute``'s bucket went cold (it is not here yet)."""
        minutes = self._minutes
        if not minutes or minute > minutes[-1]:  # the usual case: the next minute goes cold
            minutes.append(minute)
        else:
            at = bisect_left(minutes, minute)
            assert at == len(minutes) or minutes[at] != minute, minute
            minutes.insert(at, minute)
        hour = self._hours.get(minute // HOUR)
        if hour is None:
            hour = self._hours[minute // HOUR] = zero()
        add_into(hour, bucket)
        if extras_of(bucket) is not None:
            _add_names(self._names.setdefault(minute // HOUR, ({}, {})), bucket)

    def discard(self, minute: int, bucket: Sequence[int]) -> None:
        """``minute`` (here, with this bucket) is hot again or gone."""
        minutes = self._minutes
        at = bisect_left(minutes, minute)
        assert at < len(minutes) and minutes[at] == minute, minute
        del minutes[at]
        hour = minute // HOUR
        if self.between(hour * HOUR, (hour + 1) * HOUR):
            take_from(self._hours[hour], bucket)
            names = self._names.get(hour)
            if names is not None:
                _add_names(names, bucket, -1)
                if not (names[0] or names[1]):
                    del self._names[hour]
        else:
            del self._hours[hour]
            self._names.pop(hour, None)

    def put(self, minute: int, bucket: Sequence[int] | None, read: Read) -> None:
        """Set (None: forget) ``minute``'s bucket, whatever was there: its hour's roll-up
        is summed again from the store (``read``) and this bucket. For a rebuild's loads,
        which may replace what the store held when the minute went cold."""
        minutes = self._minutes
        at = bisect_left(minutes, minute)
        if at < len(minutes) and minutes[at] == minute:
            del minutes[at]
        hour = minute // HOUR
        self._hours.pop(hour, None)
        self._names.pop(hour, None)
        others = self.between(hour * HOUR, (hour + 1) * HOUR)
        if others:
            sums = self._hours[hour] = zero()
            names: NamedSums = ({}, {})
            for m in others:
                found = read(m)
                add_into(sums, found)
                _add_names(names, found)
            if names[0] or names[1]:
                self._names[hour] = names
        if bucket is not None:
            self.add(minute, bucket)

    def is_blocked(self, hour: int) -> bool:
        return hour in self._blocked

    def mark_blocked(self, hour: int, blocked: bool = True) -> None:
        """``hour``'s cold minutes are now one hour block (False: it has none left)."""
        if blocked:
            self._blocked.add(hour)
        else:
            self._blocked.discard(hour)

    def blocked_after(self, minute: int) -> set[int]:
        """Blocked hours that end after ``minute`` (hot minutes may lie in them only after a
        clock moved back, or an event went into their block)."""
        return {h for h in self._blocked if (h + 1) * HOUR > minute}

    def blocked_hours(self) -> list[int]:
        return sorted(self._blocked)

    def wholly_cold(self, before: int) -> list[int]:
        """Hours with cold minutes, not blocked yet, that end by minute ``before``."""
        return sorted(h for h in self._hours
                      if h not in self._blocked and (h + 1) * HOUR <= before)

    def roll_up(self, hour: int) -> tuple[list[int], NamedSums]:
        """The counters, products and content types of ``hour``'s cold minutes."""
        return self._hours.get(hour, zero()), self._names.get(hour, ({}, {}))

    def load_block(self, hour: int, minutes: Sequence[int], sums: list[int],
                   names: NamedSums) -> list[int]:
        """``hour``'s cold minutes are a block of ``minutes`` (ascending) with this roll-up
        (a rebuild's load); returns the minutes of the hour held before, which it replaces."""
        held = self._minutes
        low, high = bisect_left(held, hour * HOUR), bisect_left(held, (hour + 1) * HOUR)
        before = held[low:high].tolist()
        held[low:high] = array("i", minutes)
        self._hours.pop(hour, None)
        self._names.pop(hour, None)
        if minutes:
            self._hours[hour] = sums
            if names[0] or names[1]:
                self._names[hour] = names
        self._blocked.add(hour)
        return before

    def pop_before(self, minute: int, read: Read) -> list[tuple[int, Sequence[Any]]]:
        """Forget and return the minutes before ``minute`` (they expired), each with its
        bucket."""
        gone = [(m, read(m)) for m in self._minutes[:bisect_left(self._minutes, minute)]]
        for m, bucket in gone:
            self.discard(m, bucket)
        return gone

    def newest(self) -> int | None:
        return self._minutes[-1] if self._minutes else None

    def between(self, low: int, high: int) -> list[int]:
        """The minutes in [low, high)."""
        minutes = self._minutes
        return minutes[bisect_left(minutes, low):bisect_left(minutes, high)].tolist()

    def _split(self, low: int, high: int) -> tuple[list[int], list[int], list[int]]:
        """How to sum the cold minutes in [low, high): the hours whose roll-ups to add,
        the minutes to add, and the minutes to take away (an edge hour's roll-up serves
        when fewer of its cold minutes lie outside the range than inside)."""
        if high <= low:
            return [], [], []
        first, last = low // HOUR, (high - 1) // HOUR
        whole = [hour for hour in self._hours if first < hour < last]
        edges: list[int] = []
        outside: list[int] = []
        for hour in dict.fromkeys((first, last)):
            if hour not in self._hours:
                continue
            every = self.between(hour * HOUR, (hour + 1) * HOUR)
            inside = [m for m in every if low <= m < high]
            if 2 * len(inside) > len(every):
                whole.append(hour)
                outside += [m for m in every if not low <= m < high]
            else:
                edges += inside
        return whole, edges, outside

    def parts_between(self, low: int, high: int, read: Read) -> list[Sequence[int]]:
        """What sums to the counters of the cold minutes in [low, high): roll-ups of the
        hours inside, and the minutes at the edges, read (negated: minutes of an edge
        hour's roll-up outside the range)."""
        whole, edges, outside = self._split(low, high)
        parts: list[Sequence[int]] = [self._hours[hour] for hour in whole]
        parts += [read(m) for m in edges]
        return parts + [[-v for v in read(m)[:WIDTH]] for m in outside]

    def parts_from(self, start: int, read: Read) -> list[Sequence[int]]:
        """``parts_between`` from ``start`` on."""
        newest = self.newest()
        return [] if newest is None else self.parts_between(start, newest + 1, read)

    def names_from(self, start: int, read: Read) -> NamedSums:
        """``parts_from``'s twin for products and content types, summed."""
        newest = self.newest()
        out: NamedSums = ({}, {})
        if newest is None:
            return out
        whole, edges, outside = self._split(start, newest + 1)
        for hour in whole:
            products, content = self._names.get(hour, ({}, {}))
            add_named(out[0], products)
            add_named(out[1], content)
        for m in edges:
            _add_names(out, read(m))
        for m in outside:
            _add_names(out, read(m), -1)
        return out


class MixedBuckets(Mapping[int, Sequence[Any]]):
    """One campaign-channel's buckets, hot (in memory) and cold (read from the store), as
    one mapping of minute -> bucket, for the window sums that must see all of them."""

    __slots__ = ("_cold", "_hot", "_read")

    def __init__(self, hot: Mapping[int, Sequence[Any]], cold: ColdMinutes,
                 read: Read) -> None:
        self._hot, self._cold, self._read = hot, cold, read

    def __getitem__(self, minute: int) -> Sequence[Any]:
        bucket = self._hot.get(minute)
        if bucket is not None:
            return bucket
        if minute == TOTAL or minute not in self._cold:
            raise KeyError(minute)
        return self._read(minute)

    def __iter__(self) -> Iterator[int]:
        yield from self._hot
        yield from self._cold

    def __len__(self) -> int:
        return len(self._hot) + len(self._cold)

    def names_from(self, start: int) -> NamedSums:
        """The products and content types of every bucket from minute ``start`` on."""
        out = self._cold.names_from(start, self._read)
        for minute, bucket in self._hot.items():
            if minute >= start and minute != TOTAL:
                _add_names(out, bucket)
        return out

    def sum_from(self, start: int) -> list[int]:
        """The counters of every bucket from minute ``start`` on (a window sum afresh)."""
        parts = self._cold.parts_from(start, self._read)
        parts += [b for m, b in self._hot.items() if m >= start and m != TOTAL]
        return column_sums(parts)

    def sum_between(self, low: int, high: int) -> list[int]:
        """The counters of every bucket of the minutes in [low, high)."""
        parts = self._cold.parts_between(low, high, self._read)
        parts += [b for m, b in self._hot.items() if low <= m < high and m != TOTAL]
        return column_sums(parts)
