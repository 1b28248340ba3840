"""True end offsets for table recovery, where the broker's answer stops short.

Tansu reports a partition's end offset as the first offset of its last record batch plus
one. Faust recovers a changelog up to that offset (losing the rest of the last batch)
and, after a rebalance, crashes with a ConsistencyError when it has already read past
it. So the worker's consumer asks for end offsets through ``true_end_offsets``: it reads
each partition from the reported end until a fetch comes back empty and takes the last
offset seen plus one. On Apache Kafka the reported end is already right and this costs
one empty fetch per rebalance.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer

__all__ = ["correct_highwaters", "true_end_offsets"]

_EMPTY_FETCHES_TO_END = 2
_FETCH_TIMEOUT_MS = 200
TP = TypeVar("TP")


async def true_end_offsets(bootstrap: str, reported: Mapping[TP, int]) -> dict[TP, int]:
    """The reported end offsets, moved on past records the broker did not count."""
    ends = dict(reported)
    tps = [tp for tp, end in ends.items() if end]
    if not tps:
        return ends
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(tps)  # Faust's TP is the same namedtuple
        for tp in tps:
            consumer.seek(tp, ends[tp] - 1)
        empty = 0
        while empty < _EMPTY_FETCHES_TO_END:
            batches = await consumer.getmany(timeout_ms=_FETCH_TIMEOUT_MS)
            if not any(batches.values()):
                empty += 1
                continue
            empty = 0
            for tp, records in batches.items():
                key: Any = tp
                ends[key] = max(ends[key], records[-1].offset + 1)
    finally:
        await consumer.stop()
    return ends


def correct_highwaters(consumer: Any, bootstrap: str) -> None:
    """Make a Faust consumer's ``highwaters`` answer with true end offsets."""
    reported: Callable[..., Awaitable[Mapping[Any, int]]] = consumer.highwaters

    async def highwaters(*partitions: Any) -> Mapping[Any, int]:
        return await true_end_offsets(bootstrap, await reported(*partitions))

    consumer.highwaters = highwaters
