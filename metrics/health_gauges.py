"""The worker's own health at scrape time: ``kpistream_ready`` and ``kpistream_consumer_lag``."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = ["LAG_METRIC", "READY_METRIC", "HealthCollector", "Lag", "consumer_lag"]

READY_METRIC = "kpistream_ready"
LAG_METRIC = "kpistream_consumer_lag"

Lag = Mapping[tuple[str, str], int]
"""(consumer group, topic) -> messages behind, over the partitions this worker reads."""


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
            "Messages not yet consumed in the partitions this worker reads, per consumer "
            "group and topic (highwater - position); sum over workers for the group's lag.",
            labels=["group", "topic"],
        )
        try:
            behind = dict(self._lag())
        except Exception:
            behind = {}
        for (group, topic), count in sorted(behind.items()):
            lag.add_metric([group, topic], float(count))
        yield lag

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())


class InputLag(Protocol):
    def lag(self) -> Mapping[str, int]: ...


def consumer_lag(app: Any, group: str, input_consumer: InputLag | None = None,
                 input_group: str | None = None) -> dict[tuple[str, str], int]:
    """Lag of the worker's consumer groups: Faust's (``group``, the internal topics) and
    the input consumer's (``input_group``, default ``<group>-ingest``)."""
    lag: dict[tuple[str, str], int] = {}
    for (topic, _), count in _faust_lag(app).items():
        lag[(group, topic)] = lag.get((group, topic), 0) + count
    if input_consumer is not None:
        ingest = input_group or f"{group}-ingest"
        try:
            for topic, count in input_consumer.lag().items():
                lag[(ingest, topic)] = count
        except Exception:  # a scrape must answer
            pass
    return lag


def _faust_lag(app: Any) -> dict[tuple[str, int], int]:
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
