"""The worker's own Faust agents (join, customers, count) on Faust's test contexts.

Each test builds the worker with ``create_app``, runs its real agents (takes and offset
order, send_all, acks in order, counters, dead letters) in ``Agent.test_context()`` with
the ``memory://`` store and no broker (tests/functional/worker.py), and checks what /metrics
and /ready would answer against numbers worked out by hand.
"""

from __future__ import annotations

import asyncio
import logging
import time
from decimal import Decimal
from pathlib import Path

import orjson
import pytest
from faust.exceptions import NotReady

from streams.config.settings import Settings
from streams.stages.ingest import RawMessage
from streams.stages.outgoing import Outgoing, ingested
from streams.windows.blocks import block_entries, hour_key
from streams.worker.app import create_app
from streams.worker.bucket_store import BucketStore
from streams.worker.sending import FaustSender
from tests.functional.worker import (
    NOT_STARTED,
    functional_worker,
    records_for,
    run,
    views,
    wait_until,
)

EUR = Decimal("1.08")
STOPPED = ("{}: a send failed (KafkaTimeoutError); stopped so nothing past it is committed, "
           "restart to resume from the last committed offset")


def now_ms() -> int:
    return int(time.time() * 1000)


def click(event_id: str, campaign: str, channel: str, click_id: str) -> dict[str, object]:
    return {"event_id": event_id, "campaign_id": campaign, "channel": channel,
            "click_id": click_id, "ts": now_ms()}


def order(event_id: str, order_id: str, customer: str, revenue: str, currency: str,
          click_id: str) -> dict[str, object]:
    return {"event_id": event_id, "order_id": order_id, "customer_id": customer,
            "revenue": revenue, "currency": currency, "click_id": click_id, "ts": now_ms()}


def where(events: list[object]) -> list[tuple[str, int, int]]:
    """(topic, partition, offset) of each message put, in order."""
    return [(e.message.topic, e.message.partition, e.message.offset)  # type: ignore[attr-defined]
            for e in events]


def test_views_with_duplicates_count_once_on_each_partition(tmp_path: Path) -> None:
    """Views of two campaigns on the two partitions of kpi-events: an id sent again in a
    later message, and twice in one batch, counts once.

    summer/tiktok: e1 (completed), e2, e3, then e2 again and e4: 4 views, 1 completed.
    spring/web:    s1 twice in one batch: 1 view.  Accepted 5, duplicates 2.
    """
    async def scenario() -> None:
        async with functional_worker(tmp_path, partitions=2) as worker:
            kpi = worker.kpi
            assert kpi.ownership.partition("summer") == 0
            assert kpi.ownership.partition("spring") == 1
            first = views("summer", "tiktok", "e1", "e2", "e3")
            first[0]["completed"] = True
            await worker.publish("marketing.views", first)
            await worker.publish("marketing.views", views("summer", "tiktok", "e2", "e4"))
            await worker.publish("marketing.views", views("spring", "web", "s1", "s1"))
            events = await worker.deliver()

            assert where(events) == [("kpistream-kpi-events", 0, 0),
                                     ("kpistream-kpi-events", 0, 1),
                                     ("kpistream-kpi-events", 1, 0)]
            assert all(e.message.acked for e in events)
            for window in ("5m", "total"):
                assert worker.kpi_value("marketing_views", "summer", "tiktok", window) == 4
                assert worker.kpi_value("marketing_completed_views", "summer", "tiktok",
                                        window) == 1
                assert worker.kpi_value("marketing_completion_ratio", "summer", "tiktok",
                                        window) == 0.25
                assert worker.kpi_value("marketing_views", "spring", "web", window) == 1
            assert worker.events_total("view", "accepted") == 5
            assert worker.events_total("view", "duplicate") == 2
            assert worker.events_total("view", "invalid") == 0
            assert worker.dead_letters() == []
            # Each message's table changes went to its own partition of the changelog.
            assert {c.partition for c in worker.recorder.changes
                    if c.topic == "kpistream-kpi-changelog"} == {0, 1}
            assert kpi.readiness.not_ready_because() == NOT_STARTED

    run(scenario)


def test_orders_join_their_click_and_count_in_its_campaign(tmp_path: Path) -> None:
    """A click, then two orders of one customer naming it (one in EUR) and the first
    order delivered again: join -> customers -> count attribute both orders to the click.

    revenue 40.50 EUR * 1.08 = 43.74 USD, then 10.00 USD: 53.74 over 2 orders, 1 new
    customer; the redelivered order is a duplicate; conversion 2 orders / 1 click.
    """
    async def scenario() -> None:
        async with functional_worker(tmp_path, partitions=2,
                                     fx={"USD": Decimal(1), "EUR": EUR}) as worker:
            part = worker.kpi.ownership.partition
            await worker.publish("marketing.clicks", click("k1", "summer", "tiktok", "clk-1"))
            await worker.publish("marketing.orders",
                                 order("o1", "ord-1", "cust-1", "40.50", "EUR", "clk-1"))
            events = await worker.deliver()
            assert where(events) == [
                ("kpistream-click-join", part("clk-1"), 0),       # the click, remembered
                ("kpistream-kpi-events", part("summer"), 0),      # the click, counted
                ("kpistream-click-join", part("clk-1"), 1),       # the order, joined
                ("kpistream-customer-orders", part("cust-1"), 0),  # a new customer
                ("kpistream-kpi-events", part("summer"), 1),      # the order, counted
            ]
            assert worker.kpi_value("marketing_orders", "summer", "tiktok") == 1
            assert worker.kpi_value("marketing_revenue", "summer", "tiktok") == 43.74

            await worker.publish("marketing.orders",
                                 order("o2", "ord-2", "cust-1", "10.00", "USD", "clk-1"),
                                 order("o1", "ord-1", "cust-1", "40.50", "EUR", "clk-1"))
            assert all(e.message.acked for e in [*events, *await worker.deliver()])

            for window in ("1h", "total"):
                def value(name: str, window: str = window) -> float | None:
                    return worker.kpi_value(name, "summer", "tiktok", window)

                assert value("marketing_clicks") == 1
                assert value("marketing_orders") == 2
                assert value("marketing_new_customers") == 1
                assert value("marketing_revenue") == 53.74
                assert value("marketing_aov") == 26.87
                assert value("marketing_conversion_ratio") == 2.0
                assert value("marketing_repeat_purchase_ratio") == 0.5
            assert worker.events_total("click", "accepted") == 1
            assert worker.events_total("order", "accepted") == 2
            assert worker.events_total("order", "duplicate") == 1
            assert worker.dead_letters() == []

    run(scenario)


MALFORMED = {
    "kpi_events": ("internal error: the counting stage failed on this event (MalformedForwards)",
                   "unknown"),
    "click_join": ("internal error: the click join got a message that is not a JSON array",
                   "unknown"),
    "customer_orders": ("internal error: the customer stage got a message that is not a "
                        "JSON array", "order"),
}


@pytest.mark.parametrize("role", sorted(MALFORMED))
def test_a_malformed_internal_message_is_dead_lettered_and_the_next_counts(
        tmp_path: Path, role: str) -> None:
    """A message no stage can read is dead-lettered with the reason and acked; the
    partition goes on with the next message: a click and its order count in full."""
    reason, event_type = MALFORMED[role]
    topic = f"kpistream-{role.replace('_', '-')}"

    async def scenario() -> None:
        async with functional_worker(tmp_path, partitions=1) as worker:
            bad = await worker.put(Outgoing(role, b"not json", 0, b"summer"))
            await worker.publish("marketing.clicks", click("k1", "summer", "tiktok", "clk-1"))
            await worker.publish("marketing.orders",
                                 order("o1", "ord-1", "cust-1", "25", "USD", "clk-1"))
            events = await worker.deliver()

            assert bad.message.acked
            assert worker.dead_letters() == [{
                "reason": reason, "topic": topic,
                "partition": 0, "offset": 0, "raw": "not json", "type": event_type}]
            assert worker.events_total(event_type, "invalid") == 1
            # The message after it on the same partition is the next offset, taken.
            assert (topic, 0, 1) in where(events)
            assert all(e.message.acked for e in events)
            assert worker.kpi_value("marketing_clicks", "summer", "tiktok") == 1
            assert worker.kpi_value("marketing_orders", "summer", "tiktok") == 1
            assert worker.kpi_value("marketing_revenue", "summer", "tiktok") == 25
            assert worker.kpi.readiness.not_ready_because() == NOT_STARTED

    run(scenario)


@pytest.mark.parametrize(("failing", "stage", "stopped_on"), [
    ("changelog", "count", "kpistream-kpi-events"),  # views: the count table's changes
    ("customer_orders", "join", "kpistream-click-join"),  # the joined order, sent on
])
def test_a_message_whose_send_fails_is_never_acked_and_ready_says_why(
        tmp_path: Path, failing: str, stage: str, stopped_on: str) -> None:
    """A send of a message's handling fails: that message is not acked, the stage takes
    no further message, /ready names the stage and the failure, and the worker is told
    once (a delivery timeout: the worker command exits then, to be restarted)."""
    async def scenario() -> None:
        async with functional_worker(tmp_path, partitions=1) as worker:
            kpi = worker.kpi
            told: list[str] = []
            kpi.readiness.on_stage_stopped = told.append
            assert kpi.readiness.not_ready_because() == NOT_STARTED
            worker.recorder.failing.add(failing)
            if stage == "count":
                await worker.publish("marketing.views", views("summer", "tiktok", "e1", "e2"))
            else:
                await worker.publish("marketing.clicks",
                                     click("k1", "summer", "tiktok", "clk-1"))
                await worker.publish("marketing.orders",
                                     order("o1", "ord-1", "cust-1", "25", "USD", "clk-1"))
            events = await worker.deliver()

            stopped = events[-1]
            assert stopped.message.topic == stopped_on
            assert not stopped.message.acked
            assert all(e.message.acked for e in events[:-1])
            assert kpi.readiness.not_ready_because() == [*NOT_STARTED, STOPPED.format(stage)]
            assert told == [STOPPED.format(stage)]  # the worker command exits on it
            assert worker.recorder.lost  # the failed send reached no topic

            # The sends work again, but the stage stays stopped until a restart: the
            # next message of its partition is put, and not taken (its offset stays next).
            worker.recorder.failing.clear()
            if stage == "count":
                await worker.publish("marketing.views", views("summer", "tiktok", "e3"))
            else:
                await worker.publish("marketing.clicks",
                                     click("k2", "summer", "tiktok", "clk-2"))
            [after] = await worker.deliver()
            assert after.message.tp == stopped.message.tp
            assert after.message.offset == stopped.message.offset + 1
            for _ in range(100):  # a window for the stage to (wrongly) go on in
                await asyncio.sleep(0)
            order_of = kpi.faust_app.consumer.offset_order
            assert order_of.expected(after.message.tp) == after.message.offset
            assert not after.message.acked and not stopped.message.acked
            assert kpi.readiness.not_ready_because() == [*NOT_STARTED, STOPPED.format(stage)]
            assert told == [STOPPED.format(stage)]
            if stage == "count":
                # Counted in memory (served), never committed: a restart reads it again.
                assert worker.kpi_value("marketing_views", "summer", "tiktok") == 2
            else:
                assert worker.kpi_value("marketing_clicks", "summer", "tiktok") == 1
                assert worker.kpi_value("marketing_orders", "summer", "tiktok") == 0

    run(scenario)


def test_a_message_past_a_hole_waits_until_its_partition_is_read_again(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """kpi-events partition 0 holds e1 (offset 0), e3 (1), e2 (2), and offset 1 does not
    come (as when Faust drops a message fetched in an earlier generation): e2 at offset 2
    is not counted, and the stage asks to read partition 0 again from offset 1. Read again,
    e3 and e2 count once each: summer 3 views, spring 1, no duplicate.

    The hole is made with Faust's own numbering: a test context numbers its messages
    with one counter over every partition (faust/agents/agent.py, ``put``), so partition
    0's context fed partition 1's message in between skips partition 0's offset 1.
    """
    async def scenario() -> None:
        async with functional_worker(tmp_path, partitions=2) as worker:
            kpi = worker.kpi
            for event_id, campaign in (("e1", "summer"), ("s1", "spring"), ("e3", "summer"),
                                       ("e2", "summer")):
                await worker.publish("marketing.views", views(campaign, "tiktok", event_id))
            e1, s1, e3, e2 = records_for(worker.recorder.records, "kpi_events")
            assert [r.partition for r in (e1, s1, e3, e2)] == [0, 1, 0, 0]
            fed = worker.context("kpi_events", 0)
            with caplog.at_level(logging.WARNING, logger="streams.worker.agents"):
                put = [await worker.put(record, fed) for record in (e1, s1, e2)]
                assert where(put) == [("kpistream-kpi-events", 0, 0),
                                      ("kpistream-kpi-events", 1, 1),
                                      ("kpistream-kpi-events", 0, 2)]
                # No consumer runs in this tier, so the seek back fails and is logged
                # (the timer asks again later).
                await wait_until(lambda: "seeking kpistream-kpi-events[0] back to 1 failed"
                                 in caplog.text, "the seek back to the hole")
            tp = put[0].message.tp
            assert kpi.faust_app.consumer.offset_order.expected(tp) == 1
            assert worker.kpi_value("marketing_views", "summer", "tiktok") == 1
            assert worker.kpi_value("marketing_views", "spring", "tiktok") == 1

            # Read again from the hole: offsets 1 and 2 come in order.
            fed.sent_offset = 1
            again = [await worker.put(record, fed) for record in (e3, e2)]
            assert where(again) == [("kpistream-kpi-events", 0, 1),
                                    ("kpistream-kpi-events", 0, 2)]
            await wait_until(lambda: all(e.message.acked for e in again), "the acks")
            assert kpi.faust_app.consumer.offset_order.expected(tp) == 3
            assert worker.kpi_value("marketing_views", "summer", "tiktok") == 3
            assert worker.kpi_value("marketing_views", "spring", "tiktok") == 1
            assert worker.events_total("view", "accepted") == 4
            assert worker.events_total("view", "duplicate") == 0

    run(scenario)


def test_the_worker_sends_through_fausts_producer_by_default(tmp_path: Path) -> None:
    """Without a sender given, the agents' records go to Faust's own producer (here not
    started, as there is no broker: Faust refuses the first changelog change)."""
    async def scenario() -> None:
        kpi = create_app(Settings(partitions=1, data_dir=tmp_path))
        assert isinstance(kpi.sender, FaustSender)
        [record] = ingested(kpi.ingestor.ingest([RawMessage(
            "marketing.views", 0, 0, orjson.dumps(views("summer", "tiktok", "e1")))]),
            kpi.ownership.partition)
        async with kpi.faust_app.agents["count"].test_context() as count:
            with pytest.raises(NotReady, match="Producer service not yet started"):
                await count.put(key=record.key, value=record.value, partition=0)

    run(scenario)


def test_minutes_older_than_the_hot_hour_are_read_back_from_the_store(tmp_path: Path) -> None:
    """Views over the last three hours, one every ten minutes: the worker keeps the newest
    61 minutes (and the total) in memory, the rest only in the kpi table's RocksDB store,
    and every window still sums all of them; a late view for a cold minute adds to it."""
    async def scenario() -> None:
        async with functional_worker(tmp_path) as worker:
            start = now_ms() - 179 * 60_000
            for i in range(18):
                await worker.publish("marketing.views",
                                     views("summer", "tiktok", f"v{i}", ts=start + i * 600_000))
            await worker.deliver()
            state = worker.kpi.books.counts.state
            assert state.held_in_memory() <= 6 + 1  # six views in the last hour, the total
            assert worker.kpi_value("marketing_views", "summer", "tiktok", "1h") == 6
            assert worker.kpi_value("marketing_views", "summer", "tiktok", "24h") == 18
            assert worker.kpi_value("marketing_views", "summer", "tiktok", "total") == 18

            await worker.publish("marketing.views",
                                 views("summer", "tiktok", "late", ts=start + 5 * 600_000))
            await worker.deliver()
            assert state.held_in_memory() <= 6 + 1  # the late minute went back to disk
            assert worker.kpi_value("marketing_views", "summer", "tiktok", "24h") == 19
            assert worker.kpi_value("marketing_views", "summer", "tiktok", "1h") == 6
            store = worker.kpi.books.counts.table.data
            assert isinstance(store, BucketStore)
            late_minute = (start + 5 * 600_000) // 60_000
            # on disk, as a minute record while the clock's minute the late events came in
            # lasts, then in one record for its hour (an hour block), never in both
            block_key = hour_key("summer", "tiktok", late_minute // 60)
            minute_key = ("summer", "tiktok", late_minute)
            assert (block_key in store) != (minute_key in store)
            held = (block_entries(store[block_key])[late_minute] if block_key in store
                    else store[minute_key])
            assert held[:2] == [2, 0]  # views, completed
            # a rebuild reads the store with orjson: what Faust's own codecs read
            assert dict(store.loaded_items()) == {tuple(k): v for k, v in store.items()}
            assert len(dict(store.loaded_items())) >= 3  # the total, hot minutes, blocks
            worker.kpi.books.rebuild(worker.kpi.ownership)
            assert worker.kpi_value("marketing_views", "summer", "tiktok", "24h") == 19
            assert worker.kpi_value("marketing_views", "summer", "tiktok", "total") == 19

    run(scenario)
