"""The input stage's consumer: the five input topics read in large batches.

The input stage keeps no state, so it does not need Faust's per-message stream machinery
(about 100 microseconds a message): a plain aiokafka consumer in its own consumer group
(``<app id>-ingest``) hands whole fetches to the Ingestor, the results are sent on
through Faust's producer, and offsets are committed only after the broker acknowledged
every record the round sent. A round whose sends fail is not committed: the consumer goes
back to the committed offsets and tries the round again (readiness says why meanwhile).
A batch read again after a crash or a failed send is sent again; the stateful stages drop
what they already have, so nothing is lost and nothing counts twice.

No exception from one round stops the loop: an event that fails is dead-lettered
(streams.stages.outgoing), and anything else fails the round, which is then retried.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener
from mode import Service

from streams.kafka.fetching import INPUT_FETCH_WAIT_MS
from streams.stages.ingest import Ingestor, IngestResult, RawMessage
from streams.stages.outgoing import Outgoing, ingested, ingested_carefully

__all__ = ["MAX_BATCH", "MAX_ROUND_BYTES", "InputConsumer"]

MAX_BATCH = 20_000
"""Most messages handed to the Ingestor at once: at full load, fewer and larger
internal messages mean fewer changelog writes (one per changed bucket per message)."""
MAX_ROUND_BYTES = 16 * 1024 * 1024
"""Most input bytes in one round: with 1 MiB batch messages, 20,000 of them would be 20 GB.

A round's events are Python objects until its records are sent: 64 MiB of 1,000-event
view messages held 145 MiB more once validated and encoded (16 MiB: 50 MiB more). Rounds
this large come only from a backlog; at full load a round is ``ROUND_MS`` of input."""
RETRY_S = (1.0, 2.0, 5.0, 10.0, 30.0)
"""Waits before retrying a round whose sends failed, growing while they keep failing."""
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
        send: Callable[[Outgoing], Awaitable[Awaitable[Any]]],
        partition_of: Callable[[str], int],
        count_invalid: Callable[[str, int], None],
        client_options: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._client_options = dict(client_options or {})
        self._topics = topics
        self._ingestor = ingestor
        self._send = send
        self._partition_of = partition_of
        self._count_invalid = count_invalid
        self._bootstrap = bootstrap
        self._group_id = group_id
        self._consumer: AIOKafkaConsumer | None = None
        self.batches = 0
        self.assigned = False
        """Whether the group has given this consumer its partitions (none is an answer too)."""
        self.failing: str | None = None
        """Why the last round could not be delivered (None once one is)."""
        self._task: asyncio.Task[Any] | None = None
        self._positions: dict[Any, int] = {}
        """Partition -> offset after the last message fetched from it."""

    def problem(self) -> str | None:
        """Why input is not flowing now, for readiness; None when it is."""
        if self._task is not None and self._task.done():
            return "the input consumer has stopped"
        if not self.assigned:
            return "the input consumer has not joined its group"
        return self.failing

    def lag(self) -> dict[str, int]:
        """Messages behind per input topic: highwater minus position, from memory."""
        consumer = self._consumer
        behind: dict[str, int] = {}
        if consumer is None:
            return behind
        try:
            for tp in consumer.assignment():
                highwater = consumer.highwater(tp)
                position = self._positions.get(tp)
                if highwater is None or position is None:
                    continue
                behind[tp.topic] = behind.get(tp.topic, 0) + max(0, highwater - position)
        except Exception:  # assignment changing under a rebalance: no figure this time
            return {}
        return behind

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
        self._task = asyncio.current_task()
        failures = 0
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
            for tp, records in fetched.items():
                self._positions[tp] = records[-1].offset + 1
            try:
                delivered = await self._round(fetched)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # never let one round stop the input
                self.log.exception("input round failed: %s", type(exc).__name__)
                delivered = False
                self.failing = f"an input round failed ({type(exc).__name__})"
            if not delivered:
                failures += 1
                await self._rewind(consumer)
                await self.sleep(RETRY_S[min(failures, len(RETRY_S)) - 1])
                continue
            failures = 0
            self.failing = None
            try:
                await consumer.commit()
            except Exception as exc:  # a rebalance; the batch may be read again
                self.log.warning("commit of input offsets failed: %r", exc)
            self.batches += 1

    async def _round(self, fetched: dict[Any, list[Any]]) -> bool:
        """Validate, route and send one round; True once every send is acknowledged."""
        result = IngestResult()
        for piece in _pieces(fetched, PIECE_BYTES):
            self._ingestor.ingest(piece, result)
            await asyncio.sleep(0)  # let a scrape or a heartbeat in between pieces
        for topic, partition, offset, reason in result.internal_errors:
            self.log.error("kpistream input: internal error on an event at %s[%d] offset %d: "
                           "%s", topic, partition, offset, reason)
        try:
            outgoing, invalid = ingested(result, self._partition_of), result.invalid
        except Exception as exc:
            self.log.error("encoding an input round failed (%s): dead-lettering the events "
                           "that fail, one at a time", type(exc).__name__)
            outgoing, invalid = ingested_carefully(
                self._ingestor, [m for piece in _pieces(fetched, PIECE_BYTES) for m in piece],
                self._partition_of)
        deliveries = [await self._send(record) for record in outgoing]
        outcomes = await asyncio.gather(*deliveries, return_exceptions=True)
        errors = [o for o in outcomes if isinstance(o, BaseException)]
        if errors:
            self.failing = (f"{len(errors)} of {len(outcomes)} input sends failed "
                            f"({type(errors[0]).__name__}); retrying the round")
            self.log.error("kpistream input: %s", self.failing)
            return False
        for event_type, count in invalid.items():
            self._count_invalid(event_type, count)
        return True

    async def _rewind(self, consumer: AIOKafkaConsumer) -> None:
        """Back to the committed offsets, to read a round that was not delivered again."""
        try:
            await consumer.seek_to_committed()
        except Exception as exc:  # a rebalance seeks to committed offsets by itself
            self.log.warning("seeking input back to committed offsets failed: %r", exc)

    def forget(self, partitions: Any) -> None:
        """Drop what is known of partitions this consumer no longer reads."""
        for tp in partitions:
            self._positions.pop(tp, None)

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
        size = sum(len(m.value or b"") for records in fetched.values() for m in records)
        while (count < MAX_BATCH and size < MAX_ROUND_BYTES
               and (left := deadline - loop.time()) > 0):
            more = await self._fetch(consumer, int(left * 1000) + 1, MAX_BATCH - count)
            if more is None:  # handle what we have; the next fetch retries
                return
            for tp, records in more.items():
                fetched.setdefault(tp, []).extend(records)
                count += len(records)
                size += sum(len(m.value or b"") for m in records)


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
        self._consumer.forget(revoked)

    async def on_partitions_assigned(self, assigned: Any) -> None:
        self._consumer.assigned = True
