"""The counting stage: a campaign's events deduplicated by id and folded into its KPI state.

Each stateful stage keeps its bookkeeping per partition of its source topic and writes every
change to its table while the agent handles a message of that partition, so the change lands
in the same changelog partition and a new owner of the partition recovers it.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field

from streams.config.durations import MINUTE_MS
from streams.flow.campaigns import CampaignChannels
from streams.flow.failures import Failure, internal_reason
from streams.flow.forwards import KIND_TYPES, Forwards
from streams.flow.wire import dumps
from streams.stages.aggregate import Folded, fold
from streams.stages.tables import Table
from streams.windows.counts import add_into
from streams.windows.minutes import minute_of
from streams.windows.state import KpiState

__all__ = ['CountStage']



IDS = "#ids"
"""First element of an id record's key; campaign ids cannot start with "#"."""


@dataclass
class _MessageIds:
    """Ids remembered in one partition, grouped by the source message that recorded them."""

    recorded_at: dict[str, int] = field(default_factory=dict)
    """id key -> offset of the message that recorded it."""
    by_offset: dict[int, list[str]] = field(default_factory=dict)
    expiry: list[tuple[int, int]] = field(default_factory=list)
    """Heap of (expires_ms, offset)."""

    def add(self, offset: int, expires_ms: int, ids: list[str]) -> None:
        self.by_offset.setdefault(offset, []).extend(ids)
        self.recorded_at.update(dict.fromkeys(ids, offset))
        heapq.heappush(self.expiry, (expires_ms, offset))

    def expire(self, now_ms: int) -> list[int]:
        """Forget the ids of messages whose time is up; returns those messages' offsets."""
        gone = []
        while self.expiry and self.expiry[0][0] <= now_ms:
            _, offset = heapq.heappop(self.expiry)
            for key in self.by_offset.pop(offset, ()):
                if self.recorded_at.get(key) == offset:
                    del self.recorded_at[key]
            gone.append(offset)
        return gone


def _first_time(keys: list[str], recorded_at: dict[str, int],
                offset: int) -> tuple[list[bool], bool]:
    """Whether each id is new here, and whether all are (checked in C, the common case).

    An id recorded by the message at ``offset`` itself is a replay after a crash: new. A
    repeat inside the message, or an id another message recorded, is a duplicate.
    """
    if len(set(keys)) == len(keys) and recorded_at.keys().isdisjoint(keys):
        return [True] * len(keys), True
    here: set[str] = set()
    fresh = []
    for key in keys:
        new = _is_new(key, here, recorded_at, offset)
        if new:
            here.add(key)
        fresh.append(new)
    return fresh, False


def _is_new(key: str, here: set[str], recorded_at: dict[str, int], offset: int) -> bool:
    """Not yet seen in this message (``here``), and recorded by no other message."""
    recorded = recorded_at.get(key)
    return key not in here and (recorded is None or recorded == offset)


def _fold_each(campaign: str, forwards: Forwards, recorded_at: dict[str, int],
               offset: int) -> tuple[Folded, list[str]]:
    """``fold``, an event at a time: the sum of those that fold (and their new ids), with
    those that raise in ``failures``."""
    merged = Folded()
    new_ids: list[str] = []
    failures = merged.failures
    here: set[str] = set()
    for index, event in enumerate(forwards):
        kind, event_id, ts_ms, channel, amount = event
        asked: list[tuple[str, bool]] = []

        def first_time(keys: list[str], asked: list[tuple[str, bool]] = asked) -> list[bool]:
            (key,) = keys
            new = _is_new(key, here, recorded_at, offset)
            asked.append((key, new))
            return [new]

        try:
            extra = forwards.extra_of(index)
            one = fold(campaign, Forwards([kind], [event_id], [ts_ms], [channel], [amount],
                                          None if extra is None else [extra]), first_time)
        except Exception as exc:
            failures.append(Failure(KIND_TYPES.get(kind, "unknown"),
                                    internal_reason("the counting stage", exc),
                                    _event_text(campaign, event), index))
            continue
        for key, new in asked:
            if new:
                here.add(key)
                if key not in recorded_at:
                    new_ids.append(key)
        _merge(merged, one)
    return merged, new_ids


def _merge(into: Folded, one: Folded) -> None:
    for key, delta in one.deltas.items():
        acc = into.deltas.get(key)
        if acc is None:
            into.deltas[key] = list(delta)
        else:
            add_into(acc, delta)
    for key, more in one.extras.items():
        held = into.extras.get(key)
        if held is None:
            into.extras[key] = more
        else:
            held.merge(more)
    into.accepted.update(one.accepted)
    into.duplicates.update(one.duplicates)
    for event_type, ts in one.newest_ts_ms.items():
        if ts > into.newest_ts_ms.get(event_type, -1):
            into.newest_ts_ms[event_type] = ts


def _event_text(campaign: str, event: tuple[str, str, int, str, int]) -> str:
    kind, event_id, ts_ms, channel, amount = event
    return dumps({"campaign": campaign, "kind": kind, "id": event_id, "ts": ts_ms,
                  "channel": channel, "amount": amount}).decode("utf-8")


@dataclass
class CountStage:
    """Counted events of the campaigns of one partition: dedup, then buckets.

    The ids first seen in a source message are written as one record, keyed
    ``(IDS, partition, offset)``, in the same table as the buckets, so they share a
    changelog partition and land in the order written: ids first, then buckets. An id
    recorded by the very message being handled is a replay after a crash, not a
    duplicate; an id recorded by another message is a second delivery.
    """

    state: KpiState
    table: Table
    dedup_window_ms: int
    campaigns: CampaignChannels | None = None
    """Live campaign-channels, for the cap and for retiring silent ones (None: neither)."""
    partition_of: Callable[[str], int] | None = None
    """A campaign's partition (for rebuilding ``campaigns``)."""
    ids: dict[int, _MessageIds] = field(default_factory=dict)

    def handle(self, campaign: str, forwards: Forwards, partition: int,
               offset: int, now_ms: int) -> Folded:
        """Count one kpi-events message; an event that fails to fold is left out, in
        ``Folded.failures``.

        The message is folded whole (the fast way); should that raise, it is folded again
        an event at a time, so only the events that raise are left out.
        """
        ids = self.ids.setdefault(partition, _MessageIds())
        for gone in ids.expire(now_ms):
            self.table.pop((IDS, partition, gone), None)
        refused: list[Failure] = []
        if self.campaigns is not None:
            self._retire(partition, now_ms)
            forwards, refused = self._admit(campaign, forwards, partition)
        recorded_at = ids.recorded_at
        seen: list[tuple[list[str], list[bool], bool]] = []

        def first_time(keys: list[str]) -> list[bool]:
            fresh, all_new = _first_time(keys, recorded_at, offset)
            seen.append((keys, fresh, all_new))
            return fresh

        try:
            folded = fold(campaign, forwards, first_time)
            keys, fresh, all_new = seen[0]
            new_ids = keys if all_new else [
                key for key, new in zip(keys, fresh, strict=True)
                if new and key not in recorded_at]
        except Exception:
            folded, new_ids = _fold_each(campaign, forwards, recorded_at, offset)
        if new_ids:
            expires = now_ms + self.dedup_window_ms
            ids.add(offset, expires, new_ids)
            self.table[(IDS, partition, offset)] = [expires, ids.by_offset[offset]]
        changed = self.state.apply(folded.deltas, minute_of(now_ms), offset, folded.extras)
        for key, counts in changed.items():
            if counts is None:
                self.table.pop(key, None)
            else:
                self.table[key] = counts
        if self.campaigns is not None:
            self.campaigns.seen(partition, {(c, ch) for c, ch, _ in folded.deltas}, now_ms)
        folded.failures += refused
        return folded

    def _retire(self, partition: int, now_ms: int) -> None:
        """Campaign-channels silent for the retention leave the state, with tombstones."""
        assert self.campaigns is not None
        for campaign, channel in self.campaigns.retire(partition, now_ms):
            for key in self.state.drop(campaign, channel):
                self.table.pop(key, None)

    def _admit(self, campaign: str, forwards: Forwards,
               partition: int) -> tuple[Forwards, list[Failure]]:
        """The events that may count, and refusals for those that would start a
        campaign-channel past the cap."""
        assert self.campaigns is not None
        channels = list(dict.fromkeys(forwards.channels))
        admitted = self.campaigns.admit(partition, campaign, channels)
        if len(admitted) == len(channels):
            return forwards, []
        reason = self.campaigns.refusal
        kept = Forwards()
        refused = []
        for index, event in enumerate(forwards):
            if event[3] in admitted:
                kept.add(*event, forwards.extra_of(index))
            else:
                refused.append(Failure(KIND_TYPES.get(event[0], "unknown"), reason,
                                       _event_text(campaign, event), index))
        return kept, refused

    def rebuild(self, owned: set[int], owns_campaign: Callable[[str], bool],
                now_ms: int = 0) -> None:
        """Reload from the recovered table, dropping what other workers own now."""
        self.state.clear()
        self.ids = {}
        if self.campaigns is not None:
            self.campaigns.clear()
        data = getattr(self.table, "data", self.table)
        for key in list(data):
            value = data[key]
            if key[0] == IDS:
                _, partition, offset = key
                if partition in owned:
                    expires, keys = value
                    self.ids.setdefault(partition, _MessageIds()).add(offset, expires, keys)
                    continue
            elif owns_campaign(key[0]):
                self.state.load(tuple(key), value)
                continue
            del data[key]
        if self.campaigns is not None and self.partition_of is not None:
            for campaign, channel in self.state.cells():
                newest = self.state.newest_minute(campaign, channel)
                seen = now_ms if newest is None else min(now_ms, newest * MINUTE_MS)
                self.campaigns.load(self.partition_of(campaign), (campaign, channel), seen)


