"""``kpistream simulate``: believable campaign traffic published to a broker.

The demo publishes with this too; on its own it feeds an existing deployment (for
example docker-compose's ``demo`` profile).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import time
from collections.abc import Iterator, Mapping
from typing import Any, Final

from aiokafka import AIOKafkaProducer

from streams.commands.traffic import SimEvent, Simulator
from streams.config.settings import Settings
from streams.events.validation import MAX_BATCH_EVENTS, EventType
from streams.kafka.clients import aiokafka_options

__all__ = ["add_parser", "messages", "publish_traffic", "run"]

SEED: Final = 2026
TICK_S: Final = 0.1
"""How often the publisher hands the simulator's events to the producer."""
BATCH_SHARE: Final = 0.1
"""Share of ticks whose views go out as one JSON array message instead of one per event."""


def topics_of(settings: Settings) -> dict[EventType, str]:
    """Event type -> topic name."""
    return {kind: name for name, kind in settings.event_topics.items()}


def messages(events: list[SimEvent], batch_views: bool) -> Iterator[tuple[EventType, bytes,
                                                                          bytes | None]]:
    """(type, value, key) per Kafka message: one per event, or the views as batch arrays."""
    views: list[bytes] = []
    for event in events:
        if batch_views and event.type == "view" and isinstance(event.payload, dict):
            views.append(event.encode())
        else:
            yield event.type, event.encode(), event.key
    for start in range(0, len(views), MAX_BATCH_EVENTS):
        yield "view", b"[" + b",".join(views[start:start + MAX_BATCH_EVENTS]) + b"]", None


async def publish_traffic(producer: AIOKafkaProducer, topics: Mapping[EventType, str],
                          rate: float, seed: int = SEED) -> None:
    """Publish ``rate`` simulated events a second until cancelled."""
    sim = Simulator(seed)
    batches = random.Random(seed)
    start, sent = time.monotonic(), 0
    while True:
        due = int((time.monotonic() - start) * rate) - sent
        sent += due
        events = sim.tick(time.time_ns() // 1_000_000, due)
        batch = batches.random() < BATCH_SHARE
        futures = [await producer.send(topics[kind], value, key=key)
                   for kind, value, key in messages(events, batch)]
        await asyncio.gather(*futures)
        await asyncio.sleep(TICK_S)


def run(settings: Settings, args: argparse.Namespace) -> int:
    """Publish to KPISTREAM_BROKER until Ctrl-C or ``--duration``."""
    bootstrap = ",".join(part.split("://", 1)[-1] for part in settings.broker.split(";"))

    async def _run() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20,
                                    **aiokafka_options(settings.kafka))
        await producer.start()
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    publish_traffic(producer, topics_of(settings), args.rate),
                    timeout=args.duration)
        finally:
            await producer.stop()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_run())
    return 0


def add_parser(commands: Any) -> None:
    """Register ``kpistream simulate``."""
    parser = commands.add_parser(
        "simulate", help="publish simulated campaign traffic to KPISTREAM_BROKER")
    parser.add_argument("--rate", type=float, default=200.0, help="events per second")
    parser.add_argument("--duration", type=float, default=None,
                        help="stop after this many seconds (default: until Ctrl-C)")
    parser.set_defaults(run=run)
