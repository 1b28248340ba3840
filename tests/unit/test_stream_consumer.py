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


def test_a_seek_back_lets_faust_hand_over_the_offsets_it_already_read() -> None:
    """The 10-minute Kafka soak's finding: Faust's fetch loop drops every message below the
    partition's read offset (the last it handed over; only Faust's own ``seek`` moves it
    back). A hole's seek back went through ``seek_wait``, which does not, so the missing
    offsets were fetched and dropped again and again: partitions stalled for minutes."""
    app = faust.App("consumer-test", broker="kafka://127.0.0.1:9092",
                    broker_consumer=stream_consumer_urls("kafka://127.0.0.1:9092"))
    consumer = app.consumer
    assert isinstance(consumer, StreamConsumer)
    tp = faust.types.TP("kpi-kpi-events", 4)
    consumer._read_offset[tp] = 4943  # as Faust's fetch loop leaves it: 4943 came first
    consumer.reread_from({tp: 4928})
    assert consumer._read_offset[tp] == 4928  # Faust now hands over 4928 onward
    assert consumer.offset_order.expected(tp) == 4928
