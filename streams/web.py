"""The worker's pages: /metrics, /health, /ready."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

if TYPE_CHECKING:
    from streams.app import KpiApp

__all__ = ["register"]


def register(kpi: KpiApp) -> None:
    """Add the pages to the Faust web server."""
    app = kpi.faust_app

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        return web.bytes(
            generate_latest(kpi.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    @app.page("/health")
    async def health(web: Any, request: Any) -> Any:
        return web.text("ok\n")

    @app.page("/ready")
    async def ready(web: Any, request: Any) -> Any:
        if kpi.is_ready():
            return web.text("ready\n")
        return web.text("not ready: recovering tables or rebalancing\n", status=503)
