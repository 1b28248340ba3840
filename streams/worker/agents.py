"""Faust wiring, kept thin: each agent hands a message to a stage and sends the result.

Every agent acks a message only once what its handling sent (internal messages,
changelog records, dead letters) is delivered, in order (streams.stages.delivery): a failed
send is never committed past. A stage takes each partition's messages at exactly the
next offset, and only its acks count (streams.stages.offset_order, streams.kafka.stream_consumer).
An event a stage fails on is dead-lettered as an internal error and the rest of its
message goes on (streams.flow.failures).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Iterable
from typing import Any

from streams.flow.failures import INTERNAL_ERROR, Failure
from streams.kafka.clients import aiokafka_options
from streams.kafka.liveness import BrokerProbe
from streams.stages.offset_order import Admit
from streams.stages.outgoing import Outgoing, dead_letters, ticks
from streams.stages.steps import count_message, customer_message, join_message
from streams.worker.clock import wall_clock_ms
from streams.worker.input_consumer import InputConsumer
from streams.worker.kpi_app import KpiApp

__all__ = ["PROBE_INTERVAL_S", "SEEK_TIMEOUT_S", "TICK_INTERVAL_S", "register"]

TICK_INTERVAL_S = 1.0
"""How often every click-join and kpi-events partition gets a tick
(streams.stages.outgoing.ticks)."""
SEEK_TIMEOUT_S = 5.0
"""How long a hole's seek back may take before the timer may ask for it again."""
PROBE_INTERVAL_S = 2.0
"""How often the broker is asked for metadata to tell /ready whether it answers."""

_log = logging.getLogger(__name__)


def register(kpi: KpiApp) -> None:
    """Attach the agents, the tick timer and the recovery hook to the app."""
    app = kpi.faust_app
    topics = kpi.topics
    books, counters, partition_of = kpi.books, kpi.counters, kpi.ownership.partition

    send = kpi.sender.send  # one record to the producer; returns its delivery (a future)

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
        """Count and dead-letter what a stage refused or failed on; log each internal
        error once (no values). Refusals by a limit are not logged: a flood would be."""
        for failure in failures:
            if failure.reason.startswith(INTERNAL_ERROR):
                _log.error("kpistream %s: internal error on an event at %s[%d] offset %d "
                           "(index %s): %s", stage, message.topic, message.partition,
                           message.offset, failure.index, failure.reason)
            counters.count(failure.type, "invalid", 1)
        return dead_letters(failures, message.topic, message.partition, message.offset)

    kpi.readiness.input = InputConsumer(
        kpi.bootstrap, f"{kpi.settings.app_id}-ingest", list(kpi.settings.event_topics),
        kpi.ingestor, send, partition_of,
        lambda event_type, count: counters.count(event_type, "invalid", count),
        client_options=aiokafka_options(kpi.settings.kafka),
    )
    app.started_with_app.append(kpi.readiness.input)

    async def takes(event: Any) -> bool:
        """Whether the stage handles this message now: the next of its partition
        (streams.stages.offset_order). On a hole, the partition is read again from it."""
        message = event.message
        consumer: Any = app.consumer
        if app.rebalancing:
            # Faust hands over messages during its recovery (once it resumes the flow for
            # the changelogs), but a change made now may land past the highwater recovery
            # reads to, recovery then writes the older changelog value over it, and the
            # rebuild at its end drops the count: after a 30 s broker freeze on Kafka the
            # second 2,000 views were counted, acked and lost. Left unacked, the message
            # is read again after recovery's seek to the committed offsets (or, should
            # that seek come first, by the hole timer).
            consumer.release(message)
            consumer.offset_order.put_back(message.tp, message.offset, wall_clock_ms())
            return False
        order = consumer.offset_order
        verdict = order.admit(message.tp, message.offset, wall_clock_ms())
        if verdict is Admit.TAKE:
            return True
        consumer.release(message)
        if verdict is not Admit.SEEN:  # past a hole: Faust must hand its offsets over again
            consumer.hold_open(message.tp, order.expected(message.tp))
        if verdict is Admit.HOLE:
            read_again(consumer, message.tp, order.expected(message.tp),
                       f"offset {message.offset} came first")
        return False

    seeks: set[asyncio.Task[None]] = set()

    def read_again(consumer: Any, tp: Any, expected: int, why: str) -> None:
        """Seek ``tp`` back to its hole in the background: under load a seek took ~12 s,
        and the stage goes on with its other partitions meanwhile."""
        task = asyncio.ensure_future(seek_back(consumer, tp, expected, why))
        seeks.add(task)
        task.add_done_callback(seeks.discard)

    async def seek_back(consumer: Any, tp: Any, expected: int, why: str) -> None:
        try:
            earliest = (await consumer.earliest_offsets(tp)).get(tp, 0)
            if consumer.offset_order.expected(tp) != expected:
                return  # a rebalance seeked it meanwhile: that position stands
            if expected < earliest:
                _log.warning("kpistream: %s[%d] offsets %d to %d are no longer on the broker "
                             "(retention): going on from %d", tp.topic, tp.partition,
                             expected, earliest - 1, earliest)
            else:
                _log.warning("kpistream: %s[%d] offset %d is next but %s: reading again "
                             "from it", tp.topic, tp.partition, expected, why)
            # Bounded: after a broker freeze on Kafka a seek_wait did not return for the 90 s
            # of Faust's request timeout, and while it waited the timer asked for no other.
            await asyncio.wait_for(consumer.seek_wait({tp: max(expected, earliest)}),
                                   SEEK_TIMEOUT_S)
        except Exception as exc:  # a rebalance under way seeks by itself; else asked again
            _log.warning("kpistream: seeking %s[%d] back to %d failed: %r", tp.topic,
                         tp.partition, expected, exc)
        finally:
            consumer.offset_order.sought(tp, wall_clock_ms())

    join_acks, customer_acks, count_acks = (kpi.readiness.stage_acks(name)
                                            for name in ("join", "customers", "count"))

    @app.agent(topics["click_join"], name="join")
    async def join(stream: Any) -> None:
        stream = stream.noack()
        async for event in stream.events():
            await join_acks.wait_if_stopped()
            if not await takes(event):
                continue
            message = event.message
            records, failures = join_message(books.clicks, event.value, message.partition,
                                             message.offset, wall_clock_ms(), partition_of)
            deliveries = await send_all([*failed("join", message, failures), *records],
                                        message.partition, books.clicks.clicks_table,
                                        books.clicks.waiting_table)
            join_acks.track(_acker(app, event), deliveries)

    @app.agent(topics["customer_orders"], name="customers")
    async def customers(stream: Any) -> None:
        stream = stream.noack()
        async for event in stream.events():
            await customer_acks.wait_if_stopped()
            if not await takes(event):
                continue
            message = event.message
            records, failures, duplicates = customer_message(
                books.customers, event.value, message.partition, message.offset,
                wall_clock_ms(), partition_of)
            if duplicates:
                counters.count("order", "duplicate", duplicates)
            deliveries = await send_all([*failed("customers", message, failures), *records],
                                        message.partition, books.customers.table)
            customer_acks.track(_acker(app, event), deliveries)

    @app.agent(topics["kpi_events"], name="count")
    async def count(stream: Any) -> None:
        stream = stream.noack()
        async for event in stream.events():
            await count_acks.wait_if_stopped()
            if not await takes(event):
                continue
            message = event.message
            folded = count_message(books.counts, event.key, event.value, message.partition,
                                   message.offset, wall_clock_ms())
            deliveries = await send_all(failed("count", message, folded.failures),
                                        message.partition, books.counts.id_table,
                                        books.counts.table)
            count_acks.track(_acker(app, event), deliveries)
            for event_type, accepted in folded.accepted.items():
                counters.count(event_type, "accepted", accepted)
            for event_type, duplicates in folded.duplicates.items():
                counters.count(event_type, "duplicate", duplicates)
            counters.note_newest(folded.newest_ts_ms)

    async def tick() -> None:
        for record in ticks(kpi.settings.partitions, books.counts.partitions_held()):
            await send(record)

    app.timer(interval=TICK_INTERVAL_S)(tick)

    async def seek_holes_again() -> None:
        consumer: Any = app.consumer
        for tp, expected in consumer.offset_order.overdue(wall_clock_ms()):
            read_again(consumer, tp, expected, "it has not come since its seek")

    app.timer(interval=TICK_INTERVAL_S)(seek_holes_again)

    probe = BrokerProbe(kpi.bootstrap, options=aiokafka_options(kpi.settings.kafka))
    kpi.readiness.probe = probe

    async def probe_broker() -> None:
        await probe.check()

    app.timer(interval=PROBE_INTERVAL_S)(probe_broker)

    async def rebuild() -> None:
        kpi.served.rebuild()

    # Recovery ends for all tables at once: one callback rebuilds every stage.
    kpi_table: Any = books.counts.table
    kpi_table.table.on_recover(rebuild)


def _acker(app: Any, event: Any) -> Any:
    """The ack of a handled message (streams.kafka.stream_consumer counts no other)."""
    async def ack() -> None:
        app.consumer.ack_handled(event.message)

    return ack
