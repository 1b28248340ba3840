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
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence

from streams.config.settings import Window
from streams.flow.wire import exact_ints
from streams.windows.counts import WIDTH, add_into, zero
from streams.windows.minutes import TOTAL, oldest_kept_minute
from streams.windows.sums import RunningSums

__all__ = ["BucketKey", "KpiRow", "KpiState", "MinuteRange"]

BucketKey = tuple[str, str, int]
"""(campaign, channel, minute); minute is ``TOTAL`` for the running total."""

KpiRow = tuple[str, str, str, list[int]]
"""(campaign, channel, window label, summed counters)."""

MinuteRange = tuple[int, int] | None
"""[first, end) minutes for ``campaign_sums``; None: the running total."""


class KpiState:
    """Buckets of the campaigns this worker owns."""

    def __init__(self, retention_minutes: int) -> None:
        self._retention = retention_minutes
        self._cells: dict[tuple[str, str], dict[int, list[int]]] = {}
        self._sums = RunningSums()
        self._kept_from: dict[tuple[str, str], int] = {}
        """Cell -> the ``oldest`` of its last expiry scan: no older bucket is left in it, and
        ``apply`` adds none, so the cell needs no scan until the minute moves on."""

    def apply(
        self, deltas: Mapping[BucketKey, Sequence[int]], now_minute: int, offset: int
    ) -> dict[BucketKey, list[int] | None]:
        """Add one source message's counters; returns changed buckets (None: delete it).

        Each delta also goes into the total. A delta for a minute already past every
        window only goes into the total. A bucket that already holds ``offset`` (or a
        later one) is left alone: the message is a replay and that bucket has it.
        """
        oldest = oldest_kept_minute(now_minute, self._retention)
        changed: dict[BucketKey, list[int] | None] = {}
        totals: dict[tuple[str, str], list[int]] = {}
        for (campaign, channel, minute), delta in deltas.items():
            total_delta = totals.get((campaign, channel))
            if total_delta is None:
                totals[(campaign, channel)] = list(delta)
            else:
                add_into(total_delta, delta)
            if minute >= oldest:
                self._add(campaign, channel, minute, delta, offset, changed)
        for (campaign, channel), delta in totals.items():
            self._add(campaign, channel, TOTAL, delta, offset, changed)
        for campaign, channel, _ in list(changed):
            if self._kept_from.get((campaign, channel), oldest - 1) >= oldest:
                continue
            self._kept_from[(campaign, channel)] = oldest
            cell = self._cells[(campaign, channel)]
            for minute in [m for m in cell if m != TOTAL and m < oldest]:
                self._sums.changed((campaign, channel), minute, cell.pop(minute), -1)
                changed[(campaign, channel, minute)] = None
        return changed

    def _add(self, campaign: str, channel: str, minute: int, delta: Sequence[int],
             offset: int, changed: dict[BucketKey, list[int] | None]) -> None:
        cell = self._cells.setdefault((campaign, channel), {})
        bucket = cell.get(minute)
        if bucket is None:
            bucket = cell[minute] = [*zero(), -1]
        if bucket[WIDTH] >= offset:
            return
        add_into(bucket, delta)
        bucket[WIDTH] = offset
        changed[(campaign, channel, minute)] = bucket
        if minute != TOTAL:
            self._sums.changed((campaign, channel), minute, delta)

    def load(self, key: BucketKey, counts: list[int | str]) -> None:
        """Put back one bucket read from the table (recovery)."""
        campaign, channel, minute = key
        self._cells.setdefault((campaign, channel), {})[minute] = exact_ints(counts)
        self._kept_from.pop((campaign, channel), None)
        if minute != TOTAL:
            self._sums.stale((campaign, channel))

    def drop(self, campaign: str, channel: str) -> list[BucketKey]:
        """Forget a campaign-channel and all its buckets; returns their keys."""
        cell = self._cells.pop((campaign, channel), {})
        self._sums.forget((campaign, channel))
        self._kept_from.pop((campaign, channel), None)
        return [(campaign, channel, minute) for minute in cell]

    def cells(self) -> list[tuple[str, str]]:
        """Every (campaign, channel) held."""
        return list(self._cells)

    def newest_minute(self, campaign: str, channel: str) -> int | None:
        """The newest minute bucket of a campaign-channel (None: only its total)."""
        minutes = [m for m in self._cells.get((campaign, channel), {}) if m != TOTAL]
        return max(minutes) if minutes else None

    def clear(self) -> None:
        """Forget everything (before a rebuild from the table)."""
        self._cells.clear()
        self._sums.clear()
        self._kept_from.clear()

    def rows(
        self, now_minute: int, windows: Sequence[Window], owned: Callable[[str], bool]
    ) -> Iterator[KpiRow]:
        """Window sums and total of every campaign-channel that ``owned`` accepts.

        The first call with a window length, and the first after a rebuild, sums the
        buckets afresh; later ones only subtract what left each window since the last.
        """
        labels = [w.label for w in windows]
        index = self._sums.at(self._cells, now_minute, [w.minutes for w in windows])
        for (campaign, channel), cell in self._cells.items():
            if not owned(campaign):
                continue
            sums = self._sums.of((campaign, channel))
            for label, i in zip(labels, index, strict=True):
                yield campaign, channel, label, zero() if sums is None else list(sums[i])
            yield campaign, channel, "total", list(cell.get(TOTAL, zero())[:WIDTH])

    def campaign_sums(self, ranges: Mapping[str, MinuteRange], field: int) -> dict[str, int]:
        """One counter (``streams.windows.counts`` index) of each campaign over all its channels,
        in its range of minutes.

        Read-only, for budget pacing (spend since local midnight): only buckets still
        kept count, so a range reaching past the retention window is summed short.
        """
        sums = dict.fromkeys(ranges, 0)
        for (campaign, _), cell in self._cells.items():
            if campaign not in ranges:
                continue
            span = ranges[campaign]
            if span is None:
                total = cell.get(TOTAL)
                sums[campaign] += 0 if total is None else total[field]
                continue
            first, end = span
            if end - first < len(cell):  # early in a day: look up its minutes only
                found = map(cell.get, range(first, end))
                sums[campaign] += sum([c[field] for c in found if c is not None])
            else:  # TOTAL (-1) is never inside a range
                sums[campaign] += sum([c[field] for m, c in cell.items() if first <= m < end])
        return sums
