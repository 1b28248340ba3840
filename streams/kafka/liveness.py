"""Can this worker reach the broker right now? A metadata request with a deadline.

A stopped or unreachable broker does not always break connections (a frozen process
keeps its sockets open), so the worker asks the broker for metadata every few seconds
and reports not ready at /ready while the answer does not come in time.
"""

from __future__ import annotations

import asyncio
import contextlib
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

from aiokafka.client import AIOKafkaClient

__all__ = ["BrokerProbe", "http_status"]


class BrokerProbe:
    """Remembers whether the broker answered its last metadata request in time."""

    def __init__(self, bootstrap: str, timeout_s: float = 3.0,
                 options: Mapping[str, Any] | None = None) -> None:
        self._bootstrap = bootstrap
        self._options = dict(options or {})
        """Security settings ([kafka], streams.kafka.clients)."""
        self._timeout_s = timeout_s
        self._client: AIOKafkaClient | None = None
        self.reachable = True

    async def check(self) -> bool:
        """Ask once; returns and remembers whether the broker answered in time."""
        try:
            if self._client is None:
                client = AIOKafkaClient(bootstrap_servers=self._bootstrap,
                                        request_timeout_ms=int(self._timeout_s * 1000),
                                        **self._options)
                await asyncio.wait_for(client.bootstrap(), self._timeout_s)
                self._client = client
            await asyncio.wait_for(self._client.fetch_all_metadata(), self._timeout_s)
        except Exception:  # any failure means: not reachable now
            self.reachable = False
            await self._drop_client()
            return False
        self.reachable = True
        return True

    async def _drop_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            # Closing a client of a dead broker may fail too.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.close(), self._timeout_s)

    async def close(self) -> None:
        await self._drop_client()


def http_status(url: str) -> int:
    """The HTTP status a GET of ``url`` answers with; 0 when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0
