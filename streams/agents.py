"""Faust wiring, kept thin: each agent hands a batch to a pure function and sends the result."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from streams.aggregate import fold
from streams.ingest import RawMessage
from streams.windows import minute_of

if TYPE_CHECKING:
    from streams.app import KpiApp

__all__ = ["INGEST_BATCH", "INGEST_WITHIN_S", "register"]

INGEST_BATCH = 2000
"""Messages the input agent takes at once; larger batches mean fewer forwards."""
INGEST_WITHIN_S = 0.05
"""Longest wait to fill a batch: the freshness cost of batching."""


def register(kpi: KpiApp) -> None:
    """Attach the input and aggregating agents to the app."""
    from streams.app import partition_for, wall_clock_ms

    app = kpi.faust_app
    partitions = kpi.settings.partitions

    @app.agent(kpi.input_topic, name="ingest")
    async def ingest(stream: Any) -> None:
        async for events in stream.take_events(INGEST_BATCH, within=INGEST_WITHIN_S):
            result = kpi.ingestor.ingest(
                RawMessage(e.message.topic, e.message.partition, e.message.offset, e.value)
                for e in events
            )
            for record in result.dead_letters:
                await kpi.deadletter_topic.send(value=record)
            for event_type, count in result.invalid.items():
                kpi.events_total.labels(event_type, "invalid").inc(count)
            for campaign, forwards in result.forwards.items():
                await kpi.kpi_events_topic.send(
                    key=campaign.encode("utf-8"),
                    value=orjson.dumps(forwards),
                    partition=partition_for(campaign, partitions),
                )

    @app.agent(kpi.kpi_events_topic, name="aggregate")
    async def aggregate(stream: Any) -> None:
        async for event in stream.events():
            folded = fold(event.key.decode("utf-8"), orjson.loads(event.value))
            changed = kpi.state.apply(folded.deltas, minute_of(wall_clock_ms()))
            table = kpi.table
            for key, counts in changed.items():
                if counts is None:
                    table.pop(key, None)
                else:
                    table[key] = counts
            for event_type, count in folded.accepted.items():
                kpi.events_total.labels(event_type, "accepted").inc(count)
            kpi.note_newest(folded.newest_ts_ms)

    async def rebuild() -> None:
        kpi.rebuild_state()

    kpi.table.on_recover(rebuild)
