"""Faust wiring, kept thin: each agent hands a message to a stage and sends the result.

Every agent acks a message only once what its handling sent (internal messages,
changelog records, dead letters) is delivered, in order (streams.delivery): a failed
send is never committed past. An event a stage fails on is dead-lettered as an internal
error and the rest of its message goes on (streams.failures).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Iterable
from typing import TYPE_CHECKING, Any

import orjson

from streams.app import wall_clock_ms
from streams.failures import Failure, internal_reason
from streams.forwards import Forwards, MalformedForwards
from streams.input_consumer import InputConsumer
from streams.kafka_clients import aiokafka_options
from streams.liveness import BrokerProbe
from streams.orders import OrderRoute
from streams.outgoing import Outgoing, counted, dead_letters, orders

if TYPE_CHECKING:
    from streams.app import KpiApp

__all__ = ["PROBE_INTERVAL_S", "TICK_INTERVAL_S", "register"]

TICK_INTERVAL_S = 1.0
"""How often every click-join partition gets a tick to release orders done waiting."""
PROBE_INTERVAL_S = 2.0
"""How often the broker is asked for metadata to tell /ready whether it answers."""

_log = logging.getLogger(__name__)


def register(kpi: KpiApp) -> None:
    """Attach the agents, the tick timer and the recovery hook to the app."""
    app = kpi.faust_app
    topics = kpi.topics

    async def send(record: Outgoing) -> Awaitable[Any]:
        """Hand one record to the producer; returns its delivery (a future)."""
        fut: Awaitable[Any] = await topics[record.topic].send(
            key=record.key, value=record.value, partition=record.partition)
        return fut

    async def send_all(records: Iterable[Outgoing], partition: int,
                       *tables: Any) -> list[Awaitable[Any]]:
        """Table changes of the message just handled, then its records; their deliveries."""
        deliveries: list[Awaitable[Any]] = []
        for table in tables:
            deliveries += await table.send(partition)
        for record in records:
            deliveries.append(await send(record))
        return deliveries

    def failed(stage: str, message: Any, failures: list[Failure]) -> list[Outgoing]:
        """Count, log (once per event, no values) and dead-letter what a stage failed on."""
        for failure in failures:
            _log.error("kpistream %s: internal error on an event at %s[%d] offset %d "
                       "(index %s): %s", stage, message.topic, message.partition,
                       message.offset, failure.index, failure.reason)
            kpi.count(failure.type, "invalid", 1)
        return dead_letters(failures, message.topic, message.partition, message.offset)

    kpi.input = InputConsumer(
        kpi.bootstrap, f"{kpi.settings.app_id}-ingest", list(kpi.settings.event_topics),
        kpi.ingestor, send, kpi.partition,
        lambda event_type, count: kpi.count(event_type, "invalid", count),
        client_options=aiokafka_options(kpi.settings.kafka),
    )
    app.started_with_app.append(kpi.input)

    join_acks, customer_acks, count_acks = (kpi.stage_acks(name)
                                            for name in ("join", "customers", "count"))

    @app.agent(topics["click_join"], name="join")
    async def join(stream: Any) -> None:
        stream = stream.noack()
        async for event in stream.events():
            await join_acks.wait_if_stopped()
            message = event.message
            try:
                items = orjson.loads(event.value)
            except orjson.JSONDecodeError:
                items, bad = [], [Failure("unknown", "internal error: the click join got a "
                                          "message that is not JSON", _preview(event.value))]
            else:
                bad = []
            released, failures = kpi.clicks.handle_message(
                items, message.partition, message.offset, wall_clock_ms())
            records = [*failed("join", message, [*bad, *failures]),
                       *orders(released, kpi.partition)]
            deliveries = await send_all(records, message.partition, kpi.clicks.clicks_table,
                                        kpi.clicks.waiting_table)
            join_acks.track(_acker(stream, event), deliveries)

    @app.agent(topics["customer_orders"], name="customers")
    async def customers(stream: Any) -> None:
        stream = stream.noack()
        async for event in stream.events():
            await customer_acks.wait_if_stopped()
            message = event.message
            failures: list[Failure] = []
            routes = _orders(event.value, failures)
            forwards, duplicates = kpi.customers.handle(
                routes, message.partition, message.offset, wall_clock_ms(), failures)
            if duplicates:
                kpi.count("order", "duplicate", duplicates)
            records = failed("customers", message, failures)
            for campaign, campaign_forwards in forwards.items():
                records += counted(campaign, campaign_forwards, kpi.partition)
            deliveries = await send_all(records, message.partition, kpi.customers.table)
            customer_acks.track(_acker(stream, event), deliveries)

    @app.agent(topics["kpi_events"], name="count")
    async def count(stream: Any) -> None:
        stream = stream.noack()
        async for event in stream.events():
            await count_acks.wait_if_stopped()
            message = event.message
            try:
                forwards = Forwards.from_wire(event.value)
                campaign = event.key.decode("utf-8")
            except (MalformedForwards, AttributeError, UnicodeDecodeError) as exc:
                records = failed("count", message, [Failure(
                    "unknown", internal_reason("the counting stage", exc),
                    _preview(event.value))])
                count_acks.track(_acker(stream, event), await send_all(records, 0))
                continue
            folded = kpi.counts.handle(campaign, forwards, message.partition,
                                       message.offset, wall_clock_ms())
            records = failed("count", message, folded.failures)
            deliveries = await send_all(records, message.partition, kpi.counts.table)
            count_acks.track(_acker(stream, event), deliveries)
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

    async def rebuild() -> None:
        kpi.rebuild()

    # Recovery ends for all tables at once: one callback rebuilds every stage.
    kpi_table: Any = kpi.counts.table
    kpi_table.table.on_recover(rebuild)


def _acker(stream: Any, event: Any) -> Any:
    async def ack() -> None:
        await stream.ack(event)

    return ack


def _orders(raw: bytes, failures: list[Failure]) -> list[OrderRoute]:
    """The orders of a customer-orders message; one that cannot be read is a failure."""
    try:
        wires = orjson.loads(raw)
    except orjson.JSONDecodeError:
        failures.append(Failure("order", "internal error: the customer stage got a message "
                                "that is not JSON", _preview(raw)))
        return []
    routes = []
    for index, wire in enumerate(wires):
        try:
            routes.append(OrderRoute.from_wire(wire))
        except Exception as exc:
            failures.append(Failure("order", internal_reason("the customer stage", exc),
                                    orjson.dumps(wire).decode("utf-8"), index))
    return routes


def _preview(raw: bytes | None) -> str:
    return (raw or b"").decode("utf-8", errors="replace")[:1024]
