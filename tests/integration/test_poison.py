"""Valid events at the edges of SPEC never stop the worker, on the real broker (issue 11).

A spend of 99999999999999 used to crash the input stage, and again after every restart,
since its offset was never committed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from decimal import Decimal

from streams.events.validation import ValidationRules
from streams.kafka.tansu import LocalBroker
from streams.stages.ingest import Ingestor
from streams.worker.input_consumer import InputConsumer
from tests.integration.harness import Deployment, value, wait_until

HUGE = "99999999999999"
LARGEST = "999999999999999.999999"


def test_money_at_the_top_of_the_range_counts_exactly_and_survives_a_restart(
    deploy: Callable[..., Deployment],
) -> None:
    deployment = deploy(partitions=2)
    worker = deployment.start_worker()
    now = int(time.time() * 1000)
    deployment.publish([
        ("spend", {"event_id": "s-1", "ts": now, "campaign_id": "big", "channel": "tiktok",
                   "amount": HUGE, "currency": "USD"}, None),
        ("spend", {"event_id": "s-2", "ts": now, "campaign_id": "big", "channel": "tiktok",
                   "amount": LARGEST, "currency": "USD"}, None),
        ("orders", {"event_id": "o-1", "ts": now, "campaign_id": "big", "channel": "tiktok",
                    "order_id": "A1", "customer_id": "cust", "revenue": LARGEST,
                    "currency": "USD"}, None),
        ("views", {"event_id": "v-1", "ts": now, "campaign_id": "big", "channel": "tiktok",
                   "user_id": "u" * 5000}, None),
    ])
    spend = float(Decimal(HUGE) + Decimal(LARGEST))

    def exact(w: object = worker) -> bool:
        samples = worker.samples()
        return (value(samples, "marketing_spend", campaign="big", channel="tiktok",
                      window="total", currency="USD") == spend
                and value(samples, "marketing_revenue", campaign="big", channel="tiktok",
                          window="total", currency="USD") == float(Decimal(LARGEST))
                and value(samples, "marketing_views", campaign="big", channel="tiktok",
                          window="total") == 1)

    wait_until(exact, 60, "the largest amounts counted")
    assert worker.process.poll() is None
    worker.stop()
    restarted = deployment.start_worker()
    worker = restarted
    wait_until(exact, 60, "the same numbers after a restart")
    assert restarted.process.poll() is None


def test_ready_reports_a_stopped_input_consumer(broker: LocalBroker) -> None:
    async def run() -> tuple[str | None, str | None]:
        consumer = InputConsumer(
            broker.bootstrap, f"ready-{time.time_ns()}", ["ready-probe-topic"],
            Ingestor({}, ValidationRules({}), {}, lambda: 0),
            send=_never_sends, partition_of=lambda key: 0,
            count_invalid=lambda event_type, count: None,
        )
        await consumer.start()
        try:
            deadline = time.monotonic() + 30
            while consumer.problem() is not None and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            running = consumer.problem()
            task = consumer._task  # the input loop, as a crash would leave it: done
            assert task is not None
            task.cancel()
            while not task.done():
                await asyncio.sleep(0.01)
            return running, consumer.problem()
        finally:
            await consumer.stop()

    running, stopped = asyncio.run(run())
    assert running is None
    assert stopped == "the input consumer has stopped"


async def _never_sends(record: object) -> asyncio.Future[None]:
    raise AssertionError("nothing to send")


def _rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_a_flood_of_campaign_names_is_capped_in_memory_and_series(
    deploy: Callable[..., Deployment],
) -> None:
    cap = 200
    deployment = deploy(partitions=4, extra_toml=f"[kpi]\nmax_campaign_channels = {cap}\n")
    worker = deployment.start_worker()
    now = int(time.time() * 1000)
    deployment.publish([("views", {"event_id": f"real-{i}", "ts": now, "campaign_id": "real",
                                   "channel": "tiktok"}, None) for i in range(10)])
    wait_until(lambda: value(worker.samples(), "marketing_views", campaign="real",
                             channel="tiktok", window="total") == 10, 60, "the real campaign")
    flood = 20_000

    def send_flood(round_: int) -> None:
        batches = [[{"event_id": f"f-{i}", "ts": now, "campaign_id": f"flood{round_}-{i}",
                     "channel": "web"} for i in range(start, start + 1000)]
                   for start in range(0, flood, 1000)]
        deployment.publish([("views", batch, None) for batch in batches])
        deployment.publish([("views", {"event_id": f"real-{round_}-{i}", "ts": now,
                                       "campaign_id": "real", "channel": "tiktok"}, None)
                            for i in range(10)])

    def settled(round_: int) -> bool:
        samples = worker.samples()
        accepted = value(samples, "kpistream_events_total", type="view", outcome="accepted")
        invalid = value(samples, "kpistream_events_total", type="view", outcome="invalid")
        return (accepted or 0) + (invalid or 0) == round_ * (flood + 10) + 10

    # Memory is bounded by the cap, not by the flood: a second flood of as many new
    # names as the first leaves RSS where the first did.
    rss = []
    for round_ in (1, 2):
        send_flood(round_)
        wait_until(lambda r=round_: settled(r), 120, f"flood {round_} counted or refused")
        rss.append(_rss_mib(worker.process.pid))
    samples = worker.samples()
    campaigns = {dict(labels)["campaign"] for (name, labels) in samples
                 if name == "marketing_views"}
    assert len(campaigns) == cap  # one worker owns every partition: the cap, exactly
    assert value(samples, "marketing_views", campaign="real", channel="tiktok",
                 window="total") == 30
    refused = value(samples, "kpistream_events_total", type="view", outcome="invalid")
    assert refused is not None and refused == 2 * flood - (len(campaigns) - 1)
    letters = deployment.read_topic("deadletter", 1)
    assert "max_campaign_channels is 200" in letters[0]["reason"]
    assert rss[1] - rss[0] < 25, rss
