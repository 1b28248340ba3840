"""A /metrics answer's bytes from its collected families: written a piece at a time and
gzipped a piece behind, on a thread of its own."""

from __future__ import annotations

import functools
import zlib
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

from prometheus_client.core import Metric

from metrics.kpi_gauges import chunks_of
from streams.worker.cycles import cycle_collection_paused

__all__ = ["GZIP_LEVEL", "answer_bytes"]

GZIP_LEVEL = 1
"""Fastest compression: already ~10 times smaller (6.2 MB -> 625 KB for 1,000
campaign-channels), at a fraction of level 9's CPU."""
_GZIP_WBITS = 16 + zlib.MAX_WBITS
"""zlib's window with a gzip header and trailer (what ``Content-Encoding: gzip`` is)."""


def answer_bytes(families: list[Metric], gzipped: bool) -> bytes:
    """The families' text (``generate_latest``'s, the KPI families written faster), each
    piece gzipped as soon as it is written, on this process's gzip thread, and then let
    go: at 10,000 campaign-channels the whole text is ~200 MB, which held at once (beside
    the lines it is joined from) would add that and more to the writer's memory. zlib lets
    go of the GIL, so writing and gzip overlap on two cores. ``families`` is emptied."""
    with cycle_collection_paused():  # the KPI values: millions of new floats and lists
        if not gzipped:
            return b"".join(chunk for family in _let_go(families)
                            for chunk in chunks_of(family))
        compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, _GZIP_WBITS)
        gzips = _gzip_thread()
        parts: list[bytes] = []
        pending: Future[bytes] | None = None
        for family in _let_go(families):
            for chunk in chunks_of(family):
                if pending is not None:  # one piece in flight: they go in in order
                    parts.append(pending.result())
                pending = gzips.submit(compressor.compress, chunk)
        if pending is not None:
            parts.append(pending.result())
        parts.append(compressor.flush())
        return b"".join(parts)


@functools.cache
def _gzip_thread() -> ThreadPoolExecutor:
    """The one gzip thread of the process that writes answers (the worker's or the
    writer's, streams.worker.scrape_process); answers written together take turns."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="kpistream-gzip")


def _let_go(families: list[Metric]) -> Iterator[Metric]:
    """The families in order, each dropped from the list as it is handed out: a family
    written is freed."""
    families.reverse()
    while families:
        yield families.pop()
