"""The worker's own event counters: ``kpistream_events`` and the newest event time."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from metrics.names import OUTCOMES, TYPE_LABELS

__all__ = ["EventCounters"]


class EventCounters:
    """Events read, by type and outcome, and the event time of the newest accepted one."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._events = Counter("kpistream_events", "Events read, by type and outcome.",
                               ["type", "outcome"], registry=registry)
        for event_type in TYPE_LABELS:
            for outcome in OUTCOMES:
                self._events.labels(event_type, outcome)
        self._last_event_seconds = Gauge(
            "kpistream_last_event_timestamp_seconds",
            "Event time of the newest accepted event, by type.", ["type"], registry=registry,
        )
        self._newest_ms: dict[str, int] = {}

    def count(self, event_type: str, outcome: str, amount: int) -> None:
        self._events.labels(event_type, outcome).inc(amount)

    def note_newest(self, newest_ts_ms: dict[str, int]) -> None:
        """Move kpistream_last_event_timestamp_seconds forward (never back) per type."""
        for event_type, ts_ms in newest_ts_ms.items():
            if ts_ms > self._newest_ms.get(event_type, -1):
                self._newest_ms[event_type] = ts_ms
                self._last_event_seconds.labels(event_type).set(ts_ms / 1000)
