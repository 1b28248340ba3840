"""JSON between the stages and in the changelogs, exact for integers of any size.

Money is counted in millionths, so one valid amount (up to 10^15) is up to 10^21 and a
sum is larger still: past the 64 bits orjson writes (it raises) and reads (it returns a
float, silently inexact). Such an integer travels as its decimal string instead, and
``exact_int`` / ``exact_ints`` read either form back. Everything in range stays a plain
JSON number, so the common case costs one C-speed ``max`` at most.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

__all__ = ["dumps", "exact_int", "exact_ints", "json_safe_ints"]

_LOW = -(2**63)
_HIGH = 2**63 - 1
_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATACLASS
"""Dataclasses too go through ``to_wire``: orjson would write one as an object of its
fields, and a record must read back in the form its ``from_wire`` expects."""


def json_safe_ints(values: list[int]) -> list[Any]:
    """``values``, with any integer past 64 bits as its decimal string."""
    if not values or (min(values) >= _LOW and max(values) <= _HIGH):
        return values
    return [v if _LOW <= v <= _HIGH else str(v) for v in values]


def exact_int(value: int | str) -> int:
    """An integer written by this module, in either form."""
    return value if type(value) is int else int(value)


def exact_ints(values: Sequence[int | str]) -> list[int]:
    """A list of integers written by this module, in either form.

    ``sum`` tells the common case (integers only) in C: it raises at a string, and a
    float (a number too large for orjson's integers) makes the sum one. A rebuild reads
    ~1.2 M lists at 10,000 campaign-channels x 24 h, and a per-item check took 0.7 us of
    each list's 0.9 us (this takes 0.17 us)."""
    try:
        plain = type(sum(values)) is int  # type: ignore[arg-type]  # a string raises
    except TypeError:
        plain = False
    if plain:
        return list(values)  # type: ignore[arg-type]  # integers (bools count as such)
    return [exact_int(v) for v in values]


def dumps(value: Any) -> bytes:
    """``orjson.dumps``, but an integer past 64 bits anywhere inside becomes a string, and
    a record with a ``to_wire`` method is written as what it returns."""
    try:
        return orjson.dumps(value, default=_wire_form, option=_OPTIONS)
    except TypeError:
        return orjson.dumps(_safe(value), default=_wire_form, option=_OPTIONS)


def _wire_form(value: Any) -> Any:
    """orjson's hook for types it does not know (it asks only for those)."""
    to_wire = getattr(value, "to_wire", None)
    if to_wire is None:
        raise TypeError(f"{type(value).__name__} has no wire form")
    return to_wire()



def _safe(value: Any) -> Any:
    if type(value) is int:
        return value if _LOW <= value <= _HIGH else str(value)
    if isinstance(value, list | tuple):
        return [_safe(v) for v in value]
    if isinstance(value, dict):
        return {k: _safe(v) for k, v in value.items()}
    if hasattr(value, "to_wire"):
        return _safe(value.to_wire())
    return value
