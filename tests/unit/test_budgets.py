"""Budgets: settings, pacing arithmetic, the read-only spend query and the collector."""

from __future__ import annotations

import datetime as dt
import tomllib
from decimal import Decimal
from fractions import Fraction

import pytest
from prometheus_client import CollectorRegistry

from metrics.budget_gauges import BudgetCollector
from streams.config.budgets import Budget, parse_budgets
from streams.config.errors import SettingsError
from streams.config.settings import Settings, settings_from
from streams.planning.pacing import day_bounds, elapsed_share, pacing, period_bounds
from streams.windows.counts import SPEND, WIDTH
from streams.windows.state import KpiState

H = 3_600_000


def ms(text: str) -> int:
    """Epoch ms of an ISO date-time with its offset."""
    return round(dt.datetime.fromisoformat(text).timestamp() * 1000)


def budgets_of(toml: str) -> tuple[Budget, ...]:
    return parse_budgets(tomllib.loads(toml).get("budgets", []))


def test_a_daily_and_a_lifetime_budget_are_read_as_written() -> None:
    day, life = budgets_of(
        '[[budgets]]\ncampaign = "summer-sale"\nperiod = "day"\namount = 500\n'
        'timezone = "Asia/Jakarta"\n'
        '[[budgets]]\ncampaign = "summer-sale"\nperiod = "lifetime"\namount = "12000.50"\n'
        'timezone = "Europe/Berlin"\nstart = 2026-12-01\nend = 2026-12-31T18:00:00\n'
        'for = "1h"\nseverity = "ticket"\n')
    assert day == Budget("summer-sale", "day", Decimal(500), "Asia/Jakarta", None, None,
                         30 * 60_000, "page", 1)
    assert (life.amount, life.for_ms, life.severity) == (Decimal("12000.50"), H, "ticket")
    # A date starts at local midnight; a local date-time is in the budget's zone.
    assert life.start_ms == ms("2026-12-01T00:00:00+01:00")
    assert life.end_ms == ms("2026-12-31T18:00:00+01:00")
    (dated,) = budgets_of('[[budgets]]\ncampaign = "a"\nperiod = "lifetime"\namount = 1\n'
                          'start = 2026-12-01\nend = 2026-12-01\n')
    assert (dated.start_ms, dated.end_ms) == (ms("2026-12-01T00:00:00+00:00"),
                                              ms("2026-12-02T00:00:00+00:00"))


BUDGET = '[[budgets]]\ncampaign = "a"\namount = 100\n'


@pytest.mark.parametrize(("toml", "setting"), [
    ('budgets = "a"', "[[budgets]]"),
    ('[[budgets]]\namount = 100', "[[budgets]] 1 campaign"),
    ('[[budgets]]\ncampaign = "a b"\namount = 100', "[[budgets]] 1 campaign"),
    (BUDGET + 'period = "week"', "[[budgets]] 1 period"),
    ('[[budgets]]\ncampaign = "a"', "[[budgets]] 1 amount"),
    ('[[budgets]]\ncampaign = "a"\namount = -5', "[[budgets]] 1 amount"),  # negative
    ('[[budgets]]\ncampaign = "a"\namount = 0', "[[budgets]] 1 amount"),
    ('[[budgets]]\ncampaign = "a"\namount = "lots"', "[[budgets]] 1 amount"),
    (BUDGET + 'timezone = "Mars/Olympus_Mons"', "[[budgets]] 1 timezone"),  # unknown zone
    (BUDGET + 'timezone = "../etc/passwd"', "[[budgets]] 1 timezone"),
    (BUDGET + "start = 2026-12-01", "[[budgets]] 1 start"),  # a daily budget has no start
    (BUDGET + 'period = "lifetime"\nend = 2026-12-01', "[[budgets]] 1 start"),
    (BUDGET + 'period = "lifetime"\nstart = 2026-12-01', "[[budgets]] 1 end"),
    (BUDGET + 'period = "lifetime"\nstart = 2026-12-10\nend = 2026-12-01',
     "[[budgets]] 1 end"),  # end before start
    (BUDGET + 'period = "lifetime"\nstart = "soon"\nend = 2026-12-01', "[[budgets]] 1 start"),
    (BUDGET + 'for = "a while"', "[[budgets]] 1 for"),
    (BUDGET + 'severity = "sms"', "[[budgets]] 1 severity"),
    (BUDGET + "limit = 3", "[[budgets]] 1 limit"),
    (BUDGET + BUDGET, "[[budgets]] 2"),  # the same campaign and period twice
])
def test_a_bad_budget_fails_naming_the_setting(toml: str, setting: str) -> None:
    with pytest.raises(SettingsError) as error:
        budgets_of(toml)
    assert error.value.setting == setting
    assert str(error.value).startswith(f"setting {setting}:")


def test_settings_hold_budgets_and_keep_a_local_day_of_buckets_for_daily_ones() -> None:
    doc = tomllib.loads('[kpi]\nwindows = ["5m"]\n' + BUDGET)
    settings = settings_from(doc, {})
    assert [b.campaign for b in settings.budgets] == ["a"]
    assert settings.retention_minutes == 25 * 60  # the longest local day, not the 5m window
    doc["budgets"][0].update(period="lifetime", start="2026-12-01", end="2026-12-02")
    assert settings_from(doc, {}).retention_minutes == 5
    assert Settings().budgets == ()


JAKARTA = Budget("a", "day", Decimal(100), "Asia/Jakarta", None, None, 60_000, "page", 1)
BERLIN = Budget("a", "day", Decimal(100), "Europe/Berlin", None, None, 60_000, "page", 1)
LIFETIME = Budget("a", "lifetime", Decimal(1000), "UTC", ms("2026-12-01T00:00:00+00:00"),
                  ms("2026-12-11T00:00:00+00:00"), 60_000, "page", 1)


@pytest.mark.parametrize(("budget", "now", "start", "end", "elapsed"), [
    # the first millisecond of a Jakarta day (UTC+7): nothing has elapsed
    (JAKARTA, "2026-12-01T00:00:00+07:00", "2026-12-01T00:00:00+07:00",
     "2026-12-02T00:00:00+07:00", Fraction(0)),
    # 17:00 UTC is already tomorrow in Jakarta
    (JAKARTA, "2026-12-01T17:00:00+00:00", "2026-12-02T00:00:00+07:00",
     "2026-12-03T00:00:00+07:00", Fraction(0)),
    # the last minute of the Jakarta day
    (JAKARTA, "2026-12-01T23:59:00+07:00", "2026-12-01T00:00:00+07:00",
     "2026-12-02T00:00:00+07:00", Fraction(1439, 1440)),
    # noon in Berlin on the day clocks go forward: 11 of 23 hours
    (BERLIN, "2026-03-29T12:00:00+02:00", "2026-03-29T00:00:00+01:00",
     "2026-03-30T00:00:00+02:00", Fraction(11, 23)),
    # noon in Berlin on the day clocks go back: 13 of 25 hours
    (BERLIN, "2026-10-25T12:00:00+01:00", "2026-10-25T00:00:00+02:00",
     "2026-10-26T00:00:00+01:00", Fraction(13, 25)),
    # a lifetime budget before its start, halfway, and after its end
    (LIFETIME, "2026-11-30T12:00:00+00:00", "2026-12-01T00:00:00+00:00",
     "2026-12-11T00:00:00+00:00", Fraction(0)),
    (LIFETIME, "2026-12-06T00:00:00+00:00", "2026-12-01T00:00:00+00:00",
     "2026-12-11T00:00:00+00:00", Fraction(1, 2)),
    (LIFETIME, "2026-12-20T00:00:00+00:00", "2026-12-01T00:00:00+00:00",
     "2026-12-11T00:00:00+00:00", Fraction(1)),
])
def test_period_and_elapsed_share(budget: Budget, now: str, start: str, end: str,
                                  elapsed: Fraction) -> None:
    bounds = period_bounds(budget, ms(now))
    assert bounds == (ms(start), ms(end))
    assert elapsed_share(*bounds, ms(now)) == elapsed


@pytest.mark.parametrize(("spend", "amount", "elapsed", "ratio"), [
    (Fraction(50), Fraction(100), Fraction(1, 2), 1.0),  # on pace
    (Fraction(50), Fraction(100), Fraction(1, 10), 5.0),  # half of it in a tenth of the day
    (Fraction(0), Fraction(100), Fraction(1, 4), 0.0),  # nothing spent yet
    (Fraction(20), Fraction(100), Fraction(0), None),  # no time elapsed: no pace
    (Fraction(1200), Fraction(1000), Fraction(1), 1.2),  # after the end: spend / amount
])
def test_pacing(spend: Fraction, amount: Fraction, elapsed: Fraction,
                ratio: float | None) -> None:
    assert pacing(spend, amount, elapsed).ratio == ratio


def test_day_bounds_of_a_zone_without_dst() -> None:
    assert day_bounds(ms("2026-06-15T08:30:00+00:00"), JAKARTA.zone) == (
        ms("2026-06-15T00:00:00+07:00"), ms("2026-06-16T00:00:00+07:00"))


def _spend(micros: int) -> list[int]:
    delta = [0] * WIDTH
    delta[SPEND] = micros
    return delta


def test_campaign_sums_add_channels_within_the_minute_range_and_leave_state_alone() -> None:
    state = KpiState(retention_minutes=2000)
    now = 1_000_000
    state.apply({("a", "tiktok", now - 10): _spend(1), ("a", "meta", now - 5): _spend(20),
                 ("a", "meta", now): _spend(300), ("b", "tiktok", now): _spend(4000)},
                now, offset=1)
    before = list(state.rows(now, (), lambda c: True))
    sums = state.campaign_sums({"a": (now - 5, now + 1), "b": None, "c": (0, now + 1)}, SPEND)
    assert sums == {"a": 320, "b": 4000, "c": 0}
    assert state.campaign_sums({"a": None}, SPEND) == {"a": 321}
    assert state.campaign_sums({"a": (now - 10, now)}, SPEND) == {"a": 21}  # end exclusive
    assert state.campaign_sums({"a": None}, 0) == {"a": 0}  # views: none
    assert state.campaign_sums({}, SPEND) == {}
    assert list(state.rows(now, (), lambda c: True)) == before


class _Owner:
    def __init__(self, mine: set[str]) -> None:
        self.mine = mine

    def owned_partitions(self, topic: str = "kpi_events") -> set[int]:
        return {0}

    def partition(self, key: str) -> int:
        return 0 if key in self.mine else 1


def test_the_collector_exports_owned_budgets_with_spend_since_local_midnight() -> None:
    now = ms("2026-12-01T06:00:00+07:00")  # a quarter of the Jakarta day
    minute = now // 60_000
    state = KpiState(retention_minutes=1500)
    midnight = ms("2026-12-01T00:00:00+07:00") // 60_000
    # 10 USD yesterday (before local midnight), 30 USD + 5 USD today on two channels.
    state.apply({("a", "tiktok", midnight - 1): _spend(10_000_000),
                 ("a", "tiktok", midnight): _spend(30_000_000),
                 ("a", "meta", minute): _spend(5_000_000)}, minute, offset=1)
    settings = Settings(budgets=(
        JAKARTA,
        Budget("a", "lifetime", Decimal(1000), "UTC", ms("2026-11-01T00:00:00+00:00"),
               ms("2026-12-31T00:00:00+00:00"), 60_000, "page", 2),
        Budget("elsewhere", "day", Decimal(5), "UTC", None, None, 60_000, "page", 3),
        Budget("not-yet", "lifetime", Decimal(5), "UTC", ms("2027-01-01T00:00:00+00:00"),
               ms("2027-02-01T00:00:00+00:00"), 60_000, "page", 4),
    ), reporting_currency="EUR")
    registry = CollectorRegistry()
    registry.register(BudgetCollector(settings, state, _Owner({"a", "not-yet"}), lambda: now))

    def get(name: str, campaign: str, period: str, money: bool = False) -> float | None:
        labels = {"campaign": campaign, "period": period}
        if money:
            labels["currency"] = "EUR"
        return registry.get_sample_value(name, labels)

    assert get("marketing_budget", "a", "day", money=True) == 100
    assert get("marketing_budget_spend", "a", "day", money=True) == 35
    assert get("marketing_budget_elapsed_ratio", "a", "day") == 0.25
    assert get("marketing_budget_pacing_ratio", "a", "day") == 35 / 25
    # Lifetime: the campaign's whole spend, 45 USD, after 30 of 60 days.
    assert get("marketing_budget_spend", "a", "lifetime", money=True) == 45
    elapsed = (now - ms("2026-11-01T00:00:00+00:00")) / (60 * 86_400_000)
    assert get("marketing_budget_pacing_ratio", "a", "lifetime") == pytest.approx(
        45 / (1000 * elapsed))
    # Another worker's campaign is not exported here; a budget before its start has no pace.
    assert get("marketing_budget", "elsewhere", "day", money=True) is None
    assert get("marketing_budget", "not-yet", "lifetime", money=True) == 5
    assert get("marketing_budget_elapsed_ratio", "not-yet", "lifetime") == 0
    assert get("marketing_budget_pacing_ratio", "not-yet", "lifetime") is None
    assert get("marketing_budget_spend", "not-yet", "lifetime", money=True) is None
