"""Spend budgets from the settings' ``[[budgets]]`` entries: parsed and checked.

Pure: nothing from faust, Kafka or prometheus. One entry is one campaign's budget for a
period, in the reporting currency::

    [[budgets]]
    campaign = "summer-sale"
    period = "day"              # day: from local midnight to the next; or lifetime
    amount = 500                # in the reporting currency, above 0
    timezone = "Asia/Jakarta"   # IANA zone: when the budget's day starts
    # start = 2026-12-01        # lifetime only, both required: a date (local midnight)
    # end = 2026-12-31          # or a date-time; a date as end means the end of that day
    for = "30m"                 # pacing out of bounds this long before an alert
    severity = "page"           # of the overspending alert; or "ticket"
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Final, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from streams.config.durations import parse_duration_ms
from streams.config.errors import SettingsError
from streams.config.targets import Severity

__all__ = ["Budget", "Period", "parse_budgets"]

Period = Literal["day", "lifetime"]

_CAMPAIGN: Final = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_KEYS: Final = ("campaign", "period", "amount", "timezone", "start", "end", "for", "severity")


@dataclass(frozen=True, slots=True)
class Budget:
    """One campaign's spend budget for a day (every day) or for its lifetime."""

    campaign: str
    period: Period
    amount: Decimal
    """In the reporting currency."""
    timezone: str
    """IANA zone name; ``zone`` is its ZoneInfo."""
    start_ms: int | None
    """Lifetime budgets: when spending starts (epoch ms); None for daily budgets."""
    end_ms: int | None
    """Lifetime budgets: when the budget must be spent (epoch ms, exclusive)."""
    for_ms: int
    severity: Severity
    entry: int
    """1-based position among the ``[[budgets]]`` entries, for messages."""

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def parse_budgets(value: object) -> tuple[Budget, ...]:
    """Budgets from the ``budgets`` array of tables; SettingsError names the entry and key."""
    if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
        raise SettingsError("[[budgets]]", "must be an array of tables: write [[budgets]] entries")
    budgets: list[Budget] = []
    seen: dict[tuple[str, str], int] = {}
    for number, entry in enumerate(value, start=1):
        budget = _entry(number, entry)
        key = (budget.campaign, budget.period)
        if key in seen:
            raise SettingsError(f"[[budgets]] {number}", f"entry {seen[key]} already sets the "
                                f"{budget.period} budget of campaign {budget.campaign!r}")
        seen[key] = number
        budgets.append(budget)
    return tuple(budgets)


def _entry(number: int, entry: Mapping[str, Any]) -> Budget:
    def setting(key: str) -> str:
        return f"[[budgets]] {number} {key}"

    for key in entry:
        if key not in _KEYS:
            raise SettingsError(setting(key), f"unknown key; allowed: {', '.join(_KEYS)}")
    campaign = entry.get("campaign")
    if not isinstance(campaign, str) or not _CAMPAIGN.match(campaign):
        raise SettingsError(setting("campaign"), f"{campaign!r} is not a campaign id "
                            "(1-128 characters of A-Za-z0-9._:-)")
    period = entry.get("period", "day")
    if period not in get_args(Period):
        raise SettingsError(setting("period"), f"{period!r} is not one of day, lifetime")
    amount = _amount(entry.get("amount"), setting("amount"))
    timezone = entry.get("timezone", "UTC")
    zone = _zone(timezone, setting("timezone"))
    start_ms = end_ms = None
    if period == "lifetime":
        if "start" not in entry:
            raise SettingsError(setting("start"), "a lifetime budget needs start and end")
        if "end" not in entry:
            raise SettingsError(setting("end"), "a lifetime budget needs start and end")
        start_ms = _instant(entry["start"], zone, setting("start"), end_of_day=False)
        end_ms = _instant(entry["end"], zone, setting("end"), end_of_day=True)
        if end_ms <= start_ms:
            raise SettingsError(setting("end"), f"{entry['end']} must be after start "
                                f"{entry['start']}")
    else:
        for key in ("start", "end"):
            if key in entry:
                raise SettingsError(setting(key), "only lifetime budgets have start and end; "
                                    "a daily budget starts again at every local midnight")
    try:
        for_ms = parse_duration_ms(entry.get("for", "30m"))
    except ValueError as exc:
        raise SettingsError(setting("for"), str(exc)) from None
    severity = entry.get("severity", "page")
    if severity not in get_args(Severity):
        raise SettingsError(setting("severity"),
                            f"{severity!r} is not one of {', '.join(get_args(Severity))}")
    return Budget(campaign, period, amount, str(timezone), start_ms, end_ms, for_ms, severity,
                  number)


def _amount(value: object, setting: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise SettingsError(setting, f"{value!r} must be a number (the reporting currency)")
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise SettingsError(setting, f"{value!r} must be a number") from None
    if not amount.is_finite() or amount <= 0:
        raise SettingsError(setting, f"must be above 0, got {value}")
    return amount


def _zone(value: object, setting: str) -> ZoneInfo:
    if not isinstance(value, str) or not value:
        raise SettingsError(setting, f"{value!r} must be an IANA time zone like Asia/Jakarta")
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise SettingsError(setting, f"{value!r} is not a known time zone; write an IANA "
                            "name like Asia/Jakarta, Europe/Berlin or UTC") from None


def _instant(value: object, zone: ZoneInfo, setting: str, *, end_of_day: bool) -> int:
    """Epoch ms of a TOML date, local or offset date-time (a string in ISO form also)."""
    if isinstance(value, str):
        try:
            value = (dt.date.fromisoformat(value) if len(value.strip()) == 10
                     else dt.datetime.fromisoformat(value))
        except ValueError:
            raise SettingsError(setting, f"{value!r} is not a date (2026-12-01) or a "
                                "date-time (2026-12-01T09:00:00)") from None
    if isinstance(value, dt.datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=zone)
    elif isinstance(value, dt.date):
        day = value + dt.timedelta(days=1) if end_of_day else value
        moment = dt.datetime(day.year, day.month, day.day, tzinfo=zone)
    else:
        raise SettingsError(setting, f"{value!r} is not a date or a date-time")
    return round(moment.timestamp() * 1000)
