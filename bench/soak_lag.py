"""Consumer-group lag read from the broker: did every stage consume everything?

Apart from the workers' own view (``kpistream_consumer_lag``): this is what the broker
holds as committed, so after a soak a short count with no lag means events were
skipped, not still on their way. Uses OffsetFetch (what the workers use), which Tansu
answers; its ListGroups answer does not decode in aiokafka.
"""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, TopicPartition

__all__ = ["group_lag"]


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
