"""Counted events on their way to their campaign's state, one column per field.

The input and customer stages send a campaign's events to the counting stage through
the ``kpi-events`` topic. Each event is a kind (one letter: what it adds to the
counters), its event id (for dedup), its time, its channel and an amount of money. The
wire form is one JSON array of five columns: decoding five flat lists costs a fraction of
decoding one small list per event.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Final

import orjson

from streams.flow.wire import exact_ints, json_safe_ints
from streams.windows.counts import (
    CLICKS,
    COMPLETED,
    ENGAGEMENTS,
    NEW_CUSTOMERS,
    ORDERS,
    REVENUE,
    SPEND,
    VIEWS,
)

__all__ = ["KIND_TYPES", "RETRACTION", "Forwards", "MalformedForwards", "add_event"]

RETRACTION: Final = "retraction"
"""Dedup type of a correction (an order that is no longer a customer's first)."""

KIND_TYPES: Final[dict[str, str]] = {
    "v": "view",
    "V": "view",        # completed
    "e": "engagement",
    "c": "click",
    "s": "spend",       # amount: spend
    "o": "order",       # amount: revenue
    "n": "order",       # a new customer's order; amount: revenue
    "r": RETRACTION,    # takes back an order's new customer
}
"""Kind letter -> the event type it counts as (and is deduplicated as)."""


class MalformedForwards(ValueError):
    """An internal message that is not five columns of equal length."""


def add_event(acc: list[int], kind: str, amount: int, count: int = 1) -> None:
    """Add what ``count`` events of ``kind`` count to a bucket's counters; ``amount`` is
    the sum of their money."""
    if kind == "v":
        acc[VIEWS] += count
    elif kind == "V":
        acc[VIEWS] += count
        acc[COMPLETED] += count
    elif kind == "e":
        acc[ENGAGEMENTS] += count
    elif kind == "c":
        acc[CLICKS] += count
    elif kind == "s":
        acc[SPEND] += amount
    elif kind == "o" or kind == "n":
        acc[ORDERS] += count
        acc[REVENUE] += amount
        if kind == "n":
            acc[NEW_CUSTOMERS] += count
    elif kind == "r":
        acc[NEW_CUSTOMERS] -= count
    else:
        raise MalformedForwards(f"unknown event kind {kind!r}")


@dataclass(slots=True)
class Forwards:
    """One campaign's counted events, in the order they are to be counted."""

    kinds: list[str] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    ts_ms: list[int] = field(default_factory=list)
    channels: list[str] = field(default_factory=list)
    amounts: list[int] = field(default_factory=list)

    def add(self, kind: str, event_id: str, ts_ms: int, channel: str, amount: int = 0) -> None:
        self.kinds.append(kind)
        self.ids.append(event_id)
        self.ts_ms.append(ts_ms)
        self.channels.append(channel)
        self.amounts.append(amount)

    def __len__(self) -> int:
        return len(self.kinds)

    def __iter__(self) -> Iterator[tuple[str, str, int, str, int]]:
        return zip(self.kinds, self.ids, self.ts_ms, self.channels, self.amounts, strict=True)

    def chunks(self, size: int) -> Iterator[Forwards]:
        """Consecutive pieces of at most ``size`` events."""
        for start in range(0, len(self.kinds), size):
            end = start + size
            yield Forwards(self.kinds[start:end], self.ids[start:end], self.ts_ms[start:end],
                           self.channels[start:end], self.amounts[start:end])

    def to_wire(self) -> bytes:
        return orjson.dumps(["".join(self.kinds), self.ids, self.ts_ms, self.channels,
                             json_safe_ints(self.amounts)])

    def wire_messages(self, max_bytes: int) -> Iterator[bytes]:
        """The events as few messages as possible, each at most ``max_bytes`` (unless one
        event alone is larger), in order.

        Fewer messages mean fewer state writes: the counting stage writes each bucket a
        message changes once.
        """
        wire = self.to_wire()
        if len(wire) <= max_bytes or len(self.kinds) == 1:
            yield wire
            return
        for half in self.chunks((len(self.kinds) + 1) // 2):
            yield from half.wire_messages(max_bytes)

    @classmethod
    def from_wire(cls, raw: bytes) -> Forwards:
        try:
            kinds, ids, ts_ms, channels, amounts = orjson.loads(raw)
        except (orjson.JSONDecodeError, TypeError, ValueError) as exc:
            raise MalformedForwards(f"not five columns: {exc}") from None
        if not isinstance(kinds, str) or not all(
            isinstance(column, list) and len(column) == len(kinds)
            for column in (ids, ts_ms, channels, amounts)
        ):
            raise MalformedForwards("columns of different lengths")
        if not set(kinds) <= KIND_TYPES.keys():
            raise MalformedForwards(f"unknown event kinds {set(kinds) - KIND_TYPES.keys()}")
        try:
            exact = exact_ints(amounts)
        except (TypeError, ValueError):
            raise MalformedForwards("amounts that are not integers") from None
        return cls(list(kinds), ids, ts_ms, channels, exact)
