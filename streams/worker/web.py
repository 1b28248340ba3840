"""The worker's pages: /metrics, /health, /ready, /schemas/<type>.json."""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from metrics.kpi_gauges import chunks_of
from streams.events.schemas import schema_json
from streams.events.validation import EVENT_TYPES
from streams.worker.cycles import cycle_collection_paused
from streams.worker.kpi_app import KpiApp

__all__ = ["GZIP_LEVEL", "metrics_page", "register"]

GZIP_LEVEL = 1
"""Fastest compression: already ~10 times smaller (6.2 MB -> 625 KB for 1,000
campaign-channels), at a fraction of level 9's CPU."""
_GZIP_WBITS = 16 + zlib.MAX_WBITS
"""zlib's window with a gzip header and trailer (what ``Content-Encoding: gzip`` is)."""


async def metrics_page(registry: Collector, accept_encoding: str,
                       executor: Executor | None = None,
                       gzip_executor: Executor | None = None) -> tuple[bytes, dict[str, str]]:
    """/metrics: ``generate_latest(registry)``'s text (the KPI gauges written faster,
    metrics.kpi_gauges), gzipped if asked, and its headers.

    Collecting reads the state, so it runs on the event loop, where the state changes;
    the KPI collector only copies its rows then (~0.2 s at 10,000 campaign-channels).
    Working out the KPI values and writing the text (seconds at that size) read only those
    copies and run on a thread (``executor``: the worker's has one, so scrapes that come
    together take turns; None: asyncio's default), and gzip on another
    (``gzip_executor``, None: inline), a piece behind the writing: zlib lets go of the
    GIL, so the two overlap on two cores, and the loop goes on between the writer's slices
    of the GIL, so heartbeats, fetches and counting are not held up for the whole scrape.
    """
    with cycle_collection_paused():  # the rows' copies: hundreds of thousands of lists
        families = list(registry.collect())
    # As Prometheus asks: 1,000 campaign-channels are ~6 MB of text, ~10 times less
    # gzipped; an answer that large otherwise leaves the event loop in
    # socket-buffer-sized pieces between the worker's other work.
    gzipped = "gzip" in accept_encoding
    body = await asyncio.get_running_loop().run_in_executor(
        executor, _body, families, gzipped, gzip_executor)
    headers = {"Content-Type": CONTENT_TYPE_LATEST}
    if gzipped:
        headers["Content-Encoding"] = "gzip"
    return body, headers


def _body(families: list[Metric], gzipped: bool, gzip_executor: Executor | None) -> bytes:
    """The families' text, each piece gzipped as soon as it is written and then let go:
    at 10,000 campaign-channels the whole text is ~130 MB, which held at once (beside the
    lines it is joined from) would add that and more to the worker's memory at every
    scrape."""
    with cycle_collection_paused():
        return _written(families, gzipped, gzip_executor)


def _written(families: list[Metric], gzipped: bool, gzip_executor: Executor | None) -> bytes:
    if not gzipped:
        return b"".join(chunk for family in _let_go(families) for chunk in chunks_of(family))
    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, _GZIP_WBITS)
    parts: list[bytes] = []
    pending: Future[bytes] | None = None
    for family in _let_go(families):
        for chunk in chunks_of(family):
            if gzip_executor is None:
                parts.append(compressor.compress(chunk))
                continue
            if pending is not None:  # one piece in flight: the compressor takes them in order
                parts.append(pending.result())
            pending = gzip_executor.submit(compressor.compress, chunk)
    if pending is not None:
        parts.append(pending.result())
    parts.append(compressor.flush())
    return b"".join(parts)


def _let_go(families: list[Metric]) -> Iterator[Metric]:
    """The families in order, each dropped from the list as it is handed out: a family
    written is freed."""
    families.reverse()
    while families:
        yield families.pop()


def register(kpi: KpiApp) -> None:
    """Add the pages to the Faust web server."""
    app = kpi.faust_app
    # Its own thread, so scrapes never hold up asyncio's default executor (DNS lookups).
    scrapes = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kpistream-metrics")
    gzips = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kpistream-gzip")

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        body, headers = await metrics_page(
            kpi.registry, request.headers.get("Accept-Encoding", ""), scrapes, gzips)
        return web.bytes(body, headers=headers)

    @app.page("/health")
    async def health(web: Any, request: Any) -> Any:
        return web.text("ok\n")

    @app.page("/ready")
    async def ready(web: Any, request: Any) -> Any:
        reasons = kpi.readiness.not_ready_because()
        if not reasons:
            return web.text("ready\n")
        return web.text("not ready: " + "; ".join(reasons) + "\n", status=503)

    # With this deployment's [fx] currencies, so 'currency' is checked as the worker does.
    schemas: dict[str, bytes] = {t: schema_json(t, kpi.settings.fx) for t in EVENT_TYPES}

    @app.page("/schemas/{event_type}.json")
    async def schema(web: Any, request: Any, event_type: str) -> Any:
        body = schemas.get(event_type)
        if body is None:
            return web.text(f"no schema {event_type!r}; one of: {' '.join(EVENT_TYPES)}\n",
                            status=404)
        return web.bytes(body, content_type="application/schema+json",
                         headers={"Access-Control-Allow-Origin": "*"})
