"""What the broker holds at the end of a soak: consumer-group lag (did every stage consume
everything?) and the dead-letter topic.

Apart from the workers' own view (``kpistream_consumer_lag``): this is what the broker
holds as committed, so after a soak a short count with no lag means events were
skipped, not still on their way. Uses OffsetFetch (what the workers use), which Tansu
answers; its ListGroups answer does not decode in aiokafka.
"""

from __future__ import annotations

import asyncio

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

__all__ = ["dead_letters", "group_lag"]


def group_lag(bootstrap: str, app_id: str, groups: list[str]) -> dict[str, dict[str, int]]:
    """group -> "topic:partition" -> end offset - committed offset, where that is not 0,
    for every partition of the deployment's topics (named ``app_id...``) the group
    committed."""
    return asyncio.run(_group_lag(bootstrap, app_id, groups))


async def _group_lag(bootstrap: str, app_id: str, groups: list[str]
                     ) -> dict[str, dict[str, int]]:
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                              enable_auto_commit=False)
    await reader.start()
    try:
        names = sorted(t for t in await reader.topics()
                       if t.startswith(app_id) and not t.endswith("-changelog"))
        partitions = [TopicPartition(n, p) for n in names
                      for p in sorted(reader.partitions_for_topic(n) or ())]
        ends = await reader.end_offsets(partitions)
    finally:
        await reader.stop()
    out: dict[str, dict[str, int]] = {}
    for group in groups:
        member = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                                  enable_auto_commit=False)
        await member.start()
        try:
            lag: dict[str, int] = {}
            for tp in partitions:
                done = await member.committed(tp)
                if done is not None and ends[tp] > done:
                    lag[f"{tp.topic}:{tp.partition}"] = ends[tp] - done
            out[group] = lag
        finally:
            await member.stop()
    return out


def dead_letters(bootstrap: str, topic: str, timeout_s: float = 20.0) -> dict[str, int]:
    """reason -> how many records of the dead-letter topic give it (the reason's first 120
    characters). The soak sends only valid events, so any record here is a finding."""
    return asyncio.run(_dead_letters(bootstrap, topic, timeout_s))


async def _dead_letters(bootstrap: str, topic: str, timeout_s: float) -> dict[str, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    reasons: dict[str, int] = {}
    try:
        await consumer.topics()  # fetches the metadata partitions_for_topic reads
        partitions = [TopicPartition(topic, p)
                      for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(partitions)
        deadline = asyncio.get_running_loop().time() + timeout_s
        while asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(timeout_ms=1000)
            if not batch:
                break  # an empty fetch: read to the end (Tansu's end offsets run short)
            for records in batch.values():
                for record in records:
                    try:
                        reason = str(orjson.loads(record.value).get("reason", "?"))[:120]
                    except (orjson.JSONDecodeError, AttributeError):
                        reason = "(not a dead-letter record)"
                    reasons[reason] = reasons.get(reason, 0) + 1
    finally:
        await consumer.stop()
    return reasons
