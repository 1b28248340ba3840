"""The input stage's consumer: the five input topics read in large batches.

The input stage keeps no state, so it does not need Faust's per-message stream machinery
(about 100 microseconds a message): a plain aiokafka consumer in its own consumer group
(``<app id>-ingest``) hands whole fetches to the Ingestor, the results are sent on
through Faust's producer, and offsets are committed only after that producer is flushed.
A batch read again after a crash is sent again; the stateful stages drop what they
already have, so nothing is lost and nothing counts twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener
from mode import Service

from streams.fetching import INPUT_FETCH_WAIT_MS
from streams.ingest import Ingestor, IngestResult, RawMessage

__all__ = ["MAX_BATCH", "InputConsumer"]

MAX_BATCH = 20_000
"""Most messages handed to the Ingestor at once: at full load, fewer and larger
internal messages mean fewer changelog writes (one per changed bucket per message)."""
_WAIT_MS = 20
"""Longest wait for a fetch to fill."""
PIECE_BYTES = 256 * 1024
"""Input validated between two turns of the event loop: ~1,700 events, 10-15 ms of work.

A round at full load holds hundreds of thousands of events; validated in one go it kept
the event loop (and so /metrics) waiting for up to a second."""
ROUND_MS = 100
"""How long a round gathers input after its first fetch before it is handled.

Each round costs the stages downstream a fixed price per campaign it touches (an
internal message, a changelog record per bucket), whatever its size: at a few thousand
events a second, rounds of one fetch (~20 ms) kept the worker busy on that price alone
and p99 freshness near 2 s. Gathering for 100 ms caps rounds at ten a second; under
full load it makes rounds larger, so fewer internal messages and changelog records.
"""


class InputConsumer(Service):
    """Reads the input topics and passes each batch's result to ``send``."""

    def __init__(
        self,
        bootstrap: str,
        group_id: str,
        topics: list[str],
        ingestor: Ingestor,
        send: Callable[[IngestResult], Awaitable[None]],
        flush: Callable[[], Awaitable[None]],
        client_options: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._client_options = dict(client_options or {})
        self._topics = topics
        self._ingestor = ingestor
        self._send = send
        self._flush = flush
        self._bootstrap = bootstrap
        self._group_id = group_id
        self._consumer: AIOKafkaConsumer | None = None
        self.batches = 0
        self.assigned = False
        """Whether the group has given this consumer its partitions (none is an answer too)."""

    async def on_start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            group_id=self._group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            # The local broker holds a JoinGroup for half the session timeout.
            session_timeout_ms=6_000,
            heartbeat_interval_ms=1_000,
            max_partition_fetch_bytes=4 * 1024 * 1024,
            fetch_max_wait_ms=INPUT_FETCH_WAIT_MS,
            **self._client_options,
        )
        await self._consumer.start()
        self._consumer.subscribe(self._topics, listener=_Assignment(self))

    async def on_stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()

    @Service.task
    async def _consume(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        while not self.should_stop:
            fetched = await self._fetch(consumer, _WAIT_MS, MAX_BATCH)
            if fetched is None:  # broker trouble: the consumer reconnects by itself
                await self.sleep(1.0)
                continue
            if not fetched:
                continue
            if not self.batches:
                self.log.info("first input fetched: %d messages",
                              sum(len(records) for records in fetched.values()))
            await self._gather(consumer, fetched)
            result = IngestResult()
            for piece in _pieces(fetched, PIECE_BYTES):
                self._ingestor.ingest(piece, result)
                await asyncio.sleep(0)  # let a scrape or a heartbeat in between pieces
            await self._send(result)
            await self._flush()
            try:
                await consumer.commit()
            except Exception as exc:  # a rebalance; the batch may be read again
                self.log.warning("commit of input offsets failed: %r", exc)
            self.batches += 1

    async def _fetch(self, consumer: AIOKafkaConsumer, timeout_ms: int,
                     max_records: int) -> dict[Any, list[Any]] | None:
        """One ``getmany``; None (logged) when it failed."""
        try:
            fetched: dict[Any, list[Any]] = await consumer.getmany(
                timeout_ms=timeout_ms, max_records=max_records)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.log.warning("fetching input failed: %r", exc)
            return None
        return fetched

    async def _gather(self, consumer: AIOKafkaConsumer, fetched: dict[Any, list[Any]]) -> None:
        """Add what arrives within ``ROUND_MS`` of the first fetch, up to ``MAX_BATCH``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + ROUND_MS / 1000
        count = sum(len(records) for records in fetched.values())
        while count < MAX_BATCH and (left := deadline - loop.time()) > 0:
            more = await self._fetch(consumer, int(left * 1000) + 1, MAX_BATCH - count)
            if more is None:  # handle what we have; the next fetch retries
                return
            for tp, records in more.items():
                fetched.setdefault(tp, []).extend(records)
                count += len(records)


def _pieces(fetched: dict[Any, list[Any]], max_bytes: int) -> Iterator[list[RawMessage]]:
    """The fetched records as RawMessages, in pieces of about ``max_bytes`` of input."""
    piece: list[RawMessage] = []
    size = 0
    for records in fetched.values():
        for m in records:
            value = m.value or b""
            piece.append(RawMessage(m.topic, m.partition, m.offset, value))
            size += len(value)
            if size >= max_bytes:
                yield piece
                piece, size = [], 0
    if piece:
        yield piece


class _Assignment(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped
    """Keeps ``InputConsumer.assigned`` true only between a join and the next rebalance."""

    def __init__(self, consumer: InputConsumer) -> None:
        self._consumer = consumer

    async def on_partitions_revoked(self, revoked: Any) -> None:
        self._consumer.assigned = False

    async def on_partitions_assigned(self, assigned: Any) -> None:
        self._consumer.assigned = True
