"""A worker's KPI state: per campaign and channel, minute buckets and a running total.

Pure bookkeeping. The Faust table persists every bucket this returns as changed, under
the key ``(campaign, channel, minute)`` (``TOTAL`` for the running total), so the state
can be rebuilt from the table after recovery.

Each bucket ends with the offset of the last source message applied to it, written in
the same changelog record as its counters: a message replayed after a crash is applied
to exactly the buckets whose records did not land before the crash.

Window sums are kept running (streams.windows.sums): ``apply`` passes every bucket change
on, ``load`` marks the cell to be summed afresh, and a scrape only moves the sums to the
current minute instead of re-summing every bucket.

A bucket with viewers, products, content types or LTV credits carries them after its
offset, as a ``BucketExtras`` (streams.windows.extras), in the same changelog record; its
viewers' sketch is the one the cell's ``WindowReach`` holds for that minute.

Given a ``ColdReader`` (the table's store), only the newest ``hot_minutes`` of each cell
stay in memory; older buckets go cold (streams.windows.cold) and are read back from the
store when a window sum, a late event or their expiry needs them. An hour whose minutes are
all cold becomes one record, an hour block (streams.windows.blocks), in place of its minute
records.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from streams.config.settings import Window
from streams.flow.wire import exact_ints
from streams.windows.blocks import (
    HourKey,
    block_entries,
    block_extras,
    block_index,
    block_minutes,
    block_reach,
    block_roll_up,
    block_value,
    hour_key,
    is_hour_key,
)
from streams.windows.cold import HOUR, ColdMinutes, ColdReader, MixedBuckets, extras_of
from streams.windows.counts import WIDTH, add_into, widened, zero
from streams.windows.extras import (
    CONTENT_CAP,
    PRODUCT_CAP,
    BucketExtras,
    ExtrasDelta,
    Named,
    bucket_viewers,
    name_map,
    renamed,
)
from streams.windows.minutes import TOTAL, oldest_kept_minute
from streams.windows.named_sums import RunningNamed
from streams.windows.reach import UserSketch, WindowReach, minute_bits, union_wire
from streams.windows.sums import RunningSums

__all__ = ["BucketKey", "ExtrasRow", "KpiRow", "KpiState", "MinuteRange", "RecordKey",
           "WindowExtras"]

BucketKey = tuple[str, str, int]
"""(campaign, channel, minute); minute is ``TOTAL`` for the running total."""
RecordKey = BucketKey | HourKey
"""A key of the table: a bucket's or an hour block's."""
Changes = dict[RecordKey, list[Any] | None]
"""Records to write to the table (None: a tombstone), in the order to write them."""

KpiRow = tuple[str, str, str, list[int]]
"""(campaign, channel, window label, summed counters)."""

MinuteRange = tuple[int, int] | None
"""[first, end) minutes for ``campaign_sums``; None: the running total."""


@dataclass(slots=True)
class WindowExtras:
    """A window's viewers, products, content types and (total only) LTV credits."""

    reach: float | None = None
    """Estimated distinct viewers; None: no view in the window carried a user id."""
    products: Named = field(default_factory=dict)
    content: Named = field(default_factory=dict)
    ltv: dict[int, int] = field(default_factory=dict)

    def __reduce__(self) -> tuple[type[WindowExtras], tuple[object, ...]]:
        """Pickled as its fields (a scrape's 40,000 go to the /metrics writer,
        streams.worker.scrape_process): ~5 times faster both ways than a slotted
        dataclass's own state, which looks up its fields for each."""
        return WindowExtras, (self.reach, self.products, self.content, self.ltv)


ExtrasRow = tuple[str, str, str, WindowExtras]
"""(campaign, channel, window label, its extras)."""


def _entry_viewers(bucket: Sequence[Any]) -> UserSketch | None:
    """The viewers' sketch of a bucket in the state's form or the table's."""
    viewers = bucket_viewers(bucket[-1]) if bucket else None
    return UserSketch.from_wire(viewers) if isinstance(viewers, str) else viewers


def bucket_of(value: Sequence[Any]) -> list[Any]:
    """A bucket as the state holds it, from the table's (changelog) form of any version."""
    if not value or type(value[-1]) is int:  # no extras: the common case, one copy
        return widened(exact_ints(value))
    counts = list(value)
    extra = None
    if isinstance(counts[-1], dict | BucketExtras):
        extra, counts = counts[-1], counts[:-1]
    bucket: list[Any] = widened(exact_ints(counts))
    if extra is not None:
        bucket.append(extra if isinstance(extra, BucketExtras) else BucketExtras.from_wire(extra))
    return bucket


def _names_in_order(deltas: Sequence[ExtrasDelta], attr: str) -> list[str]:
    return list(dict.fromkeys(name for d in deltas for name in getattr(d, attr)))


class KpiState:
    """Buckets of the campaigns this worker owns."""

    def __init__(self, retention_minutes: int, hot_minutes: int | None = None,
                 cold: ColdReader | None = None) -> None:
        """``cold``: where buckets older than the newest ``hot_minutes`` are read back from
        (None: every bucket stays in memory)."""
        self._retention = retention_minutes
        self._hot = retention_minutes if cold is None or hot_minutes is None else min(
            hot_minutes, retention_minutes)
        self._read_cold = cold
        self._hot_from = 0
        """The oldest hot minute at the last ``apply``."""
        self._cells: dict[tuple[str, str], dict[int, list[Any]]] = {}
        """Cell -> minute -> ``[*counters, offset]``, then its ``BucketExtras`` if any."""
        self._cold: dict[tuple[str, str], ColdMinutes] = {}
        """Cell -> the minutes of its buckets that are only in the store."""
        self._sums = RunningSums()
        self._named = RunningNamed()
        self._kept_from: dict[tuple[str, str], int] = {}
        """Cell -> the ``oldest`` of its last expiry scan: no older bucket is left in it, and
        ``apply`` adds none, so the cell needs no scan until the minute moves on."""
        self._reach: dict[tuple[str, str], WindowReach] = {}
        """Cell -> its viewers per minute (only cells with views that carry a user id)."""
        self._with_extras: set[tuple[str, str]] = set()
        """Cells with a bucket that has extras."""
        self._left_over: dict[tuple[str, str], list[BucketKey]] = {}
        """Cell -> minute records a rebuild found beside their hour block (a crash came
        between them): tombstoned at the cell's next expiry scan."""
        self._block_read: tuple[HourKey, dict[int, Sequence[Any]]] | None = None
        """The hour block read last, by key (its minutes are read in a row)."""
        self._late_hours: set[tuple[str, str, int]] = set()
        """(campaign, channel, hour) of hours past the hot minutes that a late event landed
        in during the clock's minute ``_late_minute``: not blocked before the next one. A
        backfill writes an hour's minutes one after another; blocking the hour at its first
        would rewrite the whole block with each of the others."""
        self._late_minute: int | None = None

    def apply(
        self, deltas: Mapping[BucketKey, Sequence[int]], now_minute: int, offset: int,
        extras: Mapping[BucketKey, ExtrasDelta] | None = None,
    ) -> Changes:
        """Add one source message's counters (and extras); returns changed records (None:
        delete it), buckets and hour blocks.

        Each delta also goes into the total. A delta for a minute already past every
        window only goes into the total. A bucket that already holds ``offset`` (or a
        later one) is left alone: the message is a replay and that bucket has it; one that
        holds exactly ``offset`` is returned as changed all the same, since a store on disk
        may hold it from before a crash that kept its record from the changelog.
        """
        oldest = oldest_kept_minute(now_minute, self._retention)
        hot_from = self._hot_from = oldest_kept_minute(now_minute, self._hot)
        if now_minute != self._late_minute:
            self._late_hours.clear()
            self._late_minute = now_minute
        changed: Changes = {}
        totals: dict[tuple[str, str], list[int]] = {}
        for (campaign, channel, _), delta in deltas.items():
            total_delta = totals.get((campaign, channel))
            if total_delta is None:
                totals[(campaign, channel)] = list(delta)
            else:
                add_into(total_delta, delta)
        renamed = self._admitted(extras) if extras else {}
        for key, delta in deltas.items():
            campaign, channel, minute = key
            if minute >= oldest:
                self._add(campaign, channel, minute, delta, offset, changed, renamed.get(key))
            elif key in renamed:  # past every window: its viewers count in the total only
                self._reach_of(campaign, channel).add_total(renamed[key].users)
        for (campaign, channel), delta in totals.items():
            self._add(campaign, channel, TOTAL, delta, offset, changed,
                      renamed.get((campaign, channel, TOTAL)))
        for campaign, channel in list(dict.fromkeys((k[0], k[1]) for k in changed)):
            if self._kept_from.get((campaign, channel), oldest - 1) >= oldest:
                continue
            self._kept_from[(campaign, channel)] = oldest
            self._expire(campaign, channel, oldest, hot_from, changed)
        return changed

    def _expire(self, campaign: str, channel: str, oldest: int, hot_from: int,
                changed: Changes) -> None:
        """Drop the buckets of a cell older than ``oldest``; those older than ``hot_from``
        go cold (the caller writes them to the table first, if changed)."""
        gone: list[tuple[int, Sequence[Any]]]
        if self._read_cold is None:
            cell = self._cells[(campaign, channel)]
            gone = [(m, cell.pop(m)) for m in [m for m in cell if m != TOTAL and m < oldest]]
            for minute, _ in gone:
                changed[(campaign, channel, minute)] = None
        else:
            gone = self._cool(campaign, channel, oldest, hot_from, changed)
        for minute, bucket in gone:
            self._sums.changed((campaign, channel), minute, bucket, -1)
            held = extras_of(bucket)
            if held is not None:
                self._named.changed((campaign, channel), minute, held.products,
                                    held.content, -1)
        reach = self._reach.get((campaign, channel))
        if reach is not None:
            reach.drop_before(oldest)

    def _cool(self, campaign: str, channel: str, oldest: int, hot_from: int,
              changed: Changes) -> list[tuple[int, Sequence[Any]]]:
        """``_expire`` with a store to read back from: the hot minutes older than
        ``hot_from`` (and any in a blocked hour) go cold, those older than ``oldest``
        expire, and the cell's hour blocks follow its cold minutes; returns the expired
        minutes, each with its bucket."""
        cell = self._cells[(campaign, channel)]
        cold = self._cold.get((campaign, channel))
        if cold is None:
            cold = self._cold[(campaign, channel)] = ColdMinutes()
        gone: list[tuple[int, Sequence[Any]]] = []
        into_blocks: dict[int, dict[int, Sequence[Any]]] = {}
        """Blocked hour -> its minutes going back into its block, with their buckets."""
        touched: set[int] = set()
        """Blocked hours whose block changes."""
        late = cold.blocked_after(hot_from)  # almost always empty
        for minute in [m for m in cell if m != TOTAL
                       and (m < hot_from or (late and m // HOUR in late))]:
            bucket, hour = cell.pop(minute), minute // HOUR
            if minute >= oldest:
                cold.add(minute, bucket)
            else:
                gone.append((minute, bucket))
            if not cold.is_blocked(hour):
                if minute < oldest:
                    changed[(campaign, channel, minute)] = None
                continue
            touched.add(hour)
            changed.pop((campaign, channel, minute), None)  # it goes in its block instead
            if minute >= oldest:
                into_blocks.setdefault(hour, {})[minute] = bucket
        for minute, expired in cold.pop_before(
                oldest, lambda m: self._cold_bucket(campaign, channel, m)):
            gone.append((minute, expired))
            if cold.is_blocked(minute // HOUR):
                touched.add(minute // HOUR)
            else:
                changed[(campaign, channel, minute)] = None
        for hour in sorted(touched):
            self._write_block(campaign, channel, hour, cold, into_blocks.get(hour, {}), changed)
        for hour in cold.wholly_cold(hot_from):
            if (campaign, channel, hour) not in self._late_hours:
                self._block(campaign, channel, hour, cold, changed)
        for key in self._left_over.pop((campaign, channel), []):
            changed[key] = None
        return gone

    def _block(self, campaign: str, channel: str, hour: int, cold: ColdMinutes,
               changed: Changes) -> None:
        """Move the cold minute records of ``hour`` into one hour block: the block, then
        the minutes' tombstones."""
        assert self._read_cold is not None
        minutes = cold.between(hour * HOUR, (hour + 1) * HOUR)
        entries: dict[int, Sequence[Any]] = {}
        for minute in minutes:  # a bucket changed by this message is not in the store yet
            pending = changed.pop((campaign, channel, minute), None)
            entries[minute] = pending if pending is not None else (
                self._read_cold((campaign, channel, minute)) or [*zero(), -1])
        sums, names = cold.roll_up(hour)
        changed[hour_key(campaign, channel, hour)] = block_value(
            sums, names, entries, union_wire(filter(None, map(_entry_viewers,
                                                              entries.values()))))
        for minute in minutes:
            changed[(campaign, channel, minute)] = None
        cold.mark_blocked(hour)

    def _write_block(self, campaign: str, channel: str, hour: int, cold: ColdMinutes,
                     fresh: Mapping[int, Sequence[Any]], changed: Changes) -> None:
        """Write ``hour``'s block again as its cold minutes are now (``fresh``: buckets
        newer than the block's); a tombstone once none is left."""
        key = hour_key(campaign, channel, hour)
        minutes = cold.between(hour * HOUR, (hour + 1) * HOUR)
        if not minutes:
            changed[key] = None
            cold.mark_blocked(hour, False)
        else:
            held = self._block_entries(campaign, channel, hour)
            entries = {m: fresh[m] if m in fresh else held.get(m, [*zero(), -1])
                       for m in minutes}
            sums, names = cold.roll_up(hour)
            changed[key] = block_value(sums, names, entries)
        self._block_read = None

    def _cold_bucket(self, campaign: str, channel: str, minute: int) -> list[Any]:
        """A cold bucket, read back from the store (all zero if the store lost it)."""
        value = self._cold_record(campaign, channel, minute)
        return [*zero(), -1] if value is None else bucket_of(value)

    def _cold_record(self, campaign: str, channel: str, minute: int) -> Sequence[Any] | None:
        """A cold bucket as the store holds it (None: the store lost it)."""
        assert self._read_cold is not None
        cold = self._cold.get((campaign, channel))
        if cold is not None and cold.is_blocked(minute // HOUR):
            return self._block_entries(campaign, channel, minute // HOUR).get(minute)
        return self._read_cold((campaign, channel, minute))

    def _block_entries(self, campaign: str, channel: str,
                       hour: int) -> dict[int, Sequence[Any]]:
        """The buckets of an hour block, by minute, as the store holds them."""
        assert self._read_cold is not None
        key = hour_key(campaign, channel, hour)
        if self._block_read is not None and self._block_read[0] == key:
            return self._block_read[1]
        value = self._read_cold(key)
        entries = {} if value is None else block_entries(value)
        self._block_read = (key, entries)
        return entries

    def _buckets(self, cell: tuple[str, str]) -> Mapping[int, Sequence[Any]]:
        """Every bucket of ``cell``, hot and cold."""
        cold = self._cold.get(cell)
        if not cold:
            return self._cells[cell]
        return MixedBuckets(self._cells[cell], cold,
                            lambda minute: self._cold_bucket(*cell, minute))

    def _all_buckets(self) -> dict[tuple[str, str], Mapping[int, Sequence[Any]]]:
        return {cell: self._buckets(cell) for cell in self._cells}

    def _admitted(self, extras: Mapping[BucketKey, ExtrasDelta]) -> dict[BucketKey, ExtrasDelta]:
        """Each cell's extras with names past its caps under ``OTHER``, decided once per
        cell against its total (so every bucket and the total agree), plus the total's
        delta under the ``TOTAL`` key."""
        by_cell: dict[tuple[str, str], list[BucketKey]] = {}
        for key in extras:
            by_cell.setdefault((key[0], key[1]), []).append(key)
        out: dict[BucketKey, ExtrasDelta] = {}
        for (campaign, channel), keys in by_cell.items():
            deltas = [extras[key] for key in keys]
            known = extras_of(self._cells.get((campaign, channel), {}).get(TOTAL))
            if known is None:
                known = BucketExtras()
            products = name_map(_names_in_order(deltas, "products"), known.products,
                                 PRODUCT_CAP)
            content = name_map(_names_in_order(deltas, "content"), known.content, CONTENT_CAP)
            total = ExtrasDelta()
            for key, delta in zip(keys, deltas, strict=True):
                one = ExtrasDelta(delta.users, renamed(delta.products, products),
                                  renamed(delta.content, content), delta.ltv)
                out[key] = one
                # names and credits only: a minute's viewers reach the total sketch as
                # they are added to the minute (or, past every window, directly)
                total.merge(ExtrasDelta([], one.products, one.content, one.ltv))
            out[(campaign, channel, TOTAL)] = total
        return out

    def _reach_of(self, campaign: str, channel: str) -> WindowReach:
        reach = self._reach.get((campaign, channel))
        if reach is None:
            # With a store, an hour's minute sketches can be left in it (its buckets').
            read = None if self._read_cold is None else (
                lambda minute: self._minute_reach(campaign, channel, minute))
            reach = self._reach[(campaign, channel)] = WindowReach(read)
        return reach

    def _minute_reach(self, campaign: str, channel: str, minute: int) -> UserSketch | None:
        """A minute's viewers as its bucket holds them, hot or read back from the store
        (only the sketch decoded: a window's trailing edge in an hour gone by reads up to
        60 of them at the first scrape after a rebuild)."""
        bucket = self._cells.get((campaign, channel), {}).get(minute)
        if bucket is None:
            return _entry_viewers(self._cold_record(campaign, channel, minute) or ())
        extra = extras_of(bucket)
        return None if extra is None else extra.reach

    def _add(self, campaign: str, channel: str, minute: int, delta: Sequence[int],
             offset: int, changed: Changes, extra: ExtrasDelta | None = None) -> None:
        cell = self._cells.setdefault((campaign, channel), {})
        bucket = cell.get(minute)
        if bucket is None:
            cold = self._cold.get((campaign, channel))
            if cold is not None and minute != TOTAL and minute in cold:
                bucket = cell[minute] = self._cold_bucket(campaign, channel, minute)
                cold.discard(minute, bucket)
            else:
                bucket = cell[minute] = [*zero(), -1]
            if minute != TOTAL and (minute < self._hot_from or (
                    cold is not None and cold.is_blocked(minute // HOUR))):
                self._kept_from.pop((campaign, channel), None)  # a late one: scan again
                self._late_hours.add((campaign, channel, minute // HOUR))
        if bucket[WIDTH] >= offset:
            if bucket[WIDTH] == offset:  # a replay: send it again, the changelog may lack it
                changed[(campaign, channel, minute)] = bucket
            return
        add_into(bucket, delta)
        bucket[WIDTH] = offset
        changed[(campaign, channel, minute)] = bucket
        if minute != TOTAL:
            self._sums.changed((campaign, channel), minute, delta)
        if extra is not None:
            self._add_extra(campaign, channel, minute, bucket, extra)

    def _add_extra(self, campaign: str, channel: str, minute: int, bucket: list[Any],
                   extra: ExtrasDelta) -> None:
        if len(bucket) == WIDTH + 1:
            bucket.append(BucketExtras())
        sketch = None
        if minute == TOTAL:  # its viewers went in with the minutes' (``WindowReach.add``)
            reach = self._reach.get((campaign, channel))
            sketch = None if reach is None else reach.total_sketch()
        elif extra.users:
            sketch = self._reach_of(campaign, channel).add(minute, extra.users)
        bucket[WIDTH + 1].add(extra, sketch)
        self._with_extras.add((campaign, channel))
        if minute != TOTAL:
            self._named.changed((campaign, channel), minute, extra.products, extra.content)

    def load(self, key: RecordKey, counts: list[Any], now_minute: int | None = None) -> None:
        """Put back one record read from the table (recovery); with ``now_minute``, a
        bucket older than the hot minutes stays cold (only in the store)."""
        if is_hour_key(key):
            self._load_block(key[0], key[1], int(key[-1]), counts)
            return
        campaign, channel, minute = key  # type: ignore[misc]  # a bucket's key, then
        cell_key = (campaign, channel)
        cold = self._cold.get(cell_key)
        if cold is not None and minute != TOTAL and cold.is_blocked(minute // HOUR):
            self._left_over.setdefault(cell_key, []).append((campaign, channel, minute))
            return
        bucket = bucket_of(counts)
        extra = extras_of(bucket)
        if extra is not None:
            self._with_extras.add(cell_key)
            if extra.reach is not None:
                reach = self._reach_of(campaign, channel)
                if minute == TOTAL:
                    reach.load_total(extra.reach)
                else:
                    reach.load(minute, extra.reach)
        cell = self._cells.setdefault(cell_key, {})
        if (self._read_cold is not None and now_minute is not None and minute != TOTAL
                and minute < oldest_kept_minute(now_minute, self._hot)):
            if cold is None:
                cold = self._cold[cell_key] = ColdMinutes()
            cell.pop(minute, None)
            newest = cold.newest()
            if newest is not None and minute <= newest and minute in cold:  # loaded again
                cold.put(minute, bucket, lambda m: self._cold_bucket(campaign, channel, m))
            else:
                cold.add(minute, bucket)
        else:
            cell[minute] = bucket
            if cold is not None and minute in cold:  # loaded again, hot now
                cold.put(minute, None, lambda m: self._cold_bucket(campaign, channel, m))
        self._kept_from.pop(cell_key, None)
        if minute != TOTAL:
            self._sums.stale(cell_key)
            self._named.stale(cell_key)

    def _load_block(self, campaign: str, channel: str, hour: int, value: list[Any]) -> None:
        """Put back an hour block: its minutes cold, its roll-up as it is, and its viewers'
        union if it carries one (else each minute's sketch, read from its bucket). Minute
        records of the hour loaded before it are left from a crash: the block holds them
        as new or newer."""
        if self._read_cold is None:  # every bucket in memory: the block's, one by one
            for minute, bucket in block_entries(value).items():
                self.load((campaign, channel, minute), list(bucket))
            return
        cell = self._cells.setdefault((campaign, channel), {})
        cold = self._cold.get((campaign, channel))
        if cold is None:
            cold = self._cold[(campaign, channel)] = ColdMinutes()
        sums, names = block_roll_up(value)
        left_over = cold.load_block(hour, block_minutes(value), sums, names)
        left_over += [m for m in list(cell) if m != TOTAL and m // HOUR == hour]
        for minute in left_over:
            cell.pop(minute, None)
        if left_over:
            self._left_over.setdefault((campaign, channel), []).extend(
                (campaign, channel, m) for m in left_over)
        union = block_reach(value)
        index = block_index(value)  # with it, the buckets stay unread (their names and
        # credits are in the cell's total, which marks the cell with extras)
        if index is not None and union is not None:
            self._with_extras.add((campaign, channel))
            self._reach_of(campaign, channel).load_hour(hour, index[1],
                                                        UserSketch.from_wire(union))
        elif index is None or index[1]:  # viewers, but no union: each minute's sketch
            self._load_block_viewers(campaign, channel, hour, value, union)
        self._kept_from.pop((campaign, channel), None)
        self._sums.stale((campaign, channel))
        self._named.stale((campaign, channel))

    def _load_block_viewers(self, campaign: str, channel: str, hour: int,
                            value: list[Any], union: str | None) -> None:
        """Whether a block's buckets have extras, and their viewers, read from the buckets:
        a block written before blocks had an index, or one written again (after a late
        event or an expiry) without the viewers' union."""
        viewed: list[int] = []
        for minute, extra in block_extras(value):
            if isinstance(extra, dict | BucketExtras):
                self._with_extras.add((campaign, channel))
                sketch = bucket_viewers(extra)
                if sketch is None:
                    continue
                if union is not None:  # its minutes' sketches stay in the store
                    viewed.append(minute)
                else:
                    self._reach_of(campaign, channel).load(
                        minute, sketch if isinstance(sketch, UserSketch)
                        else UserSketch.from_wire(sketch))
        if union is not None and viewed:
            self._reach_of(campaign, channel).load_hour(hour, minute_bits(hour, viewed),
                                                        UserSketch.from_wire(union))

    def drop(self, campaign: str, channel: str) -> list[RecordKey]:
        """Forget a campaign-channel and all its records; returns their keys."""
        cell = self._cells.pop((campaign, channel), {})
        cold = self._cold.pop((campaign, channel), ColdMinutes())
        left_over: list[RecordKey] = [*self._left_over.pop((campaign, channel), [])]
        self._sums.forget((campaign, channel))
        self._named.forget((campaign, channel))
        self._kept_from.pop((campaign, channel), None)
        self._reach.pop((campaign, channel), None)
        self._with_extras.discard((campaign, channel))
        blocked = cold.blocked_hours()
        minutes = [m for m in cold if not cold.is_blocked(m // HOUR)]
        return [*[(campaign, channel, minute) for minute in [*cell, *minutes]],
                *[hour_key(campaign, channel, hour) for hour in blocked], *left_over]

    def cells(self) -> list[tuple[str, str]]:
        """Every (campaign, channel) held."""
        return list(self._cells)

    def newest_minute(self, campaign: str, channel: str) -> int | None:
        """The newest minute bucket of a campaign-channel (None: only its total)."""
        minutes = [m for m in self._cells.get((campaign, channel), {}) if m != TOTAL]
        cold = self._cold.get((campaign, channel))
        newest = None if cold is None else cold.newest()
        if newest is not None:
            minutes.append(newest)
        return max(minutes) if minutes else None

    def held_in_memory(self) -> int:
        """Buckets held as Python objects (hot minutes and totals); the cold ones are not."""
        return sum(len(cell) for cell in self._cells.values())

    def viewer_minutes_in_memory(self) -> int:
        """Minute sketches of viewers held as Python objects; the rest are in the store."""
        return sum(reach.minutes_in_memory for reach in self._reach.values())

    def clear(self) -> None:
        """Forget everything (before a rebuild from the table)."""
        self._cells.clear()
        self._cold.clear()
        self._sums.clear()
        self._named.clear()
        self._kept_from.clear()
        self._reach.clear()
        self._with_extras.clear()
        self._left_over.clear()
        self._block_read = None
        self._late_hours.clear()

    def rows(
        self, now_minute: int, windows: Sequence[Window], owned: Callable[[str], bool]
    ) -> Iterator[KpiRow]:
        """Window sums and total of every campaign-channel that ``owned`` accepts.

        The first call with a window length, and the first after a rebuild, sums the
        buckets afresh; later ones only subtract what left each window since the last.
        """
        labels = [w.label for w in windows]
        index = self._sums.at(self._all_buckets(), now_minute, [w.minutes for w in windows])
        for (campaign, channel), cell in self._cells.items():
            if not owned(campaign):
                continue
            sums = self._sums.of((campaign, channel))
            for label, i in zip(labels, index, strict=True):
                yield campaign, channel, label, zero() if sums is None else list(sums[i])
            yield campaign, channel, "total", list(cell.get(TOTAL, zero())[:WIDTH])

    def extras_rows(
        self, now_minute: int, windows: Sequence[Window], owned: Callable[[str], bool]
    ) -> Iterator[ExtrasRow]:
        """Viewers, products, content types and LTV of each window (and the total) of every
        campaign-channel that has any and ``owned`` accepts: ``live_extras_rows``, copied."""
        for campaign, channel, window, extras in self.live_extras_rows(now_minute, windows,
                                                                       owned):
            yield campaign, channel, window, WindowExtras(
                extras.reach, {k: list(v) for k, v in extras.products.items()},
                {k: list(v) for k, v in extras.content.items()}, dict(extras.ltv))

    def live_extras_rows(
        self, now_minute: int, windows: Sequence[Window], owned: Callable[[str], bool]
    ) -> Iterator[ExtrasRow]:
        """``extras_rows`` with the state's own maps of products, content types and LTV
        credits in them, not copies: to be read (copied) before the state changes again.
        A scrape copies them in C (metrics.kpi_gauges.SentRows); copying them here, a list
        per name, took ~0.55 s of the event loop at 10,000 campaign-channels with a
        product or two and a content type in every minute."""
        with_extras = {cell: self._buckets(cell) for cell in self._with_extras}
        index = self._named.at(with_extras, now_minute, [w.minutes for w in windows])
        for campaign, channel in self._with_extras:
            if not owned(campaign):
                continue
            cell = self._cells[(campaign, channel)]
            reach = self._reach.get((campaign, channel))
            named = self._named.of((campaign, channel))
            for window, i in zip(windows, index, strict=True):
                products, content = ({}, {}) if named is None else named[i]
                yield campaign, channel, window.label, WindowExtras(
                    None if reach is None else reach.estimate(now_minute, window.minutes),
                    products, content)
            held = extras_of(cell.get(TOTAL))
            if held is None:
                yield campaign, channel, "total", WindowExtras(
                    None if reach is None else reach.total_estimate())
            else:
                yield campaign, channel, "total", WindowExtras(
                    None if reach is None else reach.total_estimate(),
                    held.products, held.content, held.ltv)

    def campaign_sums(self, ranges: Mapping[str, MinuteRange], field: int) -> dict[str, int]:
        """One counter (``streams.windows.counts`` index) of each campaign over all its channels,
        in its range of minutes.

        Read-only, for budget pacing (spend since local midnight): only buckets still
        kept count, so a range reaching past the retention window is summed short.
        """
        sums = dict.fromkeys(ranges, 0)
        for campaign, channel in self._cells:
            if campaign not in ranges:
                continue
            cell = self._buckets((campaign, channel))
            span = ranges[campaign]
            if span is None:
                total = cell.get(TOTAL)
                sums[campaign] += 0 if total is None else total[field]
                continue
            first, end = span
            if isinstance(cell, MixedBuckets):  # cold minutes: roll-ups, few reads
                sums[campaign] += cell.sum_between(first, end)[field]
            elif end - first < len(cell):  # early in a day: look up its minutes only
                found = map(cell.get, range(first, end))
                sums[campaign] += sum([c[field] for c in found if c is not None])
            else:  # TOTAL (-1) is never inside a range
                sums[campaign] += sum([c[field] for m, c in cell.items() if first <= m < end])
        return sums
