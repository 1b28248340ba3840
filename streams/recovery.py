"""Finish table recovery where the broker's end offset stops short.

Tansu reports a partition's end offset as the first offset of its last record batch plus
one, and Faust stops recovering a changelog there, so the rest of that last batch would
be lost. After Faust's recovery this reads every active changelog partition on from the
reported end until a fetch comes back empty and applies what it finds. Re-applying
records Faust already applied is harmless: a suffix of a changelog, applied in order,
ends in the same state. On Apache Kafka the tail is empty and this costs one fetch.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

__all__ = ["read_changelog_tails"]

_EMPTY_FETCHES_TO_END = 2
_FETCH_TIMEOUT_MS = 200


def _to_key(raw: Any) -> Any:
    """JSON keys back to the tuples Faust tables use (lists are not hashable)."""
    if isinstance(raw, list):
        return tuple(_to_key(item) for item in raw)
    return raw


async def read_changelog_tails(
    bootstrap: str, tables: Iterable[Any], owned: set[tuple[str, int]]
) -> int:
    """Apply changelog records past the reported end; returns how many were applied."""
    by_topic = {t.changelog_topic.get_topic_name(): t for t in tables}
    tps = [TopicPartition(topic, partition) for topic, partition in owned
           if topic in by_topic]
    if not tps:
        return 0
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    applied = 0
    try:
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        for tp in tps:
            consumer.seek(tp, max(0, ends[tp] - 1))
        empty = 0
        while empty < _EMPTY_FETCHES_TO_END:
            batches = await consumer.getmany(timeout_ms=_FETCH_TIMEOUT_MS)
            if not any(batches.values()):
                empty += 1
                continue
            empty = 0
            for tp, records in batches.items():
                data = by_topic[tp.topic].data
                for record in records:
                    key = _to_key(orjson.loads(record.key))
                    if record.value is None:
                        data.pop(key, None)
                    else:
                        data[key] = orjson.loads(record.value)
                    applied += 1
    finally:
        await consumer.stop()
    return applied
