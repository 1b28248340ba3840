"""Crashes on the real broker: the numbers after a SIGKILL equal an uninterrupted run."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from tests.integration.harness import Deployment, Samples, Worker, value, wait_until

N_VIEWS = 60_000
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
    accepted = sum(v for (name, labels), v in samples.items()
                   if name == "kpistream_events_total" and ("outcome", "accepted") in labels)
    worker.last_accepted = accepted
    return accepted


def test_sigkill_mid_stream_and_restart_loses_and_doubles_nothing(
    deploy: Callable[..., Deployment],
) -> None:
    deployment = deploy(partitions=4)
    worker = deployment.start_worker()
    messages, expected = _ledger(int(time.time() * 1000))
    publisher = threading.Thread(target=deployment.publish, args=(messages,))
    publisher.start()
    wait_until(lambda: _accepted(worker) >= 1_000, 60, "the first events counted")
    worker.stop(signal.SIGKILL)
    killed_at = float(worker.last_accepted)
    assert killed_at < N_VIEWS, "the kill came after the whole ledger was counted"
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


def _views_by_worker(workers: list[Worker]) -> tuple[float, int]:
    """Sum of total views over workers, and how many campaigns two workers both serve."""
    owners: dict[str, set[int]] = {}
    views = 0.0
    for worker in workers:
        for (name, labels), v in worker.samples().items():
            tags = dict(labels)
            if name == "marketing_views" and tags.get("window") == "total":
                views += v
                owners.setdefault(tags["campaign"], set()).add(worker.port)
    return views, sum(1 for ports in owners.values() if len(ports) > 1)


def test_scale_one_two_three_one_workers_while_publishing(
    deploy: Callable[..., Deployment],
) -> None:
    deployment = deploy(partitions=6)
    now = int(time.time() * 1000)
    events = [("views", {"event_id": f"v{i}", "ts": now, "campaign_id": f"c{i % 24}"}, None)
              for i in range(24_000)]
    chunks = [events[i:i + 4_000] for i in range(0, len(events), 4_000)]
    sent = 0
    workers = [deployment.start_worker()]
    for step in range(len(chunks)):
        deployment.publish(chunks[step])
        sent += len(chunks[step])
        if step in (0, 1):  # grow to two, then three workers
            started = time.monotonic()
            workers.append(deployment.start_worker(ready_timeout_s=90))
            print(f"\nworker {len(workers)} joined and ready in "
                  f"{time.monotonic() - started:.1f} s")
        if step == 3:  # back to one
            for worker in workers[1:]:
                worker.stop()
            workers = workers[:1]
        expected = sent

        seen: list[Any] = []

        def settled(expected: float = expected, workers: list[Worker] = workers,
                    seen: list[Any] = seen) -> bool:
            views, shared = _views_by_worker(workers)
            assert shared == 0, "a campaign was served by two workers"
            seen[:] = [views, [w.status("/ready") for w in workers]]
            return views == expected

        started = time.monotonic()
        try:
            wait_until(settled, 90, f"{expected} views summed over {len(workers)} workers")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; last seen: views, /ready = {seen}") from None
        print(f"{len(workers)} worker(s): {expected} views exact after "
              f"{time.monotonic() - started:.1f} s")


def test_broker_frozen_for_30_s_then_resumes_with_exact_numbers(
    deploy: Callable[..., Deployment],
) -> None:
    deployment = deploy()
    worker = deployment.start_worker()
    now = int(time.time() * 1000)
    first = [("views", {"event_id": f"a{i}", "ts": now, "campaign_id": "c"}, None)
             for i in range(2_000)]
    deployment.publish(first)
    wait_until(lambda: _accepted(worker) == 2_000, 30, "the first events counted")
    broker = deployment.broker.process
    assert broker is not None
    broker.send_signal(signal.SIGSTOP)
    frozen_at = time.monotonic()
    try:
        wait_until(lambda: worker.status("/ready") == 503, 20, "/ready to report not ready")
        not_ready_after = time.monotonic() - frozen_at
        assert worker.status("/health") == 200
        assert _accepted(worker) == 2_000  # /metrics still served from memory
        while time.monotonic() - frozen_at < 30:
            assert worker.status("/health") == 200
            time.sleep(1)
    finally:
        broker.send_signal(signal.SIGCONT)
    resumed = time.monotonic()
    second = [("views", {"event_id": f"b{i}", "ts": now, "campaign_id": "c"}, None)
              for i in range(2_000)]
    deployment.publish(second)
    wait_until(lambda: worker.status("/ready") == 200 and _accepted(worker) == 4_000,
               90, "the worker to resume by itself and count the rest")
    total = value(worker.samples(), "marketing_views", campaign="c", channel="unknown",
                  window="total")
    print(f"\nnot ready {not_ready_after:.1f} s after the freeze; resumed and exact "
          f"{time.monotonic() - resumed:.1f} s after SIGCONT")
    assert total == 4_000
