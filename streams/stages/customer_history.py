"""The customer stage: customer history, order dedup and lifetime-value credits per customer."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from streams.attribution.customers import CustomerBook, CustomerRecord
from streams.attribution.lifetime import forward_credits
from streams.attribution.orders import OrderRoute, forward_retraction
from streams.flow.failures import Failure, internal_reason
from streams.flow.forwards import Forwards
from streams.flow.wire import dumps
from streams.stages.tables import Table

__all__ = ['CustomerStage']


@dataclass
class CustomerStage:
    """Customer history and order dedup, for the customers of one partition."""

    table: Table
    customer_window_ms: int
    dedup_window_ms: int
    ltv_horizon_days: tuple[int, ...]
    """``[kpi] ltv_horizons`` in days (``Settings.ltv_horizons``)."""
    books: dict[int, CustomerBook] = field(default_factory=dict)

    def _book(self, partition: int) -> CustomerBook:
        book = self.books.get(partition)
        if book is None:
            book = self.books[partition] = CustomerBook(self.customer_window_ms,
                                                        self.dedup_window_ms,
                                                        self.ltv_horizon_days)
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
        forward_credits(forwards, order.customer_id, decision.credits, decision.version)
        return 0

    def rebuild(self, owned: set[int], owns: Callable[[str], int | None]) -> None:
        self.books.clear()
        data = getattr(self.table, "data", self.table)
        for customer in list(data):
            partition = owns(customer)
            if partition is None:
                del data[customer]
            else:
                record = data[customer]
                if not isinstance(record, CustomerRecord):  # as recovered: its wire form
                    record = data[customer] = CustomerRecord.from_wire(record)
                self._book(partition).load(customer, record)
