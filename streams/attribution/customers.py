"""Customer history: a customer is new on their first order ever, by event time.

An order read late can turn out to be earlier than the one counted as the customer's
first; then that one's "new customer" is taken back (a retraction) and the earlier
order counts instead. An order's own ``new_customer`` flag always decides for that order.

The customer's record also keeps, for ``dedup_window``, the decision made for each of
their orders and the source message it was made in. The record is one table value, so
state and decision land together: a second delivery of the order (another message) is
a duplicate, and a replay of the same message after a crash repeats the same decision
(and its lifetime-value credits, kept with it).

For lifetime value (``streams.attribution.lifetime``) the record also keeps the orders'
time and revenue: those within the longest horizon after the first order or after an
order flagged new, and every order for ``dedup_window`` after it is read. So the credits
are exact whenever a flagged-new order is read within ``dedup_window`` of the later
orders of its horizon; one read later than that is credited only the orders kept.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from streams.attribution.lifetime import (
    DAY_MS,
    Acquisition,
    LtvCredit,
    Purchase,
    credits_of,
    order_credits,
    summed,
)
from streams.attribution.orders import OrderRoute
from streams.flow.wire import exact_int

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
    version: int = 0
    """The record's version the credits were made at (their ids name it)."""
    credits: tuple[LtvCredit, ...] = ()

    def to_wire(self) -> list[Any]:
        return [self.expires_ms, self.partition, self.offset, self.is_new, self.retraction,
                self.version, [list(c) for c in self.credits]]

    @classmethod
    def from_wire(cls, wire: list[Any]) -> OrderDecision:
        """Also the five-element form written before lifetime value: no credits."""
        expires_ms, partition, offset, is_new, retraction, *more = wire
        version, credits = more if more else (0, [])
        return cls(expires_ms, partition, offset, is_new,
                   tuple(retraction) if retraction else None, version,
                   tuple(LtvCredit(campaign, channel, ts, days, exact_int(amount), event_id)
                         for campaign, channel, ts, days, amount, event_id in credits))


@dataclass(slots=True)
class CustomerRecord:
    """One customer's history: the table value (its wire form: ``to_wire``)."""

    first_ts: int
    first_id: str
    counted: Retraction | None
    """The first order, if it was counted as new here (not decided by its own flag)."""
    last_seen_ms: int
    orders: dict[str, OrderDecision]
    version: int = 0
    """Decisions that credited lifetime value so far (each credit's id names its own)."""
    history: list[Purchase] = field(default_factory=list)
    """The orders lifetime value may still need, oldest read first."""
    acquired: list[Acquisition] = field(default_factory=list)
    """Orders flagged new (``new_customer`` true): each acquires the customer too."""

    def to_wire(self) -> list[Any]:
        """``[first_ts, first_id, counted, last_seen_ms, {event_id: decision}, version,
        [[ts, revenue, keep_until]], [acquired]]``."""
        return [self.first_ts, self.first_id, self.counted, self.last_seen_ms,
                {event_id: d.to_wire() for event_id, d in self.orders.items()},
                self.version, [list(p) for p in self.history],
                [list(a) for a in self.acquired]]

    @classmethod
    def from_wire(cls, wire: list[Any]) -> CustomerRecord:
        """Also the five-element form written before lifetime value: no LTV history."""
        first_ts, first_id, counted, last_seen_ms, orders, *more = wire
        version, history, acquired = more if more else (0, [], [])
        return cls(first_ts, first_id, tuple(counted) if counted else None, last_seen_ms,
                   {event_id: OrderDecision.from_wire(d) for event_id, d in orders.items()},
                   version, [(ts, exact_int(revenue), keep) for ts, revenue, keep in history],
                   [(campaign, channel, ts, event_id)
                    for campaign, channel, ts, event_id in acquired])


@dataclass(frozen=True, slots=True)
class Decision:
    """What one delivery of an order turned out to be."""

    kind: Literal["counted", "replayed", "duplicate"]
    is_new: bool = False
    retraction: Retraction | None = None
    version: int = 0
    credits: tuple[LtvCredit, ...] = ()
    """Lifetime-value credits (and take-backs) the order makes, made at ``version``."""


def _none_known(customer: str) -> CustomerRecord | None:
    return None


@dataclass
class CustomerBook:
    """Each customer's record (the stage forgets those not seen for the customer window)."""

    dedup_window_ms: int
    ltv_horizon_days: tuple[int, ...] = ()
    """Lifetime-value horizons (none: no credits and no order history kept)."""
    known: Callable[[str], CustomerRecord | None] = _none_known
    """The records kept before (the customers table's store)."""
    records: dict[str, CustomerRecord] = field(default_factory=dict)
    """The records read or made since the stage last cleared them (the changed ones are
    written to the table as they change)."""

    def record(self, customer: str) -> CustomerRecord | None:
        record = self.records.get(customer)
        if record is None:
            record = self.known(customer)
            if record is not None:
                self.records[customer] = record
        return record

    def decide(self, order: OrderRoute, partition: int, offset: int, now_ms: int) -> Decision:
        """Count ``order`` (or recognise it), updating the customer's record."""
        record = self.record(order.customer_id)
        if record is not None:
            seen = record.orders.get(order.event_id)
            if seen is not None:
                if seen.partition == partition and seen.offset == offset:
                    return Decision("replayed", seen.is_new, seen.retraction, seen.version,
                                    seen.credits)
                return Decision("duplicate")
        acquirer = None if record is None else record.counted
        is_new, retraction = self._first(order, record, now_ms)
        record = self.records[order.customer_id]
        credits = (self._credit(record, order, acquirer, is_new, retraction, now_ms)
                   if self.ltv_horizon_days else ())
        if credits:
            record.version += 1
        orders = record.orders
        for event_id in [e for e, d in orders.items() if d.expires_ms <= now_ms]:
            del orders[event_id]
        orders[order.event_id] = OrderDecision(now_ms + self.dedup_window_ms, partition,
                                               offset, is_new, retraction, record.version,
                                               credits)
        return Decision("counted", is_new, retraction, record.version, credits)

    def _credit(self, record: CustomerRecord, order: OrderRoute, acquirer: Retraction | None,
                is_new: bool, retraction: Retraction | None,
                now_ms: int) -> tuple[LtvCredit, ...]:
        """The order's LTV credits; adds it to the record's history.

        ``acquirer``: the history's acquisition before this order. A retracted one has
        everything credited to it taken back (the history holds exactly that: all orders
        within the longest horizon of the first are kept). The order's revenue goes to
        every standing acquisition whose horizon it is in; an order that acquires is owed
        every kept order within its horizons, itself included.
        """
        days = self.ltv_horizon_days
        credits: list[LtvCredit] = []
        if retraction is not None:
            credits += credits_of(retraction, record.history, days, sign=-1)
        standing = [*([acquirer] if acquirer is not None and retraction is None else []),
                    *record.acquired]
        credits += order_credits(standing, order.ts_ms, order.value_micros, days)
        record.history.append((order.ts_ms, order.value_micros,
                               now_ms + self.dedup_window_ms))
        if is_new:
            assert order.campaign is not None
            acquisition = (order.campaign, order.channel, order.ts_ms, order.event_id)
            if order.new_customer:
                record.acquired.append(acquisition)
            credits += credits_of(acquisition, record.history, days)
        self._keep_needed(record, now_ms)
        return summed(credits)

    def _keep_needed(self, record: CustomerRecord, now_ms: int) -> None:
        """Forget the orders no acquisition's horizon (nor one read late) can still need."""
        longest_ms = max(self.ltv_horizon_days) * DAY_MS
        starts = [record.first_ts, *(ts for _, _, ts, _ in record.acquired)]
        record.history = [
            p for p in record.history
            if p[2] > now_ms or any(start <= p[0] <= start + longest_ms for start in starts)]

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
        return is_new, retraction
