"""The aggregating stage: a campaign's forwarded events, deduplicated, folded into deltas."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from streams.counts import WIDTH
from streams.durations import MINUTE_MS
from streams.forwards import KIND_TYPES, RETRACTION, Forwards, add_event
from streams.state import BucketKey

__all__ = ["Folded", "fold"]


@dataclass(slots=True)
class Folded:
    """Summed counters per bucket, and what to report about the events."""

    deltas: dict[BucketKey, list[int]] = field(default_factory=dict)
    accepted: Counter[str] = field(default_factory=Counter)
    duplicates: Counter[str] = field(default_factory=Counter)
    newest_ts_ms: dict[str, int] = field(default_factory=dict)


def fold(campaign: str, forwards: Forwards, first_time: Callable[[str], bool]) -> Folded:
    """Sum one campaign's events per (channel, minute), skipping ids seen before.

    ``first_time(f"{type}/{campaign}/{event_id}")`` says whether an event is new; it is
    asked once per event, in order, so a repeat inside one batch is caught too. An id
    names an event within its campaign (campaign ids have no "/"), so whether two
    campaigns' events share a worker never changes what counts.
    """
    folded = Folded()
    deltas, newest = folded.deltas, folded.newest_ts_ms
    accepted: dict[str, int] = {}
    for kind, event_id, ts_ms, channel, amount in forwards:
        event_type = KIND_TYPES[kind]
        if not first_time(f"{event_type}/{campaign}/{event_id}"):
            if event_type != RETRACTION:
                folded.duplicates[event_type] += 1
            continue
        key = (campaign, channel, ts_ms // MINUTE_MS)
        acc = deltas.get(key)
        if acc is None:
            acc = deltas[key] = [0] * WIDTH
        add_event(acc, kind, amount)
        if event_type == RETRACTION:
            continue
        accepted[event_type] = accepted.get(event_type, 0) + 1
        if ts_ms > newest.get(event_type, -1):
            newest[event_type] = ts_ms
    folded.accepted.update(accepted)
    return folded
