"""True end offsets for table recovery, where the broker's answer stops short.

Tansu answers ListOffsets (what ``end_offsets`` asks) with the first offset of a
partition's last record batch plus one, not the last offset plus one. Faust recovers a
changelog up to that offset, so the rest of the last batch - the last table changes of
the previous owner, whose source offsets are already committed - never reaches the
rebuilt state. Tansu's fetch responses carry the right high watermark, so
``true_end_offsets`` fetches once from each partition (at its reported end minus one,
where there is always a record, so the broker answers at once) and takes the high
watermark the answer carries. It waits for every partition's answer, however slow the
broker or the event loop is: an end must never silently stay short.

Apache Kafka reports the right end offsets, so the correction runs only where
``end_offsets_need_correction`` finds a Tansu broker: by its cluster id, which Tansu
reports as ``tansu_cluster`` unless started with another ``--cluster-id``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient

__all__ = ["TANSU_CLUSTER_ID_PREFIX", "end_offsets_need_correction", "true_end_offsets"]

TANSU_CLUSTER_ID_PREFIX = "tansu"
ANSWER_TIMEOUT_S = 30.0
"""Longest wait for every partition's fetch answer (under Faust's 90 s request timeout)."""
TP = TypeVar("TP")


async def end_offsets_need_correction(bootstrap: str,
                                      options: Mapping[str, Any] | None = None) -> bool:
    """Whether the broker is Tansu (by its cluster id), whose end offsets stop short.

    ``options``: the connection's security settings, as aiokafka clients take them.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **(options or {}))
    await admin.start()
    try:
        cluster: dict[str, Any] = await admin.describe_cluster()
    finally:
        await admin.close()
    return str(cluster.get("cluster_id") or "").startswith(TANSU_CLUSTER_ID_PREFIX)


async def true_end_offsets(bootstrap: str, reported: Mapping[TP, int],
                           timeout_s: float = ANSWER_TIMEOUT_S,
                           options: Mapping[str, Any] | None = None) -> dict[TP, int]:
    """The reported end offsets, moved on to the high watermark of a fetch answer.

    Raises TimeoutError when some partition's answer does not come within ``timeout_s``.
    """
    ends = dict(reported)
    tps = [tp for tp, end in ends.items() if end]  # an empty partition reports 0: right
    if not tps:
        return ends
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                **(options or {}))
    await consumer.start()
    try:
        consumer.assign(tps)  # Faust's TP is the same namedtuple as aiokafka's
        for tp in tps:
            consumer.seek(tp, ends[tp] - 1)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        waiting = set(tps)
        while waiting:
            left_s = deadline - loop.time()
            if left_s <= 0:
                raise TimeoutError(f"no fetch answer within {timeout_s} s for {waiting}")
            await consumer.getmany(*waiting, timeout_ms=int(min(left_s, 1.0) * 1000) + 1)
            for tp in list(waiting):
                highwater = consumer.highwater(tp)
                if highwater is not None:
                    key: Any = tp
                    ends[key] = max(ends[key], highwater)
                    waiting.discard(tp)
    finally:
        await consumer.stop()
    return ends
