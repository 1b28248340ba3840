"""The Kafka side of the benchmark: publish the workload fast, and the raw aiokafka baseline."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from bench.workload import Workload

__all__ = ["BenchError", "publish", "raw_consume", "topic_messages"]


class BenchError(Exception):
    """The benchmark could not measure (not: kpistream's numbers are wrong)."""


async def publish(bootstrap: str, topics: Mapping[str, str], workload: Workload) -> float:
    """Send every message without awaiting each ack, then flush; returns events/s."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks=1,
        linger_ms=10,
        max_batch_size=512 * 1024,
        max_request_size=2 * 1024 * 1024,
    )
    await producer.start()
    try:
        started = time.perf_counter()
        acks = []
        for key, messages in workload.messages.items():
            topic = topics[key]
            for value in messages:
                acks.append(await producer.send(topic, value))
        await producer.flush()
        await asyncio.gather(*acks)
        elapsed = time.perf_counter() - started
    finally:
        await producer.stop()
    return workload.expected.events / elapsed


async def raw_consume(
    bootstrap: str, topics: list[str], partitions: int, workload: Workload | tuple[int, int],
    timeout_s: float = 120.0,
) -> float:
    """One consumer reads every input topic from the start, parsing each message; events/s.

    ``workload``: what was published, or (messages, events) sent.

    The clock runs from the first fetch request to the last message, so it includes
    the fetches; the consumer's own start-up (metadata) is left out.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        consumer.assign([TopicPartition(t, p) for t in topics for p in range(partitions)])
        want_messages, want_events = (
            workload if isinstance(workload, tuple)
            else (workload.message_count, workload.expected.events))
        messages = events = 0
        started = time.perf_counter()
        while messages < want_messages:
            if time.perf_counter() - started > timeout_s:
                raise BenchError(f"raw consumer saw {messages} of {want_messages} messages "
                                 f"in {timeout_s} s")
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                for record in records:
                    # Parse like any consumer must, and count the events in batch arrays.
                    doc = orjson.loads(record.value)
                    events += len(doc) if isinstance(doc, list) else 1
                messages += len(records)
        elapsed = time.perf_counter() - started
    finally:
        await consumer.stop()
    if events != want_events:
        raise BenchError(f"raw consumer counted {events} events, {want_events} were sent")
    return events / elapsed


async def topic_messages(bootstrap: str, prefix: str) -> dict[str, int]:
    """Messages written so far to every topic whose name starts with ``prefix``.

    The partitions come from the admin client: a consumer knows the partitions only of
    topics it reads, and Apache Kafka tells it of no others (Tansu did)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        names = sorted(t for t in await admin.list_topics() if t.startswith(prefix))
        described = await admin.describe_topics(names) if names else []
    finally:
        await admin.close()
    partitions = [TopicPartition(d["topic"], p["partition"]) for d in described
                  for p in d["partitions"]]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        ends = await consumer.end_offsets(partitions) if partitions else {}
    finally:
        await consumer.stop()
    totals = dict.fromkeys(names, 0)
    for tp, end in ends.items():
        totals[tp.topic] += end
    return totals
