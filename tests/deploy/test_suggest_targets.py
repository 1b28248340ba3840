"""``kpistream suggest-targets`` against a real Prometheus holding five weeks of KPI
history, written beforehand with ``promtool tsdb create-blocks-from openmetrics``."""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import pytest
import yaml

from streams.kafka.tansu import free_port
from tests.deploy.servers import REPO, Prometheus, tool

DAY = 86_400
MIDNIGHT = int(time.time()) // DAY * DAY  # today 00:00 UTC: the end of the newest day
DAYS = 35  # written; the default 28d lookback reads the newest 28
ROAS_BY_WEEKDAY = [Fraction(x, 10) for x in (20, 22, 24, 26, 28, 30, 32)]  # Monday first
OUTLIER = 20  # this day's revenue is ten times its usual (a freak day)
YOUNG_ROAS = [Fraction(x, 10) for x in (10, 12, 14, 16, 18, 20, 22, 24, 26, 90)]


def _day_start(i: int) -> int:
    return MIDNIGHT - (DAYS - i) * DAY


def _weekday(i: int) -> int:
    return time.gmtime(_day_start(i)).tm_wday


def _history() -> dict[str, dict[str, dict[int, Fraction]]]:
    """campaign -> measure -> day index -> that day's sum over all channels."""
    steady: dict[str, dict[int, Fraction]] = {m: {} for m in (
        "spend", "revenue", "views", "clicks", "orders", "new_customers")}
    tiny: dict[str, dict[int, Fraction]] = {m: {} for m in ("spend", "revenue", "views",
                                                             "clicks", "orders")}
    young: dict[str, dict[int, Fraction]] = {"spend": {}, "revenue": {}}
    for i in range(DAYS):
        w = _weekday(i)
        steady["spend"][i] = Fraction(300)
        steady["revenue"][i] = 300 * ROAS_BY_WEEKDAY[w] * (10 if i == OUTLIER else 1)
        steady["views"][i] = Fraction(10_000)
        steady["clicks"][i] = Fraction(100 + 20 * w)
        steady["orders"][i] = Fraction(30)
        steady["new_customers"][i] = Fraction(10 + w)
        # under every minimum volume: 50 spend, 500 views, 10 clicks, 2 orders a day
        for measure, amount in (("spend", 50), ("revenue", 100), ("views", 500),
                                ("clicks", 10), ("orders", 2)):
            tiny[measure][i] = Fraction(amount)
    for j, roas in enumerate(YOUNG_ROAS):
        i = DAYS - len(YOUNG_ROAS) + j
        young["spend"][i] = Fraction(200)
        young["revenue"][i] = 200 * roas
    return {"steady": steady, "tiny": tiny, "young": young}


def _openmetrics(history: dict[str, dict[str, dict[int, Fraction]]]) -> str:
    """The 24h gauges as workers would have served them: the day's sums at midnight (60/40
    over two channels), and a misleading partial figure at noon (a 24h window then holds
    half of two days) that the baseline must not read."""
    lines = []
    for measure in ("spend", "revenue", "views", "clicks", "orders", "new_customers"):
        lines.append(f"# TYPE marketing_{measure} gauge")
        for campaign, measures in history.items():
            for channel, share in (("tiktok", Fraction(3, 5)), ("meta", Fraction(2, 5))):
                labels = (f'campaign="{campaign}",channel="{channel}",window="24h"'
                          + (',currency="USD"' if measure in ("spend", "revenue") else ""))
                for i, amount in sorted(measures.get(measure, {}).items()):
                    noon, end = _day_start(i) + DAY // 2, _day_start(i) + DAY
                    lines.append(f"marketing_{measure}{{{labels}}} {float(amount * share / 7)} "
                                 f"{noon}")
                    lines.append(f"marketing_{measure}{{{labels}}} {float(amount * share)} {end}")
    return "\n".join([*lines, "# EOF", ""])


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    tmp = tmp_path_factory.mktemp("suggest")
    source, storage = tmp / "history.om", tmp / "tsdb"
    source.write_text(_openmetrics(_history()), encoding="utf-8")
    made = subprocess.run([tool("promtool"), "tsdb", "create-blocks-from", "openmetrics",
                           "--quiet", str(source), str(storage)],
                          capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stdout + made.stderr
    with Prometheus(tmp, [], storage=storage, retention="60d") as prom:
        yield prom


def _suggest(*args: str, config: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KPISTREAM_")}
    if config is not None:
        env["KPISTREAM_CONFIG"] = str(config)
    return subprocess.run([sys.executable, "-m", "streams", "suggest-targets", *args],
                          env=env, cwd=REPO, capture_output=True, text=True, timeout=120)


def _read_days() -> range:
    return range(DAYS - 28, DAYS)


def _by_hand(campaign: str, value_of: dict[int, Fraction], weekdays: bool) -> Fraction:
    days = [i for i in _read_days() if i in value_of]
    if not weekdays:
        return Fraction(statistics.median(value_of[i] for i in days))
    medians = [statistics.median(value_of[i] for i in days if _weekday(i) == w)
               for w in range(7)]
    return Fraction(statistics.median(medians))


def test_targets_sit_ten_percent_beyond_the_median_day(prometheus: Prometheus,
                                                       tmp_path: Path) -> None:
    out = tmp_path / "suggested.toml"
    result = _suggest("--prometheus", prometheus.url, "--output", str(out))
    assert result.returncode == 0, result.stderr
    text = out.read_text(encoding="utf-8")
    entries = {(t["campaign"], t["kpi"]): t for t in tomllib.loads(text)["targets"]}
    steady = _history()["steady"]
    s = {m: steady[m] for m in steady}
    idx = list(_read_days())
    roas = {i: s["revenue"][i] / s["spend"][i] for i in idx}
    expected = {
        # ROAS: weekday medians 2.0 ... 3.2 (the freak day is one of four of its weekday);
        # their median 2.6, plus 10 %.
        "roas_ratio": ("min", _by_hand("steady", roas, True) * Fraction(11, 10)),
        "roi_ratio": ("min", _by_hand("steady", {i: roas[i] - 1 for i in idx}, True)
                      * Fraction(11, 10)),
        "click_through_ratio": ("min", _by_hand(
            "steady", {i: s["clicks"][i] / s["views"][i] for i in idx}, True)
            * Fraction(11, 10)),
        "conversion_ratio": ("min", _by_hand(
            "steady", {i: s["orders"][i] / s["clicks"][i] for i in idx}, True)
            * Fraction(11, 10)),
        "aov": ("min", _by_hand("steady", {i: s["revenue"][i] / s["orders"][i] for i in idx},
                                True) * Fraction(11, 10)),
        "repeat_purchase_ratio": ("min", _by_hand(
            "steady", {i: (s["orders"][i] - s["new_customers"][i]) / s["orders"][i]
                       for i in idx}, True) * Fraction(11, 10)),
        # CAC: lower is better, 10 % below 300 / 13.
        "cac": ("max", _by_hand("steady", {i: s["spend"][i] / s["new_customers"][i]
                                           for i in idx}, True) * Fraction(9, 10)),
    }
    assert expected["roas_ratio"][1] == Fraction(286, 100)
    assert expected["cac"][1] == Fraction(300, 13) * Fraction(9, 10)
    for kpi, (bound, value) in expected.items():
        entry = entries[("steady", kpi)]
        assert set(entry) == {"kpi", "campaign", bound, "window", "for", "severity",
                              "min_denominator"}, entry
        assert entry[bound] == pytest.approx(float(value), rel=5e-4), kpi
        assert (entry["window"], entry["for"], entry["severity"]) == ("24h", "1h", "ticket")
    assert entries[("steady", "roas_ratio")]["min_denominator"] == 100
    assert entries[("steady", "click_through_ratio")]["min_denominator"] == 1000
    # young: 10 days, not two of every weekday: the median of all its days, (1.8 + 2.0) / 2.
    young = entries[("young", "roas_ratio")]
    assert young["min"] == pytest.approx(1.9 * 1.1)
    # tiny is under every minimum volume: no entry, a comment saying why.
    assert not [k for k in entries if k[0] == "tiny"]
    assert "# tiny roas_ratio: skipped, fewer than the minimum days with at least 100 spend" \
        in text
    first, last = (time.strftime("%Y-%m-%d", time.gmtime(_day_start(i))) for i in (7, 34))
    assert (f"# steady roas_ratio: baseline 2.6 (median of the 7 weekday medians) from 28 "
            f"days {first} to {last} with at least 100 spend each;\n"
            "# sample: 8400 spend in all; 0 days left out for low volume\n") in text
    assert "# young roas_ratio: baseline 1.9 (median of all days) from 10 days" in text

    # What it writes is settings: alert-rules turns it into rules promtool accepts.
    rules = tmp_path / "rules.yml"
    generated = subprocess.run(
        [sys.executable, "-m", "streams", "alert-rules", "--output", str(rules)],
        env={**{k: v for k, v in os.environ.items() if not k.startswith("KPISTREAM_")},
             "KPISTREAM_CONFIG": str(out)},
        cwd=REPO, capture_output=True, text=True, timeout=60)
    assert generated.returncode == 0, generated.stderr
    checked = subprocess.run([tool("promtool"), "check", "rules", str(rules)],
                             capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    alerts = {(r["alert"], r["labels"].get("kpi"))
              for g in yaml.safe_load(rules.read_text(encoding="utf-8"))["groups"]
              for r in g["rules"] if "alert" in r}
    assert {("KpiBelowTarget", k) for k, (b, _) in expected.items() if b == "min"} <= alerts
    assert ("KpiAboveTarget", "cac") in alerts


def test_uplift_kpi_and_volume_options(prometheus: Prometheus) -> None:
    result = _suggest("--prometheus", prometheus.url, "--uplift", "20", "--kpi", "roas_ratio",
                      "--min-volume", "spend=40")
    assert result.returncode == 0, result.stderr
    entries = {t["campaign"]: t for t in tomllib.loads(result.stdout)["targets"]}
    assert set(entries) == {"steady", "tiny", "young"}  # 50 spend a day is enough now
    assert entries["steady"]["min"] == pytest.approx(2.6 * 1.2)
    assert entries["tiny"]["min"] == pytest.approx(2 * 1.2)
    assert entries["tiny"]["min_denominator"] == 40
    # a shorter lookback: the last 7 days, one of each weekday, so the plain median
    week = _suggest("--prometheus", prometheus.url, "--lookback", "7d", "--kpi", "roas_ratio")
    assert week.returncode == 0, week.stderr
    (steady,) = [t for t in tomllib.loads(week.stdout)["targets"] if t["campaign"] == "steady"]
    assert steady["min"] == pytest.approx(2.6 * 1.1)
    assert "median of all days) from 7 days" in week.stdout


def test_clear_errors(prometheus: Prometheus, tmp_path: Path) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"
    unreachable = _suggest("--prometheus", nobody)
    assert unreachable.returncode == 1
    assert unreachable.stderr.startswith(
        f"kpistream suggest-targets: cannot reach Prometheus at {nobody}: ")
    # the default settings have a 1h window, but no worker ever exported one here
    empty = _suggest("--prometheus", prometheus.url, "--window", "1h")
    assert empty.returncode == 1
    assert "no KPI history in Prometheus at" in empty.stderr and "'1h'" in empty.stderr
    past = _suggest("--prometheus", prometheus.url, "--lookback", "90d")
    assert past.returncode == 1
    assert re.search(r"lookback of 90d reaches past what Prometheus at \S+ keeps \(60d",
                     past.stderr), past.stderr
    wrong = _suggest("--prometheus", prometheus.url, "--window", "7d")
    assert wrong.returncode == 2 and "--window '7d' is not one of" in wrong.stderr
    # never over an existing file (the settings file, say)
    settings = tmp_path / "kpistream.toml"
    settings.write_text("[kpi]\n", encoding="utf-8")
    refused = _suggest("--prometheus", prometheus.url, "--output", str(settings),
                       config=settings)
    assert refused.returncode == 1 and "File exists" in refused.stderr
    assert settings.read_text(encoding="utf-8") == "[kpi]\n"
