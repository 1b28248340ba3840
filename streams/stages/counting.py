"""The counting stage: a campaign's events deduplicated by id and folded into its KPI state.

Each stateful stage keeps its bookkeeping per partition of its source topic and writes every
change to its table while the agent handles a message of that partition, so the change lands
in the same changelog partition and a new owner of the partition recovers it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from streams.config.durations import MINUTE_MS
from streams.flow.campaigns import CampaignChannels
from streams.flow.failures import Failure, internal_reason
from streams.flow.forwards import KIND_TYPES, Forwards
from streams.flow.wire import dumps
from streams.stages.aggregate import Folded, fold
from streams.stages.event_ids import IdStore, MemoryIdStore
from streams.stages.tables import Table
from streams.windows.counts import add_into
from streams.windows.minutes import minute_of
from streams.windows.state import KpiState

__all__ = ["CountStage"]


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


def _fold_each(campaign: str, forwards: Forwards, recorded_at: dict[str, int], offset: int,
               lookup: Callable[[list[str]], dict[str, int]]) -> tuple[Folded, list[str]]:
    """``fold``, an event at a time: the sum of those that fold (and their new ids), with
    those that raise in ``failures``. ``lookup`` finds the offsets that recorded ids (into
    ``recorded_at``)."""
    merged = Folded()
    new_ids: list[str] = []
    failures = merged.failures
    here: set[str] = set()
    for index, event in enumerate(forwards):
        kind, event_id, ts_ms, channel, amount = event
        asked: list[tuple[str, bool]] = []

        def first_time(keys: list[str], asked: list[tuple[str, bool]] = asked) -> list[bool]:
            (key,) = keys
            recorded_at.update(lookup(keys))
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


def _reported_before(folded: Folded, replayed: list[str]) -> None:
    """Take out of ``folded``'s counters what the first reading of this message counted.

    A message is read again after a rebalance seeks back to an offset not committed yet,
    or after a crash; its ids recorded by this very offset fold again (the buckets tell
    what they hold already), but their events were accepted once, and its duplicates
    were counted once. Keys are ``type/campaign/id`` (streams.stages.aggregate.fold)."""
    folded.duplicates.clear()
    accepted = folded.accepted
    for key in replayed:
        event_type = key.partition("/")[0]
        if accepted.get(event_type, 0) > 0:
            accepted[event_type] -= 1
    for event_type in [t for t, n in accepted.items() if n <= 0]:
        del accepted[event_type]


def _event_text(campaign: str, event: tuple[str, str, int, str, int]) -> str:
    kind, event_id, ts_ms, channel, amount = event
    return dumps({"campaign": campaign, "kind": kind, "id": event_id, "ts": ts_ms,
                  "channel": channel, "amount": amount}).decode("utf-8")


@dataclass
class CountStage:
    """Counted events of the campaigns of one partition: dedup, then buckets.

    The ids first seen in a source message are one record of ``id_table``
    (streams.stages.event_ids), keyed ``(partition, offset)``; the buckets are records of
    ``table``. Both are written while the message is handled, so both land in the
    changelog partition of the message's partition. An id recorded by the very message
    being handled is a replay after a crash, not a duplicate; an id recorded by another
    message is a second delivery. Each bucket carries the offset of the last message
    applied to it (streams.windows.state), so whichever records landed before a crash, a
    replay applies exactly the rest.
    """

    state: KpiState
    table: Table
    dedup_window_ms: int
    campaigns: CampaignChannels | None = None
    """Live campaign-channels, for the cap and for retiring silent ones (None: neither)."""
    partition_of: Callable[[str], int] | None = None
    """A campaign's partition (for rebuilding ``campaigns``)."""
    id_table: Table = field(default_factory=MemoryIdStore)
    """The event-ids table; its store (``data``, or the table itself) is an IdStore."""

    @property
    def id_store(self) -> IdStore:
        store: Any = getattr(self.id_table, "data", self.id_table)
        return store  # type: ignore[no-any-return]

    def handle(self, campaign: str, forwards: Forwards, partition: int,
               offset: int, now_ms: int) -> Folded:
        """Count one kpi-events message; an event that fails to fold is left out, in
        ``Folded.failures``.

        The message is folded whole (the fast way); should that raise, it is folded again
        an event at a time, so only the events that raise are left out.
        """
        self.tick(partition, now_ms)
        store = self.id_store
        refused: list[Failure] = []
        if self.campaigns is not None:
            forwards, refused = self._admit(campaign, forwards, partition)
        recorded_at: dict[str, int] = {}
        seen: list[tuple[list[str], list[bool], bool]] = []

        def first_time(keys: list[str]) -> list[bool]:
            recorded_at.update(store.recorded(partition, keys))
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
            folded, new_ids = _fold_each(campaign, forwards, recorded_at, offset,
                                         lambda keys: store.recorded(partition, keys))
        # A replay writes its record again, even with nothing new: the store may hold it
        # from before a crash that kept it from the changelog, where a new owner needs it.
        # A message of duplicates only gets an empty record, so its replay is told too.
        replayed = [key for key, at in recorded_at.items() if at == offset]
        if replayed or (folded.duplicates and (partition, offset) in store):
            _reported_before(folded, replayed)
        if new_ids or replayed or folded.duplicates:
            self.id_table[(partition, offset)] = [now_ms + self.dedup_window_ms,
                                                  replayed + new_ids]
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

    def partitions_held(self) -> set[int]:
        """Partitions whose live campaign-channels this stage holds (they need ticks)."""
        if self.campaigns is None:
            return set()
        return {p for p, cells in self.campaigns.live.items() if cells}

    def tick(self, partition: int, now_ms: int) -> None:
        """What time does to a partition: ids past the dedup window are forgotten, and
        campaign-channels silent for the retention leave the state, each with tombstones."""
        for gone in self.id_store.due(partition, now_ms):
            del self.id_table[(partition, gone)]
        if self.campaigns is None:
            return
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
        """Reload from the recovered table, dropping what other workers own now (the
        event-ids store answers for itself: it is indexed as it is written or recovered)."""
        self.state.clear()
        if self.campaigns is not None:
            self.campaigns.clear(len(owned))
        data = getattr(self.table, "data", self.table)
        persists = getattr(self.table, "persists", False)
        now_minute = minute_of(now_ms) if now_ms else None
        # read from disk as loaded (a day of buckets would not fit in memory at once);
        # a table in memory is copied first, to delete from it as it goes
        loaded = getattr(data, "loaded_items", None)
        items = loaded() if loaded is not None else (
            data.items() if persists else list(data.items()))
        for key, value in items:
            if owns_campaign(key[0]):
                self.state.load(tuple(key), value, now_minute)
            elif not persists:  # memory is all it takes: free it
                del data[key]
        if self.campaigns is not None and self.partition_of is not None:
            for campaign, channel in self.state.cells():
                newest = self.state.newest_minute(campaign, channel)
                seen = now_ms if newest is None else min(now_ms, newest * MINUTE_MS)
                self.campaigns.load(self.partition_of(campaign), (campaign, channel), seen)


