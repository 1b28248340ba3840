"""Integration fixtures: one real Tansu broker for the session, a deployment per test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from streams.broker import LocalBroker
from tests.integration.harness import Deployment


@pytest.fixture(scope="session")
def broker() -> Iterator[LocalBroker]:
    with LocalBroker() as running:
        yield running


@pytest.fixture
def deploy(broker: LocalBroker, tmp_path: Path) -> Iterator[Callable[..., Deployment]]:
    """Make deployments (own app id and topics); their workers stop when the test ends."""
    made: list[Deployment] = []

    def make(partitions: int = 4, extra_toml: str = "") -> Deployment:
        deployment = Deployment(broker, tmp_path, partitions=partitions, extra_toml=extra_toml)
        made.append(deployment)
        return deployment

    yield make
    for deployment in made:
        deployment.stop_workers()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.path):
            item.add_marker(pytest.mark.integration)
