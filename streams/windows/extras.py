"""What a bucket holds beside its counters: viewers, products, content types, LTV credits.

Pure. Most buckets have none of it (``None`` in the state), so it costs nothing where
trackers send no ``user_id``, ``items`` or ``content_type``.

Products and content types are open sets of names a tracker chooses, so each
campaign-channel admits at most ``PRODUCT_CAP`` products and ``CONTENT_CAP`` content types;
a name past the cap counts under ``OTHER`` from then on, for good, so the state of a
campaign-channel stays bounded and the sums over the label stay exact.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from streams.flow.wire import exact_ints, json_safe_ints
from streams.windows.reach import UserSketch

__all__ = [
    "CONTENT_CAP",
    "CONTENT_FIELDS",
    "OTHER",
    "PRODUCT_CAP",
    "PRODUCT_FIELDS",
    "BucketExtras",
    "ExtrasDelta",
    "add_named",
    "bucket_viewers",
    "name_map",
    "named_read",
    "named_wire",
    "renamed",
    "shift_named",
    "summed_named",
]

OTHER: Final = ""
"""Key of the names folded past a cap (no product id or content type is empty)."""
PRODUCT_CAP: Final = 200
CONTENT_CAP: Final = 50
PRODUCT_FIELDS: Final = ("units", "revenue_micros")
CONTENT_FIELDS: Final = ("views", "engagements", "clicks", "orders", "revenue_micros")
UNITS, PRODUCT_REVENUE = range(len(PRODUCT_FIELDS))
C_VIEWS, C_ENGAGEMENTS, C_CLICKS, C_ORDERS, C_REVENUE = range(len(CONTENT_FIELDS))

Named = dict[str, list[int]]
"""name -> counters (``PRODUCT_FIELDS`` or ``CONTENT_FIELDS``)."""


def name_map(names: Iterable[str], known: Named, cap: int) -> dict[str, str] | None:
    """New names past the cap -> ``OTHER``: names are admitted in order while ``known``
    (the total's) has room for them (None: every name keeps its own)."""
    room = cap - len(known)
    mapping: dict[str, str] = {}
    for name in names:
        if name not in known:
            if room > 0:
                room -= 1
            else:
                mapping[name] = OTHER
    return mapping or None


def renamed(named: Named, mapping: dict[str, str] | None) -> Named:
    """``named`` with the names ``mapping`` moves summed under their new name."""
    if mapping is None or mapping.keys().isdisjoint(named):
        return named
    out: Named = {}
    for name, counts in named.items():
        add_named(out, {mapping.get(name, name): counts})
    return out


def add_named(into: Named, delta: Mapping[str, Sequence[int]]) -> None:
    """Add ``delta``'s counters per name into ``into``."""
    for name, counts in delta.items():
        acc = into.get(name)
        if acc is None:
            into[name] = list(counts)
        else:
            for i, value in enumerate(counts):
                acc[i] += value


def shift_named(into: Named, delta: Mapping[str, Sequence[int]], sign: int) -> None:
    """Add (``sign`` 1) or take away (-1) ``delta``'s counters per name; a name left at
    zero leaves (it would not be there when summed afresh: every name a bucket holds has a
    count above zero)."""
    for name, counts in delta.items():
        acc = into.get(name)
        if acc is None:
            into[name] = [sign * value for value in counts]
            continue
        for i, value in enumerate(counts):
            acc[i] += sign * value
        if not any(acc):
            del into[name]


def summed_named(maps: Iterable[Mapping[str, Sequence[int]]]) -> Named:
    """Counters per name over several buckets."""
    sums: Named = {}
    for named in maps:
        add_named(sums, named)
    return sums


@dataclass(slots=True)
class ExtrasDelta:
    """What one message adds to a bucket beside its counters."""

    users: list[int] = field(default_factory=list)
    """User keys of views (``streams.windows.reach.user_key``)."""
    products: Named = field(default_factory=dict)
    content: Named = field(default_factory=dict)
    """Known content types only: ``unknown`` is the counters minus these."""
    ltv: dict[int, int] = field(default_factory=dict)
    """Horizon in days -> revenue credited."""

    def merge(self, other: ExtrasDelta) -> None:
        self.users.extend(other.users)
        add_named(self.products, other.products)
        add_named(self.content, other.content)
        for days, amount in other.ltv.items():
            self.ltv[days] = self.ltv.get(days, 0) + amount


def named_wire(named: Named) -> dict[str, list[Any]]:
    return {name: json_safe_ints(counts) for name, counts in named.items()}


def named_read(wire: Mapping[str, Sequence[int | str]]) -> Named:
    return {name: exact_ints(counts) for name, counts in wire.items()}


def bucket_viewers(extra: Any) -> UserSketch | str | None:
    """The viewers of a bucket's extras in the state's form (a sketch) or the table's (its
    wire text, not decoded)."""
    if isinstance(extra, BucketExtras):
        return extra.reach
    return extra.get("r") if isinstance(extra, dict) else None


def _with_named(held: Named | None, delta: Mapping[str, Sequence[int]]) -> Named | None:
    """``held`` with ``delta`` added (a map made for it if there was none)."""
    if not delta:
        return held
    into: Named = {} if held is None else held
    add_named(into, delta)
    return into


@dataclass(slots=True)
class BucketExtras:
    """A bucket's viewers, products, content types and LTV credits (the total's: all of
    them since the campaign-channel was first seen).

    A map with nothing in it is held as None (a bucket of views with viewers has no
    products or LTV credits: two empty dicts were 128 of its ~480 bytes, ~80 MB of the
    hot buckets at 10,000 campaign-channels); ``products``, ``content`` and ``ltv`` read
    an empty one as a new ``{}``, and ``add`` is the only way in.
    """

    reach: UserSketch | None = None
    held_products: Named | None = None
    held_content: Named | None = None
    held_ltv: dict[int, int] | None = None

    def __post_init__(self) -> None:
        self.held_products = self.held_products or None
        self.held_content = self.held_content or None
        self.held_ltv = self.held_ltv or None

    @property
    def products(self) -> Named:
        return {} if self.held_products is None else self.held_products

    @property
    def content(self) -> Named:
        return {} if self.held_content is None else self.held_content

    @property
    def ltv(self) -> dict[int, int]:
        return {} if self.held_ltv is None else self.held_ltv

    def add(self, delta: ExtrasDelta, sketch: UserSketch | None) -> None:
        """Add a message's extras (names admitted already); ``sketch`` is this bucket's
        viewers with its users added already."""
        if sketch is not None:
            self.reach = sketch
        self.held_products = _with_named(self.held_products, delta.products)
        self.held_content = _with_named(self.held_content, delta.content)
        if delta.ltv:
            ltv = self.held_ltv
            if ltv is None:
                ltv = self.held_ltv = {}
            for days, amount in delta.ltv.items():
                ltv[days] = ltv.get(days, 0) + amount

    def to_wire(self) -> dict[str, Any]:
        """The changelog form: only what is there."""
        wire: dict[str, Any] = {}
        if self.reach is not None:
            wire["r"] = self.reach.to_wire()
        if self.products:
            wire["p"] = named_wire(self.products)
        if self.content:
            wire["c"] = named_wire(self.content)
        if self.ltv:
            wire["l"] = {str(days): json_safe_ints([amount])[0]
                         for days, amount in self.ltv.items()}
        return wire

    @classmethod
    def from_wire(cls, wire: Mapping[str, Any]) -> BucketExtras:
        reach = wire.get("r")
        return cls(None if reach is None else UserSketch.from_wire(reach),
                   named_read(wire.get("p", {})), named_read(wire.get("c", {})),
                   {int(days): exact_ints([amount])[0]
                    for days, amount in wire.get("l", {}).items()})
