"""A Faust table's data, whose changes the agent sends to the changelog itself.

Faust sends every table change through its producer buffer one message at a time, and
holds the agent while more than 100 wait: at a few thousand bucket changes a second the
counting stage then spends its time waiting on that buffer (measured: 1,029 "producer
buffer full" stalls in 40 s at 5,000 events/s, and a backlog). Here a stage writes into
the table's own store, the changes are queued, and the agent hands them straight to the
producer (through the worker's sender, streams.worker.sending) after each message, in the
source message's partition; ``send`` returns their deliveries, and the agent acks the
message only once they completed (streams.stages.delivery), so a change is durable before
the message that made it counts as done; recovery reads the changelog exactly as before.
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterator, MutableMapping
from typing import Any

from streams.flow.wire import dumps
from streams.worker.sending import Sender

__all__ = ["ChangelogTable"]


class ChangelogTable(MutableMapping[Any, Any]):
    """Reads and writes the store of ``table``; ``send`` writes the changes to its changelog
    through ``sender``."""

    def __init__(self, table: Any, sender: Sender) -> None:
        self.table = table
        self._sender = sender
        self._pending: list[tuple[Any, Any]] = []

    @property
    def data(self) -> Any:
        """The table's store, written without a changelog record (rebuilds use it)."""
        return self.table.data

    def __getitem__(self, key: Any) -> Any:
        return self.table.data[key]

    def __setitem__(self, key: Any, value: Any) -> None:
        self.table.data[key] = value
        self._pending.append((key, value))

    def __delitem__(self, key: Any) -> None:
        del self.table.data[key]
        self._pending.append((key, None))

    def __iter__(self) -> Iterator[Any]:
        return iter(self.table.data)

    def __len__(self) -> int:
        return len(self.table.data)

    async def send(self, partition: int) -> list[Awaitable[Any]]:
        """Produce the queued changes (None: a tombstone) to the changelog's ``partition``;
        returns their deliveries (futures)."""
        if not self._pending:
            return []
        pending, self._pending = self._pending, []
        deliveries: list[Awaitable[Any]] = []
        table = self.table
        app = table.app
        topic = table.changelog_topic.get_topic_name()
        dumps_key = app.serializers.dumps_key
        for key, value in pending:
            raw_value = None if value is None else dumps(value)
            deliveries.append(await self._sender.send_change(
                topic, dumps_key(None, key, serializer="json"), raw_value, partition))
        return deliveries
