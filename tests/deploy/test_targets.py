"""KPI targets: parsing, per-campaign resolution, the target and health collectors, the
rule file generator. No broker."""

from __future__ import annotations

import re
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from metrics.health_gauges import HealthCollector, consumer_lag
from metrics.names import KPI_HELP
from metrics.target_gauges import TargetCollector
from streams.commands import cli
from streams.commands.alert_rules import HORIZON_RATIOS, RATIOS, SUMMED, alert_rules, rule_groups
from streams.config.errors import SettingsError
from streams.config.settings import Settings, settings_from
from streams.config.targets import KPIS, Target, parse_targets, resolve_targets

WINDOWS = ["5m", "1h", "24h"]


def targets_of(toml: str, windows: list[str] = WINDOWS) -> tuple[Target, ...]:
    return parse_targets(tomllib.loads(toml).get("targets", []), windows)


# SPEC 2's second table, without marketing_; of these only POAS and LTV:CAC take targets.
SEED_KPIS = {
    "reach", "frequency", "engagement_actions", "watch_seconds", "average_watch_seconds",
    "gross_profit", "orders_without_cost", "poas_ratio", "ltv", "ltv_cac_ratio",
    "product_units", "product_revenue", "content_views", "content_engagements",
    "content_clicks", "content_orders", "content_revenue"}
# Why not: distinct viewers do not add up over channels (reach, frequency), the count
# behind the average is not served, breakdowns have a label a target does not name, and
# the sums with no ratio of their own are not what a campaign is judged by.
NO_TARGET = SEED_KPIS - {"poas_ratio", "ltv_cac_ratio"}


def test_every_kpi_of_the_contract_can_have_a_target() -> None:
    contract = {name.removeprefix("marketing_") for name in KPI_HELP} | SEED_KPIS
    assert set(KPIS) == contract - NO_TARGET
    assert set(KPIS) <= set(RATIOS) | set(SUMMED) | set(HORIZON_RATIOS)
    assert not set(RATIOS) & set(SUMMED)
    # A ratio is guarded by its denominator, except CAC (by spend, see streams.config.targets).
    for kpi, (_, denominator) in RATIOS.items():
        assert KPIS[kpi].guard == ("spend" if kpi == "cac" else denominator)
    assert KPIS["ltv_cac_ratio"].guard == HORIZON_RATIOS["ltv_cac_ratio"] == "spend"
    assert all(KPIS[k].guard is None for k in SUMMED if k in KPIS)


def test_an_entry_with_min_and_max_gives_two_targets_with_the_defaults() -> None:
    targets = targets_of('[[targets]]\nkpi = "click_through_ratio"\nmin = 0.008\n'
                         'max = "0.2"\nwindow = "1h"\n')
    assert [(t.bound, t.value) for t in targets] == [("min", Decimal("0.008")),
                                                    ("max", Decimal("0.2"))]
    for t in targets:
        assert (t.campaign, t.window, t.for_ms, t.severity, t.min_denominator, t.guard) == (
            "*", "1h", 15 * 60_000, "ticket", Decimal(0), "views")


def test_a_full_entry_is_read_as_written() -> None:
    (t,) = targets_of('[[targets]]\nkpi = "roas_ratio"\ncampaign = "summer.sale"\nmin = 2\n'
                      'window = "total"\nfor = "90s"\nseverity = "page"\n'
                      "min_denominator = 100.5\n")
    assert t == Target("roas_ratio", "summer.sale", "min", Decimal(2), "total", 90_000, "page",
                       Decimal("100.5"), 1)


@pytest.mark.parametrize(("toml", "setting"), [
    # the targets are not an array of tables
    ('targets = "roas_ratio"', "[[targets]]"),
    # kpi missing, unknown, or given with its marketing_ prefix
    ('[[targets]]\nmin = 1\nwindow = "1h"', "[[targets]] 1 kpi"),
    ('[[targets]]\nkpi = "roas"\nmin = 1\nwindow = "1h"', "[[targets]] 1 kpi"),
    ('[[targets]]\nkpi = "marketing_roas_ratio"\nmin = 1\nwindow = "1h"', "[[targets]] 1 kpi"),
    # a key nobody reads
    ('[[targets]]\nkpi = "roas_ratio"\nmin = 1\nwindow = "1h"\nthreshold = 2',
     "[[targets]] 1 threshold"),
    # neither min nor max; min not below max; not a number; below what the KPI can be
    ('[[targets]]\nkpi = "roas_ratio"\nwindow = "1h"', "[[targets]] 1 min"),
    ('[[targets]]\nkpi = "roas_ratio"\nmin = 2\nmax = 2\nwindow = "1h"', "[[targets]] 1 max"),
    ('[[targets]]\nkpi = "roas_ratio"\nmin = true\nwindow = "1h"', "[[targets]] 1 min"),
    ('[[targets]]\nkpi = "roas_ratio"\nmin = "two"\nwindow = "1h"', "[[targets]] 1 min"),
    ('[[targets]]\nkpi = "roas_ratio"\nmin = nan\nwindow = "1h"', "[[targets]] 1 min"),
    ('[[targets]]\nkpi = "click_through_ratio"\nmin = -0.1\nwindow = "1h"', "[[targets]] 1 min"),
    ('[[targets]]\nkpi = "roi_ratio"\nmin = -1.5\nwindow = "1h"', "[[targets]] 1 min"),
    # window missing or not configured
    ('[[targets]]\nkpi = "roas_ratio"\nmin = 1', "[[targets]] 1 window"),
    ('[[targets]]\nkpi = "roas_ratio"\nmin = 1\nwindow = "7d"', "[[targets]] 1 window"),
    # for, severity, campaign
    ('[[targets]]\nkpi = "roas_ratio"\nmin = 1\nwindow = "1h"\nfor = "soon"',
     "[[targets]] 1 for"),
    ('[[targets]]\nkpi = "roas_ratio"\nmin = 1\nwindow = "1h"\nseverity = "urgent"',
     "[[targets]] 1 severity"),
    ('[[targets]]\nkpi = "roas_ratio"\nmin = 1\nwindow = "1h"\ncampaign = "a b"',
     "[[targets]] 1 campaign"),
    # a count has no denominator; a denominator is not negative
    ('[[targets]]\nkpi = "views"\nmin = 10\nwindow = "1h"\nmin_denominator = 5',
     "[[targets]] 1 min_denominator"),
    ('[[targets]]\nkpi = "roas_ratio"\nmin = 1\nwindow = "1h"\nmin_denominator = -5',
     "[[targets]] 1 min_denominator"),
    # the second entry is named as the second, and a repeated KPI+bound+campaign is refused
    ('[[targets]]\nkpi = "roas_ratio"\nmin = 1\nwindow = "1h"\n'
     '[[targets]]\nkpi = "roas"\nmin = 1\nwindow = "1h"', "[[targets]] 2 kpi"),
    ('[[targets]]\nkpi = "roas_ratio"\nmin = 1\nwindow = "1h"\n'
     '[[targets]]\nkpi = "roas_ratio"\nmin = 3\nmax = 9\nwindow = "24h"', "[[targets]] 2"),
    # LTV:CAC: over window total only, a horizon of [kpi] ltv_horizons, once per horizon;
    # no other KPI has a horizon
    ('[[targets]]\nkpi = "ltv_cac_ratio"\nmin = 3\nwindow = "24h"', "[[targets]] 1 window"),
    ('[[targets]]\nkpi = "ltv_cac_ratio"\nmin = 3\nhorizon = "60d"', "[[targets]] 1 horizon"),
    ('[[targets]]\nkpi = "ltv_cac_ratio"\nmin = 3\nhorizon = 90', "[[targets]] 1 horizon"),
    ('[[targets]]\nkpi = "ltv_cac_ratio"\nmin = -1', "[[targets]] 1 min"),
    ('[[targets]]\nkpi = "roas_ratio"\nmin = 1\nwindow = "1h"\nhorizon = "30d"',
     "[[targets]] 1 horizon"),
    ('[[targets]]\nkpi = "ltv_cac_ratio"\nmin = 3\n'
     '[[targets]]\nkpi = "ltv_cac_ratio"\nmin = 2\nhorizon = "30d"', "[[targets]] 2"),
])
def test_a_bad_target_fails_naming_the_setting(toml: str, setting: str) -> None:
    with pytest.raises(SettingsError) as error:
        targets_of(toml)
    assert error.value.setting == setting
    assert str(error.value).startswith(f"setting {setting}:")


def test_roi_may_be_negative() -> None:
    (t,) = targets_of('[[targets]]\nkpi = "roi_ratio"\nmin = -0.25\nwindow = "1h"')
    assert t.value == Decimal("-0.25")


def test_poas_may_be_below_minus_one() -> None:
    # Gross profit is negative when goods cost more than they sold for: no floor at -1.
    (t,) = targets_of('[[targets]]\nkpi = "poas_ratio"\nmin = -2.5\nwindow = "24h"\n'
                      "min_denominator = 300")
    assert (t.value, t.guard, t.horizon) == (Decimal("-2.5"), "spend", "")


def test_ltv_cac_targets_are_per_horizon_over_window_total() -> None:
    toml = ('[[targets]]\nkpi = "ltv_cac_ratio"\nmin = 3\nmin_denominator = 1000\n'
            '[[targets]]\nkpi = "ltv_cac_ratio"\nmin = 4\nhorizon = "365d"\nwindow = "total"\n'
            '[[targets]]\nkpi = "ltv_cac_ratio"\ncampaign = "bf"\nmin = 1\nhorizon = "365d"\n')
    targets = targets_of(toml)
    # without horizon: the first of [kpi] ltv_horizons (default 30d, 90d, 365d)
    assert [(t.campaign, t.horizon, t.window, t.value, t.guard) for t in targets] == [
        ("*", "30d", "total", 3, "spend"), ("*", "365d", "total", 4, "spend"),
        ("bf", "365d", "total", 1, "spend")]
    # bf's own 365-day entry replaces that horizon's default only
    assert sorted((t.horizon, t.value) for t in resolve_targets(targets, "bf")) == [
        ("30d", 3), ("365d", 1)]
    # the settings' own [kpi] ltv_horizons, or their default
    assert [t.horizon for t in settings_from(tomllib.loads(toml), {}).targets] == [
        "30d", "365d", "365d"]
    doc = tomllib.loads('[kpi]\nltv_horizons = ["7d", "60d"]\n'
                        '[[targets]]\nkpi = "ltv_cac_ratio"\nmin = 3\n')
    assert [t.horizon for t in settings_from(doc, {}).targets] == ["7d"]
    doc["targets"][0]["horizon"] = "365d"
    with pytest.raises(SettingsError, match=r"\[\[targets\]\] 1 horizon: '365d' is not one "
                       r"of \[kpi\] ltv_horizons: 7d, 60d"):
        settings_from(doc, {})


def test_settings_read_targets_against_their_own_windows() -> None:
    doc = tomllib.loads('[kpi]\nwindows = ["10m"]\n'
                        '[[targets]]\nkpi = "aov"\nmin = 5\nwindow = "10m"\n')
    assert [t.window for t in settings_from(doc, {}).targets] == ["10m"]
    doc["targets"][0]["window"] = "1h"  # a default window, but not configured here
    with pytest.raises(SettingsError, match=r"\[\[targets\]\] 1 window"):
        settings_from(doc, {})
    assert Settings().targets == ()


TARGETS = """
[[targets]]
kpi = "roas_ratio"
min = 2
window = "1h"
min_denominator = 100

[[targets]]
kpi = "roas_ratio"
max = 50
window = "1h"

[[targets]]
kpi = "roas_ratio"
campaign = "bf"
min = 1.2
window = "24h"
for = "30m"
severity = "page"
min_denominator = 500

[[targets]]
kpi = "views"
campaign = "bf"
min = 1000
window = "5m"
"""


def test_a_campaigns_own_entry_replaces_the_default_for_that_kpi_and_bound_only() -> None:
    targets = targets_of(TARGETS)
    bf = {(t.kpi, t.bound): t for t in resolve_targets(targets, "bf")}
    assert (bf[("roas_ratio", "min")].value, bf[("roas_ratio", "min")].window) == (
        Decimal("1.2"), "24h")
    assert bf[("roas_ratio", "max")].campaign == "*"  # no own max: the default's
    assert bf[("views", "min")].value == 1000
    other = {(t.kpi, t.bound): t for t in resolve_targets(targets, "other")}
    assert set(other) == {("roas_ratio", "min"), ("roas_ratio", "max")}
    assert other[("roas_ratio", "min")].value == 2
    only_bf = [t for t in targets if t.campaign == "bf"]
    assert resolve_targets(only_bf, "other") == []  # no default, no own entry: no target


def test_the_worker_exports_the_target_that_holds_for_each_owned_campaign() -> None:
    registry = CollectorRegistry()
    registry.register(TargetCollector(targets_of(TARGETS), lambda: ["other", "bf", "bf"]))

    def value(name: str, campaign: str, kpi: str, bound: str, window: str) -> float | None:
        labels = {"campaign": campaign, "kpi": kpi, "bound": bound, "window": window}
        return registry.get_sample_value(name, labels)

    target, floor = "marketing_kpi_target", "marketing_kpi_target_min_denominator"
    assert value(target, "bf", "roas_ratio", "min", "24h") == 1.2
    assert value(target, "bf", "roas_ratio", "min", "1h") is None  # the default is replaced
    assert value(floor, "bf", "roas_ratio", "min", "24h") == 500
    assert value(target, "bf", "roas_ratio", "max", "1h") == 50
    assert value(floor, "bf", "roas_ratio", "max", "1h") == 0
    assert value(target, "bf", "views", "min", "5m") == 1000
    assert value(floor, "bf", "views", "min", "5m") is None  # a count has no denominator
    assert value(target, "other", "roas_ratio", "min", "1h") == 2
    assert value(floor, "other", "roas_ratio", "min", "1h") == 100
    assert value(target, "other", "views", "min", "5m") is None
    samples = [s for m in registry.collect() for s in m.samples]
    assert len(samples) == 3 + 2 + 2 + 2  # bf: 3 targets, 2 floors; other: 2 and 2


def test_an_ltv_target_is_exported_with_its_horizon_and_the_others_without() -> None:
    toml = ('[[targets]]\nkpi = "ltv_cac_ratio"\nmin = 3\nhorizon = "90d"\nmin_denominator = 1000\n'
            '[[targets]]\nkpi = "ltv_cac_ratio"\nmin = 2\nhorizon = "30d"\n'
            '[[targets]]\nkpi = "poas_ratio"\nmin = 1\nwindow = "24h"\nmin_denominator = 300\n')
    registry = CollectorRegistry()
    registry.register(TargetCollector(targets_of(toml), lambda: ["bf"]))
    ltv = {"campaign": "bf", "kpi": "ltv_cac_ratio", "bound": "min", "window": "total"}
    target, floor = "marketing_kpi_target", "marketing_kpi_target_min_denominator"
    assert registry.get_sample_value(target, {**ltv, "horizon": "90d"}) == 3
    assert registry.get_sample_value(floor, {**ltv, "horizon": "90d"}) == 1000
    assert registry.get_sample_value(target, {**ltv, "horizon": "30d"}) == 2
    assert registry.get_sample_value(target, ltv) is None
    poas = {"campaign": "bf", "kpi": "poas_ratio", "bound": "min", "window": "24h"}
    assert registry.get_sample_value(target, poas) == 1  # no horizon label at all
    assert registry.get_sample_value(floor, poas) == 300
    assert len([s for m in registry.collect() for s in m.samples]) == 6


def test_ltv_cac_alerts_join_on_the_horizon_one_rule_per_horizon() -> None:
    alerts = _alerts('[[targets]]\nkpi = "ltv_cac_ratio"\nmin = 3\nhorizon = "90d"\n'
                     '[[targets]]\nkpi = "ltv_cac_ratio"\nmin = 2\nhorizon = "30d"\nfor = "1h"\n'
                     '[[targets]]\nkpi = "poas_ratio"\nmin = 1\nwindow = "1h"\n')
    assert [(a["labels"]["kpi"], a["for"]) for a in alerts] == [
        ("ltv_cac_ratio", "15m"), ("ltv_cac_ratio", "1h"), ("poas_ratio", "15m")]
    for alert, horizon in zip(alerts, ("90d", "30d"), strict=False):
        assert alert["expr"].count(f'horizon="{horizon}"') == 3  # the target twice, the floor
        assert "< on (campaign, window, horizon)" in alert["expr"]
        assert "campaign_window_horizon:marketing_ltv_cac_ratio:ratio" in alert["expr"]
        assert "breach_for" not in alert["labels"]  # the horizon label already tells them apart
    assert "horizon" not in alerts[2]["expr"]
    assert "campaign_window:marketing_poas_ratio:ratio" in alerts[2]["expr"]


def test_without_targets_nothing_is_exported_and_campaigns_are_not_listed() -> None:
    def campaigns() -> list[str]:
        raise AssertionError("listed campaigns with no target to export")

    registry = CollectorRegistry()
    registry.register(TargetCollector((), campaigns))
    assert [s for m in registry.collect() for s in m.samples] == []


class _TP(tuple[str, int]):
    @property
    def topic(self) -> str:
        return self[0]

    @property
    def partition(self) -> int:
        return self[1]


class _Consumer:
    def __init__(self, assigned: list[_TP], highwater: dict[_TP, int | None]) -> None:
        self.assigned, self.highwaters = assigned, highwater

    def assignment(self) -> set[_TP]:
        return set(self.assigned)

    def highwater(self, tp: _TP) -> int | None:
        if tp not in self.highwaters:
            raise AssertionError("Partition is not assigned")
        return self.highwaters[tp]


class _Monitor:
    def __init__(self, committed: dict[_TP, int], read: dict[_TP, int]) -> None:
        self.tp_committed_offsets, self.tp_read_offsets = committed, read


class _App:
    def __init__(self, consumer: Any, monitor: Any) -> None:
        self.consumer, self.monitor = consumer, monitor


def test_consumer_lag_is_highwater_minus_committed_for_assigned_partitions() -> None:
    committed_tp, read_tp, unknown_tp = _TP(("in", 0)), _TP(("in", 1)), _TP(("in", 2))
    fresh_tp, revoked_tp, changelog_tp = _TP(("in", 3)), _TP(("in", 4)), _TP(("kpi-changelog", 0))
    consumer = _Consumer(
        [committed_tp, read_tp, unknown_tp, fresh_tp, revoked_tp, changelog_tp],
        {committed_tp: 120, read_tp: 50, unknown_tp: None, fresh_tp: 10, changelog_tp: 99},
    )
    monitor = _Monitor({committed_tp: 100, _TP(("other", 0)): 1},
                       {committed_tp: 110, read_tp: 44, changelog_tp: 3})
    # in-0: 20 (committed offset = next offset to read); in-1: 5 (never committed since
    # the rebalance: last read offset + 1); in-2: highwater unknown until the first fetch;
    # in-3: nothing read or committed; in-4: revoked between assignment() and
    # highwater(); changelogs are not consumed. Summed per group and topic:
    assert consumer_lag(_App(consumer, monitor), "kpi") == {("kpi", "in"): 25}


def test_consumer_lag_covers_the_input_group() -> None:
    class Input:
        def lag(self) -> dict[str, int]:
            return {"marketing.views": 12, "marketing.orders": 0}

    consumer = _Consumer([], {})
    assert consumer_lag(_App(consumer, _Monitor({}, {})), "kpi", Input()) == {
        ("kpi-ingest", "marketing.views"): 12, ("kpi-ingest", "marketing.orders"): 0}


def test_consumer_lag_never_raises() -> None:
    class Broken:
        def __getattr__(self, name: str) -> Any:
            raise RuntimeError("consumer thread not started")

    assert consumer_lag(Broken(), "kpi") == {}
    assert consumer_lag(_App(Broken(), _Monitor({}, {})), "kpi", Broken()) == {}


def test_health_collector_serves_ready_and_lag_and_survives_failing_sources() -> None:
    def broken() -> Any:
        raise RuntimeError("half started")

    for ready, lag, want_ready, want_lag in [
        (lambda: True, lambda: {("kpi", "in"): 7}, 1.0, 7.0),
        (lambda: False, lambda: {}, 0.0, None),
        (broken, broken, 0.0, None),
    ]:
        registry = CollectorRegistry()
        registry.register(HealthCollector(ready, lag))
        assert registry.get_sample_value("kpistream_ready") == want_ready
        assert registry.get_sample_value(
            "kpistream_consumer_lag", {"group": "kpi", "topic": "in"}) == want_lag


SPLIT = """
[[targets]]
kpi = "roas_ratio"
min = 2
window = "1h"
for = "15m"
severity = "page"

[[targets]]
kpi = "roas_ratio"
campaign = "summer.sale"
min = 1
window = "1h"
for = "30m"
severity = "ticket"

[[targets]]
kpi = "roas_ratio"
campaign = "launch"
min = 3
window = "1h"
for = "15m"
severity = "page"

[[targets]]
kpi = "aov"
min = 5
window = "24h"
"""


def _alerts(toml: str) -> list[dict[str, Any]]:
    settings = Settings(targets=targets_of(toml))
    groups = {g["name"]: g["rules"] for g in rule_groups(settings)}
    alerts: list[dict[str, Any]] = groups["kpistream-kpi-targets"]
    return alerts


def test_one_rule_per_kpi_and_bound_split_only_where_for_or_severity_differ() -> None:
    alerts = _alerts(SPLIT)
    assert [(a["labels"]["kpi"], a["for"], a["labels"]["severity"]) for a in alerts] == [
        ("roas_ratio", "15m", "page"), ("roas_ratio", "30m", "ticket"), ("aov", "15m", "ticket")]
    default, summer, aov = alerts
    # The default's rule covers launch (same for and severity), not summer.sale; the dot
    # is escaped for the regex and its backslash for the PromQL string.
    assert 'campaign!~"summer\\\\.sale"' in default["expr"]
    assert "launch" not in default["expr"]
    assert 'campaign=~"summer\\\\.sale"' in summer["expr"]
    assert default["labels"]["breach_for"] == "15m"
    assert "campaign=~" not in aov["expr"] and "campaign!~" not in aov["expr"]
    assert "breach_for" not in aov["labels"]
    assert "marketing_kpi_target_min_denominator" in default["expr"]


def test_every_alert_has_for_severity_summary_and_runbook() -> None:
    settings = Settings(targets=targets_of(SPLIT), reporting_currency="EUR")
    rules = [r for g in yaml.safe_load(alert_rules(settings))["groups"] for r in g["rules"]]
    alerts = [r for r in rules if "alert" in r]
    assert {a["alert"] for a in alerts} == {
        "KpiBelowTarget", "TrackerQuiet", "DeadLetterRateHigh", "WorkerDown",
        "WorkerNotReady", "ConsumerLagGrowing"}
    for a in alerts:
        assert a["for"] and a["labels"]["severity"] in ("page", "ticket"), a
        # what is wrong and how much, or (workers) which one
        assert re.search(r"\{\{ \$(value|labels\.instance) ", a["annotations"]["summary"]), a
        assert a["annotations"]["runbook_url"].endswith("#" + a["alert"].lower())
        if a["alert"].startswith("Kpi"):
            assert "{{ $labels.campaign }}" in a["annotations"]["summary"]
            assert a["labels"]["kpi"] in a["annotations"]["description"]
    aov = next(a for a in alerts if a["labels"].get("kpi") == "aov")
    assert "EUR" in aov["annotations"]["summary"]
    recorded = {r["record"] for r in rules if "record" in r}
    assert "campaign_window:marketing_roas_ratio:ratio" in recorded
    assert "channel_window:marketing_spend:sum" in recorded


def test_cli_writes_the_rule_file_and_refuses_bad_targets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "kpistream.toml"
    config.write_text(SPLIT, encoding="utf-8")
    monkeypatch.setenv("KPISTREAM_CONFIG", str(config))
    out = tmp_path / "rules.yml"
    assert cli.main(["alert-rules", "--output", str(out), "--runbook-url", "https://wiki/kpi"]) == 0
    text = out.read_text(encoding="utf-8")
    assert text == alert_rules(Settings(targets=targets_of(SPLIT)), "https://wiki/kpi")
    assert "runbook_url: https://wiki/kpi#kpibelowtarget" in text
    config.write_text(SPLIT.replace('severity = "ticket"', 'severity = "sms"'), encoding="utf-8")
    assert cli.main(["alert-rules"]) == 2
    assert "setting [[targets]] 2 severity" in capsys.readouterr().err


@pytest.mark.parametrize(("toml", "setting"), [
    # a count has no denominator to judge a drop by; CAC rising is the bad news
    ('[[targets]]\nkpi = "views"\ndrop = 0.3\nwindow = "1h"', "[[targets]] 1 drop"),
    ('[[targets]]\nkpi = "cac"\ndrop = 0.3\nwindow = "1h"', "[[targets]] 1 drop"),
    # a fraction strictly between 0 and 1
    ('[[targets]]\nkpi = "roas_ratio"\ndrop = 30\nwindow = "1h"', "[[targets]] 1 drop"),
    ('[[targets]]\nkpi = "roas_ratio"\ndrop = 0\nwindow = "1h"', "[[targets]] 1 drop"),
    ('[[targets]]\nkpi = "roas_ratio"\ndrop = 0.3\nversus = "1m"\nwindow = "1h"',
     "[[targets]] 1 versus"),
    ('[[targets]]\nkpi = "roas_ratio"\nmin = 1\nversus = "1d"\nwindow = "1h"',
     "[[targets]] 1 versus"),
])
def test_a_bad_drop_target_fails_naming_the_setting(toml: str, setting: str) -> None:
    with pytest.raises(SettingsError) as error:
        targets_of(toml)
    assert error.value.setting == setting


DROPS = """
[[targets]]
kpi = "roas_ratio"
drop = 0.3
min = 1
window = "1h"
min_denominator = 100

[[targets]]
kpi = "roas_ratio"
campaign = "launch"
drop = 0.5
versus = "1d"
window = "1h"
for = "30m"
"""


def test_drop_targets_get_their_own_alert_split_by_what_they_compare_with() -> None:
    targets = targets_of(DROPS)
    assert [(t.campaign, t.bound, t.value, t.versus) for t in targets] == [
        ("*", "min", Decimal(1), "1w"), ("*", "drop", Decimal("0.3"), "1w"),
        ("launch", "drop", Decimal("0.5"), "1d")]
    alerts = _alerts(DROPS)
    assert [a["alert"] for a in alerts] == ["KpiBelowTarget", "KpiDropped", "KpiDropped"]
    default, launch = alerts[1:]
    assert default["expr"].startswith("campaign_window:marketing_roas_ratio:change_1w\n")
    assert 'campaign!~"launch"' in default["expr"]
    assert "marketing_spend offset 1w" in default["expr"]
    assert launch["expr"].startswith("campaign_window:marketing_roas_ratio:change_1d\n")
    assert 'campaign=~"launch"' in launch["expr"]
    assert (launch["for"], launch["labels"]["versus"], launch["labels"]["breach_for"]) == (
        "30m", "1d", "30m")
    # the min target's rule knows nothing of drops
    assert 'bound="drop"' not in alerts[0]["expr"]
    recorded = {r["record"] for g in rule_groups(Settings()) for r in g["rules"]
                if "record" in r}
    assert {f"campaign_window:marketing_{k}:{c}" for k in RATIOS
            for c in ("change_1d", "change_1w")} <= recorded


BUDGETS = """
[[budgets]]
campaign = "summer.sale"
amount = 500
timezone = "Asia/Jakarta"

[[budgets]]
campaign = "launch"
amount = 100

[[budgets]]
campaign = "bf"
period = "lifetime"
amount = 20000
start = 2026-11-27
end = 2026-12-07
for = "1h"
severity = "ticket"
"""


def test_budget_alerts_one_rule_per_policy_with_campaign_figures_and_runbook() -> None:
    settings = settings_from(tomllib.loads(BUDGETS), {})
    groups = {g["name"]: g["rules"] for g in rule_groups(settings)}
    assert list(groups) == ["kpistream-recording", "kpistream-kpi-targets",
                            "kpistream-budgets", "kpistream-service"]
    rules = groups["kpistream-budgets"]
    assert [(r["alert"], r["for"], r["labels"]["severity"]) for r in rules] == [
        ("BudgetOverspending", "30m", "page"), ("BudgetOverspending", "1h", "ticket"),
        ("BudgetUnderspending", "30m", "ticket"), ("BudgetUnderspending", "1h", "ticket"),
        ("BudgetExhausted", "1m", "page")]
    assert 'campaign=~"launch|summer\\\\.sale"' in rules[0]["expr"]
    assert 'campaign=~"bf"' in rules[1]["expr"]
    for rule in rules:
        summary = rule["annotations"]["summary"]
        assert "{{ $labels.campaign }}" in summary and "{{ $value" in summary
        assert "USD" in summary and "marketing_budget{" in summary
        assert rule["annotations"]["runbook_url"].endswith("#" + rule["alert"].lower())
    assert "kpistream-budgets" not in {g["name"] for g in rule_groups(Settings())}
