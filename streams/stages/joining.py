"""The click-join stage: clicks remembered by click id, orders joined to them."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, cast

from streams.attribution.clicks import Click, ClickBook, Waiting
from streams.attribution.orders import OrderRoute
from streams.flow.failures import Failure, internal_reason
from streams.flow.wire import dumps
from streams.stages.click_records import ClickStore
from streams.stages.tables import Table

__all__ = ['ClickStage']


@dataclass
class ClickStage:
    """Clicks by click id, and orders joined to them, for the click ids of one partition.

    The clicks a source message keeps are written as one record keyed
    ``(partition, offset)``, not one per click: at high rates, table writes cost more
    than the clicks themselves. The table's store indexes them by click id
    (streams.stages.click_records); a record goes when its newest click leaves the
    attribution window.
    """

    clicks_table: Table
    """The clicks table; its store (``data``, or the table itself) is a ClickStore."""
    waiting_table: Table
    window_ms: int
    grace_ms: int
    books: dict[int, ClickBook] = field(default_factory=dict)

    @property
    def store(self) -> ClickStore:
        return cast(ClickStore, getattr(self.clicks_table, "data", self.clicks_table))

    def _book(self, partition: int) -> ClickBook:
        book = self.books.get(partition)
        if book is None:
            store = self.store
            book = self.books[partition] = ClickBook(
                self.window_ms, self.grace_ms,
                lambda click_id: store.click(partition, click_id))
        return book

    def handle_message(self, items: list[Any], partition: int, offset: int,
                       now_ms: int) -> tuple[list[OrderRoute], list[Failure]]:
        """One click-join message: clicks (``["c", click_id, ts, campaign, channel,
        content type]``; no content type if written before it was kept) to
        remember and orders (``["o", *order wire]``) to join, after this partition's tick.

        Returns the orders to send on, and the items that raised (the rest go on).
        """
        released = self.tick(partition, now_ms, offset)
        failures: list[Failure] = []
        for index, item in enumerate(items):
            try:
                if item[0] == "c":
                    released += self.remember(
                        item[1], (item[2], item[3], item[4], item[5] if len(item) > 5 else None),
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
        released = book.remember(click_id, click, offset)
        self._save_waiting(book, [click_id])
        return released

    def end_message(self, partition: int, offset: int) -> None:
        """Write the clicks the message at ``offset`` kept, as one record."""
        book = self.books.get(partition)
        if book is None or not book.added:
            return
        self.clicks_table[(partition, offset)] = [[click_id, *click]
                                                  for click_id, click in book.added.items()]
        book.added.clear()

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
        # a click exactly the window old still counts
        for gone in self.store.due(partition, now_ms - self.window_ms):
            del self.clicks_table[(partition, gone)]
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
        """Reload the waiting orders from the recovered tables; ``owns`` gives an owned
        key's partition. The clicks need no reloading: their store is indexed as it is
        written or recovered. A store in memory forgets the partitions not owned; one on
        disk keeps them (it holds them up to its changelog offset)."""
        self.books.clear()
        if not getattr(self.clicks_table, "persists", False):
            clicks = getattr(self.clicks_table, "data", self.clicks_table)
            for key in list(clicks):
                if key[0] not in owned:
                    del clicks[key]
        waiting = getattr(self.waiting_table, "data", self.waiting_table)
        for click_id in list(waiting):
            partition = owns(click_id)
            if partition is None:
                del waiting[click_id]
            else:
                self._book(partition).load_waiting(click_id, [
                    Waiting(due, OrderRoute.from_wire(wire), released)
                    for due, wire, released in waiting[click_id]
                ])
