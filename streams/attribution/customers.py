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
from typing import Any, Literal, NamedTuple

from streams.attribution.expiry import ExpiringKeys
from streams.attribution.orders import OrderRoute

__all__ = ["CustomerBook", "CustomerRecord", "Decision", "OrderDecision", "Retraction"]

Retraction = tuple[str, str, int, str]
"""(campaign, channel, ts_ms, event_id) of an order that no longer counts as a first."""


class OrderDecision(NamedTuple):
    """The decision made for one order of a customer, kept for ``dedup_window``."""

    expires_ms: int
    partition: int
    offset: int
    """Where the source message that decided it was: its replay repeats the decision."""
    is_new: bool
    retraction: Retraction | None


@dataclass(slots=True)
class CustomerRecord:
    """One customer's history: the table value (its wire form: ``to_wire``)."""

    first_ts: int
    first_id: str
    counted: Retraction | None
    """The first order, if it was counted as new here (not decided by its own flag)."""
    last_seen_ms: int
    orders: dict[str, OrderDecision]

    def to_wire(self) -> list[Any]:
        """``[first_ts, first_id, counted, last_seen_ms, {event_id: decision}]``."""
        return [self.first_ts, self.first_id, self.counted, self.last_seen_ms,
                {event_id: tuple(d) for event_id, d in self.orders.items()}]

    @classmethod
    def from_wire(cls, wire: list[Any]) -> CustomerRecord:
        first_ts, first_id, counted, last_seen_ms, orders = wire
        return cls(first_ts, first_id, tuple(counted) if counted else None, last_seen_ms,
                   {event_id: OrderDecision(expires_ms, partition, offset, is_new,
                                            tuple(retraction) if retraction else None)
                    for event_id, (expires_ms, partition, offset, is_new, retraction)
                    in orders.items()})


@dataclass(frozen=True, slots=True)
class Decision:
    """What one delivery of an order turned out to be."""

    kind: Literal["counted", "replayed", "duplicate"]
    is_new: bool = False
    retraction: Retraction | None = None


@dataclass
class CustomerBook:
    """Each customer's record, forgotten when not seen for ``window_ms``."""

    window_ms: int
    dedup_window_ms: int
    records: dict[str, CustomerRecord] = field(default_factory=dict)
    _expiry: ExpiringKeys = field(default_factory=ExpiringKeys)

    def decide(self, order: OrderRoute, partition: int, offset: int, now_ms: int) -> Decision:
        """Count ``order`` (or recognise it), updating the customer's record."""
        record = self.records.get(order.customer_id)
        if record is not None:
            seen = record.orders.get(order.event_id)
            if seen is not None:
                if seen.partition == partition and seen.offset == offset:
                    return Decision("replayed", seen.is_new, seen.retraction)
                return Decision("duplicate")
        is_new, retraction = self._first(order, record, now_ms)
        orders = self.records[order.customer_id].orders
        for event_id in [e for e, d in orders.items() if d.expires_ms <= now_ms]:
            del orders[event_id]
        orders[order.event_id] = OrderDecision(now_ms + self.dedup_window_ms, partition,
                                               offset, is_new, retraction)
        return Decision("counted", is_new, retraction)

    def _first(self, order: OrderRoute, record: CustomerRecord | None,
               now_ms: int) -> tuple[bool, Retraction | None]:
        assert order.campaign is not None
        earlier = record is None or (order.ts_ms, order.event_id) < (record.first_ts,
                                                                    record.first_id)
        retraction: Retraction | None = None
        if record is None:
            record = CustomerRecord(order.ts_ms, order.event_id, None, now_ms, {})
            self.records[order.customer_id] = record
        elif earlier:
            retraction = record.counted
            record.first_ts, record.first_id, record.counted = order.ts_ms, order.event_id, None
        is_new = earlier if order.new_customer is None else order.new_customer
        if is_new and order.new_customer is None:
            record.counted = (order.campaign, order.channel, order.ts_ms, order.event_id)
        record.last_seen_ms = now_ms
        self._expiry.set(order.customer_id, now_ms + self.window_ms)
        return is_new, retraction

    def expire(self, now_ms: int) -> list[str]:
        """Forget customers not seen for the customer window."""
        gone = self._expiry.expire(now_ms)
        for customer in gone:
            self.records.pop(customer, None)
        return gone

    def load(self, customer: str, record: CustomerRecord) -> None:
        self.records[customer] = record
        self._expiry.set(customer, record.last_seen_ms + self.window_ms)

    def clear(self) -> None:
        self.records.clear()
        self._expiry.clear()
