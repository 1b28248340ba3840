"""The fast path of parse_message gives exactly the verdicts of the precise rules alone.

parse_message(..., fast=False) is the reference: the precise, reason-giving code the fast
path falls back to. Every verdict is compared by repr, so a 1 for a True, a float for an
int or a differently worded reason shows up, not only what == sees.
"""

from __future__ import annotations

import calendar
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import (
    HealthCheck,
    currently_in_test_context,
    event,
    example,
    given,
    settings,
)
from hypothesis import strategies as st

from bench.workload import FX, TOPIC_KEYS, make_workload
from streams.events import validation as events
from streams.events.validation import (
    ENGAGEMENT_ACTIONS,
    EVENT_TYPES,
    MAX_EVENT_BYTES,
    MAX_FUTURE_MS,
    Event,
    EventType,
    ValidationRules,
    parse_message,
)

NOW_MS = calendar.timegm((2026, 11, 23, 10, 30, 15)) * 1000 + 250
RULES = ValidationRules({"USD": Decimal(1), "EUR": Decimal("1.08"), "IDR": Decimal("0.000063")})
_EPOCH = datetime(1970, 1, 1)
_MIN_MS = -62_135_596_800_000  # 0001-01-01T00:00:00Z
_MAX_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z


def same_as_reference(raw: bytes, event_type: EventType, now_ms: int = NOW_MS) -> list[Any]:
    """Assert the fast and the precise verdicts are identical; return them."""
    reference = parse_message(raw, event_type, RULES, now_ms, fast=False)
    # Twice: the first call may fill a cache that the second then hits.
    for _ in range(2):
        fast = parse_message(raw, event_type, RULES, now_ms)
        assert [repr(v) for v in fast] == [repr(v) for v in reference], raw
        assert fast == reference
        assert [type(v) for v in fast] == [type(v) for v in reference]
    if currently_in_test_context():  # outcomes seen: pytest --hypothesis-show-statistics
        for verdict in reference:
            event(f"{event_type} {type(verdict).__name__}")
    return reference


# --- strategies: a valid-looking event, then a field or two made subtly wrong ----------------

JSON_INTS = st.integers(-(2**63), 2**64 - 1)
"""What orjson reads and writes as a JSON integer."""
ODD = st.one_of(
    st.none(), st.booleans(), JSON_INTS, st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=6), st.lists(JSON_INTS, max_size=2),
    st.dictionaries(st.text(max_size=3), JSON_INTS, max_size=2),
)
"""Any JSON value: a wrong type for every field, unhashable ones included."""


def lengths(char: str, sizes: tuple[int, ...]) -> st.SearchStrategy[str]:
    return st.sampled_from(sizes).map(lambda n: char * n)


OK_TEXT = (1, 2, 127, 128)
BAD_TEXT = (0, 129, 200)
VALID_ID = st.one_of(
    st.text(min_size=1, max_size=12),
    lengths("e", OK_TEXT),
    lengths("\U0001f600", OK_TEXT),  # astral: one character, four bytes
    lengths("\x01", OK_TEXT),  # control characters are fine in ids (orjson escapes them)
)
ANY_ID = st.one_of(VALID_ID, lengths("e", BAD_TEXT), lengths("\U0001f600", BAD_TEXT), ODD)

VALID_CAMPAIGN = st.one_of(
    st.text("abcXYZ019._:-", min_size=1, max_size=10), lengths("c", OK_TEXT),
    st.sampled_from(["summer-sale", "Summer_Sale.2026:a", "bench-001", "..", "-"]),
)
ANY_CAMPAIGN = st.one_of(
    VALID_CAMPAIGN, st.text("abc._:- !/é\n\x00\u0663", max_size=10), lengths("c", BAD_TEXT),
    st.sampled_from(["a b", "é", "c\n", "c\x00", "\uff43", "c/d"]), ODD,
)

VALID_CHANNEL = st.one_of(
    st.sampled_from(["tiktok", "TikTok", "YOUTUBE", "İstanbul", "ẞ", "Σ", "web", "\u0085",
                     "\u2028", "unknown", " ", "ǅ"]),
    st.text(st.characters(codec="utf-8", exclude_characters=[chr(c) for c in [*range(32), 127]]),
            min_size=1, max_size=8),
    lengths("C", (1, 63, 64)),
    lengths("İ", (1, 64)),  # lower() of it is two characters
)
ANY_CHANNEL = st.one_of(
    VALID_CHANNEL, st.text(max_size=8), lengths("C", (0, 65)), lengths("İ", (65,)),
    st.sampled_from(["\x7f", "tik\ttok", "a\x1fb", "\x00", "x\n"]), ODD,
)

VALID_ACTION = st.sampled_from(sorted(ENGAGEMENT_ACTIONS))
ANY_ACTION = st.one_of(VALID_ACTION, st.sampled_from(["Like", "like ", "dislike", ""]), ODD)
ANY_BOOL = st.one_of(st.booleans(), st.sampled_from([0, 1, "true", 0.0]), ODD)
VALID_WATCH = st.one_of(st.integers(0, 2**64 - 1), st.sampled_from([0, 1, 2**63]))
ANY_WATCH = st.one_of(VALID_WATCH, st.sampled_from([-1, 1.0, 1.5, True, False, "1"]), ODD)

_DELTAS = [0, -1, 1, MAX_FUTURE_MS - 1, MAX_FUTURE_MS, MAX_FUTURE_MS + 1, MAX_FUTURE_MS + 999,
           MAX_FUTURE_MS + 1000, -180_000, -NOW_MS, -NOW_MS - 1, 10**12, -(10**12)]
MOMENT_MS = st.one_of(
    st.sampled_from(_DELTAS).map(lambda d: NOW_MS + d),
    st.integers(-180_000, MAX_FUTURE_MS + 2000).map(lambda d: NOW_MS + d),
    st.integers(_MIN_MS, _MAX_MS),
)
"""Instants around the clock and its 5-minute limit, before 1970 and far ahead."""


@st.composite
def rfc3339(draw: st.DrawFn, *, broken: bool) -> str:
    """RFC 3339 text with every separator, fraction length and offset; ``broken``: near misses."""
    moment = _EPOCH + timedelta(milliseconds=draw(MOMENT_MS))
    sep = draw(st.sampled_from("TTTtt "))
    text = (f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}{sep}"
            f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}")
    text += draw(st.one_of(
        st.just(f".{moment.microsecond // 1000:03d}"),
        st.just(""),
        st.from_regex(r"\.[0-9]{1,10}", fullmatch=True),
        st.sampled_from([".1", ".12", ".1234", ".123456", ".1234567", ".123456789",
                         ".999999999", ".0009999"]),
    ))
    text += draw(st.sampled_from(["Z", "Z", "z", "+00:00", "-00:00", "+05:30", "-04:30",
                                  "+14:00", "+23:59"]))
    if broken:  # one character replaced by a near miss, or a bad end
        at = draw(st.integers(0, len(text) - 1))
        char = draw(st.sampled_from("0919:-.TZ+x \u0663\x00é"))
        text = text[:at] + char + text[at + 1:] + draw(st.sampled_from(["", "", "Z", "\n"]))
    return text


VALID_TS = st.one_of(
    st.sampled_from([NOW_MS + d for d in _DELTAS if 0 <= NOW_MS + d <= NOW_MS + MAX_FUTURE_MS]),
    st.integers(0, NOW_MS + MAX_FUTURE_MS),
    rfc3339(broken=False),
)
"""Mostly valid: a string with an offset may still land more than 5 minutes ahead."""
ANY_TS = st.one_of(
    VALID_TS,
    MOMENT_MS.filter(lambda ms: ms >= -(2**63)),
    rfc3339(broken=True),
    st.sampled_from(["2026-02-30T10:00:00Z", "2026-11-23T24:00:00Z", "2026-11-23T10:00:60Z",
                     "2026-13-01T00:00:00Z", "0000-01-01T00:00:00Z", "2026-11-23T10:00:00",
                     "2026-11-23", "1969-12-31T23:59:59.999Z", "1970-01-01T00:00:00.000Z",
                     "2026-11-23T10:00:00.Z", "9999-12-31T23:59:59.999Z", str(NOW_MS),
                     "\uff12\uff10\uff12\uff16-11-23T10:00:00Z", "2026-11-23T10:00:00.123+24:00",
                     "2026-11-23T10:00:00+5:30", "2026-11-23T10:00:00.\u0661\u0662\u0663Z",
                     "2026-11-23T10:00:00ZZ", "2026-11-23T10:00:00.1234Z "]),
    st.sampled_from([True, False, float(NOW_MS), NOW_MS + 0.5, -1, 2**64 - 1]),
    ODD,
)

VALID_CONTENT = st.one_of(
    st.sampled_from(["tutorial", "unboxing", "live", "vidéo", "ß", "ς", "x" * 64, " ",
                     "\u0085"]),
    st.text(st.characters(codec="utf-8", exclude_characters=[chr(c) for c in [*range(32), 127]]),
            min_size=1, max_size=8).map(str.lower).filter(lambda t: t == t.lower()),
)
ANY_CONTENT = st.one_of(
    VALID_CONTENT, st.text(max_size=8), lengths("c", (0, 65)),
    st.sampled_from(["Tutorial", "LIVE", "İ", "ǅ", "Σ", "x\n", "\x7f", "live\t"]), ODD,
)

VALID_MONEY = st.sampled_from(["12.5", "0", "350000", "0.0000005", 12.5, 0.1, 350000, 0])
ANY_MONEY = st.one_of(VALID_MONEY, st.sampled_from(["-1", "1e3", "NaN", -3, True, "1" * 16]),
                      ODD)
VALID_CURRENCY = st.sampled_from(["USD", "eur", "IDR"])
ANY_CURRENCY = st.one_of(VALID_CURRENCY, st.sampled_from(["XYZ", "dollars", "US"]), ODD)

FIELDS: dict[str, tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]] = {
    "event_id": (VALID_ID, ANY_ID), "ts": (VALID_TS, ANY_TS),
    "campaign_id": (VALID_CAMPAIGN, ANY_CAMPAIGN), "channel": (VALID_CHANNEL, ANY_CHANNEL),
    "user_id": (VALID_ID, ANY_ID), "watch_ms": (VALID_WATCH, ANY_WATCH),
    "completed": (st.booleans(), ANY_BOOL), "action": (VALID_ACTION, ANY_ACTION),
    "click_id": (VALID_ID, ANY_ID), "order_id": (VALID_ID, ANY_ID),
    "customer_id": (VALID_ID, ANY_ID), "promo_code": (VALID_ID, ANY_ID),
    "new_customer": (st.booleans(), ANY_BOOL), "revenue": (VALID_MONEY, ANY_MONEY),
    "amount": (VALID_MONEY, ANY_MONEY), "currency": (VALID_CURRENCY, ANY_CURRENCY),
    "content_type": (VALID_CONTENT, ANY_CONTENT), "cost": (VALID_MONEY, ANY_MONEY),
    "items": (st.just([{"product_id": "p", "quantity": 1, "revenue": "1"}]),
              st.one_of(st.just([]), st.just([{"product_id": "p", "quantity": 0}]), ODD)),
}
"""Field -> (a valid value, any value: valid, subtly wrong or of a wrong type)."""
REQUIRED: dict[str, tuple[str, ...]] = {
    "view": ("event_id", "ts", "campaign_id"),
    "engagement": ("event_id", "ts", "campaign_id", "action"),
    "click": ("event_id", "ts", "campaign_id"),
    "order": ("event_id", "ts", "order_id", "customer_id", "revenue", "currency"),
    "spend": ("event_id", "ts", "campaign_id", "amount", "currency"),
}
OPTIONAL: dict[str, tuple[str, ...]] = {
    "view": ("channel", "user_id", "watch_ms", "completed", "content_type"),
    "engagement": ("channel", "content_type"),
    "click": ("channel", "click_id", "content_type"),
    "order": ("channel", "campaign_id", "click_id", "promo_code", "new_customer", "cost",
              "items"),
    "spend": ("channel",),
}


@st.composite
def event_doc(draw: st.DrawFn, event_type: EventType) -> Any:
    """A valid event of ``event_type`` with, often, a field or two wrong, missing, null or
    extra; now and then one of another type, or no object at all."""
    if draw(st.integers(0, 29)) == 0:
        return draw(ODD)
    if draw(st.integers(0, 9)) == 0:
        event_type = draw(st.sampled_from(EVENT_TYPES))
    names = list(REQUIRED[event_type])
    names += [n for n in OPTIONAL[event_type] if draw(st.booleans())]
    doc = {name: draw(FIELDS[name][0]) for name in names}
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 1, 2]))):
        name = draw(st.sampled_from(list(FIELDS)))
        doc[name] = draw(FIELDS[name][1])
    if draw(st.integers(0, 5)) == 0:
        del doc[draw(st.sampled_from(sorted(doc)))]
    if draw(st.integers(0, 9)) == 0:
        doc[draw(st.sampled_from(list(FIELDS)))] = None  # an explicit null
    if draw(st.integers(0, 4)) == 0:
        doc.update(draw(st.dictionaries(st.text(max_size=8), ODD, max_size=3)))
    return doc


PAD = st.sampled_from([0, 0, 0, 100, 40_000, MAX_EVENT_BYTES - 120, MAX_EVENT_BYTES + 1])
"""Padding of one element: small, over 64 KiB together, or over 64 KiB alone."""


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(EVENT_TYPES).flatmap(lambda t: st.tuples(st.just(t), event_doc(t))))
@example(("view", {"event_id": "v", "ts": NOW_MS, "campaign_id": "c", "completed": 1}))
@example(("view", {"event_id": "v", "ts": NOW_MS, "campaign_id": "c", "watch_ms": True}))
@example(("view", {"event_id": "v", "ts": True, "campaign_id": "c"}))
@example(("click", {"event_id": "v", "ts": NOW_MS, "campaign_id": "c", "channel": "İ" * 64}))
@example(("engagement", {"event_id": "e", "ts": 0, "campaign_id": "c", "action": ["like"]}))
def test_single_event_messages_match_the_precise_rules(case: tuple[EventType, Any]) -> None:
    event_type, doc = case
    same_as_reference(orjson.dumps(doc), event_type)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(EVENT_TYPES).flatmap(lambda t: st.tuples(
    st.just(t), st.lists(event_doc(t), min_size=1, max_size=6), PAD, st.integers(0, 6))))
def test_batch_messages_match_the_precise_rules(
    case: tuple[EventType, list[Any], int, int],
) -> None:
    event_type, docs, pad, at = case
    if pad:
        filler = {"event_id": "pad", "ts": NOW_MS, "campaign_id": "c", "pad": "x" * pad}
        docs.insert(min(at, len(docs)), filler)
    same_as_reference(orjson.dumps(docs), event_type)


# --- every field at its edges: each value alone in an otherwise valid event -----------------

_DROP = object()
VALID: dict[str, dict[str, Any]] = {
    "view": {"event_id": "v-1", "ts": NOW_MS, "campaign_id": "summer-sale", "channel": "TikTok",
             "user_id": "u9", "watch_ms": 14000, "completed": True, "content_type": "live"},
    "engagement": {"event_id": "e-1", "ts": NOW_MS, "campaign_id": "summer-sale",
                   "channel": "tiktok", "action": "like", "content_type": "tutorial"},
    "click": {"event_id": "c-1", "ts": NOW_MS, "campaign_id": "summer-sale",
              "channel": "tiktok", "click_id": "ttclid-77"},
    "order": {"event_id": "o-1", "ts": NOW_MS, "order_id": "A100", "customer_id": "cust-5",
              "revenue": "350000", "currency": "IDR"},
    "spend": {"event_id": "s-1", "ts": NOW_MS, "campaign_id": "summer-sale", "amount": 12.5,
              "currency": "USD"},
}
_WRONG_TYPES = [_DROP, None, True, False, 0, 1, 1.5, "", [], {}, ["x"], {"x": 1}]
_TEXT_EDGES = ["e", "e" * 127, "e" * 128, "e" * 129, "\U0001f600" * 128, "\U0001f600" * 129,
               "\x00", "\n", " ", "é"]
_ZONES = {"Z": 0, "z": 0, "+00:00": 0, "-00:00": 0, "+01:00": 60, "-01:00": -60, "+05:30": 330,
          "-04:30": -270, "+14:00": 840, "-23:59": -1439}
_FRACTIONS = ["", ".0", ".1", ".12", ".123", ".1234", ".999999", ".1234567", ".9999999",
              ".12345678", ".000"]


def rfc3339_at(ms: int, sep: str, fraction: str, zone: str) -> str:
    """The instant ``ms`` written in ``zone``, with ``fraction`` in place of its milliseconds."""
    local = _EPOCH + timedelta(milliseconds=ms, minutes=_ZONES[zone])
    return (f"{local.year:04d}-{local.month:02d}-{local.day:02d}{sep}{local.hour:02d}:"
            f"{local.minute:02d}:{local.second:02d}{fraction}{zone}")


_TS_STRINGS = [
    rfc3339_at(ms, sep, fraction, zone)
    for ms in (NOW_MS + MAX_FUTURE_MS - 1000, NOW_MS + MAX_FUTURE_MS, NOW_MS + MAX_FUTURE_MS + 1,
               NOW_MS + MAX_FUTURE_MS + 1000, NOW_MS, 0, -1000, -86_400_000)
    for sep in "Tt "
    for fraction in _FRACTIONS
    for zone in _ZONES
] + [
    "2026-02-30T10:00:00Z", "2026-11-23T24:00:00Z", "2026-11-23T10:00:60Z",
    "2026-13-01T00:00:00Z", "0000-01-01T00:00:00Z", "0001-01-01T00:00:00.000Z",
    "9999-12-31T23:59:59.999Z", "2026-11-23T10:00:00", "2026-11-23", "2026-11-23T10:00:00.Z",
    "2026-11-23T10:00:00.123+24:00", "2026-11-23T10:00:00+5:30", "2026-11-23T10:00:00ZZ",
    "2026-11-23T10:00:00.123Z\n", " 2026-11-23T10:00:00.123Z", "2026-11-23T10:00:00.123Z ",
    "2026-11-23T10:00:00.\u0661\u0662\u0663Z", "\uff12\uff10\uff12\uff16-11-23T10:00:00Z",
    "2026-11-23T10:00:00.12_Z", "2026-11-23T10:00:00.+12Z", "2026-11-23X10:00:00Z",
    "2026-11-23T10-00-00Z", "2026/11/23T10:00:00Z", "+2026-11-23T10:00:00Z", str(NOW_MS),
]
EDGES: dict[str, list[Any]] = {
    "event_id": _TEXT_EDGES, "user_id": _TEXT_EDGES, "click_id": _TEXT_EDGES,
    "order_id": _TEXT_EDGES, "customer_id": _TEXT_EDGES, "promo_code": _TEXT_EDGES,
    "ts": [NOW_MS + d for d in _DELTAS] + [2**63 - 1, 2**64 - 1, -(2**63), float(NOW_MS),
                                           *_TS_STRINGS],
    "campaign_id": ["c", "c" * 128, "c" * 129, "AZaz09._:-", "a b", "é", "c\n", "c/d",
                    "\uff43", "\u0663"],
    "channel": ["C", "C" * 64, "C" * 65, "İ" * 64, "İ" * 65, "ẞ", "TikTok", "\x00", "\x1f",
                "\x7f", "\x80", "\u0085", "\u2028", " ", "a\tb"],
    "watch_ms": [0, -1, 2**64 - 1, -(2**63), "1", 1.0],
    "completed": ["true", 0.0], "new_customer": ["no"],
    "action": [*sorted(ENGAGEMENT_ACTIONS), "Like", "like ", "dislike", "profile-visit"],
    "revenue": ["12.5", "-1", "NaN", 1e15], "amount": ["0", -0.0, "1e3"],
    "currency": ["usd", "XYZ", "US"],
    "content_type": ["c", "c" * 64, "c" * 65, "C", "Live", "İ", "ǅ", "ß", "vidéo", "\x00",
                     "\x1f", "\x7f", "\u0085", " ", "a\tb"],
    "cost": ["0", "-1", 12.5], "items": [[{"product_id": "p", "quantity": 1, "revenue": 1}]],
    "utm_source": ["x" * (MAX_EVENT_BYTES - 200), "x" * MAX_EVENT_BYTES],  # under, over 64 KiB
}
"""Field -> values at and beyond its limits; every field also gets _WRONG_TYPES."""


@pytest.mark.parametrize("event_type", EVENT_TYPES)
@pytest.mark.parametrize("field", list(EDGES))
def test_every_field_at_its_edges_matches(event_type: EventType, field: str) -> None:
    docs = []
    for value in [*EDGES[field], *_WRONG_TYPES]:
        doc = dict(VALID[event_type])
        if value is _DROP:
            doc.pop(field, None)
        else:
            doc[field] = value
        same_as_reference(orjson.dumps(doc), event_type)
        docs.append(doc)
    # The same in batches, small and (with the 64 KiB rule checked per element) large.
    for start in range(0, len(docs), 200):
        same_as_reference(orjson.dumps(docs[start:start + 200]), event_type)
    padding = {"event_id": "pad", "ts": NOW_MS, "pad": "x" * MAX_EVENT_BYTES}
    for start in range(0, len(docs), 200):
        same_as_reference(orjson.dumps([padding, *docs[start:start + 200]]), event_type)


@pytest.mark.parametrize("size", [MAX_EVENT_BYTES - 1, MAX_EVENT_BYTES, MAX_EVENT_BYTES + 1])
@pytest.mark.parametrize("field", ["pad", "user_id"])
def test_64_kib_limit_inside_a_batch_matches(size: int, field: str) -> None:
    """An element exactly at and around the limit, grown through an extra or a known field."""
    doc: dict[str, Any] = {"event_id": "v", "ts": NOW_MS, "campaign_id": "c", field: ""}
    doc[field] = "u" * (size - len(orjson.dumps(doc)))
    assert len(orjson.dumps(doc)) == size
    verdicts = same_as_reference(orjson.dumps([doc, {**doc, field: "u"}]), "view")
    assert isinstance(verdicts[1], Event)


@pytest.mark.parametrize("mode", ["single", "batch"])
def test_the_bench_mix_takes_the_fast_path_and_matches(mode: str) -> None:
    """The common case really is fast (not silently falling back), and still exact."""
    now_ms = NOW_MS
    workload = make_workload(3000, mode, now_ms)  # type: ignore[arg-type]
    rules = ValidationRules(dict(FX))
    for event_type in EVENT_TYPES:
        for raw in workload.messages[TOPIC_KEYS[event_type]]:
            fast = parse_message(raw, event_type, rules, now_ms)
            assert fast == parse_message(raw, event_type, rules, now_ms, fast=False)
            assert all(isinstance(v, Event) for v in fast)
            if event_type in {"view", "engagement", "click"}:
                docs = orjson.loads(raw)
                for doc in docs if isinstance(docs, list) else [docs]:
                    latest_ms = now_ms + MAX_FUTURE_MS
                    assert events._fast_event(doc, event_type, latest_ms, mode == "batch")


FULL_VIEW = {"event_id": "v-1", "ts": "2026-11-23T10:00:00.250Z", "campaign_id": "summer-sale",
             "channel": "TikTok", "user_id": "u9", "completed": True, "watch_ms": 14000,
             "content_type": "tutorial"}


@pytest.mark.parametrize(("event_type", "doc", "new_fields"), [
    ("view", FULL_VIEW, {"user_id": "u9", "watch_ms": 14000, "content_type": "tutorial"}),
    ("engagement", {**VALID["engagement"], "action": "follow"},
     {"action": "follow", "content_type": "tutorial", "user_id": None}),
    ("click", {**VALID["click"], "content_type": "unboxing"},
     {"content_type": "unboxing", "click_id": "ttclid-77", "action": None}),
])
def test_the_fast_path_takes_the_new_fields_and_fills_them(
    event_type: EventType, doc: dict[str, Any], new_fields: dict[str, Any],
) -> None:
    latest_ms = NOW_MS + MAX_FUTURE_MS
    for check_size in (False, True):
        fast = events._fast_event(doc, event_type, latest_ms, check_size)
        assert fast is not None  # taken, not declined to the precise path
        [precise] = parse_message(orjson.dumps(doc), event_type, RULES, NOW_MS, fast=False)
        assert repr(fast) == repr(precise)
        assert {name: getattr(fast, name) for name in new_fields} == new_fields
        assert (fast.cost_micros, fast.items) == (None, None)


def test_an_upper_case_content_type_is_declined_then_refused() -> None:
    doc = {**FULL_VIEW, "content_type": "Tutorial"}
    assert events._fast_event(doc, "view", NOW_MS + MAX_FUTURE_MS, False) is None
    [verdict] = same_as_reference(orjson.dumps(doc), "view")
    assert "'content_type'" in verdict.reason


def test_caches_stay_bounded_and_correct() -> None:
    limit = events._CACHE_LIMIT
    docs = [{"event_id": f"v-{n}", "campaign_id": f"camp-{n}", "channel": f"Ch-{n}",
             "content_type": f"kind-{n}",
             "ts": f"2026-11-23T{n // 3600:02d}:{n // 60 % 60:02d}:{n % 60:02d}.{n % 1000:03d}Z"}
            for n in range(limit + 10)]
    for chunk in range(0, len(docs), 1000):
        same_as_reference(orjson.dumps(docs[chunk:chunk + 1000]), "view")
    assert 0 < len(events._good_campaigns) <= limit
    assert 0 < len(events._channels) <= limit
    assert 0 < len(events._utc_seconds) <= limit
    assert 0 < len(events._content_types) <= limit
    # A value seen before the caches were emptied is still right (learnt again).
    same_as_reference(orjson.dumps(docs[0]), "view")


def test_event_built_by_the_fast_path_is_a_real_frozen_event() -> None:
    raw = orjson.dumps({"event_id": "v-1", "ts": "2026-11-23T10:00:00.250Z",
                        "campaign_id": "summer-sale", "channel": "TikTok", "completed": True})
    [fast] = parse_message(raw, "view", RULES, NOW_MS)
    expected = Event("view", "v-1", calendar.timegm((2026, 11, 23, 10, 0, 0)) * 1000 + 250,
                     "summer-sale", "tiktok", completed=True)
    assert type(fast) is Event
    assert fast == expected and hash(fast) == hash(expected)
    with pytest.raises(AttributeError):
        fast.channel = "x"  # type: ignore[misc]
    assert datetime.fromtimestamp(fast.ts_ms / 1000, UTC).microsecond == 250_000
