"""KPI targets from the settings' ``[[targets]]`` entries: parsed, checked, resolved.

Pure: nothing from faust, Kafka or prometheus. One entry sets a minimum and/or a
maximum for one KPI of one campaign, or of every campaign (``campaign`` omitted or
``"*"``); a campaign's own entry replaces the default for that KPI and bound::

    [[targets]]
    kpi = "roas_ratio"       # a KPI of SPEC section 2, without "marketing_"
    min = 2.0                # and/or max; ratios are fractions (0.015 is 1.5 %)
    window = "1h"            # one of [kpi] windows, or "total"
    for = "15m"              # breached this long before the alert fires
    severity = "page"        # or "ticket"
    min_denominator = 100    # no alert below 100 of spend (see KPIS for each KPI)

or a relative drop against the same time a day or a week before (ratio and money KPIs
with a denominator, not CAC, whose rise is the bad news)::

    [[targets]]
    kpi = "roas_ratio"
    drop = 0.3               # alert when 30 % below the same time last week
    versus = "1w"            # or "1d"
    window = "1h"
    for = "30m"
    min_denominator = 100    # in the window now and in the window compared with

Lifetime value is judged per horizon (``[kpi] ltv_horizons``) over ``window = "total"``,
the only window it has; ``horizon`` defaults to the first of them::

    [[targets]]
    kpi = "ltv_cac_ratio"
    min = 3                  # customers bring back 3 times what they cost
    horizon = "90d"
    min_denominator = 500    # of spend since the campaign began
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Final, Literal, cast, get_args

from streams.config.durations import parse_duration_ms
from streams.config.errors import SettingsError
from streams.events.validation import EventType

__all__ = [
    "DEFAULT_CAMPAIGN",
    "DEFAULT_LTV_HORIZONS",
    "KPIS",
    "Bound",
    "Kpi",
    "Severity",
    "Target",
    "Versus",
    "parse_targets",
    "resolve_targets",
]

Bound = Literal["min", "max", "drop"]
Versus = Literal["1d", "1w"]
Severity = Literal["page", "ticket"]
KpiKind = Literal["count", "money", "ratio"]

DEFAULT_CAMPAIGN: Final = "*"
DEFAULT_LTV_HORIZONS: Final = ("30d", "90d", "365d")
"""``[kpi] ltv_horizons`` when the settings give none."""
_BY_HORIZON: Final = frozenset({"ltv_cac_ratio"})
"""KPIs with a ``horizon`` label, served for ``window="total"`` only."""
_CAMPAIGN: Final = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_KEYS: Final = ("kpi", "campaign", "min", "max", "window", "for", "severity",
                "min_denominator", "drop", "versus", "horizon")


@dataclass(frozen=True, slots=True)
class Kpi:
    """What a target needs to know about one KPI."""

    kind: KpiKind
    """count, money (reporting currency) or ratio (a fraction)."""
    guard: str | None
    """The count or money KPI ``min_denominator`` is measured in; None for counts."""
    inputs: tuple[EventType, ...]
    """Event types the KPI is computed from: a quiet tracker of one of them explains it."""


KPIS: Final[Mapping[str, Kpi]] = {
    "views": Kpi("count", None, ("view",)),
    "completed_views": Kpi("count", None, ("view",)),
    "engagements": Kpi("count", None, ("engagement",)),
    "clicks": Kpi("count", None, ("click",)),
    "orders": Kpi("count", None, ("order",)),
    "new_customers": Kpi("count", None, ("order",)),
    "revenue": Kpi("money", None, ("order",)),
    "spend": Kpi("money", None, ("spend",)),
    "click_through_ratio": Kpi("ratio", "views", ("view", "click")),
    "engagement_ratio": Kpi("ratio", "views", ("view", "engagement")),
    "completion_ratio": Kpi("ratio", "views", ("view",)),
    "conversion_ratio": Kpi("ratio", "clicks", ("click", "order")),
    "roas_ratio": Kpi("ratio", "spend", ("order", "spend")),
    "roi_ratio": Kpi("ratio", "spend", ("order", "spend")),
    # Guarded by spend, not by new customers: spend with no new customer at all is the
    # worst CAC there is, and must still breach a maximum once enough has been spent.
    "cac": Kpi("money", "spend", ("order", "spend")),
    "aov": Kpi("money", "orders", ("order",)),
    "repeat_purchase_ratio": Kpi("ratio", "orders", ("order",)),
    # Gross profit may be negative (cost above revenue), so POAS has no floor of its own.
    "poas_ratio": Kpi("ratio", "spend", ("order", "spend")),
    # Per horizon, over window "total". Guarded by spend like CAC: spend that has won no
    # customer yet is an LTV:CAC of 0 for the alert, below any minimum.
    "ltv_cac_ratio": Kpi("ratio", "spend", ("order", "spend")),
}
"""Every KPI of SPEC section 2 by its metric name without ``marketing_``."""


@dataclass(frozen=True, slots=True)
class Target:
    """One bound of one KPI, for one campaign or (``campaign == "*"``) the default."""

    kpi: str
    campaign: str
    bound: Bound
    value: Decimal
    """The limit, in the KPI's unit: a fraction for ratios, reporting currency for money."""
    window: str
    for_ms: int
    severity: Severity
    min_denominator: Decimal
    """Least amount of ``KPIS[kpi].guard`` in the window for the target to be judged."""
    entry: int
    """1-based position among the ``[[targets]]`` entries, for messages."""
    versus: Versus = "1w"
    """Drop targets: the value is compared with the KPI this long before."""
    horizon: str = ""
    """LTV targets: the lifetime-value horizon (``[kpi] ltv_horizons``); "" for the rest."""

    @property
    def guard(self) -> str | None:
        return KPIS[self.kpi].guard


def resolve_targets(targets: Sequence[Target], campaign: str) -> list[Target]:
    """The targets that hold for ``campaign``: its own entry, else the default, per KPI+bound."""
    chosen: dict[tuple[str, str, Bound], Target] = {}
    for wanted in (DEFAULT_CAMPAIGN, campaign):  # the campaign's own entries last: they win
        chosen.update({(t.kpi, t.horizon, t.bound): t for t in targets if t.campaign == wanted})
    return list(chosen.values())


def parse_targets(value: object, windows: Sequence[str],
                  horizons: Sequence[str] = DEFAULT_LTV_HORIZONS) -> tuple[Target, ...]:
    """Targets from the ``targets`` array of tables; SettingsError names the entry and key.

    ``horizons``: the ``[kpi] ltv_horizons``, for LTV targets' ``horizon``."""
    if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
        raise SettingsError("[[targets]]", "must be an array of tables: write [[targets]] entries")
    targets: list[Target] = []
    seen: dict[tuple[str, str, str, Bound], int] = {}
    for number, entry in enumerate(value, start=1):
        for target in _entry(number, entry, (*windows, "total"), horizons):
            key = (target.kpi, target.horizon, target.campaign, target.bound)
            if key in seen:
                over = f" over {target.horizon}" if target.horizon else ""
                raise SettingsError(
                    f"[[targets]] {number}",
                    f"entry {seen[key]} already sets the {target.bound} of {target.kpi}"
                    f"{over} for campaign {target.campaign!r}",
                )
            seen[key] = number
            targets.append(target)
    return tuple(targets)


def _entry(number: int, entry: Mapping[str, Any], windows: Sequence[str],
           horizons: Sequence[str]) -> list[Target]:
    def setting(key: str) -> str:
        return f"[[targets]] {number} {key}"

    for key in entry:
        if key not in _KEYS:
            raise SettingsError(setting(key), f"unknown key; allowed: {', '.join(_KEYS)}")
    kpi_name = entry.get("kpi")
    if not isinstance(kpi_name, str) or kpi_name not in KPIS:
        raise SettingsError(
            setting("kpi"), f"{kpi_name!r} is not a KPI; one of {', '.join(KPIS)}"
        )
    kpi = KPIS[kpi_name]
    campaign = entry.get("campaign", DEFAULT_CAMPAIGN)
    if not isinstance(campaign, str) or not (
        campaign == DEFAULT_CAMPAIGN or _CAMPAIGN.match(campaign)
    ):
        raise SettingsError(
            setting("campaign"),
            f"{campaign!r} is not a campaign id (1-128 characters of A-Za-z0-9._:-) or '*'",
        )
    bounds: dict[Bound, Decimal] = {}
    for bound in ("min", "max"):
        if bound in entry:
            bounds[bound] = _limit(entry[bound], kpi_name, kpi, setting(bound))
    versus = _drop(entry, kpi_name, kpi, bounds, setting)
    if not bounds:
        raise SettingsError(setting("min"), "give min, max, drop or a mix")
    if "min" in bounds and "max" in bounds and bounds["min"] >= bounds["max"]:
        raise SettingsError(
            setting("max"), f"max {bounds['max']} must be above min {bounds['min']}"
        )
    window, horizon = _window_and_horizon(entry, kpi_name, windows, horizons, setting)
    for_ms = _for(entry.get("for", "15m"), setting("for"))
    severity = entry.get("severity", "ticket")
    if severity not in get_args(Severity):
        raise SettingsError(
            setting("severity"), f"{severity!r} is not one of {', '.join(get_args(Severity))}"
        )
    if "min_denominator" in entry and kpi.guard is None:
        raise SettingsError(
            setting("min_denominator"), f"{kpi_name} is a {kpi.kind}: it has no denominator"
        )
    min_denominator = _number(entry.get("min_denominator", 0), setting("min_denominator"))
    if min_denominator < 0:
        raise SettingsError(
            setting("min_denominator"), f"must be 0 or more, got {min_denominator}"
        )
    return [
        Target(kpi_name, campaign, bound, limit, window, for_ms, severity, min_denominator,
               number, versus, horizon)
        for bound, limit in bounds.items()
    ]


def _window_and_horizon(entry: Mapping[str, Any], kpi_name: str, windows: Sequence[str],
                        horizons: Sequence[str], setting: Callable[[str], str]
                        ) -> tuple[str, str]:
    """The entry's window, and its horizon ("" for a KPI without one)."""
    if kpi_name not in _BY_HORIZON:
        if "horizon" in entry:
            raise SettingsError(setting("horizon"), f"{kpi_name} has no horizon; only "
                                f"{', '.join(sorted(_BY_HORIZON))} has")
        window = entry.get("window")
        if not isinstance(window, str) or window not in windows:
            raise SettingsError(
                setting("window"), f"{window!r} is not a window; one of {', '.join(windows)}"
            )
        return window, ""
    window = entry.get("window", "total")
    if window != "total":
        raise SettingsError(setting("window"), f"{kpi_name} is served over window 'total' "
                            f"only (lifetime value), got {window!r}")
    if not horizons:
        raise SettingsError(setting("horizon"), "no [kpi] ltv_horizons (a list of durations) to "
                            "judge lifetime value over")
    horizon = entry.get("horizon", horizons[0])
    if not isinstance(horizon, str) or horizon not in horizons:
        raise SettingsError(setting("horizon"), f"{horizon!r} is not one of [kpi] "
                            f"ltv_horizons: {', '.join(horizons)}")
    return window, horizon


def _drop(entry: Mapping[str, Any], kpi_name: str, kpi: Kpi, bounds: dict[Bound, Decimal],
          setting: Callable[[str], str]) -> Versus:
    """Reads ``drop`` into ``bounds``; returns ``versus`` (refused without a drop)."""
    versus = entry.get("versus", "1w")
    if "drop" not in entry:
        if "versus" in entry:
            raise SettingsError(setting("versus"), "only a drop target compares with the past")
        return "1w"
    if kpi.guard is None or kpi_name == "cac" or kpi_name in _BY_HORIZON:
        raise SettingsError(setting("drop"), f"{kpi_name} cannot have a drop target; ratio "
                            "and money KPIs with a denominator can, except cac and "
                            "ltv_cac_ratio (a lifetime figure, no trailing window)")
    drop = _number(entry["drop"], setting("drop"))
    if not 0 < drop < 1:
        raise SettingsError(setting("drop"), f"must be a fraction above 0 and below 1 (0.3 "
                            f"is 30 % below the past), got {drop}")
    if versus not in get_args(Versus):
        raise SettingsError(setting("versus"), f"{versus!r} is not one of 1d, 1w")
    bounds["drop"] = drop
    return cast(Versus, versus)


def _number(value: object, setting: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise SettingsError(setting, f"{value!r} must be a number")
    try:
        parsed = Decimal(str(value).strip())
    except InvalidOperation:
        raise SettingsError(setting, f"{value!r} must be a number") from None
    if not parsed.is_finite():
        raise SettingsError(setting, f"{value!r} must be a finite number")
    return parsed


def _limit(value: object, kpi_name: str, kpi: Kpi, setting: str) -> Decimal:
    limit = _number(value, setting)
    # ROI is -1 when nothing comes back; POAS has no floor (cost may exceed revenue).
    if kpi_name == "poas_ratio":
        return limit
    lowest = Decimal(-1) if kpi_name == "roi_ratio" else Decimal(0)
    if limit < lowest:
        raise SettingsError(setting, f"{kpi_name} is never below {lowest}, got {limit}")
    return limit


def _for(value: object, setting: str) -> int:
    try:
        return parse_duration_ms(value)  # type: ignore[arg-type]
    except ValueError as exc:
        raise SettingsError(setting, str(exc)) from None
