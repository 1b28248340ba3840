"""The topics a worker creates on Apache Kafka, read back through the admin API: partitions,
replication factor ([kafka] replication_factor, default the broker's own) and cleanup policy
(changelogs compacted, so their live size is bounded by the windows, in hourly segments
whose tombstones the cleaner drops an hour after its pass)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from tests.integration.harness import Deployment
from tests.kafka_broker import ApacheKafka

CHANGELOGS = ("kpi", "event-ids", "clicks", "waiting-orders", "customers")
INTERNAL = ("kpi-events", "click-join", "customer-orders")


@pytest.fixture(scope="module")
def kafka_rf2() -> Iterator[ApacheKafka]:
    """A one-broker cluster whose default.replication.factor (2) it cannot meet."""
    with ApacheKafka({"default.replication.factor": "2"}) as running:
        yield running


CLEANER = ("segment.ms", "delete.retention.ms")


def describe(bootstrap: str, names: list[str],
             config: str = "cleanup.policy") -> dict[str, tuple[int, int, str]]:
    """Topic -> (partitions, replicas of every partition, its ``config``)."""

    async def _describe() -> dict[str, tuple[int, int, str]]:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            topics: list[dict[str, Any]] = await admin.describe_topics(names)
            configs = await admin.describe_configs(
                [ConfigResource(ConfigResourceType.TOPIC, name) for name in names])
        finally:
            await admin.close()
        policy = {resource[3]: entry[1] for response in configs
                  for resource in response.resources for entry in resource[4]
                  if entry[0] == config}
        out = {}
        for topic in topics:
            assert topic["error_code"] == 0, topic
            replicas = {len(p["replicas"]) for p in topic["partitions"]}
            assert len(replicas) == 1, topic
            out[topic["topic"]] = (len(topic["partitions"]), replicas.pop(),
                                   policy[topic["topic"]])
        return out

    return asyncio.run(_describe())


def test_topics_get_partitions_the_broker_default_replication_and_compacted_changelogs(
    kafka: ApacheKafka, tmp_path: Path,
    stopped_after: Callable[[Deployment], Deployment],
) -> None:
    deployment = stopped_after(Deployment(kafka, tmp_path, partitions=3))
    deployment.start_worker()
    app = deployment.app_id
    names = [f"{app}-{t}-changelog" for t in CHANGELOGS] + [f"{app}-{t}" for t in INTERNAL]
    found = describe(kafka.bootstrap, names)
    assert found == {
        **{f"{app}-{t}-changelog": (3, 1, "compact") for t in CHANGELOGS},
        **{f"{app}-{t}": (3, 1, "delete") for t in INTERNAL},
    }
    changelogs = [f"{app}-{t}-changelog" for t in CHANGELOGS]
    for config in CLEANER:  # an hour, not the broker's 7 days and 24 h
        assert {name: found[2] for name, found in describe(
            kafka.bootstrap, changelogs, config).items()} == dict.fromkeys(
                changelogs, "3600000"), config
    deployment.stop_workers()


def test_the_default_is_the_broker_default_replication_factor(
    kafka_rf2: ApacheKafka, tmp_path: Path,
    stopped_after: Callable[[Deployment], Deployment],
) -> None:
    # Unset, the replication factor is the broker's: 2, more than its one broker can hold,
    # so the worker stops at start and says why.
    deployment = stopped_after(Deployment(kafka_rf2, tmp_path))
    with pytest.raises(AssertionError, match="worker exited") as failed:
        deployment.start_worker()
    message = str(failed.value)
    assert "replication factor the broker default" in message, message
    assert "InvalidReplicationFactor" in message and "[kafka] replication_factor" in message


def test_replication_factor_setting_is_used_for_every_topic(
    kafka_rf2: ApacheKafka, tmp_path: Path,
    stopped_after: Callable[[Deployment], Deployment],
) -> None:
    deployment = stopped_after(Deployment(
        kafka_rf2, tmp_path, partitions=2,
        extra_env={"KPISTREAM_KAFKA_REPLICATION_FACTOR": "1"}))
    deployment.start_worker()
    app = deployment.app_id
    names = [f"{app}-{t}-changelog" for t in CHANGELOGS] + [f"{app}-{t}" for t in INTERNAL]
    found = describe(kafka_rf2.bootstrap, [*names, f"{app}-__assignor-__leader"])
    assert {name: rf for name, (_, rf, _) in found.items()} == dict.fromkeys(
        [*names, f"{app}-__assignor-__leader"], 1)
    deployment.stop_workers()
