"""Counted events on their way to their campaign's state, one column per field.

The input and customer stages send a campaign's events to the counting stage through
the ``kpi-events`` topic. Each event is a kind (one letter: what it adds to the
counters), its event id (for dedup), its time, its channel and an amount of money. The
wire form is one JSON array of five columns: decoding five flat lists costs a fraction of
decoding one small list per event.

What only some events carry (a viewer, watch time, a content type, an order's cost and
lines, an LTV credit's horizon) is an ``Extra``, in a sixth column that is there only when
some event of the message has one: ``null`` for an event without, else its ``Extra`` as an
array. Messages of five columns (written before the sixth existed) still read.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

import orjson

from streams.flow.wire import exact_ints, json_safe_ints
from streams.windows.counts import (
    ACTION_FIELDS,
    CLICKS,
    COMPLETED,
    ENGAGEMENTS,
    NEW_CUSTOMERS,
    ORDERS,
    REVENUE,
    SPEND,
    VIEWS,
)

__all__ = [
    "ACTION_KINDS",
    "KIND_TYPES",
    "LTV_CREDIT",
    "NOT_EVENTS",
    "RETRACTION",
    "Extra",
    "Forwards",
    "MalformedForwards",
    "OrderLine",
    "add_event",
]

RETRACTION: Final = "retraction"
"""Dedup type of a correction (an order that is no longer a customer's first)."""
LTV_CREDIT: Final = "ltv"
"""Dedup type of a lifetime-value credit: an order's revenue (or, negative, its taking
back) credited to the campaign-channel that acquired its customer, within a horizon."""
NOT_EVENTS: Final = frozenset({RETRACTION, LTV_CREDIT})
"""Dedup types that are corrections, not events: not in ``kpistream_events``."""

ACTION_KINDS: Final[dict[str, str]] = {
    "like": "l", "comment": "m", "share": "h", "save": "a", "follow": "f",
    "profile_visit": "p",
}
"""Engagement action -> its kind letter."""
_ACTION_OF_KIND: Final = {kind: ACTION_FIELDS[action] for action, kind in ACTION_KINDS.items()}

KIND_TYPES: Final[dict[str, str]] = {
    "v": "view",
    "V": "view",        # completed
    "e": "engagement",  # action not known (written before actions were counted)
    **dict.fromkeys(ACTION_KINDS.values(), "engagement"),
    "c": "click",
    "s": "spend",       # amount: spend
    "o": "order",       # amount: revenue
    "n": "order",       # a new customer's order; amount: revenue
    "r": RETRACTION,    # takes back an order's new customer
    "L": LTV_CREDIT,    # amount: revenue credited (or taken back) within Extra.horizon
}
"""Kind letter -> the event type it counts as (and is deduplicated as)."""


class MalformedForwards(ValueError):
    """An internal message that is not five (or six) columns of equal length."""


OrderLine = tuple[str, int, int]
"""An order line: (product id, quantity, revenue in millionths of the reporting currency)."""


class Extra(NamedTuple):
    """What only some counted events carry."""

    user: int | None = None
    """A view's viewer, as ``streams.windows.reach.user_key`` (never the id itself)."""
    watch_ms: int | None = None
    content: str | None = None
    """Content type of a view, engagement, click, or of the click that attributed an order."""
    cost: int | None = None
    """An order's cost of goods, in millionths of the reporting currency."""
    items: tuple[OrderLine, ...] | None = None
    horizon_days: int | None = None
    """An LTV credit's horizon."""

    def to_wire(self) -> list[Any]:
        items = None if self.items is None else [
            [product, quantity, json_safe_ints([revenue])[0]]
            for product, quantity, revenue in self.items]
        cost = None if self.cost is None else json_safe_ints([self.cost])[0]
        return [self.user, self.watch_ms, self.content, cost, items, self.horizon_days]

    @classmethod
    def from_wire(cls, wire: list[Any]) -> Extra:
        user, watch_ms, content, cost, items, horizon_days = wire
        return cls(user, watch_ms, content, None if cost is None else exact_ints([cost])[0],
                   None if items is None else tuple(
                       (product, quantity, exact_ints([revenue])[0])
                       for product, quantity, revenue in items),
                   horizon_days)


def add_event(acc: list[int], kind: str, amount: int, count: int = 1) -> None:
    """Add what ``count`` events of ``kind`` count to a bucket's counters; ``amount`` is
    the sum of their money."""
    if kind == "v":
        acc[VIEWS] += count
    elif kind == "V":
        acc[VIEWS] += count
        acc[COMPLETED] += count
    elif kind in _ACTION_OF_KIND:
        acc[ENGAGEMENTS] += count
        acc[_ACTION_OF_KIND[kind]] += count
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
    elif kind == "L":
        pass  # an LTV credit adds to the bucket's extras only (streams.windows.extras)
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
    extras: list[Extra | None] | None = None
    """One per event once any event has one (None until then: no event has)."""

    def add(self, kind: str, event_id: str, ts_ms: int, channel: str, amount: int = 0,
            extra: Extra | None = None) -> None:
        self.kinds.append(kind)
        self.ids.append(event_id)
        self.ts_ms.append(ts_ms)
        self.channels.append(channel)
        self.amounts.append(amount)
        if self.extras is not None:
            self.extras.append(extra)
        elif extra is not None:
            self.extras = [None] * (len(self.kinds) - 1)
            self.extras.append(extra)

    def __len__(self) -> int:
        return len(self.kinds)

    def __iter__(self) -> Iterator[tuple[str, str, int, str, int]]:
        return zip(self.kinds, self.ids, self.ts_ms, self.channels, self.amounts, strict=True)

    def extra_of(self, index: int) -> Extra | None:
        return None if self.extras is None else self.extras[index]

    def chunks(self, size: int) -> Iterator[Forwards]:
        """Consecutive pieces of at most ``size`` events."""
        for start in range(0, len(self.kinds), size):
            end = start + size
            extras = None if self.extras is None else self.extras[start:end]
            yield Forwards(self.kinds[start:end], self.ids[start:end], self.ts_ms[start:end],
                           self.channels[start:end], self.amounts[start:end],
                           extras if extras is None or any(extras) else None)

    def to_wire(self) -> bytes:
        columns: list[Any] = ["".join(self.kinds), self.ids, self.ts_ms, self.channels,
                              json_safe_ints(self.amounts)]
        if self.extras is not None:
            columns.append([None if e is None else e.to_wire() for e in self.extras])
        return orjson.dumps(columns)

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
            columns = orjson.loads(raw)
            kinds, ids, ts_ms, channels, amounts, *more = columns
        except (orjson.JSONDecodeError, TypeError, ValueError) as exc:
            raise MalformedForwards(f"not five columns: {exc}") from None
        if len(more) > 1 or not isinstance(kinds, str) or not all(
            isinstance(column, list) and len(column) == len(kinds)
            for column in (ids, ts_ms, channels, amounts, *more)
        ):
            raise MalformedForwards("columns of different lengths")
        if not set(kinds) <= KIND_TYPES.keys():
            raise MalformedForwards(f"unknown event kinds {set(kinds) - KIND_TYPES.keys()}")
        try:
            exact = exact_ints(amounts)
        except (TypeError, ValueError):
            raise MalformedForwards("amounts that are not integers") from None
        extras = None
        if more:
            try:
                extras = [None if e is None else Extra.from_wire(e) for e in more[0]]
            except (TypeError, ValueError) as exc:
                raise MalformedForwards(f"extras that do not read: {exc}") from None
        return cls(list(kinds), ids, ts_ms, channels, exact, extras)
