"""Remembered customers: the customers table, one record per customer id, and which
records' time is up.

A customer's record (streams.attribution.customers.CustomerRecord) is kept until the
customer has not been seen for ``customer_window`` (400 days by default). The table's
store answers which customers of a partition were last seen at or before a time, so the
customer stage forgets them without holding a Python object per customer.

``MemoryCustomerStore`` is that store in a dict (unit tests, tools); a worker keeps it on
disk in RocksDB (streams.worker.customer_store).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from typing import Any, Protocol

from streams.attribution.customers import CustomerRecord

__all__ = ["CustomerStore", "MemoryCustomerStore", "record_of"]


def record_of(value: Any) -> CustomerRecord:
    """A record as the table holds it: itself, or its wire form (as recovered)."""
    return value if isinstance(value, CustomerRecord) else CustomerRecord.from_wire(value)


class CustomerStore(Protocol):
    """The store of the customers table: customer id -> record."""

    def __setitem__(self, customer: str, record: CustomerRecord) -> None: ...

    def __delitem__(self, customer: str) -> None: ...

    def record(self, partition: int, customer: str) -> CustomerRecord | None:
        """The customer's record, if kept (``partition``: the customer's)."""
        ...

    def due(self, partition: int, seen_until_ms: int) -> list[str]:
        """The partition's customers last seen at or before ``seen_until_ms``."""
        ...


class MemoryCustomerStore(MutableMapping[Any, Any]):
    """Customer records in a dict, and per partition a heap of (last seen, customer), stale
    entries dropped as ``due`` meets them. ``partition_of`` gives a customer's partition
    (none: every customer is in every partition, as for a stage of one partition)."""

    def __init__(self, records: Mapping[str, Any] | None = None,
                 partition_of: Callable[[str], int] | None = None) -> None:
        self._records: dict[str, CustomerRecord] = {}
        self._partition_of = partition_of
        self._seen: dict[int | None, list[tuple[int, str]]] = {}
        for customer, value in (records or {}).items():
            self[customer] = value

    def record(self, partition: int, customer: str) -> CustomerRecord | None:
        return self._records.get(customer)

    def due(self, partition: int, seen_until_ms: int) -> list[str]:
        seen = self._seen.get(None if self._partition_of is None else partition, [])
        due: list[tuple[int, str]] = []
        while seen and seen[0][0] <= seen_until_ms:
            last_seen, customer = heapq.heappop(seen)
            record = self._records.get(customer)
            if (record is not None and record.last_seen_ms == last_seen
                    and (not due or due[-1] != (last_seen, customer))):
                due.append((last_seen, customer))
        for entry in due:  # still kept until deleted
            heapq.heappush(seen, entry)
        return [customer for _, customer in due]

    def __setitem__(self, customer: Any, value: Any) -> None:
        record = self._records[customer] = record_of(value)
        part = None if self._partition_of is None else self._partition_of(customer)
        seen = self._seen.setdefault(part, [])
        heapq.heappush(seen, (record.last_seen_ms, customer))
        if len(seen) > 2 * len(self._records) + 64:  # mostly stale: only the kept ones
            seen[:] = [(r.last_seen_ms, c) for c, r in self._records.items()
                       if part is None or self._partition_of is None
                       or self._partition_of(c) == part]
            heapq.heapify(seen)

    def __delitem__(self, customer: Any) -> None:
        del self._records[customer]

    def __getitem__(self, customer: Any) -> CustomerRecord:
        return self._records[customer]

    def __iter__(self) -> Iterator[Any]:
        return iter(list(self._records))

    def __len__(self) -> int:
        return len(self._records)
