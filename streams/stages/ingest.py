"""The input stage: raw Kafka messages in, dead letters and routed events out.

Pure. The Faust agent hands it a batch of messages and sends what it returns: one
dead-letter record per rejection; counted events grouped per campaign for the
repartition topic, so every event of a campaign meets on one partition whatever key the
tracker used; clicks to remember and orders to attribute, by click id; orders to the
customer stage, by customer id.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson

from streams.attribution.clicks import Click
from streams.attribution.named import UNATTRIBUTED, attribute
from streams.attribution.orders import OrderRoute
from streams.events.validation import Event, EventType, Rejection, ValidationRules, parse_message
from streams.flow.failures import INTERNAL_ERROR, internal_reason
from streams.flow.forwards import ACTION_KINDS, Extra, Forwards
from streams.windows.reach import user_key

__all__ = ["IngestResult", "Ingestor", "RawMessage", "dead_letter"]


class RawMessage(NamedTuple):
    """One Kafka message as read from an input topic."""

    topic: str
    partition: int
    offset: int
    value: bytes


@dataclass(slots=True)
class IngestResult:
    """What one batch of input messages turned into, by where it goes next."""

    forwards: dict[str, Forwards] = field(default_factory=dict)
    """campaign -> counted events (views, engagements, clicks, spend)."""
    clicks: list[tuple[str, Click]] = field(default_factory=list)
    """(click_id, click) to remember for attribution."""
    to_join: list[OrderRoute] = field(default_factory=list)
    """Orders that only a click id can attribute."""
    to_customers: list[OrderRoute] = field(default_factory=list)
    """Orders attributed already, or with nothing to attribute them by."""
    dead_letters: list[bytes] = field(default_factory=list)
    invalid: Counter[str] = field(default_factory=Counter)
    internal_errors: list[tuple[str, int, int, str]] = field(default_factory=list)
    """(topic, partition, offset, reason) of each event that raised, for the log."""


class Ingestor:
    """Validates input messages and routes each event to its next stage."""

    def __init__(
        self,
        topic_types: Mapping[str, EventType],
        rules: ValidationRules,
        promo_codes: Mapping[str, str],
        clock_ms: Callable[[], int],
    ) -> None:
        self._topic_types = topic_types
        self._rules = rules
        self._promo_codes = promo_codes
        self._clock_ms = clock_ms

    def ingest(self, messages: Iterable[RawMessage],
               into: IngestResult | None = None) -> IngestResult:
        """Verdicts for every event of every message, grouped for sending (added to
        ``into`` when given, so a large batch can be handled a piece at a time)."""
        result = IngestResult() if into is None else into
        now_ms = self._clock_ms()
        forwards, clicks = result.forwards, result.clicks
        for message in messages:
            event_type = self._topic_types[message.topic]
            verdicts = _verdicts(message.value, event_type, self._rules, now_ms)
            for index, verdict in enumerate(verdicts):
                try:
                    if type(verdict) is Event and verdict.type != "order":
                        # Inline: this runs once per view, engagement, click and spend.
                        campaign = verdict.campaign_id
                        assert campaign is not None
                        campaign_forwards = forwards.get(campaign)
                        if campaign_forwards is None:
                            campaign_forwards = forwards[campaign] = Forwards()
                        campaign_forwards.add(
                            _kind(verdict), verdict.event_id, verdict.ts_ms, verdict.channel,
                            verdict.value_micros, _extra(verdict))
                        if verdict.click_id is not None:
                            clicks.append((verdict.click_id,
                                           (verdict.ts_ms, campaign, verdict.channel,
                                            verdict.content_type)))
                    elif isinstance(verdict, Rejection):
                        result.invalid[verdict.type] += 1
                        result.dead_letters.append(dead_letter(verdict, message))
                        if verdict.reason.startswith(INTERNAL_ERROR):  # validation raised
                            result.internal_errors.append((message.topic, message.partition,
                                                           message.offset, verdict.reason))
                    else:
                        self._route_order(verdict, result)
                except Exception as exc:  # one event never stops the stage (SPEC 4)
                    failed = Rejection(event_type, internal_reason("the input stage", exc),
                                       _preview(message.value),
                                       index if len(verdicts) > 1 else None)
                    result.invalid[event_type] += 1
                    result.dead_letters.append(dead_letter(failed, message))
                    result.internal_errors.append((message.topic, message.partition,
                                                   message.offset, failed.reason))
        return result

    def event_type(self, topic: str) -> EventType:
        """The type of the events of an input topic."""
        return self._topic_types[topic]

    def _route_order(self, order: Event, result: IngestResult) -> None:
        campaign, channel = attribute(order, self._promo_codes)
        if campaign == UNATTRIBUTED and order.click_id is not None:
            result.to_join.append(OrderRoute.of(order, None, order.channel))
        else:
            result.to_customers.append(OrderRoute.of(order, campaign, channel))


_KINDS: dict[str, str] = {"view": "v", "engagement": "e", "click": "c", "spend": "s"}
"""Kind letter (streams.flow.forwards) of a counted event; a completed view is "V", an
engagement's letter is its action's."""


def _kind(event: Event) -> str:
    if event.type == "view":
        return "V" if event.completed else "v"
    if event.type == "engagement" and event.action is not None:
        return ACTION_KINDS[event.action]
    return _KINDS[event.type]


def _extra(event: Event) -> Extra | None:
    """What a view, engagement or click carries beyond its kind (None: nothing)."""
    if event.user_id is None and event.watch_ms is None and event.content_type is None:
        return None
    return Extra(None if event.user_id is None else user_key(event.user_id), event.watch_ms,
                 event.content_type)


def _verdicts(raw: bytes, event_type: EventType, rules: ValidationRules,
              now_ms: int) -> list[Event | Rejection]:
    """parse_message, and a rejection rather than a crash should it ever raise."""
    try:
        return parse_message(raw, event_type, rules, now_ms)
    except Exception as exc:  # no input may stop the worker
        return [Rejection(event_type, internal_reason("validation", exc), _preview(raw))]


def _preview(raw: bytes) -> str:
    """A message's text for a dead letter about all of it: its first KiB."""
    return raw.decode("utf-8", errors="replace")[:1024]


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
