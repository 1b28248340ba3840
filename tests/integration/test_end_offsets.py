"""End offsets on the real broker, which reports them short: what table recovery reads up to."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from streams.kafka.recovery import end_offsets_need_correction, true_end_offsets
from streams.kafka.tansu import create_topics, stop_process
from tests.integration.harness import SlowLink, tansu_behind_slow_link

TOPIC = "changelog-like"
BATCHES = {0: (10, 7), 1: (1,), 2: (5, 1, 9)}
"""Partition -> records of each batch produced to it (one linger, one batch)."""


@pytest.fixture(scope="module")
def slow_link() -> Iterator[SlowLink]:
    link, process = tansu_behind_slow_link()
    try:
        with link:
            create_topics(link_bootstrap(link), [TOPIC], 4)
            asyncio.run(_produce(link_bootstrap(link)))
            yield link
    finally:
        stop_process(process)


def link_bootstrap(link: SlowLink) -> str:
    return f"127.0.0.1:{link.port}"


async def _produce(bootstrap: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=50, acks="all")
    await producer.start()
    try:
        for partition, batches in BATCHES.items():
            for size in batches:
                sent = [await producer.send(TOPIC, b"v", key=b"k", partition=partition)
                        for _ in range(size)]
                await asyncio.gather(*sent)
    finally:
        await producer.stop()


async def _reported(bootstrap: str) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        tps = [TopicPartition(TOPIC, p) for p in range(4)]
        ends: dict[TopicPartition, int] = await consumer.end_offsets(tps)
        return ends
    finally:
        await consumer.stop()


TRUE_ENDS = {TopicPartition(TOPIC, p): sum(BATCHES.get(p, ())) for p in range(4)}


def test_the_broker_reports_end_offsets_short(slow_link: SlowLink) -> None:
    """What the correction is for: the end counts only the first record of the last batch."""
    reported = asyncio.run(_reported(link_bootstrap(slow_link)))
    assert reported == {TopicPartition(TOPIC, 0): 11, TopicPartition(TOPIC, 1): 1,
                        TopicPartition(TOPIC, 2): 7, TopicPartition(TOPIC, 3): 0}


@pytest.mark.parametrize("delay_s", [0.0, 0.7])
def test_true_end_offsets_are_the_last_record_plus_one_even_when_the_broker_is_slow(
    slow_link: SlowLink, delay_s: float,
) -> None:
    """Every broker answer held back 0.7 s (a worker whose event loop is busy, a loaded
    broker): the ends must still be the true ones, never the short ones (recovering a
    changelog only up to a short end drops the rest of its last batch)."""
    bootstrap = link_bootstrap(slow_link)
    reported = asyncio.run(_reported(bootstrap))
    slow_link.delay_s = delay_s
    try:
        ends = asyncio.run(true_end_offsets(bootstrap, reported))
    finally:
        slow_link.delay_s = 0.0
    assert ends == TRUE_ENDS


def test_tansu_is_told_by_its_cluster_id(slow_link: SlowLink) -> None:
    """The correction runs on Tansu (and, by the same check, not on Apache Kafka, whose
    cluster ids are random)."""
    assert asyncio.run(end_offsets_need_correction(link_bootstrap(slow_link))) is True
