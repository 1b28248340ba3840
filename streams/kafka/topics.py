"""Create kpistream's own topics before Faust starts, and wait until the brokers list them.

Faust creates a missing topic and subscribes at once. On Apache Kafka a new topic reaches
the brokers' metadata a moment after the controller created it, so the group's first
assignment can leave a just-created topic out (Faust logs "Ignoring missing topic"); the
partitions come at a later metadata refresh and a rebalance, and measured here the worker
then counted part of what was sent before it (43 of 76 events in one run, 0 in others).
Created and visible beforehand, every topic is in the first assignment; Faust then finds
them existing. The replication factor and cleanup policy are set here too, and for the
compacted changelogs (``COMPACTED``) how soon the cleaner may compact them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, for_code
from aiokafka.protocol.admin import CreateTopicsRequest
from aiokafka.structs import TopicPartition

__all__ = ["COMPACTED", "TopicCreationError", "TopicSpec", "ensure_topics", "spec_of"]

_TOPIC_EXISTS = TopicAlreadyExistsError.errno
_HOUR_MS = "3600000"

COMPACTED: tuple[tuple[str, str], ...] = (
    ("cleanup.policy", "compact"),
    # Kafka compacts only closed segments, and by default a segment closes after 7 days or
    # 1 GiB: a worker recovering a changelog on an empty disk would read every change of
    # the last days, not each key's last value. Hourly segments leave at most an hour of
    # changes beside the compacted keys.
    ("segment.ms", _HOUR_MS),
    # Tombstones (expired minutes, ids, clicks; a minute record gone into its hour block)
    # stay readable this long after the cleaner's pass, 24 h by default: a day of them
    # would be read by every recovery. A recovery takes minutes; one that took longer and
    # missed a tombstone finds the record expired, or beside its hour block, and drops it.
    ("delete.retention.ms", _HOUR_MS),
)
"""The configs of a compacted (changelog) topic."""


class TopicCreationError(RuntimeError):
    """The broker refused one of kpistream's topics; the message names the setting."""


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """One topic kpistream creates."""

    name: str
    partitions: int
    replicas: int
    """-1: the broker's own default.replication.factor."""
    compacted: bool


def spec_of(topic: Any, replicas: int) -> TopicSpec:
    """The spec of a Faust topic (internal topic or table changelog)."""
    return TopicSpec(topic.get_topic_name(), int(topic.partitions), replicas,
                     bool(topic.compacting))


async def ensure_topics(bootstrap: str, options: Mapping[str, Any], specs: Iterable[TopicSpec],
                        timeout_s: float = 30.0) -> None:
    """Create the missing ones of ``specs``; return once metadata shows all their partitions."""
    wanted = {spec.name: spec for spec in specs}
    client = AIOKafkaClient(bootstrap_servers=bootstrap, **options)
    try:
        await client.bootstrap()
    except KafkaError as exc:
        await client.close()
        protocol = options.get("security_protocol", "PLAINTEXT")
        hint = (" and the credentials [kafka] sasl_username / KPISTREAM_KAFKA_SASL_PASSWORD "
                "(or sasl_password_file)" if str(protocol).startswith("SASL") else "")
        raise TopicCreationError(
            f"cannot connect to Kafka at {bootstrap} with [kafka] security_protocol "
            f"{protocol}: {exc}; check KPISTREAM_BROKER, the [kafka] settings{hint}") from None
    try:
        cluster = await client.fetch_all_metadata()
        missing = [spec for name, spec in wanted.items() if name not in cluster.topics()]
        if missing:
            await _create(client, cluster, missing)
        await _wait_visible(client, wanted.values(), timeout_s)
    finally:
        await client.close()


async def _create(client: AIOKafkaClient, cluster: Any, specs: list[TopicSpec]) -> None:
    request = CreateTopicsRequest(
        [(s.name, s.partitions, s.replicas, [],
          list(COMPACTED) if s.compacted else [("cleanup.policy", "delete")]) for s in specs],
        30_000, False)
    # Any broker forwards CreateTopics to the controller (KRaft); Tansu is one node anyway.
    node = next(iter(cluster.brokers())).nodeId
    response = await client.send(node, request)
    for name, code, reason in response.topic_errors:
        if code in (0, _TOPIC_EXISTS):  # another worker may have just made it
            continue
        spec = next(s for s in specs if s.name == name)
        error = for_code(code)
        setting = ("[kafka] replication_factor" if "replica" in f"{error.__name__} {reason}"
                   .lower() else "the Kafka cluster")
        raise TopicCreationError(
            f"cannot create topic {name} ({spec.partitions} partitions, replication factor "
            f"{'the broker default' if spec.replicas < 0 else spec.replicas}): "
            f"{error.__name__}: {reason} (check {setting})")


async def _wait_visible(client: AIOKafkaClient, specs: Iterable[TopicSpec],
                        timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    pending = list(specs)
    while True:
        cluster = await client.fetch_all_metadata()
        pending = [s for s in pending if not _complete(cluster, s)]
        if not pending:
            return
        if time.monotonic() > deadline:
            raise TopicCreationError(
                f"topics {[s.name for s in pending]} were created but the brokers did not list "
                f"all their partitions with a leader within {timeout_s} s")
        await asyncio.sleep(0.1)


def _complete(cluster: Any, spec: TopicSpec) -> bool:
    partitions = cluster.partitions_for_topic(spec.name) or set()
    return len(partitions) >= spec.partitions and all(
        (cluster.leader_for_partition(TopicPartition(spec.name, p)) or -1) >= 0
        for p in partitions)
