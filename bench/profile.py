"""Optional sampling profile of the worker with py-spy, summarised as top frames."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Final

__all__ = ["STAGES", "Profiler", "breakdown", "project_frames", "top_frames"]


STAGES: Final = (
    ("/metrics scrapes", ("generate_latest", "(streams/worker/web.py)")),
    ("table writes -> changelog", ("send_changelog", "on_key_set", "ProducerBuffer")),
    ("producing: aiokafka sender, socket", ("aiokafka/producer/sender", "aiokafka/conn",
                                            "AIOKafkaClient.send")),
    ("producing: topic.send", ("publish_message", "Producer.send", "AIOKafkaProducer.send",
                               "MessageAccumulator", "send_soon", "FutureMessage")),
    ("consuming: fetch, deliver", ("Fetcher", "_drain_messages", "aiokafka/consumer",
                                   "conductor", "Stream._c_aiter", "_passive_drainer")),
    ("offset commits", ("Consumer.commit", "force_commit", "_commit_")),
    ("kpistream code (parse, dedup, fold)", ("(streams/", "(metrics/")),
)
"""Where a sample's time goes: the first stage one of whose strings is in its stack."""
_ROOT_FILES: Final = ("(streams/commands/cli.py)",)


class Profiler:
    """``py-spy record`` attached to a process (and its children: the worker's /metrics
    writer, streams/worker/scrape_process.py) until stopped; collapsed stacks to a file."""

    def __init__(self, pid: int, out: Path, rate_hz: int = 100) -> None:
        exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        if not Path(exe).exists():
            raise FileNotFoundError("py-spy is not installed: .venv/bin/pip install py-spy")
        self.out = out
        self.process = subprocess.Popen(
            [exe, "record", "--pid", str(pid), "--rate", str(rate_hz), "--format", "raw",
             "--nolineno", "--nonblocking", "--subprocesses", "--output", str(out)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )

    def stop(self) -> str:
        """Stop sampling and write the file; returns py-spy's complaints, if any."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            _, err = self.process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, err = self.process.communicate()
        return err.decode(errors="replace") if self.process.returncode else ""


def top_frames(collapsed: str, limit: int = 15) -> tuple[int, list[tuple[str, int]],
                                                         list[tuple[str, int]]]:
    """Total samples, then the top frames by own time and by time including callees."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    return total, own.most_common(limit), inclusive.most_common(limit)


def _samples(collapsed: str) -> Iterator[tuple[str, int]]:
    """(stack, sample count) per line of py-spy's collapsed output."""
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if count_text.isdigit():
            yield stack, int(count_text)


def breakdown(collapsed: str) -> list[tuple[str, float]]:
    """Share of samples per stage of :data:`STAGES`, plus "event loop, other"."""
    shares: Counter[str] = Counter()
    total = 0
    for stack, count in _samples(collapsed):
        total += count
        frames = ";".join(f for f in stack.split(";") if not f.endswith(_ROOT_FILES))
        stage = next((name for name, marks in STAGES if any(m in frames for m in marks)),
                     "event loop, other")
        shares[stage] += count
    return [(stage, count / max(1, total)) for stage, count in shares.most_common()]


def project_frames(collapsed: str, limit: int = 12) -> list[tuple[str, float]]:
    """kpistream's own functions by share of samples including what they call."""
    inclusive: Counter[str] = Counter()
    total = 0
    for stack, count in _samples(collapsed):
        total += count
        for frame in set(stack.split(";")):
            if ("(streams/" in frame or "(metrics/" in frame) and not frame.endswith(
                    _ROOT_FILES):
                inclusive[frame] += count
    return [(frame, count / max(1, total)) for frame, count in inclusive.most_common(limit)]
