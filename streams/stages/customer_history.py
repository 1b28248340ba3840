"""The customer stage: customer history, order dedup and lifetime-value credits per customer."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import cast

from streams.attribution.customers import CustomerBook
from streams.attribution.lifetime import forward_credits
from streams.attribution.orders import OrderRoute, forward_retraction
from streams.flow.failures import Failure, internal_reason
from streams.flow.forwards import Forwards
from streams.flow.wire import dumps
from streams.stages.customer_records import CustomerStore
from streams.stages.tables import Table

__all__ = ['CustomerStage']


@dataclass
class CustomerStage:
    """Customer history and order dedup, for the customers of one partition."""

    table: Table
    """The customers table; its store (``data``, or the table itself) is a CustomerStore."""
    customer_window_ms: int
    dedup_window_ms: int
    ltv_horizon_days: tuple[int, ...]
    """``[kpi] ltv_horizons`` in days (``Settings.ltv_horizons``)."""
    books: dict[int, CustomerBook] = field(default_factory=dict)

    @property
    def store(self) -> CustomerStore:
        return cast(CustomerStore, getattr(self.table, "data", self.table))

    def _book(self, partition: int) -> CustomerBook:
        book = self.books.get(partition)
        if book is None:
            store = self.store
            book = self.books[partition] = CustomerBook(
                self.dedup_window_ms, self.ltv_horizon_days,
                lambda customer: store.record(partition, customer))
        return book

    def handle(
        self, orders: Iterable[OrderRoute], partition: int, offset: int, now_ms: int,
        failures: list[Failure] | None = None,
    ) -> tuple[dict[str, Forwards], int]:
        """Forwards per campaign (orders, retractions, LTV credits) and how many were
        duplicates.

        An order that raises goes to ``failures`` (when given) and the rest go on.
        """
        book = self._book(partition)
        book.records.clear()  # what earlier messages changed is in the store
        for customer in self.store.due(partition, now_ms - self.customer_window_ms):
            del self.table[customer]
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
        forward_credits(forwards, order.customer_id, decision.credits, decision.version)
        return 0

    def rebuild(self, owned: set[int], owns: Callable[[str], int | None]) -> None:
        """Start again from the recovered table: its store answers for itself. A store in
        memory forgets the customers of partitions not owned; one on disk keeps them (it
        holds them up to its changelog offset)."""
        self.books.clear()
        if not getattr(self.table, "persists", False):
            data = getattr(self.table, "data", self.table)
            for customer in list(data):
                if owns(customer) is None:
                    del data[customer]
