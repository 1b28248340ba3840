"""Hour blocks: the cold minutes of one hour of a campaign-channel as one table record.

A cold minute (streams.windows.cold) is a record of the kpi table: 1,440 a day per
campaign-channel, each read by a rebuild (~6 us) and each replayed by a worker recovering
from the changelog (~0.14 ms a record through Faust's recovery). Once every minute of an
hour is cold, its buckets move into one record under ``(campaign, channel, "hour", hour)``
that also carries the hour's roll-up (counters, products, content types, and the union of
its minutes' viewers when it is first written), and the minute records get tombstones: a
day is then ~24 records per campaign-channel beside its hot minutes, and a rebuild takes an
hour's roll-up without reading its buckets (nor their viewers' sketches, which stay in the
store). The block is written again when a late event lands in one of its minutes or one of
them expires, and gets a tombstone with its last minute.

The block goes to the changelog before its minutes' tombstones, so a crash between them
leaves minute records beside their block, never a minute in neither. The block holds the
newest bucket of each of its minutes (nothing writes a minute record of a blocked hour), so
a rebuild takes the block and gives such left-over records their tombstones.

The buckets go into the record as one JSON text, not as JSON lists: a rebuild reads only
the roll-up, the union and the block's index (its minutes and those with viewers), and the
text of a block's 60 buckets is parsed only by the reads that need them (a window's edge,
a late event, an expiry, or a rebuild of a block with viewers written again without their
union). With viewers, products and content types in every minute a block is
~16 KB, and orjson took ~45 us for one with its buckets as lists against ~8 with them as
text: ~8 s of a rebuild at 10,000 campaign-channels x 24 h. Blocks written before (buckets
as lists, no index) read as they did; workers of the versions before cannot read these.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from operator import itemgetter
from typing import Any, Final

import orjson

from streams.flow.wire import dumps, exact_ints
from streams.windows.cold import HOUR, NamedSums
from streams.windows.extras import bucket_viewers, named_read
from streams.windows.reach import minute_bits

__all__ = ["HOUR_MARK", "BlockIndex", "HourKey", "block_entries", "block_extras",
           "block_index", "block_minutes", "block_reach", "block_roll_up", "block_value",
           "hour_key", "is_hour_key"]

HOUR_MARK: Final = "hour"
"""The third element of an hour block's key (a minute bucket's is its minute, an int)."""

HourKey = tuple[str, str, str, int]
"""(campaign, channel, ``HOUR_MARK``, hour): the key of an hour block."""


def hour_key(campaign: str, channel: str, hour: int) -> HourKey:
    return (campaign, channel, HOUR_MARK, hour)


def is_hour_key(key: Sequence[Any]) -> bool:
    return len(key) == 4 and key[2] == HOUR_MARK


def block_value(sums: Sequence[int], names: NamedSums,
                entries: Mapping[int, Sequence[Any]], reach: str | None = None) -> list[Any]:
    """An hour block's record: the roll-up of its minutes (counters, products, content
    types), then ``[minute, bucket]`` in minute order as one JSON text (``dumps``: exact,
    extras in their wire form), then the union of its minutes' viewers
    (``UserSketch.to_wire``) or None, then its index: ``[minutes, minutes with viewers as
    bits (``minute_bits``)]``. Copies the roll-up: a store in memory keeps what it is
    given."""
    products, content = names
    minutes = sorted(entries)
    viewed = [minute for minute in minutes
              if entries[minute] and bucket_viewers(entries[minute][-1]) is not None]
    return [list(sums), {k: list(v) for k, v in products.items()},
            {k: list(v) for k, v in content.items()},
            dumps([[minute, entries[minute]] for minute in minutes]).decode(), reach,
            [minutes, minute_bits(minutes[0] // HOUR, viewed) if viewed else 0]]


def block_reach(value: Sequence[Any]) -> str | None:
    """The union of a block's minutes' viewers, if the block carries it (blocks written
    before it was kept, or written again after a late event or an expiry, do not)."""
    return value[4] if len(value) > 4 and isinstance(value[4], str) else None


BlockIndex = tuple[list[int], int]
"""A block's minutes (ascending) and those of them whose bucket has viewers (as bits:
``minute_bits``)."""


def block_index(value: Sequence[Any]) -> BlockIndex | None:
    """What a rebuild needs of a block's buckets without reading them; None for a block
    written before blocks had it."""
    return (value[5][0], value[5][1]) if len(value) > 5 else None


def _buckets(value: Sequence[Any]) -> list[Any]:
    entries: list[Any] = orjson.loads(value[3]) if isinstance(value[3], str) else value[3]
    return entries


def block_entries(value: Sequence[Any]) -> dict[int, Sequence[Any]]:
    """Minute -> its bucket, as the record holds it (``state.bucket_of`` reads it)."""
    return {minute: bucket for minute, bucket in _buckets(value)}


def block_minutes(value: Sequence[Any]) -> list[int]:
    """A block's minutes, ascending (``block_value`` writes them so: sorting them again
    is one pass in C)."""
    index = block_index(value)
    return index[0] if index is not None else sorted(map(itemgetter(0), _buckets(value)))


def block_extras(value: Sequence[Any]) -> list[tuple[int, Any]]:
    """``(minute, extras)`` of a block's buckets that carry extras (viewers, products).

    Told in C first: a bucket without extras ends with its offset, and a rebuild reads
    ~230,000 blocks of 60 buckets at 10,000 campaign-channels x 24 h."""
    entries = _buckets(value)
    try:
        lasts = list(map(itemgetter(-1), map(itemgetter(1), entries)))
    except IndexError:  # an empty bucket (none is written so): the slow way
        lasts = [bucket[-1] if bucket else 0 for _, bucket in entries]
    if set(map(type, lasts)) <= {int}:
        return []
    return [(minute, last) for (minute, _), last in zip(entries, lasts, strict=True)
            if type(last) is not int]


def block_roll_up(value: Sequence[Any]) -> tuple[list[int], NamedSums]:
    """The counters, products and content types of a block's minutes, summed."""
    sums, products, content = value[0], value[1], value[2]
    return exact_ints(sums), (named_read(products), named_read(content))
