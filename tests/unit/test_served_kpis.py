"""ServedKpis at the end of recovery: the books rebuilt, then every window summed once."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from streams.config.settings import Window
from streams.windows.counts import WIDTH
from streams.windows.state import KpiState
from streams.worker.books import ServedKpis

NOW_MINUTE = 29_590_500


class _Ownership:
    def served_partitions(self) -> set[int]:
        return {0}

    def campaign_partition(self, campaign: str) -> int:
        return 0


class _Books:
    """The books' rebuild and state as ServedKpis reads them."""

    def __init__(self, state: Any) -> None:
        self.counts = SimpleNamespace(state=state)
        self.rebuilt = 0

    def rebuild(self, ownership: Any) -> None:
        self.rebuilt += 1


class _FailingState:
    def rows(self, *args: Any) -> Iterator[Any]:
        raise OSError("a cold bucket could not be read")

    extras_rows = rows


def test_a_failed_priming_never_stops_the_rebuild(caplog: pytest.LogCaptureFixture) -> None:
    books = _Books(_FailingState())
    served = ServedKpis(books, _Ownership(), (Window("5m", 5),))  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING):
        served.rebuild()
    assert books.rebuilt == 1
    assert "summing the windows after the rebuild failed (OSError)" in caplog.text


def test_priming_sums_the_served_windows_the_first_scrape_reads() -> None:
    state = KpiState(60)
    for minute in range(NOW_MINUTE - 9, NOW_MINUTE + 1):
        state.load(("a", "web", minute), [1, *([0] * (WIDTH - 1)), minute])
    served = ServedKpis(_Books(state), _Ownership(), (Window("5m", 5),))  # type: ignore[arg-type]
    served.prime()
    assert {(w, c[0]) for _, _, w, c in state.rows(NOW_MINUTE, (Window("5m", 5),),
                                                   lambda _: True)} == {("5m", 5), ("total", 0)}
