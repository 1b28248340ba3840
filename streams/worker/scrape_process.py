"""/metrics answers written in a process of their own.

At 10,000 campaign-channels with the seed KPIs an answer is ~2,000,000 samples: seconds of
Python. Written on a thread of the worker, it shares the one interpreter lock with the
counting, so at full load each gets about half of one core and both take twice as long
(bench/README, *The scrape in a process of its own*). The writer process has its own: the
event loop only collects the rows (as before) and pickles them, and the writer works out
the values, writes the text and gzips it on the other core.

The writer is spawned, not forked: it starts from a clean interpreter and holds no copy of
the worker's state, threads or sockets; it ends when the worker does, even when the worker
is killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import math
import multiprocessing
import os
import pickle
import signal
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import BrokenExecutor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any

from prometheus_client.core import Metric

from streams.worker.cycles import cycle_collection_paused
from streams.worker.malloc_arenas import hand_back_freed_memory
from streams.worker.scrape_text import answer_bytes

__all__ = ["ScrapeWriter", "written"]

log = logging.getLogger(__name__)

_HAND_BACK_GAP_S = 30.0


class ScrapeWriter:
    """The writer process (one: answers asked for together take turns), started with the
    worker (``start``) so that the first scrape does not wait for Python to start.

    Whatever goes wrong with it, /metrics still answers: an answer the writer cannot take
    (a family that does not pickle) or fails on, or one it has not finished within
    ``timeout_s`` (then it is killed), is written on the worker's own thread instead, one
    at a time; a writer that died or was killed is replaced for the next answer."""

    def __init__(self, timeout_s: float = 60.0) -> None:
        self._timeout_s = timeout_s
        self._pool: ProcessPoolExecutor | None = None
        self._pid: Future[int] | None = None
        self._fallback = ThreadPoolExecutor(max_workers=1,
                                            thread_name_prefix="kpistream-metrics")
        self._handed_back_at = -math.inf

    def start(self) -> None:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                initializer=_in_the_writer)
            self._pid = self._pool.submit(os.getpid)  # starts the process now

    def answer(self, families: list[Metric], gzipped: bool) -> Coroutine[Any, Any, bytes]:
        """The answer's bytes (``answer_bytes``) of families as collected, not yet read.

        The families are pickled now, before this returns, and the list emptied (each is
        let go of as soon as it is pickled): called in the block that collected them
        under ``cycle_collection_paused``, the cycle collector never passes over the
        rows' copies (it did, as it came back on between the two: ~0.1 s of the event
        loop at 10,000 campaign-channels). The rest is the coroutine returned."""
        try:
            with cycle_collection_paused():
                payload = pickle.dumps(families, protocol=pickle.HIGHEST_PROTOCOL)
                families.clear()
        except Exception as error:  # a family that does not pickle
            log.warning("/metrics is written in the worker: a family does not pickle (%s)",
                        type(error).__name__)
            return self._handed_back_after(self._on_the_thread(answer_bytes, families,
                                                               gzipped))
        return self._handed_back_after(self._written(payload, gzipped))

    async def _handed_back_after(self, answer: Awaitable[bytes]) -> bytes:
        try:
            return await answer
        finally:
            self._hand_back_now_and_then()

    def _hand_back_now_and_then(self) -> None:
        """The free pages of the worker's heap (the rows' copy and their pickle, ~30 MiB
        at 10,000 campaign-channels, among them) back to the system, off the event loop,
        at most every ``_HAND_BACK_GAP_S``: on a heap of ~900 MiB it holds malloc's lock
        long enough to slow the counting (after every scrape, back to back: 22,000 →
        16,800 events/s)."""
        now = time.monotonic()
        if now - self._handed_back_at >= _HAND_BACK_GAP_S:
            self._handed_back_at = now
            with contextlib.suppress(RuntimeError):  # closed meanwhile
                self._fallback.submit(hand_back_freed_memory)

    async def _written(self, payload: bytes, gzipped: bool) -> bytes:
        self.start()
        pool, pid = self._pool, self._pid
        assert pool is not None and pid is not None
        try:
            return await asyncio.wait_for(
                asyncio.wrap_future(pool.submit(written, payload, gzipped, True)),
                self._timeout_s)
        except BrokenExecutor:
            log.warning("the /metrics writer process ended; this answer is written in the "
                        "worker, the next in a new writer")
        except TimeoutError:
            log.warning("the /metrics writer took over %.0f s: killed; this answer is "
                        "written in the worker, the next in a new writer", self._timeout_s)
            _kill(pid)
        except Exception as error:  # whatever the writer raised
            log.warning("the /metrics writer failed (%s); this answer is written in the "
                        "worker", type(error).__name__)
            return await self._on_the_thread(written, payload, gzipped, False)
        if self._pool is pool:
            pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._pid = None
        return await self._on_the_thread(written, payload, gzipped, False)

    async def _on_the_thread(self, write: Callable[..., bytes], *args: object) -> bytes:
        return await asyncio.get_running_loop().run_in_executor(self._fallback, write, *args)

    async def pid(self) -> int:
        """The writer process's id (started if it was not)."""
        self.start()
        assert self._pid is not None
        return await asyncio.wrap_future(self._pid)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = self._pid = None
        self._fallback.shutdown(wait=False)


def written(payload: bytes, gzipped: bool, free_later: bool) -> bytes:
    """The answer of pickled families. In the writer (``free_later``), what the answer was
    made from is freed on another thread while the answer goes back (~0.1 s at 10,000
    campaign-channels: not the scrape's to wait for)."""
    with cycle_collection_paused():  # unpickling makes the rows' lists, all long-lived
        families: list[Metric] = pickle.loads(payload)
    del payload
    if not free_later:
        return answer_bytes(families, gzipped)
    kept = list(families)
    answer = answer_bytes(families, gzipped)
    threading.Thread(target=_free, args=(kept,), name="kpistream-writer-free").start()
    return answer


def _free(kept: list[Metric]) -> None:
    kept.clear()
    gc.collect()  # the writer's cycle collector runs only here, between answers
    hand_back_freed_memory()


def _kill(pid: Future[int]) -> None:
    if pid.done() and pid.exception() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid.result(), signal.SIGKILL)


def _in_the_writer() -> None:
    """The writer's start: it ends with the worker (a killed worker sends no word to its
    pool), leaves Ctrl+C to the worker, and collects cycles only between answers."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_exit_after, args=(parent,), daemon=True,
                         name="kpistream-writer-watch").start()
    # An answer makes millions of objects, none in cycles: a collection that started
    # while it is written would pass over all of them (~0.1 s at 10,000
    # campaign-channels), so collections run only after an answer (_free).
    gc.disable()
    gc.freeze()


def _exit_after(parent: multiprocessing.process.BaseProcess) -> None:
    parent.join()
    os._exit(0)
