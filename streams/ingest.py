"""The input stage: raw Kafka messages in, dead letters and per-campaign forwards out.

Pure. The Faust agent hands it a batch of messages and sends what it returns: one
dead-letter record per rejection, and one message per campaign to the repartition topic,
so the aggregating stage sees every event of a campaign on one partition whatever key the
tracker used.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson

from streams.attribution import NO_CLICKS, ClickLookup, attribute
from streams.counts import event_counts
from streams.events import Event, EventType, Rejection, ValidationRules, parse_message

__all__ = ["CustomerHistory", "Forward", "IngestResult", "Ingestor", "RawMessage"]


class RawMessage(NamedTuple):
    """One Kafka message as read from an input topic."""

    topic: str
    partition: int
    offset: int
    value: bytes


Forward = list[Any]
"""[type, event_id, ts_ms, channel, counters]: one accepted event on its way to its campaign."""


@dataclass(slots=True)
class IngestResult:
    """What one batch of input messages turned into."""

    forwards: dict[str, list[Forward]] = field(default_factory=dict)
    dead_letters: list[bytes] = field(default_factory=list)
    invalid: Counter[str] = field(default_factory=Counter)


class CustomerHistory:
    """Customers seen so far; a customer is new on their first order."""

    def __init__(self) -> None:
        self._seen: set[str] = set()

    def is_new(self, order: Event) -> bool:
        """Whether this order is the customer's first (the event's own flag wins)."""
        customer = order.customer_id
        assert customer is not None
        first_seen = customer not in self._seen
        self._seen.add(customer)
        return first_seen if order.new_customer is None else order.new_customer


class Ingestor:
    """Validates, attributes and routes input messages."""

    def __init__(
        self,
        topic_types: Mapping[str, EventType],
        rules: ValidationRules,
        promo_codes: Mapping[str, str],
        clock_ms: Callable[[], int],
        clicks: ClickLookup = NO_CLICKS,
    ) -> None:
        self._topic_types = topic_types
        self._rules = rules
        self._promo_codes = promo_codes
        self._clock_ms = clock_ms
        self._clicks = clicks
        self.customers = CustomerHistory()

    def ingest(self, messages: Iterable[RawMessage]) -> IngestResult:
        """Verdicts for every event of every message, grouped for sending."""
        result = IngestResult()
        now_ms = self._clock_ms()
        for message in messages:
            event_type = self._topic_types[message.topic]
            for verdict in parse_message(message.value, event_type, self._rules, now_ms):
                if isinstance(verdict, Rejection):
                    result.invalid[verdict.type] += 1
                    result.dead_letters.append(dead_letter(verdict, message))
                else:
                    campaign, forward = self._route(verdict)
                    result.forwards.setdefault(campaign, []).append(forward)
        return result

    def _route(self, event: Event) -> tuple[str, Forward]:
        if event.type == "order":
            campaign, channel = attribute(event, self._promo_codes, self._clicks)
            new_customer = self.customers.is_new(event)
        else:
            assert event.campaign_id is not None
            campaign, channel, new_customer = event.campaign_id, event.channel, False
        counts = event_counts(event, new_customer)
        return campaign, [event.type, event.event_id, event.ts_ms, channel, counts]


def dead_letter(rejection: Rejection, message: RawMessage) -> bytes:
    """The dead-letter record of SPEC section 4 (plus ``index`` for an event of a batch)."""
    record: dict[str, Any] = {
        "reason": rejection.reason,
        "topic": message.topic,
        "partition": message.partition,
        "offset": message.offset,
        "raw": rejection.raw,
        "type": rejection.type,
    }
    if rejection.index is not None:
        record["index"] = rejection.index
    return orjson.dumps(record)
