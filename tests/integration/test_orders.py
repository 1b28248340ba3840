"""Orders on the real broker: click join across topics and keys, customers, redeliveries."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.integration.harness import Deployment, Samples, value, wait_until

MIN = 60_000


def _total(samples: Samples, name: str, campaign: str, channel: str) -> float | None:
    labels = {"campaign": campaign, "channel": channel, "window": "total"}
    if name in ("marketing_revenue", "marketing_spend"):
        labels["currency"] = "USD"
    return value(samples, name, **labels)


def _order(i: int, ts: int, customer: str, **fields: Any) -> dict[str, Any]:
    return {"event_id": f"o-{i}", "ts": ts, "order_id": f"A{i}", "customer_id": customer,
            "revenue": "25.50", "currency": "USD", **fields}


def test_orders_join_clicks_customers_and_redeliveries(
    deploy: Callable[..., Deployment],
) -> None:
    deployment = deploy(extra_toml='[kpi]\nclick_grace = "5s"\n')
    worker = deployment.start_worker()
    now = int(time.time() * 1000)
    clicks = [{"event_id": f"c-{i}", "ts": now - 2 * MIN, "campaign_id": "autumn",
               "channel": "instagram", "click_id": f"fbclid-{i}"} for i in range(3)]
    # Clicks keyed by campaign, orders keyed by order id: different partitions.
    deployment.publish([("clicks", c, b"autumn") for c in clicks])
    deployment.publish([
        ("orders", _order(1, now, "alice", click_id="fbclid-0"), b"A1"),
        ("orders", _order(2, now, "bob", click_id="fbclid-1"), b"A2"),
        # alice again, on another campaign: a repeat customer there.
        ("orders", _order(3, now + 1, "alice", campaign_id="winter", channel="youtube"), b"A3"),
        # an order whose click id is unknown: unattributed once the grace is over.
        ("orders", _order(4, now, "carol", click_id="ttclid-unknown"), None),
    ])

    def settled() -> bool:
        s = worker.samples()
        return (_total(s, "marketing_orders", "autumn", "instagram") == 2
                and _total(s, "marketing_orders", "winter", "youtube") == 1
                and _total(s, "marketing_orders", "unattributed", "unknown") == 1)

    wait_until(settled, 30, "orders attributed by click id and the unmatched one released")
    samples = worker.samples()
    assert _total(samples, "marketing_clicks", "autumn", "instagram") == 3
    assert _total(samples, "marketing_conversion_ratio", "autumn", "instagram") == 2 / 3
    assert _total(samples, "marketing_new_customers", "autumn", "instagram") == 2
    assert _total(samples, "marketing_new_customers", "winter", "youtube") == 0
    assert _total(samples, "marketing_repeat_purchase_ratio", "winter", "youtube") == 1.0

    # Redeliveries of every event, keyed differently, after the first ones were counted.
    deployment.publish([("clicks", c, b"other-key") for c in clicks])
    deployment.publish([
        ("orders", _order(1, now, "alice", click_id="fbclid-0"), b"zz"),
        ("orders", _order(3, now + 1, "alice", campaign_id="winter", channel="youtube"), None),
    ])
    wait_until(
        lambda: value(worker.samples(), "kpistream_events_total", type="order",
                      outcome="duplicate") == 2
        and value(worker.samples(), "kpistream_events_total", type="click",
                  outcome="duplicate") == 3,
        30, "redeliveries counted as duplicates")
    after = worker.samples()
    for name in ("marketing_orders", "marketing_clicks", "marketing_new_customers",
                 "marketing_revenue"):
        for campaign, channel in (("autumn", "instagram"), ("winter", "youtube")):
            assert _total(after, name, campaign, channel) == _total(samples, name, campaign,
                                                                   channel), name
    assert value(after, "kpistream_events_total", type="order", outcome="accepted") == 4


@pytest.mark.parametrize("local_state", ["kept", "wiped"])
def test_clicks_and_customers_outlive_a_sigkill(
    deploy: Callable[..., Deployment], local_state: str,
) -> None:
    """Clicks and customers remembered before a SIGKILL: after a restart on the same disk
    (read from the worker's RocksDB stores) or on an empty one (recovered from the
    changelogs), a later order still joins its click, a returning customer is not new, and
    an order delivered again is a duplicate."""
    deployment = deploy(partitions=4, extra_toml='[kpi]\nclick_grace = "5s"\n')
    worker = deployment.start_worker()
    now = int(time.time() * 1000)
    n = 8
    deployment.publish([("clicks", {"event_id": f"c-{i}", "ts": now - MIN,
                                    "campaign_id": "autumn", "channel": "instagram",
                                    "click_id": f"fbclid-{i}"}, None) for i in range(n)])
    deployment.publish([("orders", _order(i, now, f"cust-{i}", click_id=f"fbclid-{i}"), None)
                        for i in range(n)])
    wait_until(lambda: _total(worker.samples(), "marketing_orders", "autumn",
                              "instagram") == n, 30, "every order joined to its click")
    worker.stop(signal.SIGKILL)

    restarted = deployment.start_worker(
        ready_timeout_s=90, data_dir=worker.data_dir if local_state == "kept" else None)
    deployment.publish([("orders", _order(n + i, now + 1, f"cust-{i}",
                                          click_id=f"fbclid-{i}"), None) for i in range(n)])
    # Order 0 again, then a new order of its customer on the same key: read in that order
    # (one input partition, then one customer partition), so once the new one is counted
    # the second delivery was decided.
    deployment.publish([("orders", _order(0, now, "cust-0", click_id="fbclid-0"), b"again"),
                        ("orders", _order(2 * n, now + 2, "cust-0", click_id="fbclid-0"),
                         b"again")])
    wait_until(lambda: _total(restarted.samples(), "marketing_orders", "autumn",
                              "instagram") == 2 * n + 1, 60,
               "the later orders joined to the clicks from before the kill")
    samples = restarted.samples()
    assert _total(samples, "marketing_new_customers", "autumn", "instagram") == n
    assert _total(samples, "marketing_orders", "unattributed", "unknown") is None
    # orders of returning customers: every order but each customer's first
    assert _total(samples, "marketing_repeat_purchase_ratio", "autumn",
                  "instagram") == (n + 1) / (2 * n + 1)
