"""JSON Schemas (draft 2020-12) of the five event types, for tracker authors.

Built from the validator's own limits (streams.events.validation), and held to it by
tests/unit/test_schemas.py, which feeds the same events to both and wants the same
verdict. A few rules of the worker no JSON Schema can state; every schema's
``description`` names them.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from functools import cache
from typing import Any, Final

import orjson

from streams.events.validation import (
    ENGAGEMENT_ACTIONS,
    EVENT_TYPES,
    MAX_BATCH_BYTES,
    MAX_BATCH_EVENTS,
    MAX_EVENT_BYTES,
    MAX_FUTURE_MS,
    MAX_ORDER_ITEMS,
    EventType,
)

__all__ = ["DRAFT", "NOT_EXPRESSIBLE", "event_schema", "schema_json"]

DRAFT: Final = "https://json-schema.org/draft/2020-12/schema"

# Python's re lets "$" match before a final newline; "(?!\n)" closes that gap there
# and is a no-op in ECMA-262, so the patterns mean the same in every validator.
_END: Final = r"$(?!\n)"
_DIGIT: Final = "[0-9]"  # not \d: Python's \d also takes non-ASCII digits
_CAMPAIGN_ID: Final = r"^[A-Za-z0-9._:-]{1,128}" + _END
_NO_CONTROL: Final = r"^[^\x00-\x1f\x7f]*" + _END
_ANY_CURRENCY: Final = r"^[A-Za-z]{3}" + _END
_AMOUNT_DIGITS: Final = 15
"""Amounts must be below 10^15: at most 15 digits before the point."""
_AMOUNT_TEXT: Final = (
    rf"^(?:-0+(?:\.0+)?|0*{_DIGIT}{{1,{_AMOUNT_DIGITS}}}(?:\.{_DIGIT}+)?)" + _END
)
_LEAP_YEAR: Final = (
    rf"(?:{_DIGIT}{{2}}(?:0[48]|[2468][048]|[13579][26])|(?:[02468][048]|[13579][26])00)"
)
_DATE: Final = (
    rf"(?!0000)(?:{_DIGIT}{{4}}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12]{_DIGIT}|3[01])"
    rf"|(?:0[469]|11)-(?:0[1-9]|[12]{_DIGIT}|30)|02-(?:0[1-9]|1{_DIGIT}|2[0-8]))"
    rf"|{_LEAP_YEAR}-02-29)"
)
_TIME: Final = rf"(?:[01]{_DIGIT}|2[0-3]):[0-5]{_DIGIT}:[0-5]{_DIGIT}(?:\.{_DIGIT}+)?"
# The worker takes any offset strictly inside +-24h, minutes up to 99 included.
_OFFSET: Final = rf"(?:[Zz]|[+-](?:(?:[01]{_DIGIT}|2[0-2]):{_DIGIT}{{2}}|23:[0-5]{_DIGIT}))"
_RFC3339: Final = rf"^{_DATE}[Tt ]{_TIME}{_OFFSET}" + _END

NOT_EXPRESSIBLE: Final = (
    f"'ts' may be at most {MAX_FUTURE_MS // 60_000} minutes in the future, by the worker's "
    "clock",
    "'currency' needs a rate in the deployment's [fx] settings "
    "(a schema served by a worker lists the codes it has rates for)",
    f"one event message may be at most {MAX_EVENT_BYTES} bytes of UTF-8 JSON, a batch "
    f"message (a JSON array) at most {MAX_BATCH_BYTES} bytes and {MAX_BATCH_EVENTS} events",
    "'ts', 'watch_ms' and an item's 'quantity' must be written without fraction or "
    "exponent: 1.0 is refused, although JSON Schema calls it an integer",
)
"""Rules the worker applies that no JSON Schema states."""

_SUMMARY: Final[dict[EventType, str]] = {
    "view": "An impression or video view.",
    "engagement": "A like, comment, share, save, follow or profile visit.",
    "click": "A click on the ad's link.",
    "order": "A purchase, or any conversion with a value.",
    "spend": "Money spent on a campaign: an increment, not a running total.",
}


@cache
def _lower_case_pattern() -> str:
    """Strings without control characters and without any character str.lower() changes.

    That is the worker's test (value == value.lower()); JSON Schema has no such keyword, so
    the characters are listed, as ranges, from Python's Unicode database. Literal
    characters, not escapes: \\U is no ECMA-262 and \\u{...} no Python.
    """
    ranges: list[list[int]] = []
    for char in [c for c in map(chr, range(sys.maxunicode + 1)) if c.lower() != c]:
        code = ord(char)
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1][1] = code
        else:
            ranges.append([code, code])
    cased = "".join(chr(a) if a == b else f"{chr(a)}-{chr(b)}" for a, b in ranges)
    return rf"^[^\x00-\x1f\x7f{cased}]*" + _END


def _content_type() -> dict[str, Any]:
    return {
        "type": ["string", "null"], "minLength": 1, "maxLength": 64,
        "pattern": _lower_case_pattern(),
        "description": "The kind of content (tutorial, unboxing, challenge, live, ...): "
                       "lower-case as sent (an upper-case letter is refused, not lowered), "
                       "no control characters; 'unknown' when absent.",
    }


def _text(meaning: str, max_len: int | None = 128) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string", "minLength": 1, "description": meaning}
    if max_len is not None:
        schema["maxLength"] = max_len
    return schema


def _any_text(meaning: str) -> dict[str, Any]:
    return {"type": ["string", "null"], "description": meaning + " An empty string is the "
            "same as leaving the field out."}


def _optional(schema: dict[str, Any], extra_type: str = "null") -> dict[str, Any]:
    kind = schema["type"]
    return {**schema, "type": [kind, extra_type]}


def _amount(meaning: str, *, optional: bool = False) -> dict[str, Any]:
    kinds: list[dict[str, Any]] = [
        {"type": "number", "minimum": 0, "exclusiveMaximum": 10**_AMOUNT_DIGITS},
        {"type": "string", "pattern": _AMOUNT_TEXT},
    ]
    return {
        "description": f"{meaning}: a decimal >= 0 and below 10^{_AMOUNT_DIGITS}, as a JSON "
                       "number or a string (a string keeps every digit).",
        "anyOf": [*kinds, {"type": "null"}] if optional else kinds,
    }


def _items() -> dict[str, Any]:
    line = {
        "type": "object",
        "required": ["product_id", "quantity", "revenue"],
        "properties": {
            "product_id": _text("The product."),
            "quantity": {"type": "integer", "minimum": 1, "description": "Units, 1 or more."},
            "revenue": _amount("The line's revenue, in the order's currency"),
        },
    }
    return {"type": ["array", "null"], "maxItems": MAX_ORDER_ITEMS, "items": line,
            "description": f"The order's lines (at most {MAX_ORDER_ITEMS}), for product "
                           "breakdowns."}


def _currency(currencies: Iterable[str] | None) -> dict[str, Any]:
    if currencies is None:
        return {"type": "string", "pattern": _ANY_CURRENCY,
                "description": "ISO 4217 code, any case; it needs a rate in the [fx] settings."}
    codes = sorted({code.upper() for code in currencies})
    either_case = "|".join("".join(f"[{c}{c.lower()}]" for c in code) for code in codes)
    return {"type": "string", "pattern": f"^(?:{either_case})" + _END,
            "description": "ISO 4217 code, any case, one this deployment has a rate for: "
                           + ", ".join(codes) + "."}


def _common(event_type: EventType) -> dict[str, Any]:
    campaign = {"type": "string", "pattern": _CAMPAIGN_ID,
                "description": "The campaign: 1-128 characters of A-Za-z0-9._:-."}
    return {
        "event_id": _text("Idempotency key: a second delivery of the same id counts once."),
        "ts": {
            "description": "When it happened (event time).",
            "anyOf": [
                {"type": "integer", "minimum": 0, "description": "Epoch milliseconds."},
                {"type": "string", "pattern": _RFC3339,
                 "description": "RFC 3339 with an offset, like 2026-11-23T10:00:00Z."},
            ],
        },
        "campaign_id": _optional(campaign) if event_type == "order" else campaign,
        "channel": {
            "type": ["string", "null"], "minLength": 1, "maxLength": 64,
            "pattern": _NO_CONTROL,
            "description": "Platform or source (tiktok, instagram, ...), lower-cased by the "
                           "worker; 'unknown' when absent.",
        },
    }


def _specific(event_type: EventType, currencies: Iterable[str] | None) -> dict[str, Any]:
    if event_type == "view":
        return {
            "user_id": _optional(_text("The viewer, for reach (unique viewers); any length "
                                       "within the event's 64 KiB.", max_len=None)),
            "completed": {"type": ["boolean", "null"], "description": "Watched to the end."},
            "watch_ms": {"type": ["integer", "null"], "minimum": 0,
                         "description": "Watch time in milliseconds."},
            "content_type": _content_type(),
        }
    if event_type == "engagement":
        return {"action": {"enum": sorted(ENGAGEMENT_ACTIONS),
                           "description": "What the viewer did."},
                "content_type": _content_type()}
    if event_type == "click":
        return {"click_id": _optional(_text(
            "The ad platform's click id (ttclid, gclid, fbclid, ...).")),
                "content_type": _content_type()}
    money = "revenue" if event_type == "order" else "amount"
    fields: dict[str, Any] = {}
    if event_type == "order":
        fields = {
            "order_id": _text("The order."),
            "customer_id": _text("The customer; never exported as a label."),
            "click_id": _any_text("Click id, to attribute the order to its click."),
            "promo_code": _any_text("Promo code, mapped to a campaign by the settings."),
            "new_customer": {"type": ["boolean", "null"],
                             "description": "First order of this customer; if absent the "
                                            "worker decides from the customers it has seen."},
            "cost": _amount("Cost of the goods sold, in the order's currency, for gross "
                            "profit", optional=True),
            "items": _items(),
        }
    meaning = "Order value" if event_type == "order" else "Money spent"
    return {**fields, money: _amount(meaning), "currency": _currency(currencies)}


def _required(event_type: EventType) -> list[str]:
    required = ["event_id", "ts"] + ([] if event_type == "order" else ["campaign_id"])
    extra: dict[EventType, list[str]] = {
        "engagement": ["action"],
        "order": ["order_id", "customer_id", "revenue", "currency"],
        "spend": ["amount", "currency"],
    }
    return required + extra.get(event_type, [])


def event_schema(
    event_type: EventType, currencies: Iterable[str] | None = None
) -> dict[str, Any]:
    """The JSON Schema of one event; with ``currencies``, 'currency' must be one of them."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {event_type!r}; one of {' '.join(EVENT_TYPES)}")
    rules = "; ".join(NOT_EXPRESSIBLE)
    return {
        "$schema": DRAFT,
        "$id": f"urn:kpistream:event:{event_type}",
        "title": f"kpistream {event_type} event",
        "description": (
            f"{_SUMMARY[event_type]} One JSON object per Kafka message, or up to "
            f"{MAX_BATCH_EVENTS} of them in a JSON array. A field set to null counts as "
            "absent; unknown fields are ignored. Rules this schema cannot state, which the "
            f"worker applies too: {rules}."
        ),
        "$comment": "Patterns end in $(?!\\n) rather than $ because Python's re lets $ "
                    "match before a final newline.",
        "type": "object",
        "required": _required(event_type),
        "properties": {**_common(event_type), **_specific(event_type, currencies)},
    }


def schema_json(event_type: EventType, currencies: Iterable[str] | None = None) -> bytes:
    """``event_schema`` as indented JSON, as served at /schemas/<type>.json."""
    return orjson.dumps(event_schema(event_type, currencies), option=orjson.OPT_INDENT_2)
