"""Fixtures for the integration and deploy tiers: real brokers, one of each kind per session,
deployments (own app id and topics) per test or module.

The integration tiers run on Apache Kafka, the broker users run; Tansu (the embedded broker
of ``kpistream demo``) keeps the demo test and the modules named in ``ON_TANSU_TOO``, which
run on both brokers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from streams.kafka.tansu import Broker, LocalBroker
from tests.integration.harness import Deployment
from tests.kafka_broker import ApacheKafka

MakeDeployment = Callable[..., Deployment]

ON_TANSU_TOO = ("test_pipeline", "test_orders", "test_reliability")
"""Modules that also run on Tansu: the demo's broker keeps a smoke of the whole pipeline."""

ON_TANSU_ONLY: dict[str, str] = {}
"""Tests that do not pass on Apache Kafka yet, and why: they run on Tansu meanwhile."""

KAFKA_PROPERTIES = {
    # The cleaner wakes often, so a test that asks for compaction sees a pass within seconds.
    "log.cleaner.backoff.ms": "500",
    "num.partitions": "4",
}


@pytest.fixture(scope="session")
def kafka() -> Iterator[ApacheKafka]:
    """One Apache Kafka broker (KRaft, single node) for the session."""
    with ApacheKafka(KAFKA_PROPERTIES) as running:
        yield running


@pytest.fixture(scope="session")
def tansu() -> Iterator[LocalBroker]:
    """One Tansu broker for the session, started only if a test asks for it."""
    with LocalBroker() as running:
        yield running


@pytest.fixture(scope="session")
def broker(request: pytest.FixtureRequest) -> Broker:
    """The broker a test runs on: Apache Kafka, or each of Kafka and Tansu (by module)."""
    kind: str = getattr(request, "param", "kafka")
    running: Broker = request.getfixturevalue(kind)
    return running


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "broker" not in metafunc.fixturenames:
        return
    if metafunc.function.__name__ in ON_TANSU_ONLY:
        metafunc.parametrize("broker", ["tansu"], indirect=True, scope="session")
    elif metafunc.module.__name__.rsplit(".", 1)[-1] in ON_TANSU_TOO:
        metafunc.parametrize("broker", ["kafka", "tansu"], indirect=True, scope="session")


def _deployments(broker: Broker, tmp: Path) -> Iterator[MakeDeployment]:
    made: list[Deployment] = []

    def make(partitions: int = 4, extra_toml: str = "") -> Deployment:
        deployment = Deployment(broker, tmp, partitions=partitions, extra_toml=extra_toml)
        made.append(deployment)
        return deployment

    yield make
    for deployment in made:
        deployment.stop_workers()


@pytest.fixture
def deploy(broker: Broker, tmp_path: Path) -> Iterator[MakeDeployment]:
    """Make deployments (own app id and topics); their workers stop when the test ends."""
    yield from _deployments(broker, tmp_path)


@pytest.fixture(scope="module")
def deploy_module(
    broker: Broker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MakeDeployment]:
    """Like ``deploy``, shared by the tests of one module."""
    yield from _deployments(broker, tmp_path_factory.mktemp("deploy"))


@pytest.fixture
def stopped_after() -> Iterator[Callable[[Deployment], Deployment]]:
    """Register a deployment made on a test's own broker; its workers stop at teardown."""
    made: list[Deployment] = []

    def register(deployment: Deployment) -> Deployment:
        made.append(deployment)
        return deployment

    yield register
    for deployment in made:
        deployment.stop_workers()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.path) or "tests/deploy" in str(item.path):
            item.add_marker(pytest.mark.integration)
