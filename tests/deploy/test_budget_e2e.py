"""End to end: spend on the broker -> worker -> Prometheus with the generated rules ->
Alertmanager with the deploy config -> a webhook, for a campaign spending ahead of its
daily budget, and its resolution once the marketer raises the budget."""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.servers import Alertmanager, Prometheus, Webhook, alertmanager_config
from tests.deploy.test_alert_e2e import _rules, _spend
from tests.integration.harness import Deployment, Worker, wait_until

pytestmark = pytest.mark.integration

FAST = "e2e-fast-spender"


def _zone_at_local_hour(hour: int) -> str:
    """An Etc/GMT zone where it is now ``hour`` o'clock: a known early share of the day."""
    offset = (hour - dt.datetime.now(dt.UTC).hour + 12) % 24 - 12  # -12..+11 hours
    return "Etc/GMT" + ("" if offset == 0 else f"{-offset:+d}")  # POSIX: the sign is inverted


def _settings(amount: int, zone: str) -> str:
    return (f'[kpi]\nwindows = ["5m"]\n\n[[budgets]]\ncampaign = "{FAST}"\nperiod = "day"\n'
            f'amount = {amount}\ntimezone = "{zone}"\nfor = "2s"\nseverity = "page"\n')


def _restart(deployment: Deployment, worker: Worker) -> Worker:
    """Stop ``worker`` and start another on its port, with the settings file as it is now."""
    worker.stop()
    log = deployment.tmp / f"worker-{worker.port}-again.log"
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "streams", "worker"],
                                   env=deployment.env(worker.port), stdout=out,
                                   stderr=subprocess.STDOUT)
    again = Worker(process, worker.port, log)
    deployment.workers.append(again)
    wait_until(lambda: again.status("/ready") == 200 or process.poll() is not None, 60,
               "the restarted worker to be ready")
    assert process.poll() is None, again.log_tail()
    return again


def test_spending_ahead_of_a_daily_budget_pages_and_resolves_when_it_is_raised(
    deploy: Callable[..., Deployment], tmp_path: Path,
) -> None:
    zone = _zone_at_local_hour(2)  # 2-3 o'clock there: 8.3 to 12.5 % of the day gone
    deployment = deploy(extra_toml=_settings(100, zone))
    rules = _rules(deployment, tmp_path / "rules.yml")
    with Webhook() as hook, Alertmanager(
        tmp_path, alertmanager_config(hook.url, group_wait="1s", group_interval="1s",
                                      repeat_interval="1h"),
    ) as am:
        worker = deployment.start_worker()
        with Prometheus(tmp_path, [f"127.0.0.1:{worker.port}"], rules=[rules],
                        alertmanager=am.address) as prom:
            wait_until(prom.targets_up, 30, "Prometheus to scrape the worker")
            # 60 of 100 USD spent by 2-3 in the morning: pacing 4.8 to 7.2.
            deployment.publish([_spend(FAST, "60", int(time.time() * 1000))])

            def notified(status: str) -> list[dict[str, Any]]:
                return [alert for path, body in hook.notifications() for alert in body["alerts"]
                        if path == "/marketing-pager" and alert["status"] == status
                        and alert["labels"]["alertname"] == "BudgetOverspending"]

            wait_until(lambda: bool(notified("firing")), 90,
                       f"the BudgetOverspending alert of {FAST} at the webhook")
            (alert,) = notified("firing")[:1]
            assert alert["labels"] == {"alertname": "BudgetOverspending", "campaign": FAST,
                                       "period": "day", "severity": "page", "inputs": "spend"}
            summary = alert["annotations"]["summary"]
            match = re.fullmatch(
                f"Campaign {FAST} is spending its day budget too fast: pacing ([0-9.]+), "
                r"60\.00 of 100\.00 USD spent with ([0-9.]+)% of the period gone", summary)
            assert match, summary
            pacing, elapsed = float(match.group(1)), float(match.group(2)) / 100
            assert 2 / 24 <= elapsed < 3.5 / 24
            assert pacing == pytest.approx(0.6 / elapsed, rel=0.02)
            assert alert["annotations"]["runbook_url"].endswith("#budgetoverspending")
            assert not [a for _, body in hook.notifications() for a in body["alerts"]
                        if a["labels"]["alertname"] == "BudgetExhausted"]

            # The marketer raises the budget to 10,000 USD and restarts the worker: the same
            # 60 USD are now pacing 0.048 to 0.072.
            deployment.config.write_text(
                deployment.config.read_text(encoding="utf-8").replace(
                    "amount = 100\n", "amount = 10000\n"), encoding="utf-8")
            _restart(deployment, worker)
            wait_until(lambda: bool(notified("resolved")), 90,
                       f"the resolved notification of {FAST} at the webhook")

            # Resolved for its figures, not only while the worker was away: the new budget
            # has been scraped for 5 s (alerts are evaluated every second, for 2s) and
            # nothing is pending or firing again.
            def new_budget_seen_for_5s() -> bool:
                seen = prom.query(f'count_over_time(marketing_budget{{campaign="{FAST}"}}'
                                  "[5s]) >= 5 and on () "
                                  f'min_over_time(marketing_budget{{campaign="{FAST}"}}[5s])'
                                  " == 10000")
                return bool(seen)

            wait_until(new_budget_seen_for_5s, 60, "Prometheus to scrape the raised budget")
            (pace,) = prom.query(f'marketing_budget_pacing_ratio{{campaign="{FAST}"}}')
            assert 60 / (10000 * 3.5 / 24) < float(pace["value"][1]) <= 60 / (10000 * 2 / 24)
            assert [a for a in prom.alerts() if a["labels"].get("campaign") == FAST] == []
            assert len(notified("firing")) == 1
