"""What the worker's two RocksDB stores share: Faust's RocksDB store, sized for a worker,
catching up on its changelog in bulk.

Faust's defaults per partition database are 64 MiB write buffers x 3 and a 2 GiB block
cache, and the older block-based Bloom filter, which reads an index block for each absent
key (measured at 20 M remembered ids: 1.6 us per id looked up, most ids being absent).
Here every database of the process shares one 32 MiB block cache and one 64 MiB budget of
write buffers (besides them a database holds its index and filters), with a full Bloom
filter per file (streams.worker.id_store, streams.worker.bucket_store), and writes go
without the write-ahead log (``_no_wal``).

Faust's recovery takes each changelog record through its event loop on its own (~0.15 ms
a record, so a wiped disk under 1,000,000 records took minutes). At each rebalance a store
reads what its active changelog partitions hold past its own offset, up to their ends at
that moment, itself, in batches (streams.kafka.changelog_reader), in a task beside the
rebalance (a long read inside it would stop the group's heartbeats). Faust is told the
store holds up to those ends, so its recovery reads only what came after, held until the
bulk read is done (streams.worker.catch_up); recovery's end waits for the reads, so no
stage rebuilds or takes a message before them. The offset on disk moves only with what is
written, so a crash mid-read starts again from there.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from faust.stores import rocksdb
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP
from rocksdict import (
    BlockBasedOptions,
    Cache,
    Options,
    Rdict,
    WriteBatch,
    WriteBufferManager,
    WriteOptions,
)

from streams.kafka.changelog_reader import ChangelogReader
from streams.worker.catch_up import CatchUp, ChangelogRecord

__all__ = ["OPTIONS", "RocksStore", "database_options"]

log = logging.getLogger("kpistream")

OPTIONS: dict[str, int] = {
    "write_buffer_size": 4 << 20,
    "max_write_buffer_number": 2,
    "block_cache_size": 1 << 20,  # Faust's own cache, replaced by the shared one below
    "bloom_filter_size": 10,  # bits per key: ~1 % of absent keys read a block
}
BLOCK_CACHE_BYTES = 32 << 20
"""One block cache for every database of the process (was 8 MiB per database: 16
databases for one worker of 8 partitions)."""
WRITE_BUFFER_BYTES = 64 << 20
"""The write buffers (memtables) of every database of the process together: past it
RocksDB flushes the one being written (was up to 8 MiB per database)."""
RETRY_S = 1.0
"""Wait before a failed bulk read starts again (from what it wrote)."""


@functools.cache
def _shared_memory() -> tuple[Cache, WriteBufferManager]:
    return Cache(BLOCK_CACHE_BYTES), WriteBufferManager(WRITE_BUFFER_BYTES, False)


def _no_wal() -> WriteOptions:
    """Writes without RocksDB's write-ahead log, one ``write`` call per put less (~8 % of
    a busy worker's time in the kpi store's puts). Safe because the changelog is the
    source of truth and the offset a database holds up to is a key in that database: a
    crash loses the unflushed tail of both together (memtables flush in order), and the
    restart reads that tail from the changelog again. A clean close flushes everything."""
    options = WriteOptions()
    # a property at run time; rocksdict's stub has it as a method
    options.disable_wal = True  # type: ignore[method-assign,assignment]
    return options


class _Options(rocksdb.RocksDBOptions):
    """Faust's RocksDB options with a full Bloom filter per file, the process's shared
    block cache and write-buffer budget, and writes without the write-ahead log."""

    def as_options(self) -> Options:
        options: Options = super().as_options()
        cache, write_buffers = _shared_memory()
        table = BlockBasedOptions()
        table.set_bloom_filter(self.bloom_filter_size, False)
        table.set_block_cache(cache)
        options.set_block_based_table_factory(table)
        options.set_write_buffer_manager(write_buffers)
        return options

    def open(self, path: Any, *, read_only: bool = False) -> Rdict:
        db: Rdict = super().open(path, read_only=read_only)
        db.set_write_options(_no_wal())
        return db


def database_options() -> Options:
    """The options of each of the stores' databases (for a database opened directly)."""
    options: Options = _Options(**OPTIONS, use_rocksdict=True).as_options()
    return options


class RocksStore(rocksdb.Store):
    """Faust's RocksDB store (rocksdict driver) with ``OPTIONS`` under a table's own, which
    reads its changelog's backlog in bulk at each rebalance."""

    def __init__(self, url: Any, app: Any, table: Any, *, options: Any = None,
                 **kwargs: Any) -> None:
        kwargs.pop("driver", None)
        options = {**OPTIONS, **(options or {})}
        super().__init__(url, app, table, options=dict(options), driver="rocksdict", **kwargs)
        self.rocksdb_options = _Options(**options, use_rocksdict=True)
        self.catch_up = CatchUp()
        self._reader: ChangelogReader | None = None
        self._reading: asyncio.Task[None] | None = None

    # Writing changelog records (recovery's and the bulk read's).

    def write_changelog(self, records: Iterable[ChangelogRecord]) -> None:
        """Each record into its partition's database (a tombstone deletes), one write batch
        per partition, then the offset each partition holds up to."""
        batches: dict[int, WriteBatch] = defaultdict(lambda: WriteBatch(raw_mode=True))
        reached: dict[int, tuple[str, int]] = {}
        for record in records:
            key = record.key
            if key is not None:  # every table change has one
                batch = batches[record.partition]
                if record.value is None:
                    batch.delete(key)
                else:
                    batch.put(key, record.value)
            reached[record.partition] = (record.topic, record.offset)
        for partition, batch in batches.items():
            self._db_for_partition(partition).write(batch)
        for partition, (topic, offset) in reached.items():
            self.set_persisted_offset(TP(topic, partition), offset)

    # Faust's hooks.

    def apply_changelog_batch(self, batch: Iterable[Any], to_key: Any, to_value: Any) -> None:
        self.write_changelog(self.catch_up.admit(event.message for event in batch))

    def persisted_offset(self, tp: TP) -> int | None:
        reading = self.catch_up.persisted(tp.partition)
        return reading if reading is not None else super().persisted_offset(tp)

    async def on_rebalance(self, assigned: Any, revoked: Any, newly_assigned: Any,
                           generation_id: int = 0) -> None:
        await self._stop_reading()
        await super().on_rebalance(assigned, revoked, newly_assigned, generation_id)
        standbys = self.app.assignor.assigned_standbys()
        topics = self.table.changelog_topic.topics
        actives = {tp for tp in assigned if tp.topic in topics and tp not in standbys}
        reader = self._changelog_reader()
        spans: dict[Any, tuple[int | None, int]] = {}
        try:
            ends = await reader.ends(actives)
        except Exception as exc:  # the broker: Faust's recovery reads it all instead
            log.error("no end offsets for a bulk read of %s (%s: %s); Faust's recovery "
                      "reads the changelog", self.table.name, type(exc).__name__, exc)
            ends = {}
        for tp, end in ends.items():
            start = self._next_unwritten(tp)
            if end > (start or 0):
                spans[tp] = (start, end)
        self.catch_up.start({tp.partition: end for tp, (_, end) in spans.items()},
                            active=(tp.partition for tp in actives))
        if spans:
            self._reading = asyncio.ensure_future(self._read(spans))

    async def on_recovery_completed(self, active_tps: Any, standby_tps: Any) -> None:
        while (reading := self._reading) is not None and not reading.done():
            await asyncio.wait([reading])
        await super().on_recovery_completed(active_tps, standby_tps)

    async def stop(self) -> None:
        await self._stop_reading()
        if self._reader is not None:
            await self._reader.close()
        await super().stop()

    # Inside.

    def _changelog_reader(self) -> ChangelogReader:
        if self._reader is None:
            conf = self.app.conf
            self._reader = ChangelogReader(
                faust_aiokafka.server_list(conf.broker, 9092),
                "read_committed" if self.app.in_transaction else "read_uncommitted",
                faust_aiokafka.credentials_to_aiokafka_auth(conf.broker_credentials,
                                                           conf.ssl_context))
        return self._reader

    async def _read(self, spans: dict[Any, tuple[int | None, int]]) -> None:
        reader = self._changelog_reader()
        left = dict(spans)

        def done(tp: Any) -> None:
            del left[tp]
            self.set_persisted_offset(tp, spans[tp][1] - 1)  # every record below the end
            self.write_changelog(self.catch_up.finish(tp.partition))

        while left:
            try:
                await reader.read(left, self.write_changelog, done)
            except Exception as exc:  # the broker: read on from what was written
                log.error("reading changelog partitions %s in bulk failed (%s: %s); again "
                          "in %.0f s", sorted(tp.partition for tp in left),
                          type(exc).__name__, exc, RETRY_S)
                await asyncio.sleep(RETRY_S)
                for tp in left:
                    left[tp] = (self._next_unwritten(tp), spans[tp][1])

    def _next_unwritten(self, tp: Any) -> int | None:
        """The first changelog offset the database has not written (None: it has none)."""
        written = super().persisted_offset(tp)
        return None if written is None else written + 1

    async def _stop_reading(self) -> None:
        """Cancel the bulk read. Its partitions' records stay held until the rebalance
        starts the next reads (``catch_up.start``): written before, leftovers of Faust's
        recovery past the cancelled read would move the offset on disk over records the
        read had yet to write."""
        reading, self._reading = self._reading, None
        if reading is not None and not reading.done():
            reading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reading
