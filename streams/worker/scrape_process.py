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
import gc
import logging
import multiprocessing
import os
import pickle
import threading
from concurrent.futures import BrokenExecutor, ProcessPoolExecutor

from prometheus_client.core import Metric

from streams.worker.cycles import cycle_collection_paused
from streams.worker.scrape_text import answer_bytes

__all__ = ["ScrapeWriter", "pickled", "written"]

log = logging.getLogger(__name__)


class ScrapeWriter:
    """The writer process (one: answers asked for together take turns), started now so
    that the first scrape does not wait for Python to start. If it dies (killed, out of
    memory), the answer that was in it is written on a thread instead and the next one
    starts a new writer."""

    def __init__(self) -> None:
        self._pool = _started()

    async def answer(self, payload: bytes, gzipped: bool) -> bytes:
        """The answer's bytes (``answer_bytes``) of families as collected (``pickled``)."""
        pool = self._pool
        try:
            return await asyncio.wrap_future(pool.submit(written, payload, gzipped))
        except BrokenExecutor:
            log.warning("the /metrics writer process ended; this answer is written on a "
                        "thread, the next in a new writer")
            if self._pool is pool:
                self._pool = _started()
            return await asyncio.get_running_loop().run_in_executor(
                None, written, payload, gzipped)

    async def pid(self) -> int:
        """The writer process's id."""
        return await asyncio.wrap_future(self._pool.submit(os.getpid))

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def pickled(families: list[Metric]) -> bytes:
    """Families as collected, not yet read, for the writer."""
    return pickle.dumps(families, protocol=pickle.HIGHEST_PROTOCOL)


def written(payload: bytes, gzipped: bool) -> bytes:
    """The answer of pickled families (in the writer process). What the answer was made
    from is freed on another thread once it has been handed back (~0.1 s at 10,000
    campaign-channels: not the scrape's to wait for)."""
    with cycle_collection_paused():  # unpickling makes the rows' lists, all long-lived
        families: list[Metric] = pickle.loads(payload)
    del payload
    kept = list(families)
    answer = answer_bytes(families, gzipped)
    threading.Thread(target=_free, args=(kept,), name="kpistream-writer-free").start()
    return answer


def _free(kept: list[Metric]) -> None:
    kept.clear()
    gc.collect()  # the writer's cycle collector runs only here, between answers


def _started() -> ProcessPoolExecutor:
    pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_watch_the_worker)
    pool.submit(int)  # starts the process now
    return pool


def _watch_the_worker() -> None:
    """In the writer: end with the worker (a killed worker sends no word to its pool)."""
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
