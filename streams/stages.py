"""The stateful stages behind the agents: pure books kept in step with Faust tables.

Each stage keeps its bookkeeping per partition of its source topic, and writes every
change to its table while the agent handles a message of that partition, so the change
lands in the same changelog partition and a new owner of the partition recovers it.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from streams.aggregate import Folded, fold
from streams.campaigns import CampaignChannels
from streams.clicks import Click, ClickBook, Waiting
from streams.counts import add_into
from streams.customers import CustomerBook
from streams.durations import MINUTE_MS
from streams.failures import Failure, internal_reason
from streams.forwards import KIND_TYPES, Forwards
from streams.orders import OrderRoute, forward_retraction
from streams.state import KpiState
from streams.windows import minute_of
from streams.wire import dumps

__all__ = ["ClickStage", "CountStage", "CustomerStage", "Partitioner"]

Table = MutableMapping[Any, Any]
Partitioner = Callable[[str], int]


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
            one = fold(campaign, Forwards([kind], [event_id], [ts_ms], [channel], [amount]),
                       first_time)
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
        changed = self.state.apply(folded.deltas, minute_of(now_ms), offset)
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
                kept.add(*event)
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


@dataclass
class ClickStage:
    """Clicks by click id, and orders joined to them, for the click ids of one partition.

    The clicks a source message adds are written as one record keyed
    ``(partition, offset)``, not one per click: at high rates, table writes cost more
    than the clicks themselves. A record goes when its newest click leaves the
    attribution window. Rebuilding keeps the earliest click of an id, as ``remember``
    does, so records can be read back in any order. (One difference: a click id sent
    twice is forgotten live when its earlier click leaves the window, while a rebuilt
    worker may still hold the later click of a record not yet gone.)
    """

    clicks_table: Table
    waiting_table: Table
    window_ms: int
    grace_ms: int
    books: dict[int, ClickBook] = field(default_factory=dict)
    _pending: dict[int, list[list[Any]]] = field(default_factory=dict)
    """partition -> clicks the message being handled added, as [click_id, ts, campaign,
    channel]."""
    _record_expiry: dict[int, list[tuple[int, int]]] = field(default_factory=dict)
    """partition -> heap of (newest click ts + window, offset) of its click records."""

    def _book(self, partition: int) -> ClickBook:
        book = self.books.get(partition)
        if book is None:
            book = self.books[partition] = ClickBook(self.window_ms, self.grace_ms)
        return book

    def handle_message(self, items: list[Any], partition: int, offset: int,
                       now_ms: int) -> tuple[list[OrderRoute], list[Failure]]:
        """One click-join message: clicks (``["c", click_id, ts, campaign, channel]``) to
        remember and orders (``["o", *order wire]``) to join, after this partition's tick.

        Returns the orders to send on, and the items that raised (the rest go on).
        """
        released = self.tick(partition, now_ms, offset)
        failures: list[Failure] = []
        for index, item in enumerate(items):
            try:
                if item[0] == "c":
                    released += self.remember(item[1], (item[2], item[3], item[4]),
                                              partition, offset)
                else:
                    joined = self.join(OrderRoute.from_wire(item[1:]), partition, now_ms)
                    if joined is not None:
                        released.append(joined)
            except Exception as exc:
                event_type = "click" if isinstance(item, list) and item[:1] == ["c"] else "order"
                failures.append(Failure(event_type, internal_reason("the click join", exc),
                                        dumps(item).decode("utf-8"), index))
        self.end_message(partition, offset)
        return released, failures

    def remember(self, click_id: str, click: Click, partition: int,
                 offset: int) -> list[OrderRoute]:
        """Keep a click (written by ``end_message``); returns the orders it releases."""
        book = self._book(partition)
        before = book.clicks.get(click_id)
        released = book.remember(click_id, click, offset)
        if book.clicks[click_id] != before:
            self._pending.setdefault(partition, []).append([click_id, *click])
        self._save_waiting(book, [click_id])
        return released

    def end_message(self, partition: int, offset: int) -> None:
        """Write the clicks the message at ``offset`` added, as one record."""
        added = self._pending.pop(partition, None)
        if not added:
            return
        self.clicks_table[(partition, offset)] = added
        newest = max(click[1] for click in added)
        heapq.heappush(self._record_expiry.setdefault(partition, []),
                       (newest + self.window_ms, offset))

    def join(self, order: OrderRoute, partition: int, now_ms: int) -> OrderRoute | None:
        book = self._book(partition)
        joined = book.join(order, now_ms)
        if joined is None:
            assert order.click_id is not None
            self._save_waiting(book, [order.click_id])
        return joined

    def tick(self, partition: int, now_ms: int, offset: int) -> list[OrderRoute]:
        """Orders whose wait for a click is over, and forget clicks past the window."""
        book = self._book(partition)
        book.expire(now_ms)
        records = self._record_expiry.get(partition, [])
        while records and records[0][0] < now_ms:  # a click exactly window old still counts
            _, gone = heapq.heappop(records)
            self.clicks_table.pop((partition, gone), None)
        released, touched = book.due(now_ms, offset)
        self._save_waiting(book, touched)
        return released

    def _save_waiting(self, book: ClickBook, click_ids: Iterable[str]) -> None:
        for click_id in click_ids:
            entries = book.waiting.get(click_id)
            if entries:
                self.waiting_table[click_id] = [[e.due_ms, e.order.to_wire(), e.released]
                                                for e in entries]
            else:
                self.waiting_table.pop(click_id, None)

    def rebuild(self, owned: set[int], owns: Callable[[str], int | None]) -> None:
        """Reload from the recovered tables; ``owns`` gives an owned key's partition."""
        self.books.clear()
        self._pending = {}
        self._record_expiry = {}
        clicks = getattr(self.clicks_table, "data", self.clicks_table)
        for key in list(clicks):
            partition, offset = key
            if partition not in owned:
                del clicks[key]
                continue
            book = self._book(partition)
            for click_id, ts, campaign, channel in clicks[key]:
                book.keep_earliest(click_id, (ts, campaign, channel))
            newest = max(click[1] for click in clicks[key])
            heapq.heappush(self._record_expiry.setdefault(partition, []),
                           (newest + self.window_ms, offset))
        waiting = getattr(self.waiting_table, "data", self.waiting_table)
        for click_id in list(waiting):
            partition = owns(click_id)
            if partition is None:
                del waiting[click_id]
            else:
                self._book(partition).waiting[click_id] = [
                    Waiting(due, OrderRoute.from_wire(wire), released)
                    for due, wire, released in waiting[click_id]
                ]


@dataclass
class CustomerStage:
    """Customer history and order dedup, for the customers of one partition."""

    table: Table
    customer_window_ms: int
    dedup_window_ms: int
    books: dict[int, CustomerBook] = field(default_factory=dict)

    def _book(self, partition: int) -> CustomerBook:
        book = self.books.get(partition)
        if book is None:
            book = self.books[partition] = CustomerBook(self.customer_window_ms,
                                                        self.dedup_window_ms)
        return book

    def handle(
        self, orders: Iterable[OrderRoute], partition: int, offset: int, now_ms: int,
        failures: list[Failure] | None = None,
    ) -> tuple[dict[str, Forwards], int]:
        """Forwards per campaign (orders and retractions) and how many were duplicates.

        An order that raises goes to ``failures`` (when given) and the rest go on.
        """
        book = self._book(partition)
        for customer in book.expire(now_ms):
            self.table.pop(customer, None)
        forwards: dict[str, Forwards] = {}
        duplicates = 0
        here: set[tuple[str, str]] = set()
        for index, order in enumerate(orders):
            if (order.customer_id, order.event_id) in here:
                duplicates += 1  # a repeat inside the message, not a replay of it
                continue
            here.add((order.customer_id, order.event_id))
            try:
                duplicates += self._handle_one(book, order, partition, offset, now_ms,
                                               forwards)
            except Exception as exc:
                if failures is None:
                    raise
                failures.append(Failure("order", internal_reason("the customer stage", exc),
                                        dumps(order.to_wire()).decode("utf-8"), index))
        return forwards, duplicates

    def _handle_one(self, book: CustomerBook, order: OrderRoute, partition: int,
                    offset: int, now_ms: int, forwards: dict[str, Forwards]) -> int:
        """Decide one order into ``forwards``; 1 if it was a duplicate, else 0."""
        decision = book.decide(order, partition, offset, now_ms)
        if decision.kind == "duplicate":
            return 1
        if decision.kind == "counted":
            self.table[order.customer_id] = book.records[order.customer_id]
        assert order.campaign is not None
        order.forward_to(forwards.setdefault(order.campaign, Forwards()), decision.is_new)
        if decision.retraction is not None:
            campaign, channel, ts_ms, event_id = decision.retraction
            forward_retraction(forwards.setdefault(campaign, Forwards()),
                               order.customer_id, channel, ts_ms, event_id)
        return 0

    def rebuild(self, owned: set[int], owns: Callable[[str], int | None]) -> None:
        self.books.clear()
        data = getattr(self.table, "data", self.table)
        for customer in list(data):
            partition = owns(customer)
            if partition is None:
                del data[customer]
            else:
                self._book(partition).load(customer, data[customer])
