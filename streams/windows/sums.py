"""Trailing-window sums kept up to date as buckets change, so a scrape does not re-sum them.

For each campaign-channel and each window length asked for so far, the sum of its minute
buckets inside the window ending at the minute last asked for: always equal to
``window_sums`` of the same buckets at that minute. Every change to a bucket is passed on
with ``changed``. Moving to another minute subtracts the buckets that left each window
(the state keeps them until retention, so they are there to subtract) or adds the ones
that are back in it, if the clock went back.

A cell whose buckets are put back one by one (recovery) is only marked ``stale`` and
summed afresh at the next scrape (column sums, in C): keeping its sums running bucket by
bucket would make each load ~5 times as slow, on the event loop, while the worker rebuilds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from streams.windows.cold import MixedBuckets, column_sums
from streams.windows.counts import add_into, take_from, zero
from streams.windows.minutes import TOTAL

__all__ = ["Cell", "RunningSums", "fresh_sums"]

Cell = tuple[str, str]
"""(campaign, channel)."""

Buckets = Mapping[int, Sequence[int]]


def fresh_sums(buckets: Buckets, now_minute: int, window_minutes: Sequence[int]) -> list[list[int]]:
    """``window_sums`` with the adding done in C (column sums): for a first build."""
    sums = []
    for minutes in window_minutes:
        start = now_minute - minutes + 1
        if isinstance(buckets, MixedBuckets):  # cold minutes: roll-ups, few reads
            sums.append(buckets.sum_from(start))
            continue
        # minutes first: a cold bucket (streams.windows.cold) is read only when inside
        inside = [buckets[m] for m in buckets if m >= start and m != TOTAL]
        sums.append(column_sums(inside))
    return sums


class RunningSums:
    """Window sums per cell, for every window length asked for since creation."""

    def __init__(self) -> None:
        self._now = 0
        self._lengths: list[int] = []
        self._sums: dict[Cell, list[list[int]]] = {}  # per cell, one sum per length
        self._stale: set[Cell] = set()  # to sum afresh from their buckets

    def changed(self, cell: Cell, minute: int, delta: Sequence[int], sign: int = 1) -> None:
        """The bucket of ``cell`` at ``minute`` (not TOTAL) went up by ``sign * delta``."""
        if not self._lengths or cell in self._stale:
            return
        sums = self._sums.get(cell)
        if sums is None:
            sums = self._sums[cell] = [zero() for _ in self._lengths]
        past = self._now - minute  # in an N-minute window iff < N (negative: ahead of now)
        for minutes, acc in zip(self._lengths, sums, strict=True):
            if past < minutes:
                if sign > 0:
                    add_into(acc, delta)
                else:
                    take_from(acc, delta)

    def stale(self, cell: Cell) -> None:
        """The buckets of ``cell`` changed in a way not passed on: sum them at the next ``at``."""
        if self._lengths:
            self._stale.add(cell)

    def forget(self, cell: Cell) -> None:
        """``cell`` is gone with all its buckets."""
        self._sums.pop(cell, None)
        self._stale.discard(cell)

    def clear(self) -> None:
        """Every cell is gone (the lengths and the minute are kept)."""
        self._sums.clear()
        self._stale.clear()

    def at(
        self, cells: Mapping[Cell, Buckets], now_minute: int, window_minutes: Sequence[int]
    ) -> list[int]:
        """Move to ``now_minute`` and start tracking new lengths; the index of each length.

        ``cells`` must hold exactly the buckets every earlier ``changed`` described.
        """
        if not window_minutes:
            return []  # nothing to sum (a rows() call for the totals): stay where we are
        stale = self._stale
        if self._lengths and now_minute != self._now:
            for cell, sums in self._sums.items():
                if cell not in stale:
                    _move(cells[cell], sums, self._lengths, self._now, now_minute)
        self._now = now_minute
        new = [m for m in dict.fromkeys(window_minutes) if m not in self._lengths]
        if new:
            for cell, buckets in cells.items():
                if cell not in stale:
                    self._sums.setdefault(cell, [zero() for _ in self._lengths]).extend(
                        fresh_sums(buckets, now_minute, new))
            self._lengths.extend(new)
        for cell in stale:
            self._sums[cell] = fresh_sums(cells[cell], now_minute, self._lengths)
        stale.clear()
        return [self._lengths.index(m) for m in window_minutes]

    def of(self, cell: Cell) -> list[list[int]] | None:
        """The sums of ``cell`` in the order of the lengths (None: all zero)."""
        return self._sums.get(cell)


def _move(buckets: Buckets, sums: list[list[int]], lengths: Sequence[int],
          old_now: int, new_now: int) -> None:
    """Shift each window from ending at ``old_now`` to ending at ``new_now``."""
    step = new_now - old_now
    for minutes, acc in zip(lengths, sums, strict=True):
        old_start = old_now - minutes + 1
        if step > 0:  # [old_start, old_start + step) leave the window
            low, high, leave = old_start, old_start + step, True
        else:  # [old_start + step, old_start) come back into it
            low, high, leave = old_start + step, old_start, False
        if high - low <= len(buckets):
            found = [buckets.get(m) for m in range(low, high) if m != TOTAL]
            moving = [b for b in found if b is not None]
        else:
            moving = [b for m, b in buckets.items() if low <= m < high and m != TOTAL]
        for bucket in moving:
            if leave:
                take_from(acc, bucket)
            else:
                add_into(acc, bucket)
