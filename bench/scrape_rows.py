"""How long /metrics takes to write and gzip with the seed KPIs' series, in process.

    .venv/bin/python -m bench.scrape_rows                    # 10,000 campaign-channels
    .venv/bin/python -m bench.scrape_rows --series 500 --scrapes 3

The rows a worker hands the KPI collector at a scrape, made up: every campaign-channel
with 4 windows, each window with its reach, 1-13 products (some rows past the default top
10, so with ``other``), 3 content types beside ``unknown``, and on ``total`` three LTV
horizons, about the size of bench.scrape_load's answer at 10,000 campaign-channels (~200
samples each). Times what streams/worker/web.py does with them: pickling them for the
/metrics writer process, and there the KPI values, the text and gzip (``metrics_page``
with a ``ScrapeWriter``), and checks the answer is ``generate_latest``'s byte for byte.
The first scrape makes the rows' label text, later ones reuse it, as a worker's do.
Collecting the rows (on the loop) is not in it: bench.scrape and bench.collect_rows time
it. Python's cycle collector runs with the worker's thresholds. Exit status 0, or 1 if
the answer is wrong.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import statistics
import sys
import time
from collections.abc import Sequence

from prometheus_client import CollectorRegistry, generate_latest

from bench.report import worker_gc_thresholds
from metrics.kpi_gauges import KpiCollector, SeedKpis
from streams.windows.counts import WIDTH
from streams.windows.state import ExtrasRow, KpiRow, WindowExtras
from streams.worker.scrape_process import ScrapeWriter
from streams.worker.web import metrics_page

__all__ = ["made_up_rows", "main"]

_CHANNELS = ("tiktok", "youtube", "meta", "web")
_WINDOWS = ("5m", "1h", "24h", "total")
_CONTENT = ("tutorial", "unboxing", "challenge")
_HORIZONS = (("30d", 30), ("90d", 90), ("365d", 365))


def made_up_rows(series: int) -> tuple[list[KpiRow], list[ExtrasRow]]:
    """Deterministic rows and extras of ``series`` campaign-channels x 4 windows."""
    rows: list[KpiRow] = []
    extras: list[ExtrasRow] = []
    for s in range(series):
        campaign, channel = f"campaign-{s // 4:05d}", _CHANNELS[s % 4]
        for w, window in enumerate(_WINDOWS):
            scale = 1 + w * 7
            views = scale * (50 + (s * 7 + w * 13) % 200)
            counts = [(views * (i + 3)) // (i + 5) + i for i in range(WIDTH)]
            counts[0] = views
            rows.append((campaign, channel, window, counts))
            products = {f"sku-{(s + p) % 30:02d}": [1 + (s + p) % 5, 1_990_000 * (1 + p)]
                        for p in range(1 + (s * 3 + w) % 13)}
            content = {name: [views // (i + 3), views // (i + 9), 1 + i, i, i * 1_500_000]
                       for i, name in enumerate(_CONTENT)}
            ltv = ({days: 25_000_000 * (1 + s % 7) * (1 + i) for i, (_, days) in
                    enumerate(_HORIZONS)} if window == "total" else {})
            extras.append((campaign, channel, window,
                           WindowExtras(reach=views * 0.61, products=products,
                                        content=content, ltv=ltv)))
    return rows, extras


def main(argv: Sequence[str] | None = None) -> int:
    with worker_gc_thresholds():
        return _run(argv)


def _run(argv: Sequence[str] | None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--series", type=int, default=10_000, help="campaign-channels")
    parser.add_argument("--scrapes", type=int, default=5, help="timed scrapes")
    args = parser.parse_args(argv)
    rows, extras = made_up_rows(args.series)
    registry = CollectorRegistry()
    registry.register(KpiCollector(lambda: rows, "USD", SeedKpis(
        extras=lambda: extras, ltv_horizons=_HORIZONS)))

    async def scrapes(writer: ScrapeWriter) -> tuple[list[float], bytes]:
        await writer.pid()  # started, as the worker starts it
        times, body = [], b""
        for _ in range(args.scrapes):
            t0 = time.perf_counter()
            body, _ = await metrics_page(registry, "gzip", writer)
            times.append((time.perf_counter() - t0) * 1000)
        return times, body

    writer = ScrapeWriter()
    try:
        times, body = asyncio.run(scrapes(writer))
    finally:
        writer.close()
    text = gzip.decompress(body)
    samples = sum(1 for line in text.splitlines() if not line.startswith(b"#"))
    print(f"{args.series} campaign-channels: {samples} samples, {len(text) / 1e6:.1f} MB, "
          f"{len(body) / 1e6:.1f} MB gzipped")
    print(f"scrape (gzip): median {statistics.median(times):.0f} ms, max {max(times):.0f} ms, "
          f"{statistics.median(times) * 1e6 / samples:.0f} ns a sample")
    if text != generate_latest(registry):
        print("WRONG: the answer differs from generate_latest", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
