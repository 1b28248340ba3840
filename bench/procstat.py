"""What /proc says about a process, sampled on a thread: resident memory and CPU use.

Watching the worker's CPU costs the worker nothing, unlike asking its /metrics page
(which renders every KPI series), so the benchmark uses it to see when work stops.
"""

from __future__ import annotations

import bisect
import os
import threading
import time
from pathlib import Path

__all__ = ["ProcessSampler", "children_rss_kib", "cpu_seconds", "rss_kib"]

_TICKS = os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int | None:
    """VmRSS of a process in KiB, or None once it has gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return None


def children_rss_kib(pid: int) -> int:
    """VmRSS of a process's children together (the worker's /metrics writer), in KiB."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return 0
    return sum(rss_kib(int(child)) or 0 for child in children)


def cpu_seconds(pid: int) -> float | None:
    """User plus system CPU time of all a process's threads so far; None once it has gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Fields after the command name, which is in parentheses and may hold spaces.
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def main_thread_cpu_s(pid: int) -> float | None:
    """CPU time of a process's main thread in ns precision (schedstat), None once gone."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9
    except OSError:
        return None


class ProcessSampler:
    """Samples main-thread CPU time every ``interval_s`` and VmRSS every tenth time."""

    def __init__(self, pid: int, interval_s: float = 0.01) -> None:
        self._pid = pid
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="proc-sampler", daemon=True)
        self._lock = threading.Lock()
        self._times: list[float] = []
        self._cpu: list[float] = []
        self.peak_rss_kib = 0
        self.last_rss_kib = 0
        self.peak_with_children_rss_kib = 0
        """The process and its children (the /metrics writer) at once, at their peak."""

    def start(self) -> ProcessSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def sample_rss(self) -> None:
        kib = rss_kib(self._pid)
        if kib is not None:
            self.last_rss_kib = kib
            self.peak_rss_kib = max(self.peak_rss_kib, kib)
            self.peak_with_children_rss_kib = max(self.peak_with_children_rss_kib,
                                                  kib + children_rss_kib(self._pid))

    def cpu_share(self, since: float, until: float) -> float:
        """Share of one core the main thread used between two perf_counter() times."""
        with self._lock:
            times, cpu = self._times, self._cpu
            i = bisect.bisect_left(times, since)
            j = bisect.bisect_right(times, until) - 1
            if j <= i:
                return 0.0
            return (cpu[j] - cpu[i]) / (times[j] - times[i])

    def last_busy(self, before: float, window_s: float = 0.1, share: float = 0.5) -> float | None:
        """End of the latest ``window_s`` ending by ``before`` with at least ``share`` CPU."""
        with self._lock:
            times, cpu = list(self._times), list(self._cpu)
        j = bisect.bisect_right(times, before) - 1
        while j > 0:
            i = bisect.bisect_right(times, times[j] - window_s) - 1
            if i < 0:
                return None
            if cpu[j] - cpu[i] >= share * (times[j] - times[i]):
                return times[j]
            j -= 1
        return None

    def _run(self) -> None:
        count = 0
        while not self._stop.is_set():
            now = time.perf_counter()
            used = main_thread_cpu_s(self._pid)
            if used is None:
                return
            with self._lock:
                self._times.append(now)
                self._cpu.append(used)
            if count % 10 == 0:
                self.sample_rss()
            count += 1
            self._stop.wait(self._interval_s)
