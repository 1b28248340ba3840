"""A broker that refuses the worker's writes stops the stage and /ready, and loses nothing.

Apache Kafka refuses a record batch larger than its topic's ``max.message.bytes``: set to
64 bytes on a topic the worker writes, every write to it fails with MessageSizeTooLarge.
The offsets behind the refused writes are never committed, so once the topic takes
writes again every event counts once (issue 11: produce failures are never committed past).
"""

from __future__ import annotations

import asyncio
import time
import urllib.error
import urllib.request
from collections.abc import Callable

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from tests.integration.harness import Deployment, Worker, value, wait_until

REFUSE_ALL = "64"
"""max.message.bytes below any record batch the worker writes."""
KAFKA_DEFAULT = "1048588"


def _set_max_message_bytes(bootstrap: str, topic: str, size: str) -> None:
    async def alter() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            await admin.alter_configs([ConfigResource(
                ConfigResourceType.TOPIC, topic, configs={"max.message.bytes": size})])
        finally:
            await admin.close()

    asyncio.run(alter())


def _ready_body(worker: Worker) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(worker.url("/ready"), timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as refused:
        return refused.code, refused.read().decode()


def _views(worker: Worker) -> float | None:
    return value(worker.samples(), "marketing_views", campaign="c", channel="unknown",
                 window="total")


def _publish_views(deployment: Deployment, first: int, count: int) -> None:
    now = int(time.time() * 1000)
    deployment.publish([("views", {"event_id": f"v{i}", "ts": now, "campaign_id": "c"}, None)
                        for i in range(first, first + count)])


def _refuse_writes_while_publishing(deployment: Deployment, worker: Worker, topic: str,
                                    reason: str) -> float | None:
    """100 views counted; then ``topic`` refuses every write while 100 more are sent, until
    /ready answers 503 for ``reason``; returns the views counted then (the topic takes
    writes again on return)."""
    _publish_views(deployment, 0, 100)
    wait_until(lambda: _views(worker) == 100, 60, "the first views counted")
    _set_max_message_bytes(deployment.broker.bootstrap, topic, REFUSE_ALL)
    try:
        _publish_views(deployment, 100, 100)
        wait_until(lambda: _ready_body(worker)[0] == 503, 60, "/ready to answer 503")
        status, body = _ready_body(worker)
        assert status == 503 and reason in body, body
        return _views(worker)
    finally:
        _set_max_message_bytes(deployment.broker.bootstrap, topic, KAFKA_DEFAULT)


def test_refused_internal_writes_stop_the_input_then_it_retries_and_counts_once(
    deploy: Callable[..., Deployment],
) -> None:
    deployment = deploy(partitions=2)
    worker = deployment.start_worker()
    while_refused = _refuse_writes_while_publishing(
        deployment, worker, f"{deployment.app_id}-kpi-events", "input sends failed")
    assert while_refused == 100  # refused before they reached the counting stage
    wait_until(lambda: _views(worker) == 200, 90, "every view counted once the topic takes writes")
    wait_until(lambda: _ready_body(worker)[0] == 200, 30, "/ready to answer 200 again")
    assert _views(worker) == 200
    assert worker.process.poll() is None


@pytest.mark.parametrize("disk", ["kept", "new"])
def test_refused_changelog_writes_stop_the_stage_and_a_restart_counts_once(
    deploy: Callable[..., Deployment], disk: str,
) -> None:
    """The counting stage's changelog refuses its writes (MessageSizeTooLarge, which any
    worker would meet again): the stage stops and /ready says why, and the worker does
    not exit (streams.stages.delivery: it would pass the failure on to every worker that
    took the partition). Restarted once the topic takes writes (on its own disk, or as
    another worker with none), it counts every view once."""
    deployment = deploy(partitions=2)
    worker = deployment.start_worker()
    _refuse_writes_while_publishing(deployment, worker, f"{deployment.app_id}-kpi-changelog",
                                    "count: a send failed (MessageSizeTooLargeError)")
    assert worker.process.poll() is None
    worker.stop()
    restarted = deployment.start_worker(
        ready_timeout_s=90, data_dir=worker.data_dir if disk == "kept" else None)
    wait_until(lambda: _views(restarted) == 200, 90, "every view counted once after the restart")
    assert _views(restarted) == 200
