"""How long a fetch may wait at the broker for data: the floor of each hop's latency.

Kafka answers a waiting fetch as soon as data arrives, but the local broker (Tansu)
answers late: measured here, a message produced while a consumer waits arrives after
~600 ms with Faust's fixed 1,500 ms wait, ~115 ms with aiokafka's default 500 ms, 16 ms
with 100 ms and 5 ms with 20 ms. Each fetch also costs Tansu more the more record
batches it holds (it appears to keep one object per batch): with every consumer at
20 ms, at 5,000 events/s its fetches took ~10 ms at the start of a run and ~80 ms after
40 s, and freshness p99 reached 2-5 s.

So the input consumer, which fetches from every partition of the five input topics,
waits ``INPUT_FETCH_WAIT_MS``, and Faust's stream consumer (internal topics, and
changelogs during recovery) ``STREAM_FETCH_WAIT_MS`` (set by streams.kafka.stream_consumer).
"""

from __future__ import annotations

from typing import Final

__all__ = ["INPUT_FETCH_WAIT_MS", "STREAM_FETCH_WAIT_MS"]

INPUT_FETCH_WAIT_MS: Final = 100
STREAM_FETCH_WAIT_MS: Final = 100
