"""Validation and normalisation of tracker events (SPEC sections 1 and 4), no Kafka."""

from __future__ import annotations

import calendar
from decimal import Decimal
from typing import Any

import orjson
import pytest

from streams.attribution.clicks import ClickBook
from streams.attribution.customers import CustomerBook, Decision
from streams.attribution.named import UNATTRIBUTED, attribute
from streams.attribution.orders import OrderRoute
from streams.events.validation import (
    Event,
    EventType,
    Item,
    Rejection,
    ValidationRules,
    parse_message,
)
from streams.stages.click_records import MemoryClickStore
from streams.stages.ingest import Ingestor, RawMessage
from streams.stages.joining import ClickStage

# 2026-11-23T10:00:00Z, computed without the code under test.
TS_MS = calendar.timegm((2026, 11, 23, 10, 0, 0)) * 1000
NOW_MS = TS_MS + 30 * 60_000
RULES = ValidationRules(
    {"USD": Decimal(1), "EUR": Decimal("1.08"), "IDR": Decimal("0.000063")}
)

VIEW: dict[str, Any] = {
    "event_id": "v-1", "ts": TS_MS, "campaign_id": "summer-sale", "channel": "tiktok",
}
ENGAGEMENT: dict[str, Any] = {**VIEW, "event_id": "e-1", "action": "like"}
CLICK: dict[str, Any] = {**VIEW, "event_id": "c-1", "click_id": "ttclid-77"}
ORDER: dict[str, Any] = {
    "event_id": "o-1", "ts": "2026-11-23T17:03:10+07:00", "order_id": "A100",
    "customer_id": "cust-5", "revenue": "350000", "currency": "IDR",
}
SPEND: dict[str, Any] = {**VIEW, "event_id": "s-1", "amount": 12.5, "currency": "USD"}
BASE: dict[str, dict[str, Any]] = {
    "view": VIEW, "engagement": ENGAGEMENT, "click": CLICK, "order": ORDER, "spend": SPEND,
}
_DROP = object()


def edit(event_type: str, **changes: Any) -> bytes:
    """The base event of a type with fields replaced (or removed with ``_DROP``), as JSON."""
    doc = dict(BASE[event_type])
    for key, value in changes.items():
        if value is _DROP:
            doc.pop(key, None)
        else:
            doc[key] = value
    return orjson.dumps(doc)


def verdicts(raw: bytes, event_type: EventType, now_ms: int = NOW_MS) -> list[Event | Rejection]:
    return parse_message(raw, event_type, RULES, now_ms)


def only(raw: bytes, event_type: EventType, now_ms: int = NOW_MS) -> Event | Rejection:
    result = verdicts(raw, event_type, now_ms)
    assert len(result) == 1, result
    return result[0]


def padded_view(total_bytes: int) -> bytes:
    """A valid view whose JSON text is exactly ``total_bytes`` long."""
    empty = len(edit("view", pad=""))
    raw = edit("view", pad="x" * (total_bytes - empty))
    assert len(raw) == total_bytes
    return raw


def test_the_spec_examples_are_accepted() -> None:
    examples = [
        ("view", b'{"event_id":"v-1","ts":"2026-11-23T10:00:00Z","campaign_id":"summer-sale",'
                 b'"channel":"tiktok","user_id":"u9","completed":true,"watch_ms":14000}'),
        ("click", b'{"event_id":"c-1","ts":1795428060000,"campaign_id":"summer-sale",'
                  b'"channel":"tiktok","click_id":"ttclid-77"}'),
        ("order", b'{"event_id":"o-1","ts":"2026-11-23T17:03:10+07:00","order_id":"A100",'
                  b'"customer_id":"cust-5","revenue":"350000","currency":"IDR",'
                  b'"click_id":"ttclid-77"}'),
        ("spend", b'{"event_id":"s-1","ts":"2026-11-23T10:00:00Z","campaign_id":"summer-sale",'
                  b'"channel":"tiktok","amount":12.5,"currency":"USD"}'),
    ]
    for event_type, raw in examples:
        verdict = only(raw, event_type)  # type: ignore[arg-type]
        assert isinstance(verdict, Event), verdict
        assert verdict.type == event_type


# ---------------------------------------------------------------------------------------
# Bad input: one row per rule. Each reason must name the field and what was wrong, in words
# a tracker author reading the dead letter would search for (compared case-insensitively).
# ---------------------------------------------------------------------------------------
BAD_EVENTS = [
    # not JSON at all
    pytest.param("view", b'{"event_id": "v-1",', ["not valid", "JSON"], id="not-json"),
    # valid JSON shape but a byte that is not UTF-8
    pytest.param("view", edit("view")[:-2] + b'\xff"}', ["UTF-8"], id="not-utf8"),
    # a scalar at top level: neither an event object nor a batch array
    pytest.param("view", b"42", ["object", "array", "number"], id="scalar-number"),
    pytest.param("view", b'"v-1"', ["object", "array", "string"], id="scalar-string"),
    pytest.param("view", b"null", ["object", "array", "null"], id="scalar-null"),
    # an empty batch holds no events
    pytest.param("view", b"[]", ["batch", "empty"], id="empty-batch"),
    # 1,001 events in one batch: over the 1,000 limit
    pytest.param("view", orjson.dumps([VIEW] * 1001), ["1001", "1000"], id="batch-over-1000"),
    # a single event of 64 KiB + 1 byte
    pytest.param("view", padded_view(64 * 1024 + 1), [str(64 * 1024 + 1), "65536"],
                 id="event-over-64KiB"),
    # a batch message over 1 MiB, although each of its events is under 64 KiB
    pytest.param("view", orjson.dumps([orjson.loads(padded_view(60_000))] * 18),
                 ["1048576", "batch"], id="batch-over-1MiB"),
    # event_id missing, too long, wrong type
    pytest.param("view", edit("view", event_id=_DROP), ["'event_id'", "missing"],
                 id="event_id-missing"),
    pytest.param("view", edit("view", event_id="e" * 129), ["'event_id'", "1-128", "129"],
                 id="event_id-too-long"),
    pytest.param("view", edit("view", event_id=""), ["'event_id'", "1-128"],
                 id="event_id-empty"),
    pytest.param("view", edit("view", event_id=7), ["'event_id'", "string"],
                 id="event_id-number"),
    # ts missing, not a date, a float, a bool, negative
    pytest.param("view", edit("view", ts=_DROP), ["'ts'", "missing"], id="ts-missing"),
    pytest.param("view", edit("view", ts="yesterday"), ["'ts'", "yesterday", "RFC 3339"],
                 id="ts-not-a-date"),
    pytest.param("view", edit("view", ts=TS_MS + 0.5), ["'ts'", "integer", str(TS_MS + 0.5)],
                 id="ts-float"),
    pytest.param("view", edit("view", ts=True), ["'ts'", "boolean"], id="ts-bool"),
    pytest.param("view", edit("view", ts=-1), ["'ts'", "negative"], id="ts-negative"),
    pytest.param("view", edit("view", ts=str(TS_MS)), ["'ts'", "RFC 3339"],
                 id="ts-digits-as-string"),
    # ts more than 5 minutes ahead of the worker's clock (by one second)
    pytest.param("view", edit("view", ts=NOW_MS + 5 * 60_000 + 1000), ["'ts'", "future", "300"],
                 id="ts-over-5min-future"),
    # RFC 3339 needs an offset; a local time is ambiguous
    pytest.param("view", edit("view", ts="2026-11-23T10:00:00"), ["'ts'", "offset"],
                 id="ts-without-offset"),
    pytest.param("view", edit("view", ts="2026-11-23"), ["'ts'", "offset"], id="ts-date-only"),
    # a well-formed string that is no real date
    pytest.param("view", edit("view", ts="2026-02-30T10:00:00Z"), ["'ts'", "2026-02-30"],
                 id="ts-impossible-date"),
    # campaign_id with characters outside A-Za-z0-9._:-, too long, missing on a view
    pytest.param("view", edit("view", campaign_id="summer sale!"),
                 ["'campaign_id'", "summer sale!", "A-Za-z0-9._:-"], id="campaign_id-bad-chars"),
    pytest.param("view", edit("view", campaign_id="c" * 129), ["'campaign_id'", "1-128"],
                 id="campaign_id-too-long"),
    pytest.param("view", edit("view", campaign_id=_DROP), ["'campaign_id'", "missing"],
                 id="campaign_id-missing-on-view"),
    pytest.param("click", edit("click", campaign_id=_DROP), ["'campaign_id'", "missing"],
                 id="campaign_id-missing-on-click"),
    pytest.param("spend", edit("spend", campaign_id=_DROP), ["'campaign_id'", "missing"],
                 id="campaign_id-missing-on-spend"),
    # channel too long or not a string
    pytest.param("view", edit("view", channel="c" * 65), ["'channel'", "1-64"],
                 id="channel-too-long"),
    pytest.param("view", edit("view", channel=3), ["'channel'", "string"], id="channel-number"),
    # engagement action missing or not one of the six
    pytest.param("engagement", edit("engagement", action=_DROP),
                 ["'action'", "missing", "like", "profile_visit"], id="action-missing"),
    pytest.param("engagement", edit("engagement", action="dislike"),
                 ["'action'", "dislike", "profile_visit"], id="action-unknown"),
    # order without its required fields
    pytest.param("order", edit("order", order_id=_DROP), ["'order_id'", "missing"],
                 id="order-order_id-missing"),
    pytest.param("order", edit("order", customer_id=_DROP), ["'customer_id'", "missing"],
                 id="order-customer_id-missing"),
    pytest.param("order", edit("order", revenue=_DROP), ["'revenue'", "missing"],
                 id="order-revenue-missing"),
    pytest.param("order", edit("order", currency=_DROP), ["'currency'", "missing"],
                 id="order-currency-missing"),
    # revenue negative, a bool, text that is no number, NaN-like text
    pytest.param("order", edit("order", revenue="-1"), ["'revenue'", "negative"],
                 id="revenue-negative-string"),
    pytest.param("order", edit("order", revenue=-0.01), ["'revenue'", "negative"],
                 id="revenue-negative-number"),
    pytest.param("order", edit("order", revenue=True), ["'revenue'", "decimal", "true"],
                 id="revenue-bool"),
    pytest.param("order", edit("order", revenue="twelve"), ["'revenue'", "decimal", "twelve"],
                 id="revenue-not-numeric"),
    pytest.param("order", edit("order", revenue="NaN"), ["'revenue'", "NaN"], id="revenue-NaN"),
    pytest.param("order", edit("order", revenue="nan"), ["'revenue'", "nan"], id="revenue-nan"),
    pytest.param("order", edit("order", revenue="Infinity"), ["'revenue'", "Infinity"],
                 id="revenue-Infinity"),
    pytest.param("order", edit("order", revenue="-inf"), ["'revenue'", "-inf"],
                 id="revenue-minus-inf"),
    pytest.param("order", edit("order", revenue=[12]), ["'revenue'", "array"],
                 id="revenue-array"),
    # a currency with no [fx] rate, and one that is no ISO code
    pytest.param("order", edit("order", currency="XYZ"), ["currency", "XYZ", "[fx]"],
                 id="currency-without-rate"),
    pytest.param("order", edit("order", currency="dollars"), ["'currency'", "dollars", "ISO"],
                 id="currency-not-a-code"),
    # spend negative or missing its amount
    pytest.param("spend", edit("spend", amount=-5), ["'amount'", "negative"],
                 id="spend-negative"),
    pytest.param("spend", edit("spend", amount=_DROP), ["'amount'", "missing"],
                 id="spend-amount-missing"),
    pytest.param("spend", edit("spend", currency="JPY"), ["JPY", "[fx]"],
                 id="spend-currency-without-rate"),
    # watch_ms negative or not a whole number
    pytest.param("view", edit("view", watch_ms=-1), ["'watch_ms'", "-1", ">= 0"],
                 id="watch_ms-negative"),
    pytest.param("view", edit("view", watch_ms=1.5), ["'watch_ms'", "whole number"],
                 id="watch_ms-fraction"),
    # completed / new_customer must be JSON booleans
    pytest.param("view", edit("view", completed="yes"), ["'completed'", "true or false"],
                 id="completed-string"),
    pytest.param("view", edit("view", completed=1), ["'completed'", "true or false"],
                 id="completed-number"),
    pytest.param("order", edit("order", new_customer="no"), ["'new_customer'", "true or false"],
                 id="new_customer-string"),
    # click_id longer than 128
    pytest.param("click", edit("click", click_id="k" * 129), ["'click_id'", "1-128"],
                 id="click_id-too-long"),
    # content_type: lower-case as sent (refused, not lowered), 1-64, no control characters
    *[pytest.param(t, edit(t, content_type="Tutorial"),
                   ["'content_type'", "Tutorial", "lower-case", '"tutorial"'],
                   id=f"content_type-upper-case-{t}") for t in ("view", "engagement", "click")],
    pytest.param("view", edit("view", content_type="LIVE"), ["'content_type'", "lower-case"],
                 id="content_type-all-capitals"),
    pytest.param("view", edit("view", content_type="ǅ"), ["'content_type'", "lower-case"],
                 id="content_type-title-case-letter"),
    pytest.param("view", edit("view", content_type=""), ["'content_type'", "1-64"],
                 id="content_type-empty"),
    pytest.param("click", edit("click", content_type="t" * 65), ["'content_type'", "1-64"],
                 id="content_type-too-long"),
    pytest.param("engagement", edit("engagement", content_type="live\n"),
                 ["'content_type'", "control"], id="content_type-control-character"),
    pytest.param("view", edit("view", content_type=7), ["'content_type'", "string"],
                 id="content_type-number"),
    # view user_id empty
    pytest.param("view", edit("view", user_id=""), ["'user_id'", "1 or more"],
                 id="user_id-empty"),
    # order cost: like revenue, optional
    pytest.param("order", edit("order", cost="-1"), ["'cost'", "negative"],
                 id="cost-negative-string"),
    pytest.param("order", edit("order", cost=-0.5), ["'cost'", "negative"],
                 id="cost-negative-number"),
    pytest.param("order", edit("order", cost="free"), ["'cost'", "decimal", "free"],
                 id="cost-not-numeric"),
    pytest.param("order", edit("order", cost=True), ["'cost'", "decimal"], id="cost-bool"),
    pytest.param("order", edit("order", cost="1000000000000000"), ["'cost'", "10^15"],
                 id="cost-too-large"),
    # order items: an array of at most 100 {product_id, quantity >= 1, revenue >= 0}
    pytest.param("order", edit("order", items=[{"product_id": f"p{i}", "quantity": 1,
                                                "revenue": "1"} for i in range(101)]),
                 ["'items'", "101", "100"], id="items-101"),
    pytest.param("order", edit("order", items={"product_id": "p1"}),
                 ["'items'", "array", "object"], id="items-not-an-array"),
    pytest.param("order", edit("order", items=[{"product_id": "p1", "quantity": 1,
                                                "revenue": "1"}, "p2"]),
                 ["'items[1]'", "object", "string"], id="items-line-not-an-object"),
    pytest.param("order", edit("order", items=[{"quantity": 2, "revenue": "5"}]),
                 ["'items[0].product_id'", "missing"], id="items-without-product_id"),
    pytest.param("order", edit("order", items=[{"product_id": "p" * 129, "quantity": 2,
                                                "revenue": "5"}]),
                 ["'items[0].product_id'", "1-128", "129"], id="items-product_id-too-long"),
    pytest.param("order", edit("order", items=[{"product_id": 12, "quantity": 2,
                                                "revenue": "5"}]),
                 ["'items[0].product_id'", "string"], id="items-product_id-number"),
    pytest.param("order", edit("order", items=[
        {"product_id": "p1", "quantity": 1, "revenue": "1"}, {"product_id": "p2",
        "quantity": 1, "revenue": "1"}, {"product_id": "p3", "quantity": 1, "revenue": "1"},
        {"product_id": "p4", "quantity": 0, "revenue": "1"}]),
                 ["field 'items[3].quantity' must be a whole number >= 1, got 0"],
                 id="items-quantity-0"),
    pytest.param("order", edit("order", items=[{"product_id": "p", "quantity": 1.5,
                                                "revenue": "5"}]),
                 ["'items[0].quantity'", "whole number", "1.5"], id="items-quantity-fraction"),
    pytest.param("order", edit("order", items=[{"product_id": "p", "quantity": True,
                                                "revenue": "5"}]),
                 ["'items[0].quantity'", "whole number"], id="items-quantity-bool"),
    pytest.param("order", edit("order", items=[{"product_id": "p", "revenue": "5"}]),
                 ["'items[0].quantity'", "missing"], id="items-quantity-missing"),
    pytest.param("order", edit("order", items=[{"product_id": "p", "quantity": 1,
                                                "revenue": "-5"}]),
                 ["'items[0].revenue'", "negative"], id="items-revenue-negative"),
    pytest.param("order", edit("order", items=[{"product_id": "p", "quantity": 1}]),
                 ["'items[0].revenue'", "missing"], id="items-revenue-missing"),
    pytest.param("order", edit("order", items=[{"product_id": "p", "quantity": 1,
                                                "revenue": "NaN"}]),
                 ["'items[0].revenue'", "NaN"], id="items-revenue-NaN"),
]


@pytest.mark.parametrize(("event_type", "raw", "words"), BAD_EVENTS)
def test_bad_event_is_rejected_with_a_reason_naming_the_problem(
    event_type: EventType, raw: bytes, words: list[str]
) -> None:
    verdict = only(raw, event_type)
    assert isinstance(verdict, Rejection), verdict
    assert verdict.type == event_type
    for word in words:
        assert word.lower() in verdict.reason.lower(), (word, verdict.reason)


def test_single_event_rejection_keeps_the_raw_text_for_the_dead_letter() -> None:
    raw = edit("view", event_id=_DROP)
    verdict = only(raw, "view")
    assert isinstance(verdict, Rejection)
    assert verdict.raw == raw.decode()
    assert verdict.index is None


def test_whole_batch_rejection_has_no_index() -> None:
    verdict = only(orjson.dumps([VIEW] * 1001), "view")
    assert isinstance(verdict, Rejection)
    assert verdict.index is None


def test_order_without_campaign_id_is_accepted_for_attribution() -> None:
    verdict = only(edit("order", campaign_id=_DROP), "order")
    assert isinstance(verdict, Event)
    assert verdict.campaign_id is None


def test_order_with_a_bad_campaign_id_is_still_rejected() -> None:
    verdict = only(edit("order", campaign_id="bad id"), "order")
    assert isinstance(verdict, Rejection)
    assert "'campaign_id'" in verdict.reason


# --- limits: the values exactly at the limit are accepted -----------------------------------

def test_event_of_exactly_64_kib_is_accepted() -> None:
    assert isinstance(only(padded_view(64 * 1024), "view"), Event)


def test_batch_of_exactly_1000_events_is_accepted() -> None:
    batch = [{**VIEW, "event_id": f"v-{i}"} for i in range(1000)]
    result = verdicts(orjson.dumps(batch), "view")
    assert len(result) == 1000
    assert all(isinstance(v, Event) for v in result)
    assert [v.event_id for v in result if isinstance(v, Event)] == [e["event_id"] for e in batch]


def test_ts_exactly_5_minutes_ahead_is_accepted() -> None:
    verdict = only(edit("view", ts=NOW_MS + 5 * 60_000), "view")
    assert isinstance(verdict, Event)


def test_ts_in_the_past_is_accepted_however_late() -> None:
    verdict = only(edit("view", ts=NOW_MS - 30 * 24 * 3600 * 1000), "view")
    assert isinstance(verdict, Event)


def test_batch_with_one_bad_event_keeps_the_good_ones() -> None:
    batch = [
        {**ORDER, "event_id": "o-1"},
        {**ORDER, "event_id": "o-2", "revenue": "-3"},
        {**ORDER, "event_id": "o-3"},
        "not an object",
    ]
    result = verdicts(orjson.dumps(batch), "order")
    assert len(result) == 4
    good = [v for v in result if isinstance(v, Event)]
    bad = [v for v in result if isinstance(v, Rejection)]
    assert [e.event_id for e in good] == ["o-1", "o-3"]
    assert [r.index for r in bad] == [1, 3]
    assert "'revenue'" in bad[0].reason and "negative" in bad[0].reason
    assert "object" in bad[1].reason
    # the dead letter of one element carries that element, not the whole batch
    assert orjson.loads(bad[0].raw) == batch[1]


# Found by these tests and fixed since: a hostile 'action' type raised TypeError.
@pytest.mark.parametrize("action", [["like"], {"kind": "like"}, 1, True])
def test_engagement_action_of_a_wrong_json_type_is_rejected(action: object) -> None:
    verdict = only(edit("engagement", action=action), "engagement")
    assert isinstance(verdict, Rejection)
    assert "'action'" in verdict.reason
    assert "profile_visit" in verdict.reason


# Found by these tests and fixed since: only the 1 MiB limit applied inside a batch.
@pytest.mark.parametrize(("size", "accepted"), [
    (64 * 1024, True),  # exactly 64 KiB: in
    (64 * 1024 + 1, False),  # one byte more: out, and only that element
])
def test_64_kib_limit_applies_to_each_event_of_a_batch(size: int, accepted: bool) -> None:
    big = orjson.loads(padded_view(size))
    result = verdicts(orjson.dumps([VIEW, big, VIEW]), "view")
    assert [isinstance(v, Event) for v in result] == [True, accepted, True]
    if not accepted:
        rejection = result[1]
        assert isinstance(rejection, Rejection)
        assert rejection.index == 1
        assert str(size) in rejection.reason and "65536" in rejection.reason


# Found by these tests and fixed since: the conversion overflowed the Decimal context and
# parse_message raised InvalidOperation.
def test_large_amount_at_a_large_rate_is_converted_exactly() -> None:
    # Reporting in IDR with a BTC rate: both accepted by the settings.
    rules = ValidationRules({"IDR": Decimal(1), "BTC": Decimal("1600000000")})
    raw = edit("spend", amount="999999999999999", currency="BTC")
    [verdict] = parse_message(raw, "spend", rules, NOW_MS)
    assert isinstance(verdict, Event)
    assert verdict.value_micros == 999_999_999_999_999 * 1_600_000_000 * 1_000_000


def test_amount_beyond_any_sane_conversion_is_rejected_not_raised() -> None:
    rules = ValidationRules({"USD": Decimal(1), "XAU": Decimal("1E+400")})
    [verdict] = parse_message(edit("spend", amount="12", currency="XAU"), "spend", rules,
                              NOW_MS)
    assert isinstance(verdict, Rejection)
    assert "'amount'" in verdict.reason and "XAU" in verdict.reason


# ---------------------------------------------------------------------------------------
# Good input: normalisation. Times to epoch ms, channel lower-cased, money to millionths of
# the reporting currency (rates: EUR 1.08, IDR 0.000063), rounded half to even.
# ---------------------------------------------------------------------------------------
GOOD_EVENTS = [
    # both forms of ts give the same millisecond
    pytest.param("view", {"ts": TS_MS}, {"ts_ms": TS_MS}, id="ts-epoch-ms"),
    pytest.param("view", {"ts": "2026-11-23T10:00:00Z"}, {"ts_ms": TS_MS}, id="ts-Z"),
    pytest.param("view", {"ts": "2026-11-23t10:00:00z"}, {"ts_ms": TS_MS}, id="ts-lowercase"),
    pytest.param("view", {"ts": "2026-11-23T10:00:00+00:00"}, {"ts_ms": TS_MS},
                 id="ts-plus-zero"),
    pytest.param("view", {"ts": "2026-11-23T17:00:00+07:00"}, {"ts_ms": TS_MS},
                 id="ts-plus-7"),
    pytest.param("view", {"ts": "2026-11-23T05:30:00-04:30"}, {"ts_ms": TS_MS},
                 id="ts-minus-4h30"),
    pytest.param("view", {"ts": "2026-11-24T00:00:00+14:00"}, {"ts_ms": TS_MS},
                 id="ts-next-day-offset"),
    # fractional seconds
    pytest.param("view", {"ts": "2026-11-23T10:00:00.250Z"}, {"ts_ms": TS_MS + 250},
                 id="ts-millis"),
    pytest.param("view", {"ts": "2026-11-23T17:00:00.5+07:00"}, {"ts_ms": TS_MS + 500},
                 id="ts-one-digit-fraction-with-offset"),
    pytest.param("view", {"ts": "2026-11-23T10:00:00.123456Z"}, {"ts_ms": TS_MS + 123},
                 id="ts-micros"),
    # the SPEC's order example: 17:03:10 at +07:00
    pytest.param("order", {}, {"ts_ms": TS_MS + 3 * 60_000 + 10_000}, id="ts-spec-order"),
    # channel: default and lower-casing
    pytest.param("view", {"channel": _DROP}, {"channel": "unknown"}, id="channel-default"),
    pytest.param("view", {"channel": "TikTok"}, {"channel": "tiktok"}, id="channel-lowered"),
    pytest.param("view", {"channel": "YOUTUBE"}, {"channel": "youtube"}, id="channel-upper"),
    # view flags
    pytest.param("view", {}, {"completed": False}, id="completed-default"),
    pytest.param("view", {"completed": True, "watch_ms": 0}, {"completed": True},
                 id="completed-true"),
    # money: 350000 IDR at 0.000063 = 22.05 USD
    pytest.param("order", {"revenue": "350000"}, {"value_micros": 22_050_000},
                 id="idr-string"),
    pytest.param("order", {"revenue": 350000}, {"value_micros": 22_050_000}, id="idr-number"),
    # 12.5 as JSON number or string
    pytest.param("spend", {"amount": 12.5}, {"value_micros": 12_500_000}, id="usd-number"),
    pytest.param("spend", {"amount": "12.5"}, {"value_micros": 12_500_000}, id="usd-string"),
    # a binary-inexact JSON number keeps its decimal value
    pytest.param("spend", {"amount": 19.99}, {"value_micros": 19_990_000}, id="usd-19.99"),
    pytest.param("spend", {"amount": 0.1}, {"value_micros": 100_000}, id="usd-0.1"),
    pytest.param("order", {"revenue": 10, "currency": "EUR"}, {"value_micros": 10_800_000},
                 id="eur"),
    pytest.param("order", {"revenue": "0", "currency": "USD"}, {"value_micros": 0},
                 id="zero-revenue"),
    # half to even at the millionth: 0.5 -> 0, 1.5 -> 2, 2.5 -> 2
    pytest.param("spend", {"amount": "0.0000005"}, {"value_micros": 0}, id="half-even-0.5"),
    pytest.param("spend", {"amount": "0.0000015"}, {"value_micros": 2}, id="half-even-1.5"),
    pytest.param("spend", {"amount": "0.0000025"}, {"value_micros": 2}, id="half-even-2.5"),
    pytest.param("spend", {"amount": "0.0000026"}, {"value_micros": 3}, id="above-half"),
    # IDR: 1.5 * 63 = 94.5 -> 94; 0.5 * 63 = 31.5 -> 32
    pytest.param("order", {"revenue": "1.5"}, {"value_micros": 94}, id="half-even-idr-down"),
    pytest.param("order", {"revenue": "0.5"}, {"value_micros": 32}, id="half-even-idr-up"),
    # order fields kept for attribution and new-customer logic
    pytest.param("order", {"promo_code": "SUMMER10", "click_id": "k-1", "new_customer": False},
                 {"promo_code": "SUMMER10", "click_id": "k-1", "new_customer": False,
                  "customer_id": "cust-5", "campaign_id": None}, id="order-fields"),
    pytest.param("order", {}, {"new_customer": None}, id="new_customer-absent"),
    pytest.param("click", {}, {"click_id": "ttclid-77", "campaign_id": "summer-sale"},
                 id="click-fields"),
    # the new fields (issue 15): kept as sent; absent ones are None
    pytest.param("view", {"user_id": "u9", "watch_ms": 14000, "content_type": "tutorial"},
                 {"user_id": "u9", "watch_ms": 14000, "content_type": "tutorial"},
                 id="view-new-fields"),
    pytest.param("view", {"watch_ms": 0, "user_id": "ü" * 5000},
                 {"watch_ms": 0, "user_id": "ü" * 5000}, id="view-watch-0-long-user"),
    pytest.param("view", {}, {"user_id": None, "watch_ms": None, "content_type": None,
                              "action": None}, id="view-new-fields-absent"),
    pytest.param("view", {"content_type": "vidéo_ß-2"}, {"content_type": "vidéo_ß-2"},
                 id="content_type-lower-case-non-ascii"),
    pytest.param("engagement", {"action": "follow", "content_type": "live"},
                 {"action": "follow", "content_type": "live", "user_id": None},
                 id="engagement-new-fields"),
    pytest.param("engagement", {"action": "profile_visit"},
                 {"action": "profile_visit", "content_type": None}, id="engagement-action"),
    pytest.param("click", {"content_type": "unboxing"}, {"content_type": "unboxing"},
                 id="click-content_type"),
    pytest.param("order", {}, {"cost_micros": None, "items": None, "content_type": None},
                 id="order-without-cost-and-items"),
    # cost and item revenue in the order's currency, converted like revenue:
    # 200000 IDR at 0.000063 = 12.6 USD; 1.5 IDR = 94.5 micros -> 94, 0.5 IDR -> 32
    pytest.param("order", {"cost": "200000"}, {"cost_micros": 12_600_000}, id="cost-idr"),
    pytest.param("order", {"cost": 0}, {"cost_micros": 0}, id="cost-zero"),
    pytest.param("order", {"cost": 10, "revenue": 12.5, "currency": "EUR"},
                 {"cost_micros": 10_800_000, "value_micros": 13_500_000}, id="cost-eur"),
    pytest.param("order", {"items": []}, {"items": ()}, id="items-empty"),
    pytest.param("order", {"items": [
        {"product_id": "sku-1", "quantity": 2, "revenue": "300000"},
        {"product_id": "sku-2", "quantity": 1, "revenue": 50000, "name": "ignored"},
        {"product_id": "sku-3", "quantity": 7, "revenue": "1.5"},
        {"product_id": "sku-3", "quantity": 1, "revenue": "0.5"},
    ]}, {"items": (Item("sku-1", 2, 18_900_000), Item("sku-2", 1, 3_150_000),
                   Item("sku-3", 7, 94), Item("sku-3", 1, 32))}, id="items-idr"),
    pytest.param("order", {"currency": "usd", "revenue": "999999999999999.999999",
                           "items": [{"product_id": "p" * 128, "quantity": 2**64 - 1,
                                      "revenue": "999999999999999.999999"}] * 100},
                 {"items": (Item("p" * 128, 2**64 - 1, 999_999_999_999_999_999_999),) * 100},
                 id="items-at-every-limit"),
]


@pytest.mark.parametrize(("event_type", "changes", "expected"), GOOD_EVENTS)
def test_good_event_is_normalised(
    event_type: EventType, changes: dict[str, Any], expected: dict[str, Any]
) -> None:
    verdict = only(edit(event_type, **changes), event_type)
    assert isinstance(verdict, Event), verdict
    assert verdict.type == event_type
    for name, value in expected.items():
        assert getattr(verdict, name) == value, name


@pytest.mark.parametrize("event_type", ["view", "engagement", "click", "order", "spend"])
def test_unknown_extra_fields_are_ignored(event_type: EventType) -> None:
    plain = only(edit(event_type), event_type)
    extra = only(edit(event_type, utm_source="newsletter", extra={"nested": [1, None, True]},
                      score=3.5), event_type)
    assert isinstance(plain, Event)
    assert extra == plain


def test_every_engagement_action_is_accepted() -> None:
    for action in ["like", "comment", "share", "save", "follow", "profile_visit"]:
        assert isinstance(only(edit("engagement", action=action), "engagement"), Event)


# ---------------------------------------------------------------------------------------
# Attribution (SPEC 1): campaign_id, then promo code, then click id, then unattributed.
# ---------------------------------------------------------------------------------------
PROMOS = {"SUMMER10": "summer-sale"}
DAY_MS = 24 * 3600 * 1000
WEEK_MS = 7 * DAY_MS
GRACE_MS = 60_000


def order_event(**changes: Any) -> Event:
    verdict = only(edit("order", **changes), "order")
    assert isinstance(verdict, Event), verdict
    return verdict


def order_route(ts_ms: int, click_id: str = "ttclid-77", event_id: str = "o-1") -> OrderRoute:
    event = order_event(ts=ts_ms, click_id=click_id, event_id=event_id, channel="web")
    return OrderRoute.of(event, None, event.channel)


ATTRIBUTION = [
    # its own campaign_id beats the promo code
    pytest.param({"campaign_id": "own", "promo_code": "SUMMER10", "channel": "Email"},
                 ("own", "email"), id="campaign_id-first"),
    # a configured promo code
    pytest.param({"promo_code": "SUMMER10", "click_id": "ttclid-77"}, ("summer-sale", "unknown"),
                 id="promo-code"),
    # a promo code nobody configured
    pytest.param({"promo_code": "NOPE"}, (UNATTRIBUTED, "unknown"), id="unknown-promo"),
    # nothing to go by
    pytest.param({}, (UNATTRIBUTED, "unknown"), id="nothing"),
]


@pytest.mark.parametrize(("changes", "expected"), ATTRIBUTION)
def test_attribution_by_the_orders_own_fields(
    changes: dict[str, Any], expected: tuple[str, str]
) -> None:
    assert attribute(order_event(**changes), PROMOS) == expected


CLICK_TS = TS_MS - 8 * DAY_MS
CLICK_JOIN = [
    # an order an hour after its click takes the click's campaign and channel
    pytest.param(CLICK_TS + 3_600_000, ("click-campaign", "tiktok"), id="hour-after"),
    # at the same millisecond as the click
    pytest.param(CLICK_TS, ("click-campaign", "tiktok"), id="same-ms"),
    # exactly the attribution window after the click: still inside
    pytest.param(CLICK_TS + WEEK_MS, ("click-campaign", "tiktok"), id="window-edge"),
    # one millisecond past the window: the click cannot claim it
    pytest.param(CLICK_TS + WEEK_MS + 1, None, id="past-window"),
    # an order before its click was not caused by it
    pytest.param(CLICK_TS - 1, None, id="before-click"),
]


@pytest.mark.parametrize(("order_ts", "expected"), CLICK_JOIN)
def test_click_claims_an_order_inside_the_attribution_window(
    order_ts: int, expected: tuple[str, str] | None
) -> None:
    book = ClickBook(WEEK_MS, GRACE_MS)
    book.remember("ttclid-77", (CLICK_TS, "click-campaign", "tiktok", None), 1)
    joined = book.join(order_route(order_ts), NOW_MS)
    if expected is None:
        assert joined is None
    else:
        assert joined is not None
        assert (joined.campaign, joined.channel) == expected


def test_order_read_before_its_click_waits_for_it() -> None:
    book = ClickBook(WEEK_MS, GRACE_MS)
    assert book.join(order_route(TS_MS), NOW_MS) is None
    released = book.remember("ttclid-77", (TS_MS - 1000, "click-campaign", "tiktok", None), 1)
    assert [(o.event_id, o.campaign, o.channel) for o in released] == [
        ("o-1", "click-campaign", "tiktok")
    ]
    assert book.due(NOW_MS + 10 * GRACE_MS, 2)[0] == []  # released once, not again


def test_order_without_its_click_goes_on_unattributed_after_the_grace() -> None:
    book = ClickBook(WEEK_MS, GRACE_MS)
    assert book.join(order_route(TS_MS), NOW_MS) is None
    assert book.due(NOW_MS + GRACE_MS - 1, 2) == ([], set())
    released, touched = book.due(NOW_MS + GRACE_MS, 2)
    assert [(o.event_id, o.campaign, o.channel) for o in released] == [
        ("o-1", UNATTRIBUTED, "web")
    ]
    assert touched == {"ttclid-77"}
    # released once only
    assert book.due(NOW_MS + 2 * GRACE_MS, 3)[0] == []


def test_clicks_are_forgotten_after_the_attribution_window() -> None:
    store = MemoryClickStore()
    stage = ClickStage(store, {}, WEEK_MS, GRACE_MS)
    stage.remember("old", (NOW_MS - WEEK_MS - 1, "a", "tiktok", None), 0, 1)
    stage.end_message(0, 1)
    stage.remember("edge", (NOW_MS - WEEK_MS, "a", "tiktok", None), 0, 2)
    stage.remember("recent", (NOW_MS - 1000, "b", "tiktok", None), 0, 2)
    stage.end_message(0, 2)
    stage.tick(0, NOW_MS, 3)
    book = stage.books[0]
    assert book.click("old") is None and list(store) == [(0, 2)]  # its record is gone
    # a click exactly the window old still claims an order
    assert book.click("edge") == (NOW_MS - WEEK_MS, "a", "tiktok", None)
    assert book.click("recent") == (NOW_MS - 1000, "b", "tiktok", None)
    stage.tick(0, NOW_MS + 1, 4)
    assert book.click("edge") is None and book.click("recent") is not None


# ---------------------------------------------------------------------------------------
# New customers (SPEC 1): new on their first order ever by event time, unless flagged.
# ---------------------------------------------------------------------------------------
def customer_order(event_id: str, ts_ms: int, campaign: str = "a", customer: str = "c1",
                   new_customer: bool | None = None) -> OrderRoute:
    return OrderRoute(event_id, ts_ms, customer, new_customer, 1_000_000, campaign, "web", None)


def book() -> CustomerBook:
    return CustomerBook(DAY_MS)


def test_first_order_of_a_customer_is_new_and_the_next_is_not() -> None:
    customers = book()
    assert customers.decide(customer_order("o-1", TS_MS), 0, 1, NOW_MS) == Decision(
        "counted", True, None)
    assert customers.decide(customer_order("o-2", TS_MS + 1000), 0, 2, NOW_MS) == Decision(
        "counted", False, None)
    assert customers.decide(customer_order("o-3", TS_MS, customer="c2"), 0, 3, NOW_MS) == (
        Decision("counted", True, None))


def test_earlier_order_read_late_takes_the_new_customer_back_from_the_later_one() -> None:
    customers = book()
    assert customers.decide(customer_order("o-2", TS_MS + 60_000, campaign="b"), 0, 1,
                            NOW_MS).is_new
    decision = customers.decide(customer_order("o-1", TS_MS, campaign="a"), 0, 2, NOW_MS)
    assert decision.is_new
    assert decision.retraction == ("b", "web", TS_MS + 60_000, "o-2")


def test_the_orders_own_new_customer_flag_decides() -> None:
    customers = book()
    assert not customers.decide(customer_order("o-1", TS_MS, new_customer=False), 0, 1,
                                NOW_MS).is_new
    assert customers.decide(customer_order("o-2", TS_MS + 1, new_customer=True), 0, 2,
                            NOW_MS).is_new


def test_second_delivery_of_an_order_is_a_duplicate_and_a_replay_repeats_the_decision() -> None:
    customers = book()
    first = customers.decide(customer_order("o-1", TS_MS), 3, 10, NOW_MS)
    assert first == Decision("counted", True, None)
    # the same order in another message: a second delivery
    assert customers.decide(customer_order("o-1", TS_MS), 3, 11, NOW_MS).kind == "duplicate"
    # the same message read again after a crash: the same decision again
    assert customers.decide(customer_order("o-1", TS_MS), 3, 10, NOW_MS) == Decision(
        "replayed", True, None)


# ---------------------------------------------------------------------------------------
# Ingestor: messages in, dead letters (SPEC 4 shape) and routed events out.
# ---------------------------------------------------------------------------------------
TOPICS: dict[str, EventType] = {
    "marketing.views": "view", "marketing.engagements": "engagement",
    "marketing.clicks": "click", "marketing.orders": "order", "marketing.spend": "spend",
}


def ingestor() -> Ingestor:
    return Ingestor(TOPICS, RULES, PROMOS, clock_ms=lambda: NOW_MS)


def test_ingestor_dead_letter_has_the_spec_fields() -> None:
    raw = edit("spend", amount=-1)
    result = ingestor().ingest([RawMessage("marketing.spend", 3, 41, raw)])
    assert result.forwards == {}
    assert result.invalid == {"spend": 1}
    [letter] = result.dead_letters
    record = orjson.loads(letter)
    assert record["topic"] == "marketing.spend"
    assert record["partition"] == 3
    assert record["offset"] == 41
    assert record["raw"] == raw.decode()
    assert "'amount'" in record["reason"] and "negative" in record["reason"]


def test_ingestor_whole_message_rejection_is_one_dead_letter() -> None:
    result = ingestor().ingest([RawMessage("marketing.views", 1, 2, b"not json")])
    assert result.invalid == {"view": 1}
    [letter] = result.dead_letters
    record = orjson.loads(letter)
    assert record["raw"] == "not json"
    assert "index" not in record


def test_ingestor_routes_each_event_to_its_next_stage() -> None:
    orders = [
        {**ORDER, "event_id": "o-1", "campaign_id": "a"},
        {**ORDER, "event_id": "o-2", "currency": "XYZ"},
        {**ORDER, "event_id": "o-3", "promo_code": "SUMMER10"},
        {**ORDER, "event_id": "o-4", "click_id": "k-9"},
        {**ORDER, "event_id": "o-5", "click_id": _DROP},
    ]
    orders = [{k: v for k, v in o.items() if v is not _DROP} for o in orders]
    messages = [
        RawMessage("marketing.orders", 0, 7, orjson.dumps(orders)),
        RawMessage("marketing.views", 0, 1, edit("view")),
        RawMessage("marketing.clicks", 0, 1, edit("click", campaign_id="b", channel="YouTube")),
    ]
    result = ingestor().ingest(messages)
    # the bad order: one dead letter naming its index in the batch
    assert result.invalid == {"order": 1}
    [letter] = result.dead_letters
    record = orjson.loads(letter)
    assert (record["index"], record["offset"]) == (1, 7)
    assert orjson.loads(record["raw"]) == orders[1]
    assert "XYZ" in record["reason"]
    # counted events by campaign; the click is also remembered for attribution
    assert {c: [f[1] for f in fs] for c, fs in result.forwards.items()} == {
        "summer-sale": ["v-1"], "b": ["c-1"]}
    assert result.clicks == [("ttclid-77", (TS_MS, "b", "youtube", None))]
    # orders: attributed already, or waiting for their click
    assert [(o.event_id, o.campaign) for o in result.to_customers] == [
        ("o-1", "a"), ("o-3", "summer-sale"), ("o-5", UNATTRIBUTED)]
    assert [(o.event_id, o.click_id) for o in result.to_join] == [("o-4", "k-9")]
