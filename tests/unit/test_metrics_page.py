"""/metrics as the worker's page serves it: the state as it was when the scrape came in,
its text written while the event loop goes on counting."""

from __future__ import annotations

import asyncio
import gc
import gzip
from collections.abc import Iterator
from concurrent.futures import Executor, ThreadPoolExecutor

import pytest
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

from bench import scrape
from metrics.kpi_gauges import KpiCollector, exposition
from streams.windows.counts import WIDTH
from streams.windows.state import KpiState
from streams.worker.cycles import cycle_collection_paused
from streams.worker.web import metrics_page

LAST = ("campaign-00049", "web")
"""The cell of the last of scrape.build_state's 200 series: written last."""


def _registry(state: KpiState) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(KpiCollector(
        lambda: state.rows(scrape.NOW, scrape.WINDOWS, lambda _: True), "USD"))
    Counter("kpistream_events", "Events read.", ["type"], registry=registry).labels(
        "view").inc(3)
    return registry


def _scrape_while_counting(state: KpiState, registry: CollectorRegistry, accept_encoding: str,
                           gzip_executor: Executor | None = None
                           ) -> tuple[bytes, dict[str, str], int]:
    """The page's answer, and how many messages the loop counted while it was written."""
    async def main() -> tuple[bytes, dict[str, str], int]:
        counted = 0

        async def count_on() -> None:
            nonlocal counted
            while True:
                await asyncio.sleep(0)
                state.apply({(*LAST, scrape.NOW): [1] * WIDTH},
                            scrape.NOW, 10**9 + counted)
                counted += 1

        counting = asyncio.create_task(count_on())
        body, headers = await metrics_page(registry, accept_encoding,
                                           gzip_executor=gzip_executor)
        counting.cancel()
        return body, headers, counted

    return asyncio.run(main())


@pytest.mark.parametrize("gzip_on_a_thread", [False, True])
def test_the_page_serves_the_state_the_scrape_found_while_the_loop_counts_on(
    gzip_on_a_thread: bool
) -> None:
    """gzip inline, or on its own thread a piece behind the writing (the worker's)."""
    state = scrape.build_state(200, 90)
    registry = _registry(state)
    before = exposition(registry)
    with ThreadPoolExecutor(max_workers=1) as gzips:
        body, headers, counted = _scrape_while_counting(
            state, registry, "gzip, deflate", gzips if gzip_on_a_thread else None)
    assert headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(body) == before  # the rows as collected, none half-counted
    assert counted > 0  # the loop went on while the text was written
    after = exposition(registry)
    assert after != before  # and what it counted meanwhile is in the next scrape
    changed = set(after.decode().splitlines()) - set(before.decode().splitlines())
    assert changed and all('campaign="campaign-00049",channel="web"' in line for line in changed)


def test_without_gzip_the_page_serves_the_text() -> None:
    state = scrape.build_state(8, 30)
    registry = _registry(state)
    before = exposition(registry)
    body, headers, _ = _scrape_while_counting(state, registry, "")
    assert body == before
    assert "Content-Encoding" not in headers
    assert headers["Content-Type"] == CONTENT_TYPE_LATEST


def test_a_scrape_writes_with_the_cycle_collector_off_and_leaves_it_on() -> None:
    """The KPI values are worked out with Python's cycle collector paused (it would pass
    over the whole state every ~700 new objects), and it is on again afterwards, also when
    two scrapes overlap and one ends first."""
    written_with_collector_on: list[bool] = []

    class Watched(GaugeMetricFamily):
        @property
        def samples(self) -> list[Sample]:  # read where the text is written
            written_with_collector_on.append(gc.isenabled())
            return [Sample("kpistream_watched", {}, 1.0)]

        @samples.setter
        def samples(self, value: list[Sample]) -> None:
            pass

    class Watching(Collector):
        def collect(self) -> Iterator[Metric]:
            yield Watched("kpistream_watched", "Watched.")

    registry = CollectorRegistry()
    registry.register(KpiCollector(lambda: [("c", "web", "5m", [1] * WIDTH)], "USD"))
    registry.register(Watching())
    assert gc.isenabled()
    asyncio.run(metrics_page(registry, "gzip", gzip_executor=ThreadPoolExecutor(1)))
    assert written_with_collector_on == [False]
    assert gc.isenabled()
    with cycle_collection_paused():
        assert not gc.isenabled()
        body, _ = asyncio.run(metrics_page(registry, "gzip"))  # overlaps, ends first
        assert not gc.isenabled()
    assert gc.isenabled()
    asyncio.run(metrics_page(registry, ""))
    assert gc.isenabled()
    assert b'marketing_views{campaign="c",channel="web",window="5m"} 1.0' in gzip.decompress(body)
