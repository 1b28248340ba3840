"""Customer history: a customer is new on their first order ever, by event time.

An order read late can turn out to be earlier than the one counted as the customer's
first; then that one's "new customer" is taken back (a retraction) and the earlier
order counts instead. An order's own ``new_customer`` flag always decides for that order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from streams.dedup import ExpiringKeys
from streams.orders import OrderRoute

__all__ = ["CustomerBook", "Retraction"]

Retraction = tuple[str, str, int, str]
"""(campaign, channel, ts_ms, event_id) of an order that no longer counts as a first."""


@dataclass
class CustomerBook:
    """Per customer: the earliest order seen and the order counted as their first."""

    window_ms: int
    records: dict[str, list[Any]] = field(default_factory=dict)
    """customer -> [first_ts, first_event_id, counted Retraction or None, last_seen_ms]."""
    _expiry: ExpiringKeys = field(default_factory=ExpiringKeys)

    def decide(self, order: OrderRoute, now_ms: int) -> tuple[bool, Retraction | None]:
        """Whether ``order`` counts as a new customer, and a first to take back if any."""
        assert order.campaign is not None
        record = self.records.get(order.customer_id)
        earlier = record is None or (order.ts_ms, order.event_id) < (record[0], record[1])
        retraction: Retraction | None = None
        if record is None:
            record = [order.ts_ms, order.event_id, None, now_ms]
            self.records[order.customer_id] = record
        elif earlier:
            retraction = record[2]
            record[0], record[1], record[2] = order.ts_ms, order.event_id, None
        is_new = earlier if order.new_customer is None else order.new_customer
        if is_new and order.new_customer is None:
            record[2] = [order.campaign, order.channel, order.ts_ms, order.event_id]
        record[3] = now_ms
        self._expiry.set(order.customer_id, now_ms + self.window_ms)
        return is_new, (tuple(retraction) if retraction else None)  # type: ignore[return-value]

    def expire(self, now_ms: int) -> list[str]:
        """Forget customers not seen for the customer window."""
        gone = self._expiry.expire(now_ms)
        for customer in gone:
            self.records.pop(customer, None)
        return gone

    def load(self, customer: str, record: list[Any]) -> None:
        self.records[customer] = record
        self._expiry.set(customer, record[3] + self.window_ms)

    def clear(self) -> None:
        self.records.clear()
        self._expiry.clear()
