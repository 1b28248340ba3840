"""Fixtures for the integration and deploy tiers: one real Tansu broker for the session,
deployments (own app id and topics) per test or module."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from streams.broker import LocalBroker
from tests.integration.harness import Deployment

MakeDeployment = Callable[..., Deployment]


@pytest.fixture(scope="session")
def broker() -> Iterator[LocalBroker]:
    with LocalBroker() as running:
        yield running


def _deployments(broker: LocalBroker, tmp: Path) -> Iterator[MakeDeployment]:
    made: list[Deployment] = []

    def make(partitions: int = 4, extra_toml: str = "") -> Deployment:
        deployment = Deployment(broker, tmp, partitions=partitions, extra_toml=extra_toml)
        made.append(deployment)
        return deployment

    yield make
    for deployment in made:
        deployment.stop_workers()


@pytest.fixture
def deploy(broker: LocalBroker, tmp_path: Path) -> Iterator[MakeDeployment]:
    """Make deployments (own app id and topics); their workers stop when the test ends."""
    yield from _deployments(broker, tmp_path)


@pytest.fixture(scope="module")
def deploy_module(
    broker: LocalBroker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MakeDeployment]:
    """Like ``deploy``, shared by the tests of one module."""
    yield from _deployments(broker, tmp_path_factory.mktemp("deploy"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.path) or "tests/deploy" in str(item.path):
            item.add_marker(pytest.mark.integration)
