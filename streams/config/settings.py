"""One frozen settings object: the TOML file named by KPISTREAM_CONFIG, then KPISTREAM_* env."""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from pathlib import Path
from typing import Any

from streams.config.budgets import Budget, parse_budgets
from streams.config.collector import CollectorSettings, collector_settings
from streams.config.durations import MINUTE_MS, parse_duration_ms
from streams.config.errors import SettingsError
from streams.config.kafka import KafkaSettings, kafka_settings
from streams.config.targets import DEFAULT_LTV_HORIZONS, Target, parse_targets
from streams.events.validation import EventType

__all__ = ["EVENT_TOPIC_KEYS", "Horizon", "Settings", "Topics", "Window", "load_settings"]

EVENT_TOPIC_KEYS = ("views", "engagements", "clicks", "orders", "spend")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_CAMPAIGN = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
_MAX_WINDOW_MS = 90 * 24 * 60 * MINUTE_MS
_DAY_MS = 24 * 60 * MINUTE_MS
_LONGEST_DAY_MINUTES = 25 * 60
"""A local day when clocks go back: daily budgets sum spend from local midnight."""


@dataclass(frozen=True, slots=True)
class Window:
    """A trailing window: its label as configured and its length in whole minutes."""

    label: str
    minutes: int


@dataclass(frozen=True, slots=True)
class Horizon:
    """A lifetime-value horizon: its label as configured (``horizon`` label) and its days."""

    label: str
    days: int


@dataclass(frozen=True, slots=True)
class Topics:
    """Kafka topic names, from the ``[topics]`` table."""

    views: str = "marketing.views"
    engagements: str = "marketing.engagements"
    clicks: str = "marketing.clicks"
    orders: str = "marketing.orders"
    spend: str = "marketing.spend"
    deadletter: str = "marketing.deadletter"


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the worker reads at start; nothing else reads the environment."""

    broker: str = "kafka://localhost:9092"
    """KPISTREAM_BROKER: bootstrap servers in Faust URL form (``kafka://h1:9092;h2:9092``)."""
    app_id: str = "kpistream"
    """KPISTREAM_APP_ID: Faust app id and consumer group."""
    web_port: int = 6066
    """KPISTREAM_WEB_PORT: port of /metrics, /health, /ready."""
    web_host: str = "0.0.0.0"
    """KPISTREAM_WEB_HOST: address the web server binds."""
    data_dir: Path = Path("./kpistream-data")
    """KPISTREAM_DATA_DIR: local state."""
    partitions: int = 8
    """KPISTREAM_PARTITIONS or [kafka] partitions: partitions of the topics kpistream creates."""
    windows: tuple[Window, ...] = (Window("5m", 5), Window("1h", 60), Window("24h", 1440))
    """[kpi] windows: trailing windows besides ``total``."""
    reporting_currency: str = "USD"
    """[kpi] reporting_currency."""
    attribution_window_ms: int = 7 * 24 * 60 * MINUTE_MS
    """[kpi] attribution_window: how long a click can claim an order."""
    dedup_window_ms: int = 24 * 60 * MINUTE_MS
    """[kpi] dedup_window: how long an event id is remembered to drop a second delivery."""
    click_grace_ms: int = 60_000
    """[kpi] click_grace: how long an order waits for its click to be read (topics are
    read independently) before it counts as unattributed."""
    customer_window_ms: int = 400 * 24 * 60 * MINUTE_MS
    """[kpi] customer_window: how long a customer is remembered to tell new from returning."""
    ltv_horizons: tuple[Horizon, ...] = tuple(
        Horizon(label, int(label[:-1])) for label in DEFAULT_LTV_HORIZONS)
    """[kpi] ltv_horizons: lifetime-value horizons, whole days (``marketing_ltv``)."""
    max_campaign_channels: int = 10_000
    """[kpi] max_campaign_channels: live campaign-channels per deployment at most (SPEC 4);
    events that would start one more are dead-lettered."""
    campaign_retention_ms: int = 30 * 24 * 60 * MINUTE_MS
    """[kpi] campaign_retention: a campaign-channel with no event for this long leaves the
    state and /metrics."""
    default_gross_margin: Fraction | None = None
    """[kpi] default_gross_margin: gross profit as a share of revenue for orders without a
    cost (None: such orders add no gross profit)."""
    top_products: int = 10
    """[kpi] top_products: products per campaign, channel and window before ``other``."""
    top_content_types: int = 10
    """[kpi] top_content_types: content types per campaign, channel and window before
    ``other``."""
    fx: Mapping[str, Decimal] = field(default_factory=lambda: {"USD": Decimal(1)})
    """[fx]: units of the reporting currency per unit; the reporting currency is always 1."""
    promo_codes: Mapping[str, str] = field(default_factory=dict)
    """[promo_codes]: promo code -> campaign."""
    topics: Topics = Topics()
    collector: CollectorSettings = field(default_factory=CollectorSettings)
    """[collector]: the HTTP collector (``kpistream collector``)."""
    targets: tuple[Target, ...] = ()
    """[[targets]]: KPI minimums and maximums to alert on (see streams.config.targets)."""
    budgets: tuple[Budget, ...] = ()
    """[[budgets]]: spend budgets per campaign, for pacing (see streams.config.budgets)."""
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    """[kafka]: security and topic settings every client uses."""

    @property
    def event_topics(self) -> dict[str, EventType]:
        """Topic name -> event type, for the five input topics."""
        t = self.topics
        return {
            t.views: "view",
            t.engagements: "engagement",
            t.clicks: "click",
            t.orders: "order",
            t.spend: "spend",
        }

    @property
    def retention_minutes(self) -> int:
        """Minute buckets older than the longest window are expired; with a daily budget,
        not before a local day (up to 25 hours) is over, for its spend since midnight."""
        longest = max(w.minutes for w in self.windows)
        if any(b.period == "day" for b in self.budgets):
            return max(longest, _LONGEST_DAY_MINUTES)
        return longest


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read the TOML file named by KPISTREAM_CONFIG (if any), then KPISTREAM_* overrides."""
    env = os.environ if environ is None else environ
    doc: dict[str, Any] = {}
    config = env.get("KPISTREAM_CONFIG")
    if config:
        try:
            doc = tomllib.loads(Path(config).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise SettingsError("KPISTREAM_CONFIG", f"cannot read {config}: {exc}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError("KPISTREAM_CONFIG", f"{config} is not valid TOML: {exc}") from exc
    return settings_from(doc, env)


def settings_from(doc: Mapping[str, Any], env: Mapping[str, str]) -> Settings:
    """Build settings from a parsed TOML document and environment overrides."""
    kpi = _table(doc, "kpi")
    kafka = _table(doc, "kafka")
    reporting = _currency_code(kpi.get("reporting_currency", "USD"), "[kpi] reporting_currency")
    defaults = Settings()
    windows = _windows(kpi.get("windows", ["5m", "1h", "24h"]))
    horizons = _ltv_horizons(kpi.get("ltv_horizons", list(DEFAULT_LTV_HORIZONS)))
    return Settings(
        broker=_broker(env.get("KPISTREAM_BROKER", defaults.broker)),
        app_id=_app_id(env.get("KPISTREAM_APP_ID", defaults.app_id)),
        web_port=_port(env.get("KPISTREAM_WEB_PORT", str(defaults.web_port))),
        web_host=env.get("KPISTREAM_WEB_HOST", defaults.web_host),
        data_dir=Path(env.get("KPISTREAM_DATA_DIR", str(defaults.data_dir))),
        partitions=_partitions(env.get("KPISTREAM_PARTITIONS", kafka.get("partitions", 8))),
        windows=windows,
        reporting_currency=reporting,
        attribution_window_ms=_duration(
            kpi.get("attribution_window", "7d"), "[kpi] attribution_window"
        ),
        dedup_window_ms=_duration(kpi.get("dedup_window", "24h"), "[kpi] dedup_window"),
        click_grace_ms=_duration(kpi.get("click_grace", "60s"), "[kpi] click_grace"),
        customer_window_ms=_duration(
            kpi.get("customer_window", "400d"), "[kpi] customer_window"
        ),
        max_campaign_channels=_positive_int(kpi.get("max_campaign_channels", 10_000),
                                            "[kpi] max_campaign_channels"),
        ltv_horizons=horizons,
        campaign_retention_ms=_retention(kpi.get("campaign_retention", "30d"), windows),
        default_gross_margin=_margin(kpi.get("default_gross_margin")),
        top_products=_top(kpi.get("top_products", 10), "[kpi] top_products"),
        top_content_types=_top(kpi.get("top_content_types", 10), "[kpi] top_content_types"),
        fx=_fx(_table(doc, "fx"), reporting),
        promo_codes=_promo_codes(_table(doc, "promo_codes")),
        topics=_topics(_table(doc, "topics")),
        collector=collector_settings(_table(doc, "collector"), env),
        targets=parse_targets(doc.get("targets", []), [w.label for w in windows],
                              [h.label for h in horizons]),
        budgets=_budgets(doc),
        kafka=kafka_settings(kafka, env),
    )


def _margin(value: object) -> Fraction | None:
    """[kpi] default_gross_margin: a share of revenue from 0 to 1, exact as written."""
    if value is None:
        return None
    setting = "[kpi] default_gross_margin"
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise SettingsError(setting, f"must be a number from 0 to 1, like 0.35; got {value!r}")
    try:
        margin = Fraction(Decimal(str(value)))
    except (ArithmeticError, ValueError):
        raise SettingsError(setting, f"must be a number from 0 to 1, like 0.35; "
                                     f"got {value!r}") from None
    if not 0 <= margin <= 1:
        raise SettingsError(setting, f"must be from 0 to 1 (a share of revenue), got {value!r}")
    return margin


def _top(value: object, setting: str) -> int:
    """How many names a top list shows before ``other``: 1 to 100."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 100:
        raise SettingsError(setting, f"must be a whole number from 1 to 100, got {value!r}")
    return value


def _ltv_horizons(value: object) -> tuple[Horizon, ...]:
    """[kpi] ltv_horizons: a list of distinct positive whole-day durations ("30d", "24h");
    an empty list: no lifetime value."""
    setting = "[kpi] ltv_horizons"
    if not isinstance(value, list):
        raise SettingsError(setting, 'must be a list of durations like ["30d", "90d", "365d"]')
    horizons = [Horizon(label, days)
                for label, days in _whole_durations(value, setting, _DAY_MS, "days")]
    days = [h.days for h in horizons]
    if len(set(days)) != len(days):
        raise SettingsError(setting, "horizons must be distinct, got "
                            f"{[h.label for h in horizons]}")
    return tuple(horizons)


def _whole_durations(items: list[Any], setting: str, unit_ms: int,
                     unit: str) -> list[tuple[str, int]]:
    """(label as written, number of units) of each duration, each a whole number of units."""
    out = []
    for item in items:
        ms = _duration(item, setting)
        if ms % unit_ms:
            raise SettingsError(setting, f"{item!r} is not a whole number of {unit}")
        out.append((str(item).strip(), ms // unit_ms))
    return out


def _budgets(doc: Mapping[str, Any]) -> tuple[Budget, ...]:
    """[[budgets]] (streams.config.budgets checks every entry)."""
    return parse_budgets(doc.get("budgets", []))


def _table(doc: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = doc.get(name, {})
    if not isinstance(value, Mapping):
        raise SettingsError(f"[{name}]", "must be a table")
    return value


def _broker(value: str) -> str:
    if not re.fullmatch(r"[a-z]+://\S+", value):
        raise SettingsError(
            "KPISTREAM_BROKER", f"{value!r} is not a broker URL like kafka://localhost:9092"
        )
    return value


def _app_id(value: str) -> str:
    if not _TOPIC.fullmatch(value):
        raise SettingsError(
            "KPISTREAM_APP_ID", f"{value!r} must be 1-249 characters of A-Za-z0-9._-"
        )
    return value


def _port(value: str) -> int:
    if not value.isascii() or not value.isdigit() or not 1 <= int(value) <= 65535:
        raise SettingsError("KPISTREAM_WEB_PORT", f"{value!r} is not a port number 1-65535")
    return int(value)


def _partitions(value: object) -> int:
    text = str(value)
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= 1024:
        raise SettingsError("KPISTREAM_PARTITIONS", f"{text!r} is not a whole number 1-1024")
    return int(text)


def _duration(value: object, setting: str) -> int:
    try:
        return parse_duration_ms(value)  # type: ignore[arg-type]
    except ValueError as exc:
        raise SettingsError(setting, str(exc)) from None


def _positive_int(value: object, setting: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SettingsError(setting, f"{value!r} is not a whole number of at least 1")
    return value


def _retention(value: object, windows: tuple[Window, ...]) -> int:
    setting = "[kpi] campaign_retention"
    ms = _duration(value, setting)
    longest = max(w.minutes for w in windows) * MINUTE_MS
    if ms < longest:
        raise SettingsError(setting, f"{value!r} is shorter than the longest window "
                            f"({longest // MINUTE_MS} minutes): a campaign-channel would "
                            "leave while its events still count in a window")
    return ms


def _windows(value: object) -> tuple[Window, ...]:
    setting = "[kpi] windows"
    if not isinstance(value, list) or not value:
        raise SettingsError(setting, 'must be a non-empty list like ["5m", "1h", "24h"]')
    windows = []
    for label, minutes in _whole_durations(value, setting, MINUTE_MS, "minutes"):
        if minutes * MINUTE_MS > _MAX_WINDOW_MS:
            raise SettingsError(setting, f"{label!r} is longer than the 90d limit")
        windows.append(Window(label, minutes))
    labels = [w.label for w in windows]
    if len(set(labels)) != len(labels) or "total" in labels:
        raise SettingsError(setting, f"labels must be distinct and not 'total', got {labels}")
    return tuple(windows)


def _currency_code(value: object, setting: str) -> str:
    if not isinstance(value, str) or not _CURRENCY.fullmatch(value):
        raise SettingsError(setting, f"{value!r} is not an ISO 4217 code like USD")
    return value


def _fx(table: Mapping[str, Any], reporting: str) -> dict[str, Decimal]:
    rates = {reporting: Decimal(1)}
    for code, rate in table.items():
        setting = f"[fx] {code}"
        _currency_code(code, setting)
        if isinstance(rate, bool) or not isinstance(rate, int | float | str):
            raise SettingsError(setting, f"rate {rate!r} must be a number")
        try:
            parsed = Decimal(str(rate))
        except InvalidOperation:
            raise SettingsError(setting, f"rate {rate!r} must be a number") from None
        if not parsed.is_finite() or parsed <= 0:
            raise SettingsError(setting, f"rate {rate!r} must be a positive number")
        if code == reporting and parsed != 1:
            raise SettingsError(setting, f"the reporting currency's rate must be 1, got {rate}")
        rates[code] = parsed
    return rates


def _promo_codes(table: Mapping[str, Any]) -> dict[str, str]:
    for code, campaign in table.items():
        if not isinstance(campaign, str) or not _CAMPAIGN.fullmatch(campaign):
            raise SettingsError(
                f"[promo_codes] {code}",
                f"{campaign!r} is not a campaign id (1-128 characters of A-Za-z0-9._:-)",
            )
    return dict(table)


def _topics(table: Mapping[str, Any]) -> Topics:
    allowed = (*EVENT_TOPIC_KEYS, "deadletter")
    for key, name in table.items():
        if key not in allowed:
            raise SettingsError(f"[topics] {key}", f"unknown topic key; allowed: {allowed}")
        if not isinstance(name, str) or not _TOPIC.fullmatch(name):
            raise SettingsError(f"[topics] {key}", f"{name!r} is not a valid Kafka topic name")
    topics = Topics(**table)
    names = [getattr(topics, k) for k in allowed]
    if len(set(names)) != len(names):
        raise SettingsError("[topics]", f"every topic needs its own name, got {names}")
    return topics
