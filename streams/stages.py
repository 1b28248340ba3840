"""The stateful stages behind the agents: pure books kept in step with Faust tables.

Each stage keeps its bookkeeping per partition of its source topic, and writes every
change to its table while the agent handles a message of that partition, so the change
lands in the same changelog partition and a new owner of the partition recovers it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from streams.aggregate import Folded, fold
from streams.clicks import Click, ClickBook
from streams.counts import Forward
from streams.customers import CustomerBook
from streams.dedup import ExpiringKeys
from streams.orders import OrderRoute, retraction_forward
from streams.state import BucketKey, KpiState
from streams.windows import minute_of

__all__ = ["ClickStage", "CountStage", "CustomerStage", "Partitioner"]

Table = MutableMapping[Any, Any]
Partitioner = Callable[[str], int]


def _expire_ids(ids: ExpiringKeys, table: Table, now_ms: int) -> None:
    for key in ids.expire(now_ms):
        table.pop(key, None)


def _reload_ids(table: Table, owned: set[int], window_ms: int) -> dict[int, ExpiringKeys]:
    """Remembered ids by partition, from a table of key -> [expires_ms, partition]."""
    books: dict[int, ExpiringKeys] = {}
    data = getattr(table, "data", table)
    for key in list(data):
        expires, partition = data[key]
        if partition in owned:
            books.setdefault(partition, ExpiringKeys()).set(key, expires)
        else:
            del data[key]
    return books


@dataclass
class CountStage:
    """Counted events of the campaigns of one partition: dedup, then buckets."""

    state: KpiState
    buckets: Table
    ids_table: Table
    dedup_window_ms: int
    ids: dict[int, ExpiringKeys] = field(default_factory=dict)

    def handle(self, campaign: str, forwards: Iterable[Forward], partition: int,
               now_ms: int) -> Folded:
        ids = self.ids.setdefault(partition, ExpiringKeys())
        _expire_ids(ids, self.ids_table, now_ms)
        expires = now_ms + self.dedup_window_ms
        ids_table = self.ids_table

        def first_time(key: str) -> bool:
            if ids.add_if_new(key, expires):
                ids_table[key] = [expires, partition]
                return True
            return False

        folded = fold(campaign, forwards, first_time)
        changed = self.state.apply(folded.deltas, minute_of(now_ms))
        for key, counts in changed.items():
            if counts is None:
                self.buckets.pop(key, None)
            else:
                self.buckets[key] = counts
        return folded

    def rebuild(self, owned: set[int], owns_campaign: Callable[[str], bool]) -> None:
        """Reload from the recovered tables, dropping what other workers own now."""
        self.state.clear()
        data = getattr(self.buckets, "data", self.buckets)
        for key in list(data):
            bucket_key: BucketKey = tuple(key)
            if owns_campaign(bucket_key[0]):
                self.state.load(bucket_key, data[key])
            else:
                del data[key]
        self.ids = _reload_ids(self.ids_table, owned, self.dedup_window_ms)


@dataclass
class ClickStage:
    """Clicks by click id, and orders joined to them, for the click ids of one partition."""

    clicks_table: Table
    waiting_table: Table
    window_ms: int
    grace_ms: int
    books: dict[int, ClickBook] = field(default_factory=dict)

    def _book(self, partition: int) -> ClickBook:
        book = self.books.get(partition)
        if book is None:
            book = self.books[partition] = ClickBook(self.window_ms, self.grace_ms)
        return book

    def remember(self, click_id: str, click: Click, partition: int) -> list[OrderRoute]:
        book = self._book(partition)
        before = book.clicks.get(click_id)
        released = book.remember(click_id, click)
        if book.clicks[click_id] != before:
            self.clicks_table[click_id] = list(click)
        self._save_waiting(book, [click_id])
        return released

    def join(self, order: OrderRoute, partition: int, now_ms: int) -> OrderRoute | None:
        book = self._book(partition)
        joined = book.join(order, now_ms)
        if joined is None:
            assert order.click_id is not None
            self._save_waiting(book, [order.click_id])
        return joined

    def tick(self, partition: int, now_ms: int) -> list[OrderRoute]:
        """Orders whose wait for a click is over, and forget clicks past the window."""
        book = self._book(partition)
        for click_id in book.expire(now_ms):
            self.clicks_table.pop(click_id, None)
        released, touched = book.due(now_ms)
        self._save_waiting(book, touched)
        return released

    def _save_waiting(self, book: ClickBook, click_ids: Iterable[str]) -> None:
        for click_id in click_ids:
            entries = book.waiting.get(click_id)
            if entries:
                self.waiting_table[click_id] = [[due, o.to_wire()] for due, o in entries]
            else:
                self.waiting_table.pop(click_id, None)

    def rebuild(self, owned: set[int], owns: Callable[[str], int | None]) -> None:
        """Reload from the recovered tables; ``owns`` gives an owned key's partition."""
        self.books.clear()
        clicks = getattr(self.clicks_table, "data", self.clicks_table)
        for click_id in list(clicks):
            partition = owns(click_id)
            if partition is None:
                del clicks[click_id]
            else:
                ts, campaign, channel = clicks[click_id]
                self._book(partition).load_click(click_id, (ts, campaign, channel))
        waiting = getattr(self.waiting_table, "data", self.waiting_table)
        for click_id in list(waiting):
            partition = owns(click_id)
            if partition is None:
                del waiting[click_id]
            else:
                self._book(partition).waiting[click_id] = [
                    (due, OrderRoute.from_wire(wire)) for due, wire in waiting[click_id]
                ]


@dataclass
class CustomerStage:
    """Customer history and order dedup, for the customers of one partition."""

    customers_table: Table
    ids_table: Table
    customer_window_ms: int
    dedup_window_ms: int
    books: dict[int, CustomerBook] = field(default_factory=dict)
    ids: dict[int, ExpiringKeys] = field(default_factory=dict)

    def handle(
        self, orders: Iterable[OrderRoute], partition: int, now_ms: int
    ) -> tuple[dict[str, list[Forward]], int]:
        """Forwards per campaign (orders and retractions) and how many were duplicates."""
        book = self.books.get(partition)
        if book is None:
            book = self.books[partition] = CustomerBook(self.customer_window_ms)
        ids = self.ids.setdefault(partition, ExpiringKeys())
        _expire_ids(ids, self.ids_table, now_ms)
        for customer in book.expire(now_ms):
            self.customers_table.pop(customer, None)
        expires = now_ms + self.dedup_window_ms
        forwards: dict[str, list[Forward]] = {}
        duplicates = 0
        for order in orders:
            key = f"order:{order.event_id}"
            if not ids.add_if_new(key, expires):
                duplicates += 1
                continue
            self.ids_table[key] = [expires, partition]
            is_new, retraction = book.decide(order, now_ms)
            self.customers_table[order.customer_id] = book.records[order.customer_id]
            assert order.campaign is not None
            forwards.setdefault(order.campaign, []).append(order.forward(is_new))
            if retraction is not None:
                campaign, channel, ts_ms, event_id = retraction
                forwards.setdefault(campaign, []).append(
                    retraction_forward(channel, ts_ms, event_id))
        return forwards, duplicates

    def rebuild(self, owned: set[int], owns: Callable[[str], int | None]) -> None:
        self.books.clear()
        data = getattr(self.customers_table, "data", self.customers_table)
        for customer in list(data):
            partition = owns(customer)
            if partition is None:
                del data[customer]
            else:
                book = self.books.setdefault(partition, CustomerBook(self.customer_window_ms))
                book.load(customer, data[customer])
        self.ids = _reload_ids(self.ids_table, owned, self.dedup_window_ms)
