"""The soak's producer: the ledger's events at a steady rate, in mixed messages and keys.

Every message is retried until the broker acknowledges it (a re-send is harmless: the
events carry their ids), so the ledger's expected totals are what the broker holds.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from bench.ledger import Item, Ledger

__all__ = ["ProducerStats", "produce"]

_TICK_S = 0.05
_GIVE_UP_S = 120.0
"""A message not acknowledged after this long of retries is counted as given up."""


@dataclass(slots=True)
class ProducerStats:
    messages: int = 0
    events: int = 0
    send_failures: int = 0
    """Sends the broker answered with an error (each was retried)."""
    given_up_events: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)
    """The first few send errors."""


def produce(bootstrap: str, topics: Mapping[str, str], ledger: Ledger, rate: float,
            stop: threading.Event, stats: ProducerStats, seed: int) -> None:
    """Send until ``stop`` is set, then wait for every acknowledgement (blocking)."""
    asyncio.run(_produce(bootstrap, topics, ledger, rate, stop, stats, random.Random(seed)))


async def _produce(bootstrap: str, topics: Mapping[str, str], ledger: Ledger, rate: float,
                   stop: threading.Event, stats: ProducerStats, rng: random.Random) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5,
                                max_request_size=2 * 1024 * 1024)
    await producer.start()
    sends: set[asyncio.Task[None]] = set()
    try:
        started = time.monotonic()
        made = 0
        while not stop.is_set():
            due = int(rate * (time.monotonic() - started)) - made
            if due > 0:
                items = ledger.make(due, int(time.time() * 1000), time.monotonic())
                made += due
                for topic_key, raw, serials, key in _messages(items, rng):
                    task = asyncio.create_task(
                        _send(producer, topics[topic_key], raw, key, serials, ledger, stats))
                    sends.add(task)
                    task.add_done_callback(sends.discard)
                    stats.messages += 1
                stats.events += due
            await asyncio.sleep(_TICK_S)
        stats.seconds = time.monotonic() - started
        await asyncio.gather(*list(sends))
    finally:
        await producer.stop()


def _messages(items: list[Item], rng: random.Random
              ) -> Iterator[tuple[str, bytes, list[int], bytes | None]]:
    """Items as messages: half alone, the rest in JSON arrays of 2-20; keyed by campaign,
    by something else, or not at all (keys are only hints)."""
    by_topic: dict[str, list[Item]] = {}
    for item in items:
        by_topic.setdefault(item.topic_key, []).append(item)
    for topic_key, group in by_topic.items():
        rng.shuffle(group)
        while group:
            size = 1 if rng.random() < 0.5 else rng.randint(2, 20)
            chunk, group = group[:size], group[size:]
            raw = chunk[0].raw if size == 1 else b"[" + b",".join(i.raw for i in chunk) + b"]"
            pick = rng.random()
            key = (chunk[0].campaign.encode() if pick < 0.4
                   else f"k{rng.randrange(1000)}".encode() if pick < 0.7 else None)
            yield topic_key, raw, [i.serial for i in chunk], key


async def _send(producer: AIOKafkaProducer, topic: str, raw: bytes, key: bytes | None,
                serials: list[int], ledger: Ledger, stats: ProducerStats) -> None:
    deadline = time.monotonic() + _GIVE_UP_S
    while True:
        try:
            await (await producer.send(topic, raw, key=key))
        except KafkaError as exc:
            stats.send_failures += 1
            if len(stats.errors) < 5:
                stats.errors.append(f"{type(exc).__name__}: {exc}")
            if time.monotonic() > deadline:
                stats.given_up_events += len(serials)
                return
            await asyncio.sleep(0.5)
            continue
        ledger.ack(serials)
        return
