"""Minute buckets by event time and trailing-window sums over them.

A window of N minutes at minute ``now`` holds the buckets ``now - N + 1`` and later: the
current minute and the N - 1 before it. Buckets ahead of now (a tracker's clock a little
fast; validation allows five minutes) count in every window.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Final

from streams.config.durations import MINUTE_MS
from streams.windows.counts import WIDTH, add_into

__all__ = ["TOTAL", "minute_of", "oldest_kept_minute", "window_sums"]

TOTAL: Final = -1
"""The bucket key that holds everything since the campaign was first seen."""


def minute_of(ts_ms: int) -> int:
    """The minute bucket an event time falls in (minutes since the epoch)."""
    return ts_ms // MINUTE_MS


def oldest_kept_minute(now_minute: int, retention_minutes: int) -> int:
    """Buckets before this minute are in no window any more and can be dropped."""
    return now_minute - retention_minutes + 1


def window_sums(
    buckets: Mapping[int, Sequence[int]], now_minute: int, window_minutes: Iterable[int]
) -> list[list[int]]:
    """Sum of the buckets inside each trailing window, in the order of ``window_minutes``."""
    starts = [now_minute - minutes + 1 for minutes in window_minutes]
    sums = [[0] * WIDTH for _ in starts]
    for minute, counts in buckets.items():
        if minute == TOTAL:
            continue
        for start, acc in zip(starts, sums, strict=True):
            if minute >= start:
                add_into(acc, counts)
    return sums
