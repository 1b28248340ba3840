"""The transport Faust's stream consumer is built with: selected by URL, our fetch wait."""

from __future__ import annotations

import asyncio

import faust
import faust.transport

from streams.kafka.fetching import STREAM_FETCH_WAIT_MS
from streams.kafka.stream_consumer import StreamConsumer, StreamTransport, stream_consumer_urls


def test_the_consumer_urls_select_the_stream_transport_for_every_broker() -> None:
    urls = stream_consumer_urls("kafka://127.0.0.1:9092;kafka://127.0.0.2:9093")
    assert [(u.host, u.port) for u in urls] == [("127.0.0.1", 9092), ("127.0.0.2", 9093)]
    assert all(faust.transport.by_url(u) is StreamTransport for u in urls)


def test_faust_builds_its_stream_consumer_with_our_fetch_wait() -> None:
    app = faust.App("consumer-test", broker="kafka://127.0.0.1:9092",
                    broker_consumer=stream_consumer_urls("kafka://127.0.0.1:9092"))
    consumer = app.consumer
    assert isinstance(consumer, StreamConsumer)

    async def build() -> int:
        made = consumer._thread._create_consumer(asyncio.get_running_loop())
        wait_ms: int = made._fetch_max_wait_ms
        group: str = made._group_id
        assert group == "consumer-test"
        return wait_ms

    assert asyncio.run(build()) == STREAM_FETCH_WAIT_MS


def test_a_hole_is_held_open_against_the_read_offset_of_a_stale_batch() -> None:
    """Faust's fetch loop drops every message below a partition's read offset. After a seek
    back to a hole, a batch fetched before the seek kept draining and moved the read offset
    past the hole again (10-minute Kafka soak): the stage lowers it back to the hole."""
    app = faust.App("consumer-test", broker="kafka://127.0.0.1:9092",
                    broker_consumer=stream_consumer_urls("kafka://127.0.0.1:9092"))
    consumer = app.consumer
    assert isinstance(consumer, StreamConsumer)
    tp = faust.types.TP("kpi-kpi-events", 4)
    consumer._read_offset[tp] = 4489  # the stale batch's last message, handed over
    consumer.hold_open(tp, 4481)
    assert consumer._read_offset[tp] == 4481  # 4481 onward pass Faust's fetch loop again
    consumer.hold_open(tp, 4490)  # never moved forward: only Faust hands messages over
    assert consumer._read_offset[tp] == 4481
