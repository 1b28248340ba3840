"""One event that makes a stage raise is dead-lettered as an internal error; the rest of
its message and of the stream count exactly (SPEC 4). Failures are injected into each
stage's own code; everything else runs as the agents run it (tests.unit.flow_model)."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from aiokafka.errors import (
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    NotLeaderForPartitionError,
    TopicAuthorizationFailedError,
)

import streams.stages.aggregate
import streams.stages.ingest
from streams.attribution.clicks import ClickBook
from streams.attribution.customers import CustomerBook
from streams.stages.delivery import InOrderAcks
from streams.stages.ingest import RawMessage
from streams.stages.steps import count_message, customer_message, join_message
from streams.windows.counts import CLICKS, ORDERS, REVENUE, SPEND, VIEWS, WIDTH
from streams.worker.readiness import Readiness
from tests.unit.flow_model import FlowModel

NOW = 1_795_430_000_000


class Injected(RuntimeError):
    """The failure a test plants."""


def total(model: FlowModel, campaign: str, channel: str, index: int) -> int:
    return model.rows().get((campaign, channel, "total"), [0] * WIDTH)[index]


def view(i: int) -> dict[str, Any]:
    return {"event_id": f"v-{i}", "ts": NOW, "campaign_id": "c", "channel": "tiktok"}


def order(i: int, customer: str, **extra: Any) -> dict[str, Any]:
    return {"event_id": f"o-{i}", "ts": NOW, "order_id": f"A{i}", "customer_id": customer,
            "revenue": "10", "currency": "USD", **extra}


def internal(model: FlowModel) -> list[dict[str, Any]]:
    letters = [d for d in model.dead_letters if d["reason"].startswith("internal error:")]
    assert len(letters) == len(model.dead_letters)
    return letters


def test_validation_that_raises_dead_letters_only_that_message(
        monkeypatch: pytest.MonkeyPatch) -> None:
    real = streams.stages.ingest.parse_message

    def parse(raw: bytes, *args: Any, **kwargs: Any) -> Any:
        if b"poison" in raw:
            raise Injected("boom")
        return real(raw, *args, **kwargs)

    monkeypatch.setattr(streams.stages.ingest, "parse_message", parse)
    model = FlowModel(NOW)
    model.publish("views", [view(1), view(2)])
    model.publish("views", {**view(3), "event_id": "poison"})
    model.publish("views", view(4))
    (letter,) = internal(model)
    assert letter["reason"] == "internal error: validation failed on this event (Injected)"
    assert total(model, "c", "tiktok", VIEWS) == 3
    assert model.outcomes[("view", "invalid")] == 1


def test_routing_that_raises_dead_letters_only_that_event(
        monkeypatch: pytest.MonkeyPatch) -> None:
    real = streams.stages.ingest.attribute

    def attribute(event: Any, promo_codes: Any) -> Any:
        if event.event_id == "o-2":
            raise Injected("boom")
        return real(event, promo_codes)

    monkeypatch.setattr(streams.stages.ingest, "attribute", attribute)
    model = FlowModel(NOW)
    model.publish("orders", [order(1, "a", campaign_id="shop"),
                             order(2, "b", campaign_id="shop"),
                             order(3, "c", campaign_id="shop")])
    (letter,) = internal(model)
    assert letter["index"] == 1 and letter["topic"] == "orders"
    assert letter["reason"].startswith("internal error: the input stage failed")
    assert total(model, "shop", "unknown", ORDERS) == 2
    assert model.outcomes[("order", "invalid")] == 1


def test_a_click_join_that_raises_dead_letters_only_that_click(
        monkeypatch: pytest.MonkeyPatch) -> None:
    real = ClickBook.remember

    def remember(self: ClickBook, click_id: str, *args: Any) -> Any:
        if click_id == "clk-2":
            raise Injected("boom")
        return real(self, click_id, *args)

    monkeypatch.setattr(ClickBook, "remember", remember)
    model = FlowModel(NOW)
    model.publish("clicks", [
        {"event_id": f"c-{i}", "ts": NOW, "campaign_id": "c", "channel": "meta",
         "click_id": f"clk-{i}"} for i in range(1, 4)])
    model.publish("orders", order(1, "a", click_id="clk-1"))
    model.publish("orders", order(3, "b", click_id="clk-3"))
    (letter,) = internal(model)
    assert letter["type"] == "click"
    assert letter["reason"].startswith("internal error: the click join failed")
    assert total(model, "c", "meta", CLICKS) == 3  # counted on their own path
    assert total(model, "c", "meta", ORDERS) == 2  # both joined to their clicks


def test_a_customer_decision_that_raises_dead_letters_only_that_order(
        monkeypatch: pytest.MonkeyPatch) -> None:
    real = CustomerBook.decide

    def decide(self: CustomerBook, route: Any, *args: Any) -> Any:
        if route.customer_id == "poison":
            raise Injected("boom")
        return real(self, route, *args)

    monkeypatch.setattr(CustomerBook, "decide", decide)
    model = FlowModel(NOW)
    model.publish("orders", [order(1, "a", campaign_id="shop"),
                             order(2, "poison", campaign_id="shop"),
                             order(3, "c", campaign_id="shop")])
    (letter,) = internal(model)
    assert letter["type"] == "order"
    assert letter["reason"].startswith("internal error: the customer stage failed")
    assert total(model, "shop", "unknown", ORDERS) == 2
    assert total(model, "shop", "unknown", REVENUE) == 20_000_000


def test_counting_that_raises_dead_letters_only_that_event(
        monkeypatch: pytest.MonkeyPatch) -> None:
    real = streams.stages.aggregate.add_event

    def add_event(acc: list[int], kind: str, amount: int, count: int = 1) -> None:
        if amount % 1_000_000 == 777:  # only the poisoned spend (alone or in a sum)
            raise Injected("boom")
        real(acc, kind, amount, count)

    monkeypatch.setattr(streams.stages.aggregate, "add_event", add_event)
    model = FlowModel(NOW)
    spends = [{"event_id": f"s-{i}", "ts": NOW, "campaign_id": "c", "channel": "tiktok",
               "amount": amount, "currency": "USD"}
              for i, amount in enumerate(["5", "1.000777", "7"])]
    model.publish("spend", spends)
    model.publish("spend", {**spends[1], "event_id": "s-again", "amount": "2"})
    (letter,) = internal(model)
    assert letter["type"] == "spend" and letter["topic"] == "kpi_events"
    assert letter["reason"].startswith("internal error: the counting stage failed")
    assert total(model, "c", "tiktok", SPEND) == 14_000_000
    assert model.outcomes[("spend", "accepted")] == 3
    assert model.outcomes[("spend", "invalid")] == 1
    # The failed event was never counted, so its id is not remembered: a later
    # delivery of it counts once the failure is gone.
    monkeypatch.setattr(streams.stages.aggregate, "add_event", real)
    model.publish("spend", spends[1])
    assert total(model, "c", "tiktok", SPEND) == 15_000_777


def test_acks_wait_for_every_send_and_keep_the_order_of_the_messages() -> None:
    async def run() -> list[int]:
        acks = InOrderAcks("count")
        loop = asyncio.get_running_loop()
        first, second = loop.create_future(), loop.create_future()
        acked: list[int] = []

        def acker(n: int) -> Any:
            async def ack() -> None:
                acked.append(n)
            return ack

        acks.track(acker(1), [first])
        acks.track(acker(2), [second])
        second.set_result(None)  # the later message's send lands first
        await asyncio.sleep(0.01)
        assert acked == []
        first.set_result(None)
        while len(acked) < 2:
            await asyncio.sleep(0.001)
        acks.close()
        return acked

    assert asyncio.run(run()) == [1, 2]


def _stop_with(acks: InOrderAcks, error: Exception) -> tuple[list[int], str | None]:
    """Two messages tracked, the first's send failing with ``error``: (acked, failure)."""
    async def run() -> tuple[list[int], str | None]:
        loop = asyncio.get_running_loop()
        failing, fine = loop.create_future(), loop.create_future()
        acked: list[int] = []

        def acker(n: int) -> Any:
            async def ack() -> None:
                acked.append(n)
            return ack

        acks.track(acker(1), [failing])
        acks.track(acker(2), [fine])
        fine.set_result(None)
        failing.set_exception(error)
        while acks.failure is None:
            await asyncio.sleep(0.001)
        acks.close()
        return acked, acks.failure

    return asyncio.run(run())


def test_a_failed_send_stops_the_acks_for_good_and_says_why() -> None:
    heard: list[tuple[str, BaseException]] = []
    error = OSError("broker refused the write")
    acked, failure = _stop_with(
        InOrderAcks("count", on_stop=lambda *told: heard.append(told)), error)
    assert acked == []
    assert failure is not None and failure.startswith("count: a send failed (OSError)")
    assert heard == [(failure, error)]  # once, with the reason and the error


@pytest.mark.parametrize(("error", "told"), [
    (KafkaTimeoutError(), True),  # aiokafka gave up waiting for the broker
    (NotLeaderForPartitionError(), True),  # retriable
    (ConnectionResetError(), True),
    (MessageSizeTooLargeError(), False),  # fails again on any worker: the stage waits
    (TopicAuthorizationFailedError(), False),
    (ValueError("not a Kafka error"), False),
])
def test_the_worker_hears_of_a_stopped_stage_only_when_a_restart_may_mend_it(
        error: Exception, told: bool) -> None:
    """Readiness tells its hook (the worker command exits on it, to be restarted) for a
    failure a restart may mend; for one that any worker would meet again the stage stays
    stopped and /ready says why."""
    readiness = Readiness(faust_app=None)
    heard: list[str] = []
    readiness.on_stage_stopped = heard.append
    _, failure = _stop_with(readiness.stage_acks("count"), error)
    assert failure is not None
    assert failure.startswith(f"count: a send failed ({type(error).__name__})")
    assert readiness.stopped_stages() == [failure]
    assert heard == ([failure] if told else [])


def test_an_input_event_that_raises_is_named_for_the_log_by_place_not_value(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def attribute(event: Any, promo_codes: Any) -> Any:
        raise Injected("cust-secret")

    monkeypatch.setattr(streams.stages.ingest, "attribute", attribute)
    model = FlowModel(NOW)
    raw = orjson.dumps(order(1, "cust-secret", campaign_id="shop"))
    result = model.ingestor.ingest([RawMessage("orders", 3, 41, raw)])
    ((topic, partition, offset, reason),) = result.internal_errors
    assert (topic, partition, offset) == ("orders", 3, 41)
    assert "cust-secret" not in reason


@pytest.mark.parametrize("raw", [None, b"", b"not json", b"5", b'{"a": 1}', b'"x"', b"[7]"])
def test_an_internal_message_of_any_shape_is_a_failure_not_a_crash(raw: bytes | None) -> None:
    model = FlowModel(NOW)
    records, failures = join_message(model.clicks, raw, 0, 1, NOW, model.part)
    assert records == [] and len(failures) == 1
    records, failures, duplicates = customer_message(model.customers, raw, 0, 2, NOW,
                                                     model.part)
    assert records == [] and len(failures) == 1 and duplicates == 0
    folded = count_message(model.counts, b"c", raw, 0, 3, NOW)
    assert not folded.deltas and len(folded.failures) == 1
    assert all(f.reason.startswith("internal error:") for f in folded.failures)
