"""A partition's messages reach its stage in offset order; Faust's own acks do not count.

The finding (Apache Kafka, scale test): after a rebalance that kept kpi-events[0] on a
worker, Faust's stream dropped and acked offsets 160-167 (fetched in the earlier
generation), handed the stage 168 onward, and the worker committed past 160-167 without
counting them.
"""

from __future__ import annotations

from typing import Any

import faust
from faust.types import TP, Message
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.kafka.stream_consumer import StreamConsumer, stream_consumer_urls
from streams.stages.offset_order import RESEEK_AFTER_MS, Admit, OffsetOrder

P0 = TP("kpi-kpi-events", 0)


def test_the_scale_test_finding_the_stage_waits_for_the_dropped_offsets() -> None:
    order = OffsetOrder()
    order.reset({P0: 160})  # the seek to the committed offset after the rebalance
    # Faust dropped 160-167; the stage is handed 168: a hole, to be read again.
    assert order.admit(P0, 168, now_ms=0) is Admit.HOLE
    assert order.admit(P0, 169, now_ms=1) is Admit.AHEAD  # the seek is under way
    order.reset({P0: 160})  # the seek back to 160
    taken = [o for o in range(160, 176) if order.admit(P0, o, now_ms=2) is Admit.TAKE]
    assert taken == list(range(160, 176))
    assert order.admit(P0, 168, now_ms=3) is Admit.SEEN  # a copy left in flight
    assert order.expected(P0) == 176


def test_messages_read_before_a_slow_seek_ask_for_no_other_seek() -> None:
    """The 10-minute Kafka soak's finding: under load a seek back to a hole took ~12 s, and
    then each message already fetched past the hole asked for a seek of its own, 12 s
    each: kpi-events partition 7 stayed at offset 13,882 for minutes (364 seeks)."""
    order = OffsetOrder()
    order.reset({P0: 13_882})
    assert order.admit(P0, 14_579, now_ms=0) is Admit.HOLE
    order.reset({P0: 13_882})  # the seek back, done 12 s later
    order.sought(P0, now_ms=12_000)
    stale = [order.admit(P0, offset, now_ms=12_001) for offset in range(14_580, 14_600)]
    assert stale == [Admit.AHEAD] * 20
    assert order.admit(P0, 13_882, now_ms=12_050) is Admit.TAKE


def test_a_hole_whose_seek_brought_nothing_is_asked_for_again_by_the_timer() -> None:
    order = OffsetOrder()
    order.reset({P0: 10})
    assert order.admit(P0, 12, now_ms=1_000) is Admit.HOLE
    order.sought(P0, now_ms=1_500)  # the seek is done; its clock starts now
    assert order.admit(P0, 13, now_ms=1_500 + RESEEK_AFTER_MS) is Admit.AHEAD
    assert order.overdue(now_ms=1_500 + RESEEK_AFTER_MS - 1) == []
    assert order.overdue(now_ms=1_500 + RESEEK_AFTER_MS) == [(P0, 10)]


def test_a_hole_with_no_message_after_its_seek_is_found_overdue_by_the_timer() -> None:
    order = OffsetOrder()
    order.reset({P0: 0})
    assert order.admit(P0, 7, now_ms=1_000) is Admit.HOLE  # the last message there
    assert order.overdue(now_ms=60_000) == []  # its seek is still under way
    order.sought(P0, now_ms=1_000)
    assert order.overdue(now_ms=1_000 + RESEEK_AFTER_MS - 1) == []
    assert order.overdue(now_ms=1_000 + RESEEK_AFTER_MS) == [(P0, 0)]
    assert order.overdue(now_ms=1_000 + 9 * RESEEK_AFTER_MS) == []  # that seek is under way
    order.sought(P0, now_ms=1_000 + RESEEK_AFTER_MS)
    assert order.admit(P0, 0, now_ms=5_000) is Admit.TAKE  # the seek brought it
    assert order.overdue(now_ms=60_000) == []


def test_a_message_put_back_during_recovery_is_taken_when_it_comes_again() -> None:
    """After a 30 s broker freeze on Kafka, the count stage took messages while Faust was
    still recovering its tables; recovery wrote older changelog values over their changes
    and they were lost. Such a message is put back: taken once it comes again, and if no
    seek brings it, the timer asks for one."""
    order = OffsetOrder()
    order.reset({P0: 40})
    assert order.admit(P0, 40, now_ms=0) is Admit.TAKE
    order.put_back(P0, 41, now_ms=100)  # came during recovery: not taken
    assert order.expected(P0) == 41
    assert order.overdue(now_ms=100 + RESEEK_AFTER_MS - 1) == []
    assert order.overdue(now_ms=100 + RESEEK_AFTER_MS) == [(P0, 41)]
    order.sought(P0, now_ms=100 + RESEEK_AFTER_MS)
    assert order.admit(P0, 41, now_ms=3_000) is Admit.TAKE
    assert order.overdue(now_ms=60_000) == []


def test_a_later_message_put_back_keeps_the_earlier_missing_offset() -> None:
    order = OffsetOrder()
    order.reset({P0: 40})
    order.put_back(P0, 40, now_ms=0)
    order.put_back(P0, 41, now_ms=1)
    assert order.expected(P0) == 40
    order.put_back(P0, 39, now_ms=1)  # a copy of one handled already changes nothing
    assert order.expected(P0) == 40
    order.reset({P0: 40})  # recovery's seek to the committed offset
    assert [order.admit(P0, o, now_ms=2) for o in (40, 41)] == [Admit.TAKE, Admit.TAKE]


def test_a_partition_never_committed_starts_where_its_first_message_is() -> None:
    order = OffsetOrder()
    order.reset({P0: None})
    assert order.tracks(P0) and order.expected(P0) is None
    assert order.admit(P0, 0, now_ms=0) is Admit.TAKE
    assert order.admit(P0, 2, now_ms=0) is Admit.HOLE


# A delivery step: (where the consumer reads from, relative to the stage's next offset,
# how many messages, which of them Faust drops).
_STEP = st.tuples(st.integers(-5, 5), st.integers(1, 8), st.sets(st.integers(0, 7)))


@settings(max_examples=300, deadline=None)
@given(start=st.integers(0, 1_000), steps=st.lists(_STEP, max_size=40))
def test_whatever_faust_delivers_the_stage_takes_each_offset_once_in_order(
    start: int, steps: list[tuple[int, int, set[int]]],
) -> None:
    """Reads from anywhere near the next offset (stale copies, reads past a hole), with
    messages dropped at random, and a seek back on every hole: the stage takes offsets
    start, start + 1, ... each once."""
    order = OffsetOrder()
    order.reset({P0: start})
    taken: list[int] = []
    now = 0
    for shift, count, dropped in steps:
        expected = order.expected(P0)
        assert expected is not None
        first = max(0, expected + shift)
        for i, offset in enumerate(range(first, first + count)):
            if i in dropped:
                continue
            now += RESEEK_AFTER_MS  # every hole asks for its seek
            verdict = order.admit(P0, offset, now)
            if verdict is Admit.TAKE:
                taken.append(offset)
            elif verdict is Admit.HOLE:
                order.reset({P0: order.expected(P0)})
                break
    assert taken == list(range(start, start + len(taken)))
    assert order.expected(P0) == start + len(taken)


def _message(offset: int, topic: str = P0.topic) -> Message:
    return Message(topic, 0, offset, 0.0, 0, None, b"k", b"v", None)


def test_faust_s_own_acks_on_a_stream_partition_release_the_message_but_do_not_count() -> None:
    app = faust.App("order-test", broker="kafka://127.0.0.1:9092",
                    broker_consumer=stream_consumer_urls("kafka://127.0.0.1:9092"))
    consumer: Any = app.consumer
    assert isinstance(consumer, StreamConsumer)
    consumer.offset_order.reset({P0: 160})
    dropped_by_faust = _message(165)
    consumer.unacked.add(dropped_by_faust)
    assert consumer.ack(dropped_by_faust) is False  # not counted towards a commit
    assert dropped_by_faust.acked and dropped_by_faust not in consumer.unacked  # released
    changelog = _message(7, topic="some-changelog")  # no stage reads it: Faust's rules
    consumer.unacked.add(changelog)
    consumer.ack(changelog)
    assert changelog.acked
