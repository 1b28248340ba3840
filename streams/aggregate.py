"""The aggregating stage: a campaign's forwarded events, deduplicated, folded into deltas."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from streams.counts import RETRACTION, Forward, add_into
from streams.state import BucketKey
from streams.windows import minute_of

__all__ = ["Folded", "fold"]


@dataclass(slots=True)
class Folded:
    """Summed counters per bucket, and what to report about the events."""

    deltas: dict[BucketKey, list[int]] = field(default_factory=dict)
    accepted: Counter[str] = field(default_factory=Counter)
    duplicates: Counter[str] = field(default_factory=Counter)
    newest_ts_ms: dict[str, int] = field(default_factory=dict)


def fold(campaign: str, forwards: Iterable[Forward],
         first_time: Callable[[str], bool]) -> Folded:
    """Sum one campaign's events per (channel, minute), skipping ids seen before.

    ``first_time(f"{type}/{campaign}/{event_id}")`` says whether an event is new; it is
    asked once per event, in order, so a repeat inside one batch is caught too. An id
    names an event within its campaign (campaign ids have no "/"), so whether two
    campaigns' events share a worker never changes what counts.
    """
    folded = Folded()
    deltas, newest = folded.deltas, folded.newest_ts_ms
    for event_type, event_id, ts_ms, channel, counts in forwards:
        if not first_time(f"{event_type}/{campaign}/{event_id}"):
            if event_type != RETRACTION:
                folded.duplicates[event_type] += 1
            continue
        key = (campaign, channel, minute_of(ts_ms))
        acc = deltas.get(key)
        if acc is None:
            deltas[key] = list(counts)
        else:
            add_into(acc, counts)
        if event_type == RETRACTION:
            continue
        folded.accepted[event_type] += 1
        if ts_ms > newest.get(event_type, -1):
            newest[event_type] = ts_ms
    return folded
