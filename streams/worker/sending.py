"""Where a worker's records go: through a ``Sender``, Faust's producer by default.

Every record the worker produces (internal messages, dead letters, the click-join ticks,
the input stage's records and the tables' changelog changes) is handed to the one
``Sender`` of its ``KpiApp``; each send returns the record's delivery (a future), which the
stage waits on before it acks the message that made it (streams.stages.delivery).
``FaustSender`` is the worker's: the internal and dead-letter topics' own ``send`` and
Faust's producer for changelogs. The functional tests (tests/functional) give
``create_app`` a recorder instead, so the real agents run with no broker.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, Protocol

from streams.stages.outgoing import Outgoing

__all__ = ["FaustSender", "Sender"]


class Sender(Protocol):
    async def send(self, record: Outgoing) -> Awaitable[Any]:
        """Hand one record (its topic by role) to the producer; returns its delivery."""
        ...

    async def send_change(self, topic: str, key: bytes, value: bytes | None,
                          partition: int) -> Awaitable[Any]:
        """Hand one changelog record (None: a tombstone) to the producer, to ``topic``'s
        ``partition``; returns its delivery."""
        ...


class FaustSender:
    """The worker's sender: ``topics`` by role (each a Faust topic), Faust's producer."""

    def __init__(self, faust_app: Any, topics: dict[str, Any]) -> None:
        self._app = faust_app
        self._topics = topics

    async def send(self, record: Outgoing) -> Awaitable[Any]:
        delivery: Awaitable[Any] = await self._topics[record.topic].send(
            key=record.key, value=record.value, partition=record.partition)
        return delivery

    async def send_change(self, topic: str, key: bytes, value: bytes | None,
                          partition: int) -> Awaitable[Any]:
        delivery: Awaitable[Any] = await self._app.producer.send(
            topic, key, value, partition, None, None)
        return delivery
