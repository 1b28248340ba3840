"""The kpi table's store: Faust's RocksDB store, holding each bucket as its changelog does.

With Faust's memory store a restarted worker read the whole kpi changelog again, one
record at a time (2,000,000 views over 1,000 campaign-channels and an hour: 280 s to
/ready). Here the buckets stay on the worker's disk, one database per partition, and Faust
persists the changelog offset each holds up to (streams.worker.changelog tells it as
deliveries complete), so a restart on the same disk recovers only the changelog's tail and
the counting stage rebuilds from the local databases. A worker on an empty disk recovers
from the changelog as before.

A bucket is stored as the bytes its changelog record carries (streams.flow.wire), so a
bucket written here and one recovered from the changelog read back alike. Writes go to the
database of the partition whose message is being handled (Faust's current event), the
partition whose changelog gets the record.
"""

from __future__ import annotations

from typing import Any

from faust.stores import rocksdb

from streams.flow.wire import dumps

__all__ = ["OPTIONS", "STORE_URL", "BucketStore"]

STORE_URL = "kpistream-buckets:kpi"
"""The kpi table's store: this class, by its ``faust.stores`` entry point (pyproject.toml)."""
OPTIONS: dict[str, int] = {
    "write_buffer_size": 4 << 20,
    "max_write_buffer_number": 2,
    "block_cache_size": 8 << 20,
}
"""Per partition: RocksDB's memory besides its index stays under ~16 MiB (Faust's defaults
are 64 MiB write buffers x 3 and a 2 GiB block cache, per partition)."""


class BucketStore(rocksdb.Store):
    """Faust's RocksDB store; values written as their changelog bytes."""

    def __init__(self, url: Any, app: Any, table: Any, *, options: Any = None,
                 **kwargs: Any) -> None:
        kwargs.pop("driver", None)
        super().__init__(url, app, table, options={**OPTIONS, **(options or {})},
                         driver="rocksdict", **kwargs)

    def __setitem__(self, key: Any, value: Any) -> None:
        self._set(self._encode_key(key), dumps(value))
