"""How long a fetch may wait at the broker for data: the floor of each hop's latency.

Kafka answers a waiting fetch as soon as data arrives, but the local broker (Tansu)
answers late: measured here, a message produced while a consumer waits arrives after
~600 ms with Faust's fixed 1,500 ms wait, ~115 ms with aiokafka's default 500 ms, 16 ms
with 100 ms and 5 ms with 20 ms. Each fetch also costs Tansu more the more record
batches it holds (it appears to keep one object per batch): with every consumer at
20 ms, at 5,000 events/s its fetches took ~10 ms at the start of a run and ~80 ms after
40 s, and freshness p99 reached 2-5 s.

So the input consumer, which fetches from every partition of the five input topics,
waits ``INPUT_FETCH_WAIT_MS``; Faust's stream consumer (internal topics, and changelogs
during recovery) keeps ``STREAM_FETCH_WAIT_MS``: at 100 ms, the 1 -> 2 -> 3 -> 1 worker
scale test lost counts in 3 of 8 runs (a rebalance race, in Faust's handling or in our
end-offset correction, not pinned down), at 20 ms in none of 11.
"""

from __future__ import annotations

from typing import Any, Final

__all__ = ["INPUT_FETCH_WAIT_MS", "STREAM_FETCH_WAIT_MS", "shorten_fetch_wait"]

INPUT_FETCH_WAIT_MS: Final = 100
STREAM_FETCH_WAIT_MS: Final = 20


def shorten_fetch_wait(faust_consumer: Any) -> None:
    """Make the aiokafka consumer Faust creates for its streams wait ``STREAM_FETCH_WAIT_MS``.

    Faust passes a fixed ``fetch_max_wait_ms=1500`` (no setting); the value is read when
    the aiokafka consumer starts, so it is set on the consumer as soon as it is created.
    """
    thread = faust_consumer._thread  # noqa: SLF001  # Faust offers no setting for it
    create = thread._create_consumer  # noqa: SLF001

    def create_consumer(loop: Any) -> Any:
        consumer = create(loop)
        consumer._fetch_max_wait_ms = STREAM_FETCH_WAIT_MS  # noqa: SLF001
        return consumer

    thread._create_consumer = create_consumer  # noqa: SLF001
