"""deploy/alertmanager/alertmanager.yml: valid, routes by severity and campaign, and holds
back KPI alerts while the tracker they depend on is quiet (on a real Alertmanager)."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.servers import DEPLOY, Alertmanager, Webhook, alertmanager_config, tool
from tests.integration.harness import wait_until

CONFIG = DEPLOY / "alertmanager" / "alertmanager.yml"


def test_amtool_checks_the_config() -> None:
    result = subprocess.run([tool("amtool"), "check-config", str(CONFIG)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.parametrize(("labels", "receiver"), [
    # KPI alerts of ordinary campaigns: by severity
    ({"alertname": "KpiBelowTarget", "severity": "page", "campaign": "summer-sale"},
     "marketing-pager"),
    ({"alertname": "KpiAboveTarget", "severity": "ticket", "campaign": "summer-sale"},
     "marketing-tickets"),
    # campaigns with an owner: everything about them, either severity
    ({"alertname": "KpiBelowTarget", "severity": "ticket", "campaign": "black-friday"},
     "black-friday-war-room"),
    ({"alertname": "KpiBelowTarget", "severity": "page", "campaign": "creator-collab"},
     "creator-team"),
    # the service: to the platform, by severity
    ({"alertname": "TrackerQuiet", "severity": "page", "type": "view"}, "platform-pager"),
    ({"alertname": "WorkerDown", "severity": "page", "instance": "worker-1:6066"},
     "platform-pager"),
    ({"alertname": "ConsumerLagGrowing", "severity": "ticket", "topic": "marketing.views"},
     "platform-tickets"),
    ({"alertname": "DeadLetterRateHigh", "severity": "ticket"}, "platform-tickets"),
])
def test_routing(labels: dict[str, str], receiver: str) -> None:
    result = subprocess.run(
        [tool("amtool"), "config", "routes", "test", f"--config.file={CONFIG}",
         f"--verify.receivers={receiver}", *(f"{k}={v}" for k, v in labels.items())],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def _alert(**labels: str) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {"labels": labels, "annotations": {"summary": labels["alertname"]},
            "startsAt": now.isoformat(), "endsAt": (now + timedelta(minutes=10)).isoformat()}


def test_kpi_alerts_needing_a_quiet_trackers_events_are_inhibited(tmp_path: Path) -> None:
    roas = _alert(alertname="KpiBelowTarget", severity="page", campaign="summer-sale",
                  window="1h", kpi="roas_ratio", bound="min", inputs="order,spend")
    ctr = _alert(alertname="KpiBelowTarget", severity="page", campaign="summer-sale",
                 window="1h", kpi="click_through_ratio", bound="min", inputs="view,click")
    quiet = _alert(alertname="TrackerQuiet", severity="page", type="order")
    with Webhook() as hook, Alertmanager(
        tmp_path, alertmanager_config(hook.url, group_wait="1s", group_interval="1s")
    ) as am:
        am.post_alerts([quiet, roas, ctr])

        def delivered() -> set[str]:
            return {alert["labels"].get("kpi", alert["labels"]["alertname"])
                    for _, body in hook.notifications() for alert in body["alerts"]}

        wait_until(lambda: {"click_through_ratio", "TrackerQuiet"} <= delivered(), 30,
                   "the CTR and tracker alerts to reach the webhook")
        status = {a["labels"].get("kpi", a["labels"]["alertname"]): a["status"]
                  for a in am.alerts()}
        assert status["roas_ratio"]["state"] == "suppressed"
        assert status["roas_ratio"]["inhibitedBy"]
        assert status["click_through_ratio"]["inhibitedBy"] == []
        assert "roas_ratio" not in delivered()
        receivers = {path for path, _ in hook.notifications()}
        assert receivers == {"/marketing-pager", "/platform-pager"}
