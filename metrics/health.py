"""The worker's own health at scrape time: ``kpistream_ready`` and ``kpistream_consumer_lag``."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = ["LAG_METRIC", "READY_METRIC", "HealthCollector", "Lag", "consumer_lag"]

READY_METRIC = "kpistream_ready"
LAG_METRIC = "kpistream_consumer_lag"

Lag = Mapping[tuple[str, int], int]
"""(topic, partition) -> messages behind."""


class HealthCollector(Collector):
    """Readiness and consumer lag; a failing source reads as not ready / no lag, never raises."""

    def __init__(self, ready: Callable[[], bool], lag: Callable[[], Lag]) -> None:
        self._ready = ready
        self._lag = lag

    def collect(self) -> Iterator[GaugeMetricFamily]:
        ready = GaugeMetricFamily(
            READY_METRIC,
            "1 once the tables are recovered and the consumer runs (GET /ready is 200), else 0.",
        )
        try:
            is_ready = bool(self._ready())
        except Exception:  # a scrape must answer even while faust is half started
            is_ready = False
        ready.add_metric([], 1.0 if is_ready else 0.0)
        yield ready
        lag = GaugeMetricFamily(
            LAG_METRIC,
            "Messages in an assigned partition past the committed offset (highwater - committed).",
            labels=["topic", "partition"],
        )
        try:
            behind = dict(self._lag())
        except Exception:
            behind = {}
        for (topic, partition), count in sorted(behind.items()):
            lag.add_metric([topic, str(partition)], float(count))
        yield lag

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())


def consumer_lag(app: Any) -> dict[tuple[str, int], int]:
    """Highwater minus committed offset for each assigned, non-changelog partition of ``app``.

    Reads only what the faust consumer and its monitor keep in memory, so it never waits
    on the broker. A partition is left out until its highwater is known (after its first
    fetch) and it has a committed or read offset since the last rebalance (the monitor
    forgets offsets when a rebalance starts). Never raises.
    """
    try:
        consumer = app.consumer
        monitor = app.monitor
        assigned = list(consumer.assignment())
        committed = dict(monitor.tp_committed_offsets or {})
        read = dict(monitor.tp_read_offsets or {})
    except Exception:  # assignment() copies a set the consumer thread may be changing
        return {}
    lag: dict[tuple[str, int], int] = {}
    for tp in assigned:
        if tp.topic.endswith("-changelog"):
            continue  # standby and recovery reads: their offsets are never committed
        try:
            highwater = consumer.highwater(tp)
        except Exception:  # revoked since assignment(), or the consumer thread stopped
            continue
        done = committed.get(tp)
        if done is None and read.get(tp) is not None:
            done = read[tp] + 1  # committed offsets name the next message to read
        if highwater is None or done is None:
            continue
        lag[(tp.topic, int(tp.partition))] = max(0, int(highwater) - int(done))
    return lag
