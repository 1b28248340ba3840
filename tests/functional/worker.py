"""The worker's real Faust agents, driven through Faust's ``Agent.test_context()``, no broker.

``create_app`` builds the worker exactly as ``kpistream worker`` does, but with a
``Recorder`` as its sender (streams.worker.sending): every record the agents, the tables'
changelogs and the input stage produce is recorded and its delivery completes at once (or
fails, for the roles a test names). ``deliver`` hands each recorded internal record to the
test context of the agent that reads its topic and partition, in the order it was sent,
and waits until the agent acked it: so a click and its order put through the input stage go
join -> customers -> count as they do between workers and Kafka.

What Faust's test mode gives and this tier works with:
- ``AgentTestWrapper.put`` numbers messages with one counter per wrapper whatever their
  partition (faust/agents/agent.py, ``put``: ``offset=self.sent_offset``), while the agents
  take each partition's messages at exactly the next offset (streams.stages.offset_order):
  so each agent gets one test context per partition, whose offsets are then dense.
- Nothing joins a consumer group: the worker's assignment comes from Faust's own assignor,
  run as a group leader runs it (``metadata`` -> ``assign`` -> ``on_assignment``) for a
  group of this one worker, on cluster metadata in the form a broker's metadata answer
  has. So /metrics serves the campaigns of every partition, as a lone worker does.
- ``put`` returns once the stream has the value (the test wrapper's processor sees it
  before the agent's body does: faust/agents/agent.py, ``_on_value_processed_processor``),
  not once the agent handled it: ``deliver`` waits for the message's ack instead.
  (``message.acked`` is also set for a message a stage drops, StreamConsumer.release;
  ``deliver`` feeds each partition dense offsets, so every message is taken.)
- The app is never started: table recovery never completes and the input consumer never
  joins its group, so /ready names those two reasons all along (``NOT_STARTED``); and the
  consumer's thread, which makes its own event loop when created (mode/threads.py), never
  runs, so that loop is never closed (a ResourceWarning, ignored by default).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiokafka.cluster import ClusterMetadata
from aiokafka.errors import KafkaTimeoutError
from aiokafka.protocol.metadata import MetadataResponse_v0
from prometheus_client.parser import text_string_to_metric_families

from metrics.kpi_gauges import exposition
from metrics.names import MONEY_METRICS
from streams.config.settings import Settings
from streams.stages.ingest import RawMessage
from streams.stages.outgoing import Outgoing, ingested
from streams.worker.app import create_app
from streams.worker.kpi_app import KpiApp

AGENTS = {"click_join": "join", "customer_orders": "customers", "kpi_events": "count"}
"""Internal topic role -> the agent reading it (streams.worker.agents)."""
NOT_STARTED = ["recovering tables or rebalancing", "the input consumer has not joined its group"]
"""/ready's reasons for a worker whose app never started (no broker in this tier)."""
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@dataclass(frozen=True)
class Change:
    """One changelog record."""

    topic: str
    key: bytes
    value: bytes | None
    partition: int


@dataclass
class Recorder:
    """The worker's sender in this tier: what reached each topic, in the order sent."""

    failing: set[str] = field(default_factory=set)
    """Roles (kpi_events, click_join, customer_orders, deadletter, or "changelog") whose
    sends fail, as a producer's do when the broker does not answer in time."""
    records: list[Outgoing] = field(default_factory=list)
    """Records delivered to their topic (by role)."""
    changes: list[Change] = field(default_factory=list)
    """Changelog records delivered."""
    lost: list[Outgoing | Change] = field(default_factory=list)
    """Records whose send failed: on no topic."""

    def _delivery(self, role: str) -> asyncio.Future[None]:
        delivery: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if role in self.failing:
            delivery.set_exception(KafkaTimeoutError())
        else:
            delivery.set_result(None)
        return delivery

    async def send(self, record: Outgoing) -> Awaitable[Any]:
        delivery = self._delivery(record.topic)
        (self.records if delivery.exception() is None else self.lost).append(record)
        return delivery

    async def send_change(self, topic: str, key: bytes, value: bytes | None,
                          partition: int) -> Awaitable[Any]:
        delivery = self._delivery("changelog")
        change = Change(topic, key, value, partition)
        (self.changes if delivery.exception() is None else self.lost).append(change)
        return delivery


def assign_every_partition(kpi: KpiApp) -> None:
    """This worker as the only member of its group: Faust's assignor assigns it every
    partition of the internal topics and changelogs, as the group leader would."""
    app = kpi.faust_app
    names = sorted({kpi.topics[role].get_topic_name() for role in AGENTS}
                   | {table.changelog_topic.get_topic_name() for table in app.tables.values()})
    partitions = kpi.settings.partitions
    cluster = ClusterMetadata()
    cluster.update_metadata(MetadataResponse_v0(
        brokers=[(0, "localhost", 9092)],
        topics=[(0, name, [(0, p, 0, [0], [0]) for p in range(partitions)])
                for name in names]))
    assignor = app.assignor
    assignment = assignor.assign(cluster, {"worker-1": assignor.metadata(set(names))})
    assignor.on_assignment(assignment["worker-1"])


async def wait_until(check: Callable[[], bool], what: str, timeout_s: float = 5.0) -> None:
    """Poll ``check`` on the loop until it holds; fail naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.001)


class FunctionalWorker:
    """A worker whose agents run in Faust's test mode; records flow between them here."""

    def __init__(self, kpi: KpiApp, recorder: Recorder, contexts: dict[tuple[str, int], Any]):
        self.kpi = kpi
        self.recorder = recorder
        self._contexts = contexts
        self._next = 0
        """Index of the first delivered record not handed on yet."""
        self._input_offset = 0

    async def publish(self, topic: str, *events: Any) -> None:
        """One round of the input stage: input messages of ``topic`` (each an event object,
        a batch list, or raw bytes) validated and routed, and their records sent through
        the worker's sender, as the input consumer does."""
        messages = [RawMessage(topic, 0, self._input_offset + i,
                               event if isinstance(event, bytes) else orjson.dumps(event))
                    for i, event in enumerate(events)]
        self._input_offset += len(messages)
        result = self.kpi.ingestor.ingest(messages)
        assert not result.invalid, result.invalid
        for record in ingested(result, self.kpi.ownership.partition):
            await self.kpi.sender.send(record)

    def context(self, role: str, partition: int) -> Any:
        """The test context (``AgentTestWrapper``) fed ``role``'s messages of ``partition``."""
        return self._contexts[(role, partition)]

    async def put(self, record: Outgoing, context: Any = None) -> Any:
        """One internal record into the test context of its agent and partition (or into
        ``context``); returns the event (its ``message`` is the one the agent acks)."""
        partition = record.partition or 0
        context = self.context(record.topic, partition) if context is None else context
        return await context.put(key=record.key, value=record.value, partition=partition)

    async def deliver(self) -> list[Any]:
        """Hand every internal record that reached its topic on to its agent, in the order
        sent, each once the agent has acked the one before; returns the events put. Stops
        at a message whose stage stopped instead (a send of its failed): nothing after it
        is acked."""
        events = []
        while self._next < len(self.recorder.records):
            record = self.recorder.records[self._next]
            self._next += 1
            if record.topic not in AGENTS:
                continue
            event = await self.put(record)
            events.append(event)
            acks = self.kpi.readiness.stage_acks(AGENTS[record.topic])
            await wait_until(lambda event=event, acks=acks: (event.message.acked
                                                             or acks.failure is not None),
                             f"{acks.stage} to ack offset {event.message.offset}")
            if not event.message.acked:
                break
        return events

    def dead_letters(self) -> list[dict[str, Any]]:
        return [orjson.loads(r.value) for r in self.recorder.records if r.topic == "deadletter"]

    def samples(self) -> Samples:
        """/metrics, as the worker's page writes it, parsed: (name, labels) -> value."""
        text = exposition(self.kpi.registry).decode()
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(text) for s in family.samples}

    def kpi_value(self, name: str, campaign: str, channel: str,
                  window: str = "total") -> float | None:
        """One KPI sample of /metrics (None: not served)."""
        labels = {"campaign": campaign, "channel": channel, "window": window}
        if name in MONEY_METRICS:
            labels["currency"] = self.kpi.settings.reporting_currency
        return self.samples().get((name, tuple(sorted(labels.items()))))

    def events_total(self, event_type: str, outcome: str) -> float:
        key = ("kpistream_events_total", (("outcome", outcome), ("type", event_type)))
        return self.samples()[key]


@contextlib.asynccontextmanager
async def functional_worker(tmp: Path, partitions: int = 1,
                            **settings: Any) -> AsyncIterator[FunctionalWorker]:
    """A worker (its real agents in test contexts) on ``partitions`` partitions."""
    recorder = Recorder()
    kpi = create_app(Settings(partitions=partitions, data_dir=tmp, **settings),
                     sender=recorder)
    assign_every_partition(kpi)
    agents = kpi.faust_app.agents
    async with contextlib.AsyncExitStack() as stack:
        contexts = {(role, p): await stack.enter_async_context(agents[name].test_context())
                    for role, name in AGENTS.items() for p in range(partitions)}
        try:
            yield FunctionalWorker(kpi, recorder, contexts)
        finally:
            for acks in kpi.readiness.acks.values():
                acks.close()


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), 30))


def views(campaign: str, channel: str, *event_ids: str, ts: int | None = None) -> list[Any]:
    now = int(time.time() * 1000) if ts is None else ts
    return [{"event_id": e, "campaign_id": campaign, "channel": channel, "ts": now}
            for e in event_ids]


def records_for(records: Iterable[Outgoing], role: str) -> list[Outgoing]:
    return [r for r in records if r.topic == role]
