"""/metrics as the worker's page serves it: the state as it was when the scrape came in,
its text written while the event loop goes on counting."""

from __future__ import annotations

import asyncio
import gc
import gzip
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

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
from streams.worker.scrape_process import ScrapeWriter
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
                           writer: ScrapeWriter | None = None
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
        body, headers = await metrics_page(registry, accept_encoding, writer)
        counting.cancel()
        return body, headers, counted

    return asyncio.run(main())


@pytest.mark.parametrize("in_a_process", [False, True])
def test_the_page_serves_the_state_the_scrape_found_while_the_loop_counts_on(
    in_a_process: bool
) -> None:
    """Written on a thread, or in the writer process (the worker's)."""
    state = scrape.build_state(200, 90)
    registry = _registry(state)
    before = exposition(registry)
    writer = ScrapeWriter() if in_a_process else None
    try:
        body, headers, counted = _scrape_while_counting(state, registry, "gzip, deflate",
                                                        writer)
    finally:
        if writer is not None:
            writer.close()
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
    asyncio.run(metrics_page(registry, "gzip"))
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


def test_a_writer_process_that_dies_is_replaced_and_the_answer_still_comes() -> None:
    """Killed (out of memory, by hand): the answer it had is written on a thread, and the
    next scrape's in a new writer process."""
    registry = _registry(scrape.build_state(8, 30))
    expected = exposition(registry)

    async def main() -> tuple[int, int, bytes, bytes]:
        writer = ScrapeWriter()
        try:
            first = await writer.pid()
            os.kill(first, signal.SIGKILL)
            answered, _ = await metrics_page(registry, "gzip", writer)
            second = await writer.pid()
            next_answer, _ = await metrics_page(registry, "gzip", writer)
            return first, second, answered, next_answer
        finally:
            writer.close()

    first, second, answered, next_answer = asyncio.run(main())
    assert gzip.decompress(answered) == expected
    assert gzip.decompress(next_answer) == expected
    assert second != first


def test_the_writer_process_ends_when_the_worker_is_killed() -> None:
    code = ("import asyncio, sys\n"
            "from streams.worker.scrape_process import ScrapeWriter\n"
            "writer = ScrapeWriter()\n"
            "print(asyncio.run(writer.pid()), flush=True)\n"
            "sys.stdin.read()\n")
    worker = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, cwd=Path(__file__).parents[2])
    assert worker.stdout is not None
    writer_pid = int(worker.stdout.readline())
    assert _running(writer_pid)
    worker.kill()
    worker.wait()
    deadline = time.monotonic() + 30
    while _running(writer_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    orphaned = _running(writer_pid)
    if orphaned:
        os.kill(writer_pid, signal.SIGKILL)
    assert not orphaned


def _running(pid: int) -> bool:
    """The process exists and has not ended (a zombie waiting to be reaped has)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


class _Unpicklable(GaugeMetricFamily):
    """A family another collector might make: it holds a lambda, so it does not pickle."""

    def __init__(self) -> None:
        super().__init__("kpistream_local", "Local.", value=2.0)
        self.source = lambda: 2.0


def _family_made_in(pid: int) -> GaugeMetricFamily:
    if os.getpid() != pid:
        raise RuntimeError("this family cannot be read in another process")
    return GaugeMetricFamily("kpistream_local", "Local.", value=2.0)


class _OnlyHere(GaugeMetricFamily):
    """Pickles, but fails to unpickle anywhere but in the process that made it."""

    def __init__(self) -> None:
        super().__init__("kpistream_local", "Local.", value=2.0)

    def __reduce__(self) -> tuple[object, ...]:
        return _family_made_in, (os.getpid(),)


class _Yields(Collector):
    def __init__(self, make: type[GaugeMetricFamily]) -> None:
        self._make = make

    def collect(self) -> Iterator[Metric]:
        yield self._make()


@pytest.mark.parametrize("family", [_Unpicklable, _OnlyHere])
def test_a_family_the_writer_cannot_take_is_written_in_the_worker(
    family: type[GaugeMetricFamily]
) -> None:
    """One that does not pickle, or fails in the writer: the answer still comes, whole."""
    registry = _registry(scrape.build_state(8, 30))
    registry.register(_Yields(family))
    expected = exposition(registry)
    writer = ScrapeWriter()
    try:
        body, _ = asyncio.run(metrics_page(registry, "gzip", writer))
    finally:
        writer.close()
    assert gzip.decompress(body) == expected
    assert b"kpistream_local 2.0\n" in expected


def test_a_writer_past_its_time_is_killed_and_the_answer_still_comes() -> None:
    registry = _registry(scrape.build_state(200, 90))
    expected = exposition(registry)

    async def main() -> tuple[int, int, bytes]:
        writer = ScrapeWriter(timeout_s=0.001)  # no answer of 200 series is that quick
        try:
            first = await writer.pid()
            answered, _ = await metrics_page(registry, "gzip", writer)
            return first, await writer.pid(), answered
        finally:
            writer.close()

    first, second, answered = asyncio.run(main())
    assert gzip.decompress(answered) == expected
    assert second != first
    assert not _running(first)


_COLLECTIONS: list[str] = []
"""What the cycle collector did while a scrape's families were being made and sent."""


def _note_collection(phase: str, info: dict[str, int]) -> None:
    if phase == "start":
        _COLLECTIONS.append("collected")


class _Many(GaugeMetricFamily):
    """A family that, like the KPI rows' copies, is made of many tracked objects, and
    notes when it is pickled for the writer."""

    def __init__(self) -> None:
        super().__init__("kpistream_many", "Many.", value=1.0)
        self.parts = [(i,) for i in range(50_000)]  # far past the collector's threshold
        _COLLECTIONS.append("made")

    def __reduce__(self) -> tuple[object, ...]:
        _COLLECTIONS.append("pickled")
        return GaugeMetricFamily, ("kpistream_many", "Many.", 1.0)


def test_the_cycle_collector_stays_off_from_collecting_to_pickling_for_the_writer() -> None:
    """Between the families being made and their pickling for the writer process, the
    collector would pass over every object they hold (~0.1 s of the event loop at
    10,000 campaign-channels): it is not back on until they are pickled."""
    registry = _registry(scrape.build_state(8, 30))
    registry.register(_Yields(_Many))
    writer = ScrapeWriter()
    _COLLECTIONS.clear()
    gc.callbacks.append(_note_collection)
    try:
        body, _ = asyncio.run(metrics_page(registry, "gzip", writer))
    finally:
        gc.callbacks.remove(_note_collection)
        writer.close()
    made, pickled = _COLLECTIONS.index("made"), _COLLECTIONS.index("pickled")
    assert made < pickled
    assert "collected" not in _COLLECTIONS[made:pickled]
    assert b"kpistream_many 1.0\n" in gzip.decompress(body)
    assert gc.isenabled()
