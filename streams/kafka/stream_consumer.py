"""The Kafka transport Faust's stream consumer uses: Faust's own, with two changes.

1. Its fetches wait ``STREAM_FETCH_WAIT_MS`` at the broker (Faust hard-codes 1,500 ms and
   has no setting for it; see streams.kafka.fetching).
2. It notes where every seek puts each partition (``offset_order``, streams.stages.offset_order),
   so a stage takes each partition's messages in offset order without a hole.
3. On Tansu, ``highwaters`` (the end offsets table recovery reads changelogs up to) are
   corrected by ``streams.kafka.recovery.true_end_offsets``; on Apache Kafka they are Kafka's.

Faust picks the transport of its consumer from the scheme of the ``broker_consumer``
URL, resolved as a dotted path (``stream_consumer_urls`` makes those URLs), so both are
plain subclasses and no Faust object is patched.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import aiokafka
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.utils.urls import urllist
from yarl import URL

from streams.kafka.fetching import STREAM_FETCH_WAIT_MS
from streams.kafka.recovery import end_offsets_need_correction, true_end_offsets
from streams.stages.offset_order import OffsetOrder

__all__ = ["StreamConsumer", "StreamTransport", "stream_consumer_urls", "transport"]


class StreamConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Creates the worker's aiokafka consumer as Faust does, but with our fetch wait."""

    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        conf = self.app.conf
        isolation_level = "read_committed" if self.consumer.in_transaction else "read_uncommitted"
        # Faust uses its own assignor whenever the app has changelog tables (ours has).
        assignor = self.app.assignor
        max_poll_interval = conf.broker_max_poll_interval or 0
        return aiokafka.AIOKafkaConsumer(
            client_id=conf.broker_client_id,
            group_id=conf.id,
            group_instance_id=conf.consumer_group_instance_id,
            bootstrap_servers=faust_aiokafka.server_list(transport.url,
                                                         transport.default_port),
            partition_assignment_strategy=[assignor],
            enable_auto_commit=False,
            auto_offset_reset=conf.consumer_auto_offset_reset,
            max_poll_records=conf.broker_max_poll_records,
            max_poll_interval_ms=int(max_poll_interval * 1000.0),
            max_partition_fetch_bytes=conf.consumer_max_fetch_size,
            fetch_max_wait_ms=STREAM_FETCH_WAIT_MS,
            request_timeout_ms=int(conf.broker_request_timeout * 1000.0),
            check_crcs=conf.broker_check_crcs,
            session_timeout_ms=int(conf.broker_session_timeout * 1000.0),
            rebalance_timeout_ms=int(conf.broker_rebalance_timeout * 1000.0),
            heartbeat_interval_ms=int(conf.broker_heartbeat_interval * 1000.0),
            isolation_level=isolation_level,
            metadata_max_age_ms=conf.consumer_metadata_max_age_ms,
            connections_max_idle_ms=conf.consumer_connections_max_idle_ms,
            **faust_aiokafka.credentials_to_aiokafka_auth(conf.broker_credentials,
                                                         conf.ssl_context),
        )


class StreamConsumer(faust_aiokafka.Consumer):
    """Faust's consumer with our consumer thread, end offsets and offset order."""

    _correct_ends: bool | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.offset_order = OffsetOrder()
        """The next offset each stream partition's stage takes (the agents ask it)."""

    def _new_consumer_thread(self) -> StreamConsumerThread:
        return StreamConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _getmany(self, active_partitions: set[Any] | None, timeout: float) -> Any:
        """Fetch only from the partitions active now, whatever is paused meanwhile.

        Faust hands its own set of active partitions to the consumer thread, which
        waits up to a second for records of the partitions in it. Faust pauses them by
        emptying that set, and aiokafka takes an empty set as "every partition": at the
        end of a recovery (changelogs paused, stream partitions not yet resumed) the
        waiting fetch returned records of paused stream partitions, which Faust dropped
        with their positions already moved past them. Once resumed, the next record
        looked like a gap (marked done, so committed unprocessed), and the records
        fetched again after the seek to the committed offsets were dropped as already
        read: the scale test lost the events of those messages. A copy cannot empty.
        """
        frozen = None if active_partitions is None else set(active_partitions)
        return await super()._getmany(frozen, timeout)

    async def seek_to_committed(self) -> Mapping[Any, int]:
        """Seek every partition to its committed offset, where its stage goes on from.

        A partition with no committed offset yet is read from its first record (the
        consumer's ``earliest`` reset), so its stage goes on from there."""
        committed: Mapping[Any, int | None] = await super().seek_to_committed()
        unknown = [tp for tp, offset in committed.items() if offset is None or offset < 0]
        starts: Mapping[Any, int] = await self.earliest_offsets(*unknown) if unknown else {}
        self.offset_order.reset({tp: starts.get(tp) if tp in unknown else offset
                                 for tp, offset in committed.items()})
        return committed  # type: ignore[return-value]  # Faust types None out

    async def seek(self, partition: Any, offset: int) -> None:
        await super().seek(partition, offset)
        self.offset_order.reset({partition: offset})

    async def seek_wait(self, partitions: Mapping[Any, int]) -> None:
        """Seek in the consumer's own thread and wait for the new positions (Faust's
        ``seek`` calls aiokafka from the event loop's thread, which is not safe: in a
        10-minute soak partitions seeked that way never fetched again)."""
        await super().seek_wait(partitions)
        self.offset_order.reset(partitions)

    async def _add_gap(self, tp: Any, offset_from: int, offset_to: int) -> None:
        """Faust marks the offsets between two messages it read as acked (a "gap", as
        compaction or transaction markers leave). The stream topics have dense offsets, so
        a gap there is messages Faust dropped, which their stage reads again
        (streams.stages.offset_order): they must not be committed before."""
        if not self.offset_order.tracks(tp):
            await super()._add_gap(tp, offset_from, offset_to)

    def ack(self, message: Any) -> bool:
        """Faust's own acks do not count on stream partitions, only ``ack_handled``'s.

        Faust acks the messages its streams drop (fetched in an earlier consumer
        generation), and committing those lost them; a copy of a message read again
        would also count before the original's sends are delivered. Such a message is
        released instead, so a rebalance does not wait for it."""
        if self.offset_order.tracks(message.tp):
            self.release(message)
            return False
        acked: bool = super().ack(message)
        return acked

    def ack_handled(self, message: Any) -> bool:
        """Count the ack of a message its stage took and whose sends are all delivered:
        only then may its offset be committed."""
        acked: bool = super().ack(message)
        return acked

    def hold_open(self, tp: Any, offset: int) -> None:
        """Let Faust hand over ``tp``'s messages from ``offset`` again: its hole.

        Faust's fetch loop drops every message below a partition's read offset, the last
        offset it handed over; a seek (Faust's own, after a rebalance, or a hole's) moves
        that back. But a batch fetched before the seek may still be draining, slowly under
        load (each message waits for room in its stream's buffer), and each of its
        messages moves the read offset past the hole again, so the missing messages,
        fetched again, are dropped again (a 10-minute Kafka soak: partitions held at one
        offset for 15 s and more, until the next rebalance). The stage calls this for
        every message it sees past a hole, the last word after any stale batch.
        (Faust keeps the read offset in ``_read_offset``, with no setter but ``seek``.)
        """
        read = self._read_offset.get(tp)
        if read is not None and read > offset:
            self._read_offset[tp] = offset

    def release(self, message: Any) -> None:
        """Stop waiting for a message that is not acked: a stage dropped it. A rebalance
        waits until every message handed to a stream is acked."""
        message.acked = True
        self.unacked.discard(message)

    async def highwaters(self, *partitions: Any) -> Mapping[Any, int]:
        """End offsets, past the records Tansu leaves out of them."""
        reported: Mapping[Any, int] = await super().highwaters(*partitions)
        transport: Any = self.transport
        bootstrap = ",".join(faust_aiokafka.server_list(transport.url, transport.default_port))
        # The same connection (TLS, SASL) as Faust's own clients.
        options = faust_aiokafka.credentials_to_aiokafka_auth(
            self.app.conf.broker_credentials, self.app.conf.ssl_context)
        if self._correct_ends is None:
            self._correct_ends = await end_offsets_need_correction(bootstrap, options)
        if not self._correct_ends:
            return reported
        return await true_end_offsets(bootstrap, reported, options=options)


class StreamTransport(faust_aiokafka.Transport):
    """Faust's Kafka transport whose consumer is ``StreamConsumer``."""

    Consumer: ClassVar[type] = StreamConsumer


transport = StreamTransport
"""The name the scheme of ``stream_consumer_urls`` resolves to (URL schemes are lower case)."""

_SCHEME = f"{__name__}.transport"


def stream_consumer_urls(broker: str) -> list[URL]:
    """The broker URLs (``kafka://host:port``, several split by ``;``) with the scheme
    that selects ``StreamTransport``: the value of Faust's ``broker_consumer`` setting."""
    return [url.with_scheme(_SCHEME) for url in urllist(broker, default_scheme="kafka")]
