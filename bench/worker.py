"""One ``kpistream worker`` subprocess and its web pages."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path

__all__ = ["WorkerProcess"]


class WorkerProcess:
    """A worker started with its settings in KPISTREAM_* variables, logging to a file."""

    def __init__(self, env: dict[str, str], port: int, log: Path) -> None:
        self.port = port
        self.log = log
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "streams", "worker"],
                env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT,
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def get(self, path: str, timeout_s: float = 10.0) -> tuple[int, str]:
        """Status and body of a page; status 0 when nothing answers yet."""
        url = f"http://127.0.0.1:{self.port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as response:
                return int(response.status), response.read().decode("utf-8")
        except urllib.error.HTTPError as exc:
            return exc.code, ""
        except OSError:
            return 0, ""

    def logged_at(self, text: str) -> float | None:
        """Epoch seconds of the first log line containing ``text`` (Faust's local-time stamp)."""
        for line in self.log.read_text(errors="replace").splitlines():
            if text in line and line.startswith("["):
                stamp = line[1:line.index("]")]
                moment = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f")
                return moment.timestamp()
        return None

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
