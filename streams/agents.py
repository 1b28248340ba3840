"""Faust wiring, kept thin: each agent hands a message to a stage and sends the result."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import orjson

from streams.app import wall_clock_ms
from streams.fetching import shorten_fetch_wait
from streams.forwards import Forwards, MalformedForwards
from streams.ingest import IngestResult
from streams.input_consumer import InputConsumer
from streams.kafka_clients import aiokafka_options
from streams.liveness import BrokerProbe
from streams.orders import OrderRoute
from streams.recovery import correct_highwaters

if TYPE_CHECKING:
    from streams.app import KpiApp

__all__ = ["MAX_ITEMS_PER_MESSAGE", "PROBE_INTERVAL_S", "TICK_INTERVAL_S", "register"]

MAX_ITEMS_PER_MESSAGE = 2_000
"""Clicks or orders per internal message at most: keeps each well under 1 MiB."""
MAX_COUNTED_BYTES = 512 * 1024
"""Largest kpi-events message: half of Kafka's default 1 MiB message size limit."""
TICK_INTERVAL_S = 1.0
"""How often every click-join partition gets a tick to release orders done waiting."""
PROBE_INTERVAL_S = 2.0
"""How often the broker is asked for metadata to tell /ready whether it answers."""


def register(kpi: KpiApp) -> None:
    """Attach the agents, the tick timer and the recovery hook to the app."""
    app = kpi.faust_app
    topics = kpi.topics

    async def send_counted(campaign: str, forwards: Forwards) -> None:
        key, partition = campaign.encode("utf-8"), kpi.partition(campaign)
        for wire in forwards.wire_messages(MAX_COUNTED_BYTES):
            await topics["kpi_events"].send(key=key, value=wire, partition=partition)

    async def send_grouped(topic: str, items: Iterable[tuple[str, Any]]) -> None:
        by_partition: dict[int, list[Any]] = {}
        for key, item in items:
            by_partition.setdefault(kpi.partition(key), []).append(item)
        for partition, batch in by_partition.items():
            for start in range(0, len(batch), MAX_ITEMS_PER_MESSAGE):
                chunk = batch[start:start + MAX_ITEMS_PER_MESSAGE]
                await topics[topic].send(value=orjson.dumps(chunk), partition=partition)

    async def send_orders(orders: Iterable[OrderRoute]) -> None:
        await send_grouped("customer_orders", ((o.customer_id, o.to_wire()) for o in orders))

    async def send_changes(partition: int, *tables: Any) -> None:
        """The table changes the message just handled made, to their changelogs."""
        for table in tables:
            await table.send(partition)

    async def send_ingested(result: IngestResult) -> None:
        for record in result.dead_letters:
            await topics["deadletter"].send(value=record)
        for event_type, count in result.invalid.items():
            kpi.count(event_type, "invalid", count)
        # Clicks first, so an order of the same batch finds its click remembered.
        await send_grouped("click_join", [
            *((click_id, ["c", click_id, *click]) for click_id, click in result.clicks),
            *((o.click_id or "", ["o", *o.to_wire()]) for o in result.to_join),
        ])
        await send_orders(result.to_customers)
        for campaign, forwards in result.forwards.items():
            await send_counted(campaign, forwards)

    kpi.input = InputConsumer(
        kpi.bootstrap, f"{kpi.settings.app_id}-ingest", list(kpi.settings.event_topics),
        kpi.ingestor, send_ingested, app.producer.flush,
        client_options=aiokafka_options(kpi.settings.kafka),
    )
    app.started_with_app.append(kpi.input)

    @app.agent(topics["click_join"], name="join")
    async def join(stream: Any) -> None:
        async for event in stream.events():
            partition, offset = event.message.partition, event.message.offset
            now_ms = wall_clock_ms()
            released = kpi.clicks.tick(partition, now_ms, offset)
            for item in orjson.loads(event.value):
                if item[0] == "c":
                    released += kpi.clicks.remember(item[1], (item[2], item[3], item[4]),
                                                    partition, offset)
                else:
                    joined = kpi.clicks.join(OrderRoute.from_wire(item[1:]), partition, now_ms)
                    if joined is not None:
                        released.append(joined)
            kpi.clicks.end_message(partition, offset)
            await send_changes(partition, kpi.clicks.clicks_table, kpi.clicks.waiting_table)
            await send_orders(released)

    @app.agent(topics["customer_orders"], name="customers")
    async def customers(stream: Any) -> None:
        async for event in stream.events():
            orders = [OrderRoute.from_wire(wire) for wire in orjson.loads(event.value)]
            message = event.message
            forwards, duplicates = kpi.customers.handle(
                orders, message.partition, message.offset, wall_clock_ms())
            await send_changes(message.partition, kpi.customers.table)
            if duplicates:
                kpi.count("order", "duplicate", duplicates)
            for campaign, campaign_forwards in forwards.items():
                await send_counted(campaign, campaign_forwards)

    @app.agent(topics["kpi_events"], name="count")
    async def count(stream: Any) -> None:
        async for event in stream.events():
            message = event.message
            try:
                forwards = Forwards.from_wire(event.value)
            except MalformedForwards as exc:  # not ours: skip it rather than stop counting
                kpi.faust_app.log.error("skipped kpi-events offset %s: %s", message.offset, exc)
                continue
            folded = kpi.counts.handle(event.key.decode("utf-8"), forwards,
                                       message.partition, message.offset, wall_clock_ms())
            await send_changes(message.partition, kpi.counts.table)
            for event_type, accepted in folded.accepted.items():
                kpi.count(event_type, "accepted", accepted)
            for event_type, duplicates in folded.duplicates.items():
                kpi.count(event_type, "duplicate", duplicates)
            kpi.note_newest(folded.newest_ts_ms)

    async def tick() -> None:
        for partition in range(kpi.settings.partitions):
            await topics["click_join"].send(value=b"[]", partition=partition)

    app.timer(interval=TICK_INTERVAL_S)(tick)

    kpi.probe = BrokerProbe(kpi.bootstrap, options=aiokafka_options(kpi.settings.kafka))

    async def probe_broker() -> None:
        assert kpi.probe is not None
        await kpi.probe.check()

    app.timer(interval=PROBE_INTERVAL_S)(probe_broker)

    correct_highwaters(app.consumer, kpi.bootstrap)
    shorten_fetch_wait(app.consumer)

    async def rebuild() -> None:
        kpi.rebuild()

    # Recovery ends for all tables at once: one callback rebuilds every stage.
    kpi_table: Any = kpi.counts.table
    kpi_table.table.on_recover(rebuild)
