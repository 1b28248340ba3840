"""Source messages acknowledged only once everything their handling sent is delivered.

A stage's output (internal messages, changelog records, dead letters) is produced
without waiting, so the stage can go on with the next message. The source message is
acked, and so becomes committable, only when every send it made has been acknowledged
by the broker, and in the order the messages were handled: Faust commits the highest
offset of a run of acked messages, so an ack out of order could commit past a message
whose output is still in flight. A send that fails stops the acks for good: nothing at or
after that message is ever committed, the stage stops taking messages and readiness
reports the failure; a restart re-reads from the last committed offset and the
idempotent stages rebuild exactly what was lost. ``on_stop`` hears of the failure: the
worker exits when a restart may mend it, to be restarted (streams.worker.readiness,
streams.commands.cli).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

__all__ = ["InOrderAcks"]

_log = logging.getLogger(__name__)


class InOrderAcks:
    """One stage's queue of (ack, deliveries), acked in order as deliveries complete."""

    def __init__(self, stage: str,
                 on_stop: Callable[[str, BaseException], None] | None = None) -> None:
        self.stage = stage
        self.failure: str | None = None
        """Why the stage stopped: the first failed send (None while all is well)."""
        self._on_stop = on_stop
        """Called once when the stage stops, with ``failure`` and the send's error."""
        self._queue: asyncio.Queue[tuple[Callable[[], Awaitable[Any]], list[Any]]] = (
            asyncio.Queue())
        self._stopped = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None

    def track(self, ack: Callable[[], Awaitable[Any]], deliveries: Iterable[Any]) -> None:
        """Ack with ``ack()`` once every one of ``deliveries`` (futures) has completed."""
        if self._runner is None:
            self._runner = asyncio.ensure_future(self._run())
        self._queue.put_nowait((ack, list(deliveries)))

    async def wait_if_stopped(self) -> None:
        """Block the stage for good once a send has failed (it takes no more messages)."""
        if self.failure is not None:
            await self._stopped.wait()  # set only when the worker stops

    def close(self) -> None:
        self._stopped.set()
        if self._runner is not None:
            self._runner.cancel()

    async def _run(self) -> None:
        while True:
            ack, deliveries = await self._queue.get()
            for delivery in deliveries:
                try:
                    await delivery
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    self.failure = (f"{self.stage}: a send failed ({type(exc).__name__}); "
                                    "stopped so nothing past it is committed, restart to "
                                    "resume from the last committed offset")
                    _log.error("kpistream %s", self.failure)
                    if self._on_stop is not None:
                        self._on_stop(self.failure, exc)
                    return
            await ack()
