"""Faust's stream consumer on the real broker: pausing partitions while a fetch waits.

Faust pauses a partition by taking it out of its set of active partitions, and hands
that set to its consumer thread, whose fetch waits up to a second for records of the
partitions in it. At the end of a recovery every partition is paused for a moment (the
changelogs are done, the stream partitions not yet resumed); aiokafka takes an empty set
as "every partition", so the waiting fetch returned records of paused partitions and
moved their positions past records Faust then dropped. That is how the 1 -> 2 -> 3 -> 1
scale test lost events when it went back to one worker.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import faust
from aiokafka import AIOKafkaProducer

from streams.kafka.stream_consumer import stream_consumer_urls
from streams.kafka.tansu import LocalBroker, create_topics


async def _produce(bootstrap: str, topic: str, partition: int, count: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        sent = [await producer.send(topic, b"v", partition=partition) for _ in range(count)]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


async def _until(check: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.05)


def test_a_fetch_waiting_while_every_partition_is_paused_takes_no_records(
    broker: LocalBroker,
) -> None:
    topic = f"paused-{uuid.uuid4().hex[:8]}"
    create_topics(broker.bootstrap, [topic], 3)

    async def run() -> tuple[dict[Any, list[Any]], int | None]:
        app = faust.App(f"fetch-{uuid.uuid4().hex[:8]}", broker=broker.url,
                        broker_consumer=stream_consumer_urls(broker.url))
        consumer = app.consumer
        active, paused, woken = (consumer._new_topicpartition(topic, p) for p in range(3))
        await consumer._thread.start()
        try:
            aio = consumer._thread._ensure_consumer()
            await consumer._thread.call_thread(_assign, aio, [active, paused, woken])
            await _produce(broker.bootstrap, topic, paused.partition, 5)
            # The paused partition's records are fetched and held in the client.
            await _until(lambda: consumer.highwater(paused) == 5, 30,
                         "the paused partition to be fetched")
            live = {active}  # Faust's set: only `active` (which has no records) is resumed
            fetch = asyncio.ensure_future(consumer._getmany(live, timeout=3.0))
            await asyncio.sleep(0)  # the fetch has taken the set and waits
            live.clear()  # every partition paused, as at the end of a recovery
            await _produce(broker.bootstrap, topic, woken.partition, 1)  # wakes the fetch
            records: dict[Any, list[Any]] = await fetch
            return records, await consumer.position(paused)
        finally:
            await consumer._thread.stop()

    records, position = asyncio.run(run())
    assert {tp: len(rs) for tp, rs in records.items()} == {}
    assert position == 0  # nothing of the paused partition consumed behind Faust's back


async def _assign(aio: Any, tps: list[Any]) -> None:
    aio.assign(tps)
    for tp in tps:
        aio.seek(tp, 0)
