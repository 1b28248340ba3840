"""One internal message through its stage: raw bytes in, records to send on and failures out.

Pure: the agents (streams.worker.agents) and the unit tests' flow model call exactly these, so the
tests drive the code the worker runs. Nothing here raises for any message: what cannot be
read or handled comes back as a Failure, to be dead-lettered.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from streams.attribution.orders import OrderRoute
from streams.flow.failures import Failure, internal_reason
from streams.flow.forwards import Forwards, MalformedForwards
from streams.stages.aggregate import Folded
from streams.stages.counting import CountStage
from streams.stages.customer_history import CustomerStage
from streams.stages.joining import ClickStage
from streams.stages.outgoing import Outgoing, counted, orders

__all__ = ["count_message", "customer_message", "join_message"]

Partitioner = Callable[[str], int]


def join_message(stage: ClickStage, raw: bytes | None, partition: int, offset: int,
                 now_ms: int, partition_of: Partitioner) -> tuple[list[Outgoing], list[Failure]]:
    """A click-join message (clicks to remember, orders to join, or a tick's ``[]``)."""
    items, failures = _list(raw, "the click join", "unknown")
    released, failed = stage.handle_message(items, partition, offset, now_ms)
    return orders(released, partition_of), [*failures, *failed]


def customer_message(stage: CustomerStage, raw: bytes | None, partition: int, offset: int,
                     now_ms: int, partition_of: Partitioner,
                     ) -> tuple[list[Outgoing], list[Failure], int]:
    """A customer-orders message: records for the counting stage, failures, duplicates."""
    wires, failures = _list(raw, "the customer stage", "order")
    routes = []
    for index, wire in enumerate(wires):
        try:
            routes.append(OrderRoute.from_wire(wire))
        except Exception as exc:
            failures.append(Failure("order", internal_reason("the customer stage", exc),
                                    orjson.dumps(wire).decode("utf-8"), index))
    forwards, duplicates = stage.handle(routes, partition, offset, now_ms, failures)
    records = [record for campaign, campaign_forwards in forwards.items()
               for record in counted(campaign, campaign_forwards, partition_of)]
    return records, failures, duplicates


def count_message(stage: CountStage, key: bytes | None, raw: bytes | None, partition: int,
                  offset: int, now_ms: int) -> Folded:
    """A kpi-events message, counted; one that cannot be read is one failure. A message
    with neither key nor value is a tick (streams.stages.outgoing.ticks)."""
    if key is None and not raw:
        stage.tick(partition, now_ms)
        return Folded()
    try:
        forwards = Forwards.from_wire(raw or b"")
        campaign = (key or b"").decode("utf-8")
    except (MalformedForwards, UnicodeDecodeError) as exc:
        return Folded(failures=[Failure("unknown", internal_reason("the counting stage", exc),
                                        _preview(raw))])
    return stage.handle(campaign, forwards, partition, offset, now_ms)


def _list(raw: bytes | None, stage: str, event_type: str) -> tuple[list[Any], list[Failure]]:
    """A message's JSON array, or nothing and one failure."""
    try:
        items = orjson.loads(raw or b"")
    except orjson.JSONDecodeError:
        items = None
    if isinstance(items, list):
        return items, []
    return [], [Failure(event_type, f"internal error: {stage} got a message that is not a "
                        "JSON array", _preview(raw))]


def _preview(raw: bytes | None) -> str:
    return (raw or b"").decode("utf-8", errors="replace")[:1024]
