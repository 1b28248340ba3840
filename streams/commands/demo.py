"""``kpistream demo``: a local broker, one worker and simulated campaign traffic, with a live table.

The broker runs under a small keeper process in its own session, and so does the worker:
a Ctrl-C in the terminal reaches only the demo, which then stops them in order (traffic,
worker, broker) instead of the broker dying under a worker that is still committing.
The keeper also stops the broker if the demo itself is killed.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from contextlib import AsyncExitStack, suppress
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import FrameType
from typing import Final

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from prometheus_client.parser import text_string_to_metric_families

from streams.commands.simulate import SEED, publish_traffic, topics_of
from streams.commands.traffic import DEMO_FX_RATES, DEMO_PROMO_CODES
from streams.config.errors import KpistreamError
from streams.config.settings import EVENT_TOPIC_KEYS, Settings
from streams.events.validation import EventType
from streams.kafka.liveness import http_status
from streams.kafka.tansu import LocalBroker, create_topics, free_port

__all__ = ["CampaignTotals", "DemoError", "demo_toml", "render_table", "run_demo",
           "serve_broker"]

DEMO_SEED: Final = SEED
TABLE_EVERY_S: Final = 2.0
READY_TIMEOUT_S: Final = 90.0
STOP_TIMEOUT_S: Final = 30.0
_TOPIC_KEY: Final[Mapping[EventType, str]] = {
    "view": "views", "engagement": "engagements", "click": "clicks", "order": "orders",
    "spend": "spend",
}
_KEEPER: Final = (
    "import sys; from streams.commands.demo import serve_broker;"
    " sys.exit(serve_broker(int(sys.argv[1])))"
)


class DemoError(KpistreamError):
    """The demo cannot go on; the message says why and where to look."""


def run_demo(settings: Settings, rate: float = 200.0, duration_s: float | None = None) -> int:
    """Run until Ctrl-C, SIGTERM or ``duration_s`` seconds of traffic; 0 on a clean stop."""
    if not rate > 0:
        print(f"kpistream demo: --rate must be above 0 events/s, got {rate}", file=sys.stderr)
        return 2
    if duration_s is not None and not duration_s > 0:
        print(f"kpistream demo: --duration must be above 0 s, got {duration_s}", file=sys.stderr)
        return 2
    if not _port_free(settings.web_host, settings.web_port):
        print(f"kpistream demo: cannot listen on {settings.web_host}:{settings.web_port} for "
              "/metrics (port in use?); set KPISTREAM_WEB_PORT to a free port", file=sys.stderr)
        return 1
    demo = _Demo(settings, rate, duration_s, os.environ.get("KPISTREAM_CONFIG"))
    try:
        return asyncio.run(demo.run())
    except KeyboardInterrupt:  # only before the signal handlers are in place
        return 0


def serve_broker(port: int) -> int:
    """Keep a LocalBroker on ``port`` until standard input closes or SIGTERM arrives."""

    def _exit(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, _exit)
    signal.signal(signal.SIGINT, _exit)
    with LocalBroker(port) as broker:
        assert broker.process is not None
        print(broker.process.pid, flush=True)
        sys.stdin.buffer.read()  # returns at EOF: the demo closed the pipe or died
    return 0


def demo_toml(partitions: int) -> str:
    """The settings file of a demo started without KPISTREAM_CONFIG."""
    fx = "\n".join(f"{code} = {rate}" for code, rate in DEMO_FX_RATES.items())
    promo = "\n".join(f'{code} = "{name}"' for code, name in DEMO_PROMO_CODES.items())
    return (f"# Written by `kpistream demo` for its simulated traffic.\n\n"
            f"[kafka]\npartitions = {partitions}\n\n[fx]\n{fx}\n\n[promo_codes]\n{promo}\n")


@dataclass(slots=True)
class CampaignTotals:
    """One campaign's sums over its channels; ratios are derived from these, never averaged."""

    views: float = 0.0
    reach: float = 0.0
    """Unique viewers per channel, summed: a viewer seen on two channels counts twice."""
    engagements: float = 0.0
    clicks: float = 0.0
    orders: float = 0.0
    new_customers: float = 0.0
    revenue: float = 0.0
    spend: float = 0.0
    gross_profit: float = 0.0
    product_revenue: dict[str, float] = field(default_factory=dict)
    """Revenue per product (``other`` included: the products past a channel's top N)."""

    def add(self, other: CampaignTotals) -> None:
        """Add another campaign's sums into these."""
        for item in fields(self):
            if item.name != "product_revenue":
                setattr(self, item.name, getattr(self, item.name) + getattr(other, item.name))
        for product, revenue in other.product_revenue.items():
            self.product_revenue[product] = self.product_revenue.get(product, 0.0) + revenue

    def top_product(self) -> str | None:
        """The product with the most revenue (ties: the first by name); never ``other``."""
        ranked = [(-revenue, product) for product, revenue in self.product_revenue.items()
                  if product != _OTHER and revenue > 0]
        return min(ranked)[1] if ranked else None


_SUMMED: Final = {
    "marketing_views": "views",
    "marketing_reach": "reach",
    "marketing_engagements": "engagements",
    "marketing_clicks": "clicks",
    "marketing_orders": "orders",
    "marketing_new_customers": "new_customers",
    "marketing_revenue": "revenue",
    "marketing_spend": "spend",
    "marketing_gross_profit": "gross_profit",
}
_OTHER: Final = "other"
"""The product label of the products past a campaign-channel's top N."""
_COLUMNS: Final = (("campaign", 14), ("views", 8), ("reach*", 8), ("eng %", 6), ("CTR %", 6),
                   ("conv %", 6), ("orders", 7), ("revenue", 11), ("spend", 10), ("ROAS", 6),
                   ("POAS", 6), ("CAC", 7), ("top product", 0))
"""Name and width of each column; the last is left-aligned and as wide as its text."""
_REACH_NOTE: Final = ("* reach: estimated unique viewers per channel, summed over channels (and "
                      "campaigns): a viewer on two counts twice")


@dataclass(slots=True)
class _Scrape:
    campaigns: dict[str, CampaignTotals] = field(default_factory=dict)
    outcomes: dict[str, float] = field(default_factory=dict)
    currency: str = ""


def _scrape(metrics_text: str, window: str) -> _Scrape:
    scrape = _Scrape()
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            labels = sample.labels
            if sample.name == "kpistream_events_total":
                outcome = labels.get("outcome", "")
                scrape.outcomes[outcome] = scrape.outcomes.get(outcome, 0.0) + sample.value
            elif labels.get("window") != window:
                continue
            elif sample.name in _SUMMED:
                totals = scrape.campaigns.setdefault(labels["campaign"], CampaignTotals())
                name = _SUMMED[sample.name]
                setattr(totals, name, getattr(totals, name) + sample.value)
                scrape.currency = labels.get("currency", scrape.currency)
            elif sample.name == "marketing_product_revenue" and "product" in labels:
                totals = scrape.campaigns.setdefault(labels["campaign"], CampaignTotals())
                products = totals.product_revenue
                products[labels["product"]] = products.get(labels["product"], 0.0) + sample.value
    return scrape


def render_table(metrics_text: str, window: str) -> str:
    """The campaigns' main KPIs over ``window``, summed over channels, from /metrics text."""
    scrape = _scrape(metrics_text, window)
    money = f", money in {scrape.currency}" if scrape.currency else ""
    lines = [f"KPIs over the last {window}{money}", _row(name for name, _ in _COLUMNS)]
    everything = CampaignTotals()
    for campaign in sorted(scrape.campaigns):
        totals = scrape.campaigns[campaign]
        everything.add(totals)
        lines.append(_row(_cells(campaign, totals)))
    if not scrape.campaigns:
        lines.append("(no events in this window yet)")
    else:
        lines.append(_row(_cells("all campaigns", everything)))
        lines.append(_REACH_NOTE)
    events = " | ".join(f"{scrape.outcomes.get(outcome, 0):,.0f} {outcome}"
                        for outcome in ("accepted", "invalid", "duplicate"))
    lines.append(f"events: {events}")
    return "\n".join(lines)


def _cells(campaign: str, t: CampaignTotals) -> list[str]:
    return [
        campaign, f"{t.views:,.0f}", f"{t.reach:,.0f}", _ratio(t.engagements, t.views, 100),
        _ratio(t.clicks, t.views, 100), _ratio(t.orders, t.clicks, 100), f"{t.orders:,.0f}",
        f"{t.revenue:,.2f}", f"{t.spend:,.2f}", _ratio(t.revenue, t.spend, 1),
        _ratio(t.gross_profit, t.spend, 1), _ratio(t.spend, t.new_customers, 1),
        t.top_product() or "-",
    ]


def _ratio(numerator: float, denominator: float, scale: float) -> str:
    return "-" if denominator == 0 else f"{numerator / denominator * scale:,.2f}"


def _row(cells: Iterable[str]) -> str:
    parts = []
    last = len(_COLUMNS) - 1
    for i, (cell, (_, width)) in enumerate(zip(cells, _COLUMNS, strict=True)):
        parts.append(cell.ljust(width) if i == 0 else cell if i == last else cell.rjust(width))
    return " ".join(parts)


def _say(text: str) -> None:
    print(f"kpistream demo: {text}", flush=True)


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        # As the servers themselves do: connections of a just-stopped demo in TIME_WAIT
        # must not make the port look taken.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def _broker_port(url: str) -> int:
    """The port of KPISTREAM_BROKER when it names this machine and is free, else any free one."""
    first = url.split("://", 1)[-1].replace(",", ";").split(";")[0]
    host, _, port = first.rpartition(":")
    if host in ("localhost", "127.0.0.1") and port.isdigit() and _port_free("127.0.0.1",
                                                                           int(port)):
        return int(port)
    return free_port()


def _get_text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode("utf-8"))


def _tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return f"(cannot read {path})"
    return "\n".join(text.splitlines()[-lines:])


@dataclass(slots=True)
class _Child:
    """A process the demo started, and its log."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def died(self) -> str | None:
        """Why the demo cannot go on, if the process has exited."""
        code = self.process.poll()
        if code is None:
            return None
        return f"the {self.name} exited with status {code}; its log {self.log} ends:\n" \
               f"{_tail(self.log)}"

    async def stop(self, stop_signal: int = signal.SIGTERM) -> None:
        """Signal the process and wait; kill it if it takes longer than STOP_TIMEOUT_S."""
        if self.process.poll() is None:
            self.process.send_signal(stop_signal)
        try:
            await asyncio.to_thread(self.process.wait, STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            _say(f"the {self.name} did not stop within {STOP_TIMEOUT_S:.0f} s: killing it")
            self.process.kill()
            await asyncio.to_thread(self.process.wait)


class _Demo:
    """One run of the demo: start, publish and report, stop."""

    def __init__(self, settings: Settings, rate: float, duration_s: float | None,
                 user_config: str | None) -> None:
        self.settings = settings
        self.rate = rate
        self.duration_s = duration_s
        self.user_config = user_config
        self.stop = asyncio.Event()
        self.workdir = Path(tempfile.mkdtemp(prefix="kpistream-demo-"))
        labels = [w.label for w in settings.windows]
        self.window = "5m" if "5m" in labels else labels[0]
        host = settings.web_host
        shown = "127.0.0.1" if host in ("", "0.0.0.0", "::") else host
        self.base_url = f"http://{shown}:{settings.web_port}"

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stop.set)
        try:
            await self._run()
        except DemoError as exc:
            print(f"kpistream demo: {exc}", file=sys.stderr, flush=True)
            return 1
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
        _say("stopped")
        return 0

    async def _run(self) -> None:
        settings = self.settings
        async with AsyncExitStack() as stack:
            broker, url = await self._start_broker()
            stack.push_async_callback(broker.stop)
            bootstrap = url.removeprefix("kafka://")
            names = [getattr(settings.topics, key) for key in (*EVENT_TOPIC_KEYS, "deadletter")]
            try:
                await asyncio.to_thread(create_topics, bootstrap, names, settings.partitions)
            except (KafkaError, OSError) as exc:
                raise DemoError(f"cannot create the topics on {url}: {exc!r}") from None
            if self.stop.is_set():
                return
            worker = self._start_worker(url)
            stack.push_async_callback(worker.stop)
            if not await self._wait_ready(worker):
                return
            await self._traffic(bootstrap, (broker, worker))
            _say("stopping: traffic stopped, now the worker, then the broker")

    async def _start_broker(self) -> tuple[_Child, str]:
        port = _broker_port(self.settings.broker)
        log = self.workdir / "broker.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-c", _KEEPER, str(port)], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=out, start_new_session=True,
            )
        keeper = _Child("broker", process, log)
        assert process.stdout is not None
        line = await asyncio.to_thread(process.stdout.readline)
        if not line.strip().isdigit():
            await keeper.stop()
            raise DemoError(f"the local broker did not start; {log} ends:\n{_tail(log)}")
        url = f"kafka://127.0.0.1:{port}"
        _say(f"broker {url} (pid {int(line)}), files in {self.workdir}")
        return keeper, url

    def _config(self) -> Path:
        if self.user_config:
            missing = sorted(set(DEMO_FX_RATES) - set(self.settings.fx))
            if missing:
                _say(f"no [fx] rate for {', '.join(missing)} in {self.user_config}: "
                     "orders in those currencies will be dead-lettered")
            return Path(self.user_config)
        path = self.workdir / "demo.toml"
        path.write_text(demo_toml(self.settings.partitions), encoding="utf-8")
        return path

    def _start_worker(self, broker_url: str) -> _Child:
        env = {
            **os.environ,
            "KPISTREAM_BROKER": broker_url,
            "KPISTREAM_CONFIG": str(self._config()),
            "KPISTREAM_WEB_PORT": str(self.settings.web_port),
            "KPISTREAM_DATA_DIR": str(self.workdir / "data"),
        }
        log = self.workdir / "worker.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "streams", "worker"], env=env, stdin=subprocess.DEVNULL,
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )
        _say(f"worker pid {process.pid}, log {log}")
        return _Child("worker", process, log)

    async def _wait_ready(self, worker: _Child) -> bool:
        """True once /ready answers 200; False if stopped first."""
        _say("waiting for the worker to be ready")
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not self.stop.is_set():
            if (why := worker.died()) is not None:
                raise DemoError(why)
            if await asyncio.to_thread(http_status, f"{self.base_url}/ready") == 200:
                return True
            if time.monotonic() > deadline:
                raise DemoError(f"the worker was not ready within {READY_TIMEOUT_S:.0f} s; "
                                f"its log {worker.log} ends:\n{_tail(worker.log)}")
            await self._pause(0.25)
        return False

    async def _pause(self, seconds: float) -> None:
        """Sleep, but wake at once when the demo is told to stop."""
        with suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), seconds)

    async def _traffic(self, bootstrap: str, children: tuple[_Child, ...]) -> None:
        """Publish and show the table until stopped, out of time, or a process dies."""
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20)
        await producer.start()
        until = "" if self.duration_s is None else f" for {self.duration_s:g} s"
        _say(f"KPIs at {self.base_url}/metrics")
        _say(f"publishing {self.rate:g} events/s{until}; Ctrl-C to stop")
        tasks = [asyncio.create_task(self._publish(producer)),
                 asyncio.create_task(self._report()),
                 asyncio.create_task(self._watch(children))]
        stopped = asyncio.create_task(self.stop.wait())
        try:
            done, _ = await asyncio.wait([*tasks, stopped], timeout=self.duration_s,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in [*tasks, stopped]:
                task.cancel()
            await asyncio.gather(*tasks, stopped, return_exceptions=True)
            await self._stop_producer(producer)
        for task in done:
            if task is not stopped and (exc := task.exception()) is not None:
                raise exc

    async def _stop_producer(self, producer: AIOKafkaProducer) -> None:
        try:
            await asyncio.wait_for(producer.stop(), 10)
        except (TimeoutError, KafkaError) as exc:
            _say(f"the producer did not stop cleanly: {exc!r}")

    async def _publish(self, producer: AIOKafkaProducer) -> None:
        try:
            await publish_traffic(producer, topics_of(self.settings), self.rate, DEMO_SEED)
        except KafkaError as exc:
            raise DemoError(f"publishing to the broker failed: {exc!r}") from None

    async def _report(self) -> None:
        tty = sys.stdout.isatty()
        url = f"{self.base_url}/metrics"
        started = time.monotonic()
        while True:
            await asyncio.sleep(TABLE_EVERY_S)
            try:
                table = render_table(await asyncio.to_thread(_get_text, url), self.window)
            except OSError as exc:
                table = f"(cannot read {url}: {exc})"
            elapsed = time.monotonic() - started
            header = (f"kpistream demo | {elapsed:,.0f} s of traffic at {self.rate:g} events/s"
                      f" | {url} | Ctrl-C to stop")
            clear = "\x1b[H\x1b[2J" if tty else ""
            print(f"{clear}{header}\n{table}\n", flush=True)

    async def _watch(self, children: tuple[_Child, ...]) -> None:
        while True:
            for child in children:
                if (why := child.died()) is not None:
                    raise DemoError(why)
            await asyncio.sleep(0.5)
