"""Crashes on the real broker: the numbers after a SIGKILL equal an uninterrupted run."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from tests.integration.harness import Deployment, Samples, Worker, value, wait_until

N_VIEWS = 20_000
N_ORDERS = 600
CAMPAIGNS = 16


def _ledger(now: int) -> tuple[list[tuple[str, Any, bytes | None]], dict[str, float]]:
    """Events with known totals, keyed at random (keys are only hints)."""
    messages: list[tuple[str, Any, bytes | None]] = []
    for i in range(N_VIEWS):
        messages.append(("views", {"event_id": f"v{i}", "ts": now, "campaign_id":
                                   f"c{i % CAMPAIGNS}", "channel": "tiktok"}, str(i).encode()))
    for i in range(N_ORDERS):
        messages.append(("orders", {"event_id": f"o{i}", "ts": now + i, "campaign_id":
                                    f"c{i % CAMPAIGNS}", "order_id": f"A{i}",
                                    "customer_id": f"cust{i % 200}", "revenue": "2.50",
                                    "currency": "USD"}, None))
    expected = {"marketing_views": N_VIEWS, "marketing_orders": N_ORDERS,
                "marketing_new_customers": 200, "marketing_revenue": N_ORDERS * 2.5}
    return messages, expected


def _totals(samples: Samples) -> dict[str, float]:
    out: dict[str, float] = {}
    for (name, labels), v in samples.items():
        if ("window", "total") in labels and name in ("marketing_views", "marketing_orders",
                                                      "marketing_new_customers",
                                                      "marketing_revenue"):
            out[name] = out.get(name, 0.0) + v
    return out


def _accepted(worker: Worker) -> float:
    try:
        samples = worker.samples()
    except OSError:
        return -1
    return sum(v for (name, labels), v in samples.items()
               if name == "kpistream_events_total" and ("outcome", "accepted") in labels)


def test_sigkill_mid_stream_and_restart_loses_and_doubles_nothing(
    deploy: Callable[..., Deployment],
) -> None:
    deployment = deploy(partitions=4)
    worker = deployment.start_worker()
    messages, expected = _ledger(int(time.time() * 1000))
    publisher = threading.Thread(target=deployment.publish, args=(messages,))
    publisher.start()
    wait_until(lambda: _accepted(worker) >= N_VIEWS / 3, 60, "a third of the ledger counted")
    killed_at = _accepted(worker)
    worker.stop(signal.SIGKILL)
    publisher.join()

    started = time.monotonic()
    restarted = deployment.start_worker(ready_timeout_s=90)
    ready_s = time.monotonic() - started
    wait_until(lambda: _totals(restarted.samples()).get("marketing_views", 0) >= N_VIEWS,
               90, "every view counted after the restart")
    totals = _totals(restarted.samples())
    counted = totals["marketing_views"]
    print(f"\nSIGKILL at {killed_at:.0f} accepted; restart ready in {ready_s:.1f} s; "
          f"views sent {N_VIEWS}, counted {counted:.0f}, lost {max(0, N_VIEWS - counted):.0f}, "
          f"double counted {max(0, counted - N_VIEWS):.0f}")
    wait_until(lambda: _totals(restarted.samples()).get("marketing_orders") == N_ORDERS,
               30, "every order counted")
    totals = _totals(restarted.samples())
    assert totals == expected
    duplicates = value(restarted.samples(), "kpistream_events_total", type="view",
                       outcome="duplicate")
    assert duplicates == 0  # nothing was sent twice: replays are not duplicates
