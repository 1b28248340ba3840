"""Real Prometheus, Alertmanager and a webhook receiver on loopback, for the deploy tests."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from streams.kafka.tansu import free_port, stop_process
from tests.integration.harness import http_status, wait_until

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"


def tool(name: str) -> str:
    """Path of a Debian-packaged binary (./run.sh test installs them)."""
    path = shutil.which(name)
    assert path, f"{name} is not installed: ./run.sh test installs Debian's package"
    return path


def http_json(url: str, data: Any = None, timeout: float = 5.0) -> Any:
    body = None if data is None else json.dumps(data).encode()
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"} if body else {}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read() or b"null")


class _Process:
    """A server process with a log file, stopped on exit."""

    name = "server"

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.port = free_port()
        self.log = tmp / f"{self.name}-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _start(self, argv: Sequence[str], timeout_s: float = 30.0) -> None:
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(list(argv), stdout=out, stderr=subprocess.STDOUT)
        process = self.process
        wait_until(lambda: http_status(f"{self.url}/-/ready") == 200 or process.poll() is not None,
                   timeout_s, f"{self.name} on port {self.port} to be ready")
        if process.poll() is not None:
            raise AssertionError(f"{self.name} exited:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


class Prometheus(_Process):
    """Debian's prometheus scraping ``targets`` every second, with optional rules."""

    name = "prometheus"

    def __init__(self, tmp: Path, targets: Sequence[str], rules: Sequence[Path] = (),
                 alertmanager: str | None = None, storage: Path | None = None,
                 retention: str | None = None) -> None:
        super().__init__(tmp)
        self.storage = storage
        """A TSDB directory to start from (blocks written beforehand), else a new one."""
        self.retention = retention
        self.config: dict[str, Any] = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(r) for r in rules],
            "scrape_configs": [{
                "job_name": "kpistream", "scrape_timeout": "900ms",
                "static_configs": [{"targets": list(targets)}],
            }],
        }
        if alertmanager is not None:
            self.config["alerting"] = {"alertmanagers": [
                {"static_configs": [{"targets": [alertmanager]}]}]}

    def __enter__(self) -> Prometheus:
        config = self.tmp / f"prometheus-{self.port}.yml"
        config.write_text(yaml.safe_dump(self.config), encoding="utf-8")
        storage = self.storage
        if storage is None:
            storage = self.tmp / f"prometheus-data-{self.port}"
            storage.mkdir()
        retention = [] if self.retention is None else [
            f"--storage.tsdb.retention.time={self.retention}"]
        self._start([tool("prometheus"), f"--config.file={config}",
                     f"--storage.tsdb.path={storage}", *retention,
                     f"--web.listen-address=127.0.0.1:{self.port}",
                     "--rules.alert.resend-delay=1s"])
        return self

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        """The result vector of an instant query, now or ``at`` (epoch seconds; raises on
        a PromQL error)."""
        params = {"query": expr} if at is None else {"query": expr, "time": f"{at:.3f}"}
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode(params)
        try:
            answer = http_json(url)
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"{expr!r}: {exc.read().decode(errors='replace')}") from None
        assert answer["status"] == "success", answer
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result

    def alerts(self) -> list[dict[str, Any]]:
        alerts: list[dict[str, Any]] = http_json(f"{self.url}/api/v1/alerts")["data"]["alerts"]
        return alerts

    def targets_up(self) -> bool:
        active = http_json(f"{self.url}/api/v1/targets")["data"]["activeTargets"]
        return bool(active) and all(t["health"] == "up" for t in active)


class Alertmanager(_Process):
    """Debian's prometheus-alertmanager with the given config, clustering off."""

    name = "alertmanager"

    def __init__(self, tmp: Path, config: dict[str, Any]) -> None:
        super().__init__(tmp)
        self.config = config

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> Alertmanager:
        config = self.tmp / f"alertmanager-{self.port}.yml"
        config.write_text(yaml.safe_dump(self.config), encoding="utf-8")
        storage = self.tmp / f"alertmanager-data-{self.port}"
        storage.mkdir()
        self._start([tool("prometheus-alertmanager"), f"--config.file={config}",
                     f"--storage.path={storage}", f"--web.listen-address={self.address}",
                     "--cluster.listen-address="])
        return self

    def post_alerts(self, alerts: list[dict[str, Any]]) -> None:
        http_json(f"{self.url}/api/v2/alerts", alerts)

    def alerts(self) -> list[dict[str, Any]]:
        alerts: list[dict[str, Any]] = http_json(f"{self.url}/api/v2/alerts")
        return alerts


class Webhook:
    """An HTTP server on loopback that keeps every JSON body POSTed to it, with its path."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()
        received, lock = self.received, self._lock

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                with lock:
                    received.append((self.path, body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def notifications(self) -> list[tuple[str, dict[str, Any]]]:
        with self._lock:
            return list(self.received)

    def __enter__(self) -> Webhook:
        self.thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.server.shutdown()
        self.server.server_close()


def alertmanager_config(webhook_url: str, **timing: str) -> dict[str, Any]:
    """deploy/alertmanager/alertmanager.yml with every receiver sent to ``webhook_url``/name
    and the route's timings replaced (group_wait, group_interval, repeat_interval)."""
    config: dict[str, Any] = yaml.safe_load(
        (DEPLOY / "alertmanager" / "alertmanager.yml").read_text(encoding="utf-8"))
    for receiver in config["receivers"]:
        receiver["webhook_configs"] = [{"url": f"{webhook_url}/{receiver['name']}",
                                        "send_resolved": True}]
    config["route"].update(timing)
    return config
