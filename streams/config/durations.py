"""Durations written as in the settings file: "30s", "5m", "1h", "7d"."""

from __future__ import annotations

import re

__all__ = ["MINUTE_MS", "parse_duration_ms"]

MINUTE_MS = 60_000
_UNIT_MS = {"s": 1_000, "m": MINUTE_MS, "h": 60 * MINUTE_MS, "d": 24 * 60 * MINUTE_MS}
_DURATION = re.compile(r"([1-9][0-9]{0,6})([smhd])")


def parse_duration_ms(text: str) -> int:
    """Milliseconds in a duration like ``"5m"``; ValueError says what is allowed."""
    match = _DURATION.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise ValueError(
            f"{text!r} is not a duration: write a whole number and a unit s, m, h or d"
            ' (for example "5m", "24h", "7d")'
        )
    return int(match.group(1)) * _UNIT_MS[match.group(2)]
