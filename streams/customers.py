"""Customer history: a customer is new on their first order ever, by event time.

An order read late can turn out to be earlier than the one counted as the customer's
first; then that one's "new customer" is taken back (a retraction) and the earlier
order counts instead. An order's own ``new_customer`` flag always decides for that order.

The customer's record also keeps, for ``dedup_window``, the decision made for each of
their orders and the source message it was made in. The record is one table value, so
state and decision land together: a second delivery of the order (another message) is
a duplicate, and a replay of the same message after a crash repeats the same decision.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from streams.expiry import ExpiringKeys
from streams.orders import OrderRoute

__all__ = ["CustomerBook", "Decision", "Retraction"]

Retraction = tuple[str, str, int, str]
"""(campaign, channel, ts_ms, event_id) of an order that no longer counts as a first."""

FIRST_TS, FIRST_ID, COUNTED, LAST_SEEN, ORDERS = range(5)


@dataclass(frozen=True, slots=True)
class Decision:
    """What one delivery of an order turned out to be."""

    kind: Literal["counted", "replayed", "duplicate"]
    is_new: bool = False
    retraction: Retraction | None = None


@dataclass
class CustomerBook:
    """Per customer: [first_ts, first_event_id, counted first or None, last_seen_ms,
    {event_id: [expires_ms, partition, offset, is_new, retraction or None]}]."""

    window_ms: int
    dedup_window_ms: int
    records: dict[str, list[Any]] = field(default_factory=dict)
    _expiry: ExpiringKeys = field(default_factory=ExpiringKeys)

    def decide(self, order: OrderRoute, partition: int, offset: int, now_ms: int) -> Decision:
        """Count ``order`` (or recognise it), updating the customer's record."""
        record = self.records.get(order.customer_id)
        if record is not None:
            seen = record[ORDERS].get(order.event_id)
            if seen is not None:
                if seen[1] == partition and seen[2] == offset:
                    retraction = tuple(seen[4]) if seen[4] else None
                    return Decision("replayed", seen[3], retraction)
                return Decision("duplicate")
        is_new, retraction = self._first(order, record, now_ms)
        record = self.records[order.customer_id]
        orders = record[ORDERS]
        for event_id in [e for e, d in orders.items() if d[0] <= now_ms]:
            del orders[event_id]
        orders[order.event_id] = [now_ms + self.dedup_window_ms, partition, offset, is_new,
                                  list(retraction) if retraction else None]
        return Decision("counted", is_new, retraction)

    def _first(self, order: OrderRoute, record: list[Any] | None,
               now_ms: int) -> tuple[bool, Retraction | None]:
        assert order.campaign is not None
        earlier = record is None or (order.ts_ms, order.event_id) < (record[FIRST_TS],
                                                                    record[FIRST_ID])
        retraction: Retraction | None = None
        if record is None:
            record = [order.ts_ms, order.event_id, None, now_ms, {}]
            self.records[order.customer_id] = record
        elif earlier:
            counted = record[COUNTED]
            retraction = tuple(counted) if counted else None
            record[FIRST_TS], record[FIRST_ID], record[COUNTED] = (order.ts_ms, order.event_id,
                                                                   None)
        is_new = earlier if order.new_customer is None else order.new_customer
        if is_new and order.new_customer is None:
            record[COUNTED] = [order.campaign, order.channel, order.ts_ms, order.event_id]
        record[LAST_SEEN] = now_ms
        self._expiry.set(order.customer_id, now_ms + self.window_ms)
        return is_new, retraction

    def expire(self, now_ms: int) -> list[str]:
        """Forget customers not seen for the customer window."""
        gone = self._expiry.expire(now_ms)
        for customer in gone:
            self.records.pop(customer, None)
        return gone

    def load(self, customer: str, record: list[Any]) -> None:
        self.records[customer] = record
        self._expiry.set(customer, record[LAST_SEEN] + self.window_ms)

    def clear(self) -> None:
        self.records.clear()
        self._expiry.clear()
