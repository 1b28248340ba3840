"""A real Apache Kafka broker (single-node KRaft) for tests and benches.

The jars come from Maven Central through tests/kafka/pom.xml into tests/kafka/lib (git-ignored;
Maven's local repository caches them), so the product itself never needs Java. Each broker gets
free loopback ports and a fresh log dir in a temp dir, and is stopped by its pid.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
import tempfile
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

from streams.kafka.tansu import free_port, stop_process

__all__ = ["KAFKA_DIR", "ApacheKafka", "ensure_jars", "kafka_version"]

KAFKA_DIR = Path(__file__).resolve().parent / "kafka"
POM = KAFKA_DIR / "pom.xml"
LIB = KAFKA_DIR / "lib"
READY_LINE = "Kafka Server started"
_MAVEN_NS = {"m": "http://maven.apache.org/POM/4.0.0"}

_LOG4J2 = """\
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
appender.file.type = File
appender.file.name = file
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
logger.cleaner.name = kafka.log.LogCleaner
logger.cleaner.level = INFO
"""


def kafka_version() -> str:
    """The Kafka version the pom pins (docker-compose's image uses the same)."""
    node = ET.parse(POM).getroot().find("m:properties/m:kafka.version", _MAVEN_NS)
    if node is None or not node.text:
        raise RuntimeError(f"{POM} has no <kafka.version> property")
    return node.text.strip()


def ensure_jars() -> Path:
    """Copy the broker's jars into tests/kafka/lib unless the pinned version is already there."""
    if (LIB / f"kafka_2.13-{kafka_version()}.jar").is_file():
        return LIB
    mvn = shutil.which("mvn")
    if mvn is None:
        raise RuntimeError("Apache Maven (mvn) is not installed: ./run.sh test installs it")
    shutil.rmtree(LIB, ignore_errors=True)
    done = subprocess.run(
        [mvn, "-q", "-B", "-Dstyle.color=never", "-f", str(POM),
         "dependency:copy-dependencies"],
        capture_output=True, text=True, check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"mvn could not fetch the Kafka jars:\n{done.stdout}{done.stderr}")
    return LIB


def _cluster_id() -> str:
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode("ascii").rstrip("=")


class ApacheKafka:
    """A single-node KRaft Apache Kafka on loopback; use as a context manager.

    ``properties`` add to or override server.properties (listeners for TLS/SASL, cleaner
    settings); ``scram_users`` (name -> password) are written into the metadata at format time
    with StorageTool's ``--add-scram``, for SCRAM-SHA-256 and SCRAM-SHA-512.
    """

    def __init__(
        self, properties: Mapping[str, str] | None = None,
        scram_users: Mapping[str, str] | None = None, heap: str = "512m",
        secure: Mapping[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.controller_port = free_port()
        self.secure = dict(secure) if secure is not None else None
        """server.properties of a SASL_SSL listener (tests.kafka_tls), on ``secure_port``."""
        self.secure_port = free_port()
        self.extra = dict(properties or {})
        self.scram_users = dict(scram_users or {})
        self.heap = heap
        self.process: subprocess.Popen[bytes] | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.dir = Path()

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """Bootstrap servers in the Faust URL form KPISTREAM_BROKER takes."""
        return f"kafka://{self.bootstrap}"

    @property
    def secure_bootstrap(self) -> str:
        """The SASL_SSL listener (only with ``secure``)."""
        return f"127.0.0.1:{self.secure_port}"

    @property
    def log(self) -> Path:
        """The broker's own log (log4j2), kept in its temp dir until stop."""
        return self.dir / "server.log"

    def server_properties(self) -> dict[str, str]:
        listeners = {"PLAINTEXT": self.port, "CONTROLLER": self.controller_port}
        protocols = {"PLAINTEXT": "PLAINTEXT", "CONTROLLER": "PLAINTEXT"}
        advertised = {"PLAINTEXT": self.port}
        if self.secure is not None:
            listeners["SECURE"] = advertised["SECURE"] = self.secure_port
            protocols["SECURE"] = "SASL_SSL"
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": f"127.0.0.1:{self.controller_port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listeners": ",".join(f"{n}://127.0.0.1:{p}" for n, p in listeners.items()),
            "advertised.listeners": ",".join(
                f"{n}://127.0.0.1:{p}" for n, p in advertised.items()),
            "listener.security.protocol.map": ",".join(f"{n}:{p}" for n, p in protocols.items()),
            "log.dirs": str(self.dir / "data"),
            "num.partitions": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "8",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "4",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "true",
        }
        props.update(self.secure or {})
        props.update(self.extra)
        return props

    def _java(self, main: str, *args: str) -> list[str]:
        java = shutil.which("java")
        if java is None:
            raise RuntimeError("Java is not installed: ./run.sh test installs it")
        return [java, f"-Xmx{self.heap}", f"-Xms{self.heap}", "-cp", str(ensure_jars() / "*"),
                f"-Dlog4j2.configurationFile={self.dir / 'log4j2.properties'}", main, *args]

    def start(self, timeout_s: float = 90.0) -> ApacheKafka:
        """Format a fresh log dir, start the broker, wait for ``Kafka Server started``."""
        self._tmp = tempfile.TemporaryDirectory(prefix="kpistream-kafka-")
        self.dir = Path(self._tmp.name)
        config = self.dir / "server.properties"
        config.write_text(
            "".join(f"{k}={v}\n" for k, v in self.server_properties().items()), encoding="utf-8")
        (self.dir / "log4j2.properties").write_text(
            _LOG4J2.format(log=self.log), encoding="utf-8")
        scram = [arg for name, password in self.scram_users.items()
                 for mechanism in ("SCRAM-SHA-256", "SCRAM-SHA-512")
                 for arg in ("--add-scram", f"{mechanism}=[name={name},password={password}]")]
        formatted = subprocess.run(
            self._java("kafka.tools.StorageTool", "format", "--standalone",
                       # one argument: a base64 id may start with "-"
                       f"--cluster-id={_cluster_id()}",
                       "-c", str(config), *scram),
            capture_output=True, text=True, check=False,
        )
        if formatted.returncode != 0:
            self.stop()
            raise RuntimeError(
                f"kafka StorageTool format failed:\n{formatted.stdout}{formatted.stderr}")
        with (self.dir / "stdout.log").open("wb") as out:
            self.process = subprocess.Popen(
                self._java("kafka.Kafka", str(config)), stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self._fail(f"exited with status {self.process.returncode}")
            if READY_LINE in self._read(self.log):
                return self
            time.sleep(0.1)
        self._fail(f"did not log {READY_LINE!r} within {timeout_s} s")
        raise AssertionError("unreachable")

    def _read(self, path: Path) -> str:
        try:
            return path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def _fail(self, what: str) -> None:
        tail = "\n".join((self._read(self.dir / "stdout.log") + self._read(self.log))
                         .splitlines()[-40:])
        self.stop()
        raise RuntimeError(f"Apache Kafka {kafka_version()} {what}; its output:\n{tail}")

    def log_text(self) -> str:
        """What the broker logged so far (for tests that look for cleaner passes)."""
        return self._read(self.log)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, timeout_s=20.0)
            self.process = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> ApacheKafka:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
