"""The worker's pages: /metrics, /health, /ready, /schemas/<type>.json."""

from __future__ import annotations

import asyncio
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from streams.events.schemas import schema_json
from streams.events.validation import EVENT_TYPES
from streams.worker.cycles import cycle_collection_paused
from streams.worker.kpi_app import KpiApp
from streams.worker.scrape_process import ScrapeWriter
from streams.worker.scrape_text import answer_bytes

__all__ = ["metrics_page", "register"]


async def metrics_page(registry: Collector, accept_encoding: str,
                       writer: ScrapeWriter | None = None) -> tuple[bytes, dict[str, str]]:
    """/metrics: ``generate_latest(registry)``'s text (the KPI gauges written faster,
    metrics.kpi_gauges), gzipped if asked, and its headers.

    Collecting reads the state, so it runs on the event loop, where the state changes;
    the KPI collector only copies its rows then (~0.2 s at 10,000 campaign-channels).
    Working out the KPI values and writing the text (seconds at that size) read only those
    copies and run in the writer process (``writer``, streams.worker.scrape_process; None:
    on a thread of asyncio's default executor), so heartbeats, fetches and counting go on
    meanwhile.
    """
    gzipped = "gzip" in accept_encoding  # as Prometheus asks: ~10 times smaller
    # The rows' copies (hundreds of thousands of lists) made and pickled (writer.answer)
    # before the cycle collector is back on: it would pass over them all.
    with cycle_collection_paused():
        families = list(registry.collect())
        answer = None if writer is None else writer.answer(families, gzipped)
    if answer is not None:
        body = await answer
    else:
        body = await asyncio.get_running_loop().run_in_executor(
            None, answer_bytes, families, gzipped)
    headers = {"Content-Type": CONTENT_TYPE_LATEST}
    if gzipped:
        headers["Content-Encoding"] = "gzip"
    return body, headers


def register(kpi: KpiApp) -> None:
    """Add the pages to the Faust web server."""
    app = kpi.faust_app
    writer = ScrapeWriter()

    async def start_the_writer() -> None:  # with the worker, not with every app made
        writer.start()

    app.task(start_the_writer)

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        body, headers = await metrics_page(
            kpi.registry, request.headers.get("Accept-Encoding", ""), writer)
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
