"""Trailing-window sums of products and content types, kept up to date like the counters'.

The named twin of ``streams.windows.sums.RunningSums``: for each campaign-channel with
extras and each window length asked for so far, the products and content types summed
over its minute buckets inside the window ending at the minute last asked for, always
equal to ``summed_named`` of those buckets (a name whose counters all come back to zero
leaves, as it would not be there when summed afresh: every name a bucket holds has a
count above zero). Without it a scrape re-summed every bucket's maps: 0.9 s for 100
campaign-channels with 24 h of minute buckets.

Every change to a bucket's names is passed on with ``changed``; buckets put back one by
one (recovery) only mark their cell ``stale``, to be summed afresh at the next ``at``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from streams.windows.cold import MixedBuckets, NamedSums, extras_of
from streams.windows.extras import shift_named, summed_named
from streams.windows.minutes import TOTAL
from streams.windows.sums import Cell

__all__ = ["NamedSums", "RunningNamed"]


Buckets = Mapping[int, Sequence[Any]]


def _fresh(buckets: Buckets, now_minute: int, minutes: int) -> NamedSums:
    start = now_minute - minutes + 1
    if isinstance(buckets, MixedBuckets):  # cold minutes: roll-ups, few reads
        return buckets.names_from(start)
    inside = [e for m in buckets
              if m >= start and m != TOTAL and (e := extras_of(buckets[m])) is not None]
    return (summed_named(e.products for e in inside),
            summed_named(e.content for e in inside))


class RunningNamed:
    """Window sums of products and content types per cell, for every length asked for."""

    def __init__(self) -> None:
        self._now = 0
        self._lengths: list[int] = []
        self._sums: dict[Cell, list[NamedSums]] = {}
        self._stale: set[Cell] = set()

    def changed(self, cell: Cell, minute: int, products: Mapping[str, Sequence[int]],
                content: Mapping[str, Sequence[int]], sign: int = 1) -> None:
        """The bucket of ``cell`` at ``minute`` (not TOTAL) gained (``sign`` -1: lost)
        these products and content types."""
        if not self._lengths or cell in self._stale or not (products or content):
            return
        sums = self._sums.get(cell)
        if sums is None:
            sums = self._sums[cell] = [({}, {}) for _ in self._lengths]
        past = self._now - minute
        for minutes, (acc_products, acc_content) in zip(self._lengths, sums, strict=True):
            if past < minutes:
                if products:
                    shift_named(acc_products, products, sign)
                if content:
                    shift_named(acc_content, content, sign)

    def stale(self, cell: Cell) -> None:
        """The buckets of ``cell`` changed in a way not passed on: sum them at the next ``at``."""
        if self._lengths:
            self._stale.add(cell)

    def forget(self, cell: Cell) -> None:
        self._sums.pop(cell, None)
        self._stale.discard(cell)

    def clear(self) -> None:
        self._sums.clear()
        self._stale.clear()

    def at(self, cells: Mapping[Cell, Buckets], now_minute: int,
           window_minutes: Sequence[int]) -> list[int]:
        """Move to ``now_minute`` and start tracking new lengths; the index of each length.

        ``cells`` must hold (at least) every cell with extras, with exactly the buckets
        every earlier ``changed`` described.
        """
        if not window_minutes:
            return []
        stale = self._stale
        if self._lengths and now_minute != self._now:
            for cell, sums in self._sums.items():
                if cell not in stale:
                    self._move(cells[cell], sums, now_minute)
        self._now = now_minute
        new = [m for m in dict.fromkeys(window_minutes) if m not in self._lengths]
        if new:
            for cell, buckets in cells.items():
                if cell not in stale:
                    self._sums.setdefault(cell, [({}, {}) for _ in self._lengths]).extend(
                        _fresh(buckets, now_minute, m) for m in new)
            self._lengths.extend(new)
        for cell in stale:
            if cell in cells:
                self._sums[cell] = [_fresh(cells[cell], now_minute, m) for m in self._lengths]
        stale.clear()
        return [self._lengths.index(m) for m in window_minutes]

    def of(self, cell: Cell) -> list[NamedSums] | None:
        """The sums of ``cell`` in the order of the lengths (None: nothing named)."""
        return self._sums.get(cell)

    def _move(self, buckets: Buckets, sums: list[NamedSums], new_now: int) -> None:
        """Shift each window from ending at the last minute to ending at ``new_now``."""
        step = new_now - self._now
        for minutes, (acc_products, acc_content) in zip(self._lengths, sums, strict=True):
            old_start = self._now - minutes + 1
            if step > 0:  # [old_start, old_start + step) leave the window
                low, high, sign = old_start, old_start + step, -1
            else:  # [old_start + step, old_start) come back into it
                low, high, sign = old_start + step, old_start, 1
            if high - low <= len(buckets):
                moving = [buckets.get(m) for m in range(low, high) if m != TOTAL]
            else:
                moving = [b for m, b in buckets.items() if low <= m < high and m != TOTAL]
            for bucket in moving:
                extras = extras_of(bucket)
                if extras is not None:
                    shift_named(acc_products, extras.products, sign)
                    shift_named(acc_content, extras.content, sign)
