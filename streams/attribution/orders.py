"""An order on its way through attribution and customer history to its campaign."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from streams.events.validation import Event
from streams.flow.forwards import Extra, Forwards, OrderLine
from streams.flow.wire import exact_int, json_safe_ints

__all__ = ["OrderRoute", "counted_id", "forward_retraction"]


@dataclass(slots=True)
class OrderRoute:
    """What the later stages need of an order; ``campaign`` is None until attributed."""

    event_id: str
    ts_ms: int
    customer_id: str
    new_customer: bool | None
    value_micros: int
    campaign: str | None
    channel: str
    click_id: str | None
    cost_micros: int | None = None
    items: tuple[OrderLine, ...] | None = None
    content: str | None = None
    """Content type of the click that attributed the order."""

    @classmethod
    def of(cls, order: Event, campaign: str | None, channel: str) -> OrderRoute:
        assert order.customer_id is not None
        items = None if order.items is None else tuple(
            (item.product_id, item.quantity, item.revenue_micros) for item in order.items)
        return cls(order.event_id, order.ts_ms, order.customer_id, order.new_customer,
                   order.value_micros, campaign, channel, order.click_id, order.cost_micros,
                   items)

    def to_wire(self) -> list[Any]:
        wire = [self.event_id, self.ts_ms, self.customer_id, self.new_customer,
                json_safe_ints([self.value_micros])[0], self.campaign, self.channel,
                self.click_id]
        if self.cost_micros is not None or self.items is not None or self.content is not None:
            wire += Extra(cost=self.cost_micros, items=self.items,
                          content=self.content).to_wire()[2:5]
        return wire

    @classmethod
    def from_wire(cls, fields: list[Any]) -> OrderRoute:
        """Eight fields, or eleven with content type, cost and lines (``to_wire``)."""
        event_id, ts_ms, customer_id, new_customer, value, campaign, channel, click_id = (
            fields[:8])
        route = cls(event_id, ts_ms, customer_id, new_customer, exact_int(value), campaign,
                    channel, click_id)
        if len(fields) > 8:
            extra = Extra.from_wire([None, None, *fields[8:11], None])
            route.content, route.cost_micros, route.items = (extra.content, extra.cost,
                                                             extra.items)
        return route

    def extra(self) -> Extra | None:
        """What the counting stage needs beyond the order's revenue (None: nothing)."""
        if self.cost_micros is None and self.items is None and self.content is None:
            return None
        return Extra(content=self.content, cost=self.cost_micros, items=self.items)

    def forward_to(self, forwards: Forwards, new_customer: bool) -> None:
        """Add the order, as counted in its campaign's state."""
        forwards.add("n" if new_customer else "o", counted_id(self.customer_id, self.event_id),
                     self.ts_ms, self.channel, self.value_micros, self.extra())


def counted_id(customer_id: str, event_id: str) -> str:
    """The id the counting stage deduplicates an order by: its event id within its customer.

    Length-prefixed, so no pair of customer and event ids can spell another pair's.
    """
    return f"{len(customer_id)}:{customer_id}:{event_id}"


def forward_retraction(forwards: Forwards, customer_id: str, channel: str, ts_ms: int,
                       event_id: str) -> None:
    """Take back the new customer an order was counted with, in the minute it was counted."""
    forwards.add("r", counted_id(customer_id, event_id), ts_ms, channel)
