"""The worker caps glibc's malloc arenas: threads share two instead of one each."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

_CHILD = """
import ctypes, sys, threading
from streams.worker.malloc_arenas import limit_malloc_arenas
if sys.argv[1] == "capped":
    assert limit_malloc_arenas()
held = []
together = threading.Barrier(8)
def allocate():
    held.append(bytearray(100_000))  # below the mmap threshold: from this thread's arena
    together.wait()  # all alive at once (an exited thread's arena goes to the next)
threads = [threading.Thread(target=allocate) for _ in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
ctypes.CDLL("libc.so.6").malloc_stats()  # one "Arena N:" block per arena, on stderr
"""


def _arenas(mode: str, env: dict[str, str] | None = None) -> int:
    run = subprocess.run([sys.executable, "-c", _CHILD, mode], capture_output=True, text=True,
                         timeout=60, env=env, cwd=os.getcwd())
    assert run.returncode == 0, run.stderr
    return sum(1 for line in run.stderr.splitlines() if line.startswith("Arena "))


def test_eight_threads_share_two_arenas_once_capped() -> None:
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    assert _arenas("free", env) >= 8  # glibc's default: an arena for each thread
    assert _arenas("capped", env) == 2


def test_the_environment_s_setting_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    from streams.worker.malloc_arenas import limit_malloc_arenas

    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert limit_malloc_arenas() is False


_FREED = """
import sys
from pathlib import Path
from streams.worker.malloc_arenas import hand_back_freed_memory

def rss_mib():
    line = next(l for l in Path("/proc/self/status").read_text().splitlines()
                if l.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024

held, kept = [], []
for _ in range(2_000):  # 200 MB from the heap (below mmap's threshold), each piece
    held.append(bytearray(100_000))  # followed by one kept: free() cannot shrink the heap
    kept.append(bytearray(1_000))
before = rss_mib()
del held
freed = rss_mib()
handed = hand_back_freed_memory()
print(round(before), round(freed), round(rss_mib()), handed)
"""


def test_memory_freed_in_the_heap_goes_back_to_the_system() -> None:
    run = subprocess.run([sys.executable, "-c", _FREED], capture_output=True, text=True,
                         timeout=60, cwd=os.getcwd())
    assert run.returncode == 0, run.stderr
    before, freed, after, handed = run.stdout.split()
    assert int(before) - int(freed) < 20  # free() alone keeps the pages
    assert int(before) - int(after) >= 180 and handed == "True"
