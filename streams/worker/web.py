"""The worker's pages: /metrics, /health, /ready, /schemas/<type>.json."""

from __future__ import annotations

import gzip
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST

from metrics.kpi_gauges import exposition
from streams.events.schemas import schema_json
from streams.events.validation import EVENT_TYPES
from streams.worker.kpi_app import KpiApp

__all__ = ["GZIP_LEVEL", "register"]

GZIP_LEVEL = 1
"""Fastest compression: already ~10 times smaller (6.2 MB -> 625 KB for 1,000
campaign-channels), at a fraction of level 9's CPU."""


def register(kpi: KpiApp) -> None:
    """Add the pages to the Faust web server."""
    app = kpi.faust_app

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        # generate_latest's text, with the KPI gauges written faster (metrics.kpi_gauges)
        body = exposition(kpi.registry)
        headers = {"Content-Type": CONTENT_TYPE_LATEST}
        if "gzip" in request.headers.get("Accept-Encoding", ""):
            # As Prometheus asks: 1,000 campaign-channels are ~6 MB of text, ~10 times
            # less gzipped; an answer that large otherwise leaves the event loop in
            # socket-buffer-sized pieces between the worker's other work.
            body = gzip.compress(body, compresslevel=GZIP_LEVEL)
            headers["Content-Encoding"] = "gzip"
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
