"""An order on its way through attribution and customer history to its campaign."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from streams.events import Event
from streams.forwards import Forwards

__all__ = ["OrderRoute", "forward_retraction"]


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

    @classmethod
    def of(cls, order: Event, campaign: str | None, channel: str) -> OrderRoute:
        assert order.customer_id is not None
        return cls(order.event_id, order.ts_ms, order.customer_id, order.new_customer,
                   order.value_micros, campaign, channel, order.click_id)

    def to_wire(self) -> list[Any]:
        return [self.event_id, self.ts_ms, self.customer_id, self.new_customer,
                self.value_micros, self.campaign, self.channel, self.click_id]

    @classmethod
    def from_wire(cls, fields: list[Any]) -> OrderRoute:
        return cls(*fields)

    def forward_to(self, forwards: Forwards, new_customer: bool) -> None:
        """Add the order, as counted in its campaign's state."""
        forwards.add("n" if new_customer else "o", self.event_id, self.ts_ms, self.channel,
                     self.value_micros)


def forward_retraction(forwards: Forwards, channel: str, ts_ms: int, event_id: str) -> None:
    """Take back the new customer an order was counted with, in the minute it was counted."""
    forwards.add("r", event_id, ts_ms, channel)
