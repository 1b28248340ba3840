"""End to end: events on the broker -> worker -> Prometheus with the generated rules ->
Alertmanager with the deploy config -> a webhook, for a ROAS breach and its recovery."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.servers import REPO, Alertmanager, Prometheus, Webhook, alertmanager_config
from tests.integration.harness import Deployment, wait_until

pytestmark = pytest.mark.integration

LOW, SMALL = "e2e-low-roas", "e2e-small-spend"
SETTINGS = """
[kpi]
windows = ["5m"]

[[targets]]
kpi = "roas_ratio"
min = 2
window = "5m"
for = "2s"
severity = "page"
min_denominator = 10
"""


def _rules(deployment: Deployment, out: Path) -> Path:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KPISTREAM_")}
    env["KPISTREAM_CONFIG"] = str(deployment.config)
    result = subprocess.run(
        [sys.executable, "-m", "streams", "alert-rules", "--output", str(out)],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return out


def _order(campaign: str, n: int, revenue: str, now: int) -> tuple[str, Any, bytes | None]:
    return ("orders", {"event_id": f"{campaign}-o{n}", "ts": now, "campaign_id": campaign,
                       "channel": "tiktok", "order_id": f"{campaign}-{n}",
                       "customer_id": f"{campaign}-c{n}", "revenue": revenue,
                       "currency": "USD"}, None)


def _spend(campaign: str, amount: str, now: int) -> tuple[str, Any, bytes | None]:
    return ("spend", {"event_id": f"{campaign}-s", "ts": now, "campaign_id": campaign,
                      "channel": "tiktok", "amount": amount, "currency": "USD"}, None)


def test_a_roas_breach_is_notified_and_then_resolved(
    deploy: Callable[..., Deployment], tmp_path: Path,
) -> None:
    deployment = deploy(extra_toml=SETTINGS)
    rules = _rules(deployment, tmp_path / "rules.yml")
    with Webhook() as hook, Alertmanager(
        tmp_path, alertmanager_config(hook.url, group_wait="1s", group_interval="1s",
                                      repeat_interval="1h"),
    ) as am:
        worker = deployment.start_worker()
        with Prometheus(tmp_path, [f"127.0.0.1:{worker.port}"], rules=[rules],
                        alertmanager=am.address) as prom:
            wait_until(prom.targets_up, 30, "Prometheus to scrape the worker")
            now = int(time.time() * 1000)
            # LOW: 20 USD back on 50 spent, ROAS 0.4. SMALL: ROAS 0.1, on 3 USD only.
            deployment.publish([_spend(LOW, "50", now), _order(LOW, 1, "20", now),
                                _spend(SMALL, "3", now), _order(SMALL, 1, "0.3", now)])

            def notified(status: str) -> list[dict[str, Any]]:
                return [alert for path, body in hook.notifications() for alert in body["alerts"]
                        if path == "/marketing-pager" and alert["status"] == status
                        and alert["labels"]["campaign"] == LOW]

            wait_until(lambda: bool(notified("firing")), 90,
                       f"the KpiBelowTarget alert of {LOW} at the webhook")
            (alert,) = notified("firing")[:1]
            assert alert["labels"] == {
                "alertname": "KpiBelowTarget", "campaign": LOW, "window": "5m",
                "kpi": "roas_ratio", "bound": "min", "severity": "page",
                "inputs": "order,spend"}
            assert alert["annotations"]["summary"] == (
                f"Campaign {LOW}: ROAS over 5m is 0.40, below its minimum of 2.00")
            assert alert["annotations"]["runbook_url"].endswith("#kpibelowtarget")
            # SMALL breached the same target in the same evaluations, under 10 USD of spend.
            assert prom.query(f'campaign_window:marketing_roas_ratio:ratio{{campaign="{SMALL}"}}')
            assert [a for a in prom.alerts() if a["labels"].get("campaign") == SMALL] == []
            assert all(a["labels"]["campaign"] == LOW
                       for _, body in hook.notifications() for a in body["alerts"])

            # 200 USD more revenue: ROAS 220 / 50 = 4.4, above the target.
            deployment.publish([_order(LOW, 2, "200", int(time.time() * 1000))])
            wait_until(lambda: bool(notified("resolved")), 90,
                       f"the resolved notification of {LOW} at the webhook")
            assert not [a for a in prom.alerts() if a["labels"].get("campaign") == LOW]
