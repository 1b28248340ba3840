"""What the stages send on, as Kafka records: the internal topics' wire forms in one place.

Pure: a stage's result in, records out (topic role, partition, key, value). The Faust
wiring only produces them. Encoding is done before anything is sent, so an event that
cannot be encoded is found while its message can still be dead-lettered event by event.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from streams.attribution.orders import OrderRoute
from streams.events.validation import Rejection
from streams.flow.failures import Failure, internal_reason
from streams.flow.forwards import Forwards
from streams.flow.wire import dumps
from streams.stages.ingest import Ingestor, IngestResult, RawMessage, dead_letter

__all__ = [
    "MAX_COUNTED_BYTES",
    "MAX_ITEMS_PER_MESSAGE",
    "Outgoing",
    "counted",
    "dead_letters",
    "ingested",
    "ingested_carefully",
    "orders",
    "ticks",
]

MAX_ITEMS_PER_MESSAGE = 2_000
"""Clicks or orders per internal message at most: keeps each well under 1 MiB."""
MAX_COUNTED_BYTES = 512 * 1024
"""Largest kpi-events message: half of Kafka's default 1 MiB message size limit."""

Partitioner = Callable[[str], int]


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One record to produce; ``topic`` is the role (kpi_events, click_join,
    customer_orders, deadletter), the wiring maps it to the topic's name."""

    topic: str
    value: bytes
    partition: int | None = None
    key: bytes | None = None


def ticks(partitions: int, counting: Iterable[int]) -> list[Outgoing]:
    """Ticks for the stages that act on time as well as on events: every click-join
    partition releases orders done waiting (``[]``); each ``counting`` partition (those
    whose counting stage holds campaign-channels here) forgets expired ids and retires
    silent campaign-channels (no key, no value), so a partition that no longer gets events
    still does both, and one that holds nothing gets no extra messages."""
    return [*(Outgoing("click_join", b"[]", p) for p in range(partitions)),
            *(Outgoing("kpi_events", b"", p) for p in sorted(counting))]


def counted(campaign: str, forwards: Forwards, partition_of: Partitioner) -> list[Outgoing]:
    """A campaign's counted events for the counting stage, in as few messages as fit."""
    key, partition = campaign.encode("utf-8"), partition_of(campaign)
    return [Outgoing("kpi_events", wire, partition, key)
            for wire in forwards.wire_messages(MAX_COUNTED_BYTES)]


def _grouped(topic: str, items: Iterable[tuple[str, Any]],
             partition_of: Partitioner) -> list[Outgoing]:
    by_partition: dict[int, list[Any]] = {}
    for key, item in items:
        by_partition.setdefault(partition_of(key), []).append(item)
    out = []
    for partition, batch in by_partition.items():
        for start in range(0, len(batch), MAX_ITEMS_PER_MESSAGE):
            chunk = batch[start:start + MAX_ITEMS_PER_MESSAGE]
            out.append(Outgoing(topic, orjson.dumps(chunk), partition))
    return out


def orders(routes: Iterable[OrderRoute], partition_of: Partitioner) -> list[Outgoing]:
    """Orders for the customer stage, by customer."""
    return _grouped("customer_orders", ((o.customer_id, o.to_wire()) for o in routes),
                    partition_of)


def ingested(result: IngestResult, partition_of: Partitioner) -> list[Outgoing]:
    """Everything one input round sends on: dead letters, then clicks before the orders
    that may need them, then orders, then counted events."""
    out = [Outgoing("deadletter", record) for record in result.dead_letters]
    out += _grouped("click_join", [
        *((click_id, ["c", click_id, *click]) for click_id, click in result.clicks),
        *((o.click_id or "", ["o", *o.to_wire()]) for o in result.to_join),
    ], partition_of)
    out += orders(result.to_customers, partition_of)
    for campaign, forwards in result.forwards.items():
        out += counted(campaign, forwards, partition_of)
    return out


def dead_letters(failures: Iterable[Failure], topic: str, partition: int,
                 offset: int) -> list[Outgoing]:
    """The dead-letter records (SPEC 4) of events a stage failed on, from one message."""
    out = []
    for failure in failures:
        record: dict[str, Any] = {"reason": failure.reason, "topic": topic,
                                  "partition": partition, "offset": offset,
                                  "raw": failure.raw, "type": failure.type}
        if failure.index is not None:
            record["index"] = failure.index
        out.append(Outgoing("deadletter", dumps(record)))
    return out


def ingested_carefully(ingestor: Ingestor, messages: Iterable[RawMessage],
                       partition_of: Partitioner) -> tuple[list[Outgoing], Counter[str]]:
    """``ingested`` for a round whose encoding raised: a message at a time, and the events
    of a message that still raises one at a time, so only those are dead-lettered.

    Returns the records and the invalid counts by type (dead letters included).
    """
    out: list[Outgoing] = []
    invalid: Counter[str] = Counter()
    for message in messages:
        result = ingestor.ingest([message])
        try:
            out += ingested(result, partition_of)
        except Exception:
            for index, raw in _elements(message.value):
                one = ingestor.ingest([message._replace(value=raw)])
                try:
                    out += ingested(one, partition_of)
                    invalid.update(one.invalid)
                except Exception as exc:
                    event_type = ingestor.event_type(message.topic)
                    failed = Rejection(event_type, internal_reason("the input stage", exc),
                                       raw.decode("utf-8", errors="replace")[:1024], index)
                    out.append(Outgoing("deadletter", dead_letter(failed, message)))
                    invalid[event_type] += 1
            continue
        invalid.update(result.invalid)
    return out, invalid


def _elements(raw: bytes) -> list[tuple[int | None, bytes]]:
    """The events of a message, each as a message of its own (index None: not a batch)."""
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return [(None, raw)]
    if not isinstance(doc, list):
        return [(None, raw)]
    return [(index, orjson.dumps(element)) for index, element in enumerate(doc)]
