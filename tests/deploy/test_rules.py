"""The checked-in Prometheus rules: generated from deploy/kpistream.toml, valid, unit-tested
with promtool (deploy/prometheus/tests/*.yml)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.servers import DEPLOY, REPO, tool

RULES = DEPLOY / "prometheus" / "rules" / "kpistream.yml"
RULE_TESTS = sorted((DEPLOY / "prometheus" / "tests").glob("*.yml"))


def _generate(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KPISTREAM_")}
    env["KPISTREAM_CONFIG"] = str(config)
    return subprocess.run([sys.executable, "-m", "streams", "alert-rules", *args],
                          env=env, cwd=REPO, capture_output=True, text=True, timeout=60)


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=120, cwd=REPO)


def test_checked_in_rules_are_what_kpistream_alert_rules_writes() -> None:
    generated = _generate(DEPLOY / "kpistream.toml")
    assert generated.returncode == 0, generated.stderr
    assert RULES.read_text(encoding="utf-8") == generated.stdout, (
        "deploy/prometheus/rules/kpistream.yml is stale: run KPISTREAM_CONFIG=deploy/"
        "kpistream.toml kpistream alert-rules --output deploy/prometheus/rules/kpistream.yml")


def test_promtool_checks_the_rules() -> None:
    result = _run(tool("promtool"), "check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_unit_tests_pass() -> None:
    assert RULE_TESTS, "no promtool tests in deploy/prometheus/tests"
    result = _run(tool("promtool"), "test", "rules", *map(str, RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(RULE_TESTS), result.stdout


def test_every_alert_has_a_firing_and_a_quiet_unit_test() -> None:
    rules = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    names = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    fires: set[str] = set()
    quiet: set[str] = set()
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]:
            for check in case.get("alert_rule_test", []):
                (fires if check.get("exp_alerts") else quiet).add(check["alertname"])
    assert names <= fires, f"no firing case for {sorted(names - fires)}"
    assert names <= quiet, f"no not-firing case for {sorted(names - quiet)}"


def test_every_kpi_target_alert_has_a_min_denominator_case() -> None:
    """A case named for it ("min_denominator" or "under ...") feeds that KPI's floor."""
    rules = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    guarded = {r["labels"]["kpi"] for g in rules["groups"] for r in g["rules"]
               if r.get("alert", "").startswith("Kpi") and "min_denominator" in r["expr"]}
    covered: set[str] = set()
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]:
            name = case.get("name", "")
            if "min_denominator" in name or "under " in name:
                covered |= {m.group(1) for s in case["input_series"]
                            if s["series"].startswith("marketing_kpi_target_min_denominator")
                            for m in [re.search(r'kpi="([^"]+)"', s["series"])] if m}
    assert guarded, "no KPI target alert in the checked-in rules"
    assert guarded <= covered, f"no min_denominator case for {sorted(guarded - covered)}"


def test_prometheus_config_loads_with_the_rules(tmp_path: Path) -> None:
    config: dict[str, Any] = yaml.safe_load(
        (DEPLOY / "prometheus" / "prometheus.yml").read_text(encoding="utf-8"))
    assert config["rule_files"] == ["/etc/prometheus/rules/*.yml"]  # the compose mount
    config["rule_files"] = [str(RULES.parent / "*.yml")]
    copy = tmp_path / "prometheus.yml"
    copy.write_text(yaml.safe_dump(config), encoding="utf-8")
    result = _run(tool("promtool"), "check", "config", str(copy))
    assert result.returncode == 0, result.stdout + result.stderr


def test_rules_split_by_campaign_are_valid_promql(tmp_path: Path) -> None:
    config = tmp_path / "split.toml"
    config.write_text(
        '[kpi]\nwindows = ["10m"]\n'
        '[[targets]]\nkpi = "cac"\nmax = 40\nwindow = "10m"\nmin_denominator = 10\n'
        '[[targets]]\nkpi = "cac"\ncampaign = "spring.sale:v2"\nmax = 60\nwindow = "total"\n'
        'for = "1h"\n'
        '[[targets]]\nkpi = "cac"\ncampaign = "b-2"\nmax = 60\nwindow = "total"\n'
        'for = "1h"\nseverity = "page"\n',
        encoding="utf-8")
    out = tmp_path / "rules.yml"
    generated = _generate(config, "--output", str(out))
    assert generated.returncode == 0, generated.stderr
    assert 'campaign!~"b-2|spring\\\\.sale:v2"' in out.read_text(encoding="utf-8")
    result = _run(tool("promtool"), "check", "rules", str(out))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_runbook_section_in_deploy_readme() -> None:
    rules = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    anchors = {r["annotations"]["runbook_url"].split("#")[1]
               for g in rules["groups"] for r in g["rules"] if "alert" in r}
    headings = {line.removeprefix("### ").strip().lower()
                for line in (DEPLOY / "README.md").read_text(encoding="utf-8").splitlines()
                if line.startswith("### ")}
    assert {"kpidropped", "budgetoverspending", "budgetunderspending",
            "budgetexhausted"} <= anchors
    assert anchors <= headings, f"no runbook for {sorted(anchors - headings)}"
