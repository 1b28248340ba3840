"""A /metrics answer's bytes from its collected families: written and gzipped a piece at a
time."""

from __future__ import annotations

from collections.abc import Iterator

from isal import isal_zlib
from prometheus_client.core import Metric

from metrics.kpi_gauges import chunks_of
from streams.worker.cycles import cycle_collection_paused

__all__ = ["GZIP_LEVEL", "answer_bytes"]

GZIP_LEVEL = 1
"""ISA-L's level 1: at 10,000 campaign-channels 133 MB of text gzip to 11.4 MB in 52 ms,
where zlib's fastest level takes 241 ms for 12.2 MB (bench/README, *The scrape in a
process of its own*)."""
_GZIP_WBITS = 16 + isal_zlib.MAX_WBITS
"""A deflate window with a gzip header and trailer (what ``Content-Encoding: gzip`` is)."""


def answer_bytes(families: list[Metric], gzipped: bool) -> bytes:
    """The families' text (``generate_latest``'s, the KPI families written faster), each
    piece gzipped as soon as it is written and then let go: at 10,000 campaign-channels
    the whole text is ~200 MB, which held at once (beside the lines it is joined from)
    would add that and more to the writer's memory. ``families`` is emptied."""
    with cycle_collection_paused():  # the KPI values: millions of new floats and lists
        if not gzipped:
            return b"".join(chunk for family in _let_go(families)
                            for chunk in chunks_of(family))
        compressor = isal_zlib.compressobj(GZIP_LEVEL, isal_zlib.DEFLATED, _GZIP_WBITS)
        parts = [compressor.compress(chunk) for family in _let_go(families)
                 for chunk in chunks_of(family)]
        parts.append(compressor.flush())
        return b"".join(parts)


def _let_go(families: list[Metric]) -> Iterator[Metric]:
    """The families in order, each dropped from the list as it is handed out: a family
    written is freed."""
    families.reverse()
    while families:
        yield families.pop()
