"""The aggregating stage: a campaign's forwarded events folded into bucket deltas."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from streams.counts import add_into
from streams.ingest import Forward
from streams.state import BucketKey
from streams.windows import minute_of

__all__ = ["Folded", "fold"]


@dataclass(slots=True)
class Folded:
    """Summed counters per bucket, and what to report about the events."""

    deltas: dict[BucketKey, list[int]] = field(default_factory=dict)
    accepted: Counter[str] = field(default_factory=Counter)
    newest_ts_ms: dict[str, int] = field(default_factory=dict)


def fold(campaign: str, forwards: Iterable[Forward]) -> Folded:
    """Sum the counters of one campaign's events per (channel, minute)."""
    folded = Folded()
    deltas, newest = folded.deltas, folded.newest_ts_ms
    for event_type, _event_id, ts_ms, channel, counts in forwards:
        key = (campaign, channel, minute_of(ts_ms))
        acc = deltas.get(key)
        if acc is None:
            deltas[key] = list(counts)
        else:
            add_into(acc, counts)
        folded.accepted[event_type] += 1
        if ts_ms > newest.get(event_type, -1):
            newest[event_type] = ts_ms
    return folded
