"""The JSON Schemas agree with parse_message, the validator the worker uses.

Every row is one event fed to both ``jsonschema`` and ``parse_message``; they must give
the same verdict. The rules a JSON Schema cannot state (streams.events.schemas.NOT_EXPRESSIBLE)
are kept out of the agreement on purpose, and each has its own test below that shows
the gap: the worker refuses, the schema lets it through.
"""

from __future__ import annotations

import calendar
import re
import string
import sys
from decimal import Decimal
from typing import Any, cast

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from streams.events import validation
from streams.events.schemas import NOT_EXPRESSIBLE, event_schema, schema_json
from streams.events.validation import (
    ENGAGEMENT_ACTIONS,
    EVENT_TYPES,
    MAX_FUTURE_MS,
    Event,
    EventType,
    ValidationRules,
    parse_message,
)
from tests.unit.test_events import BAD_EVENTS

TS_MS = calendar.timegm((2026, 11, 23, 10, 0, 0)) * 1000
# No timestamp a JSON document can hold is 5 minutes ahead of this clock: it keeps the
# clock rule (not expressible) out of the agreement rows.
FAR_FUTURE_MS = 2**66
RULES = ValidationRules({"USD": Decimal(1), "EUR": Decimal("1.08"), "IDR": Decimal("0.000063")})
FX_CODES = tuple(RULES.fx)

BASE: dict[str, dict[str, Any]] = {
    "view": {"event_id": "v-1", "ts": TS_MS, "campaign_id": "summer-sale", "channel": "tiktok"},
    "engagement": {"event_id": "e-1", "ts": TS_MS, "campaign_id": "summer-sale",
                   "action": "like"},
    "click": {"event_id": "c-1", "ts": TS_MS, "campaign_id": "summer-sale",
              "click_id": "ttclid-77"},
    "order": {"event_id": "o-1", "ts": "2026-11-23T17:03:10+07:00", "order_id": "A100",
              "customer_id": "cust-5", "revenue": "350000", "currency": "IDR"},
    "spend": {"event_id": "s-1", "ts": TS_MS, "campaign_id": "summer-sale", "amount": 12.5,
              "currency": "USD"},
}
DROP = object()

VALIDATORS = {
    (t, fx): Draft202012Validator(event_schema(t, FX_CODES if fx else None))
    for t in EVENT_TYPES for fx in (False, True)
}


def edit(event_type: str, **changes: Any) -> dict[str, Any]:
    doc = dict(BASE[event_type])
    for key, value in changes.items():
        if value is DROP:
            doc.pop(key, None)
        else:
            doc[key] = value
    return doc


def worker_accepts(doc: object, event_type: EventType, now_ms: int = FAR_FUTURE_MS) -> bool:
    (verdict,) = parse_message(orjson.dumps(doc), event_type, RULES, now_ms)
    return isinstance(verdict, Event)


def schema_accepts(doc: object, event_type: EventType, *, fx: bool) -> bool:
    return bool(VALIDATORS[(event_type, fx)].is_valid(doc))


def agree(doc: Any, event_type: EventType) -> bool | None:
    """Assert both schemas (with and without [fx] codes) agree with the worker; its verdict.

    None when the event tests a rule no schema can state (a whole number written 1.0).
    """
    doc = orjson.loads(orjson.dumps(doc))  # the document the worker sees
    if _integral_float(doc):
        return None
    worker = worker_accepts(doc, event_type)
    assert schema_accepts(doc, event_type, fx=True) == worker, (event_type, doc, worker)
    if _currency_known(doc, event_type):
        assert schema_accepts(doc, event_type, fx=False) == worker, (event_type, doc, worker)
    return worker


def _integral_float(doc: object) -> bool:
    """JSON Schema calls 1.0 an integer; the worker wants 'ts', 'watch_ms' and an item's
    'quantity' without '.0'."""
    if not isinstance(doc, dict):
        return False
    items = doc.get("items")
    lines = [line for line in items if isinstance(line, dict)] if isinstance(items, list) else []
    return any(isinstance(fields.get(name), float) and fields[name].is_integer()
               for fields, name in [(doc, "ts"), (doc, "watch_ms"),
                                    *((line, "quantity") for line in lines)])


def _currency_known(doc: object, event_type: str) -> bool:
    """False only where the static schema cannot know: a well-formed code without a rate."""
    if event_type not in ("order", "spend") or not isinstance(doc, dict):
        return True
    code = doc.get("currency")
    if not isinstance(code, str) or len(code) != 3 or not code.isascii() or not code.isalpha():
        return True
    return code.upper() in RULES.fx


# ---------------------------------------------------------------------------------------
# The table: (type, event, expected verdict). Good rows first, then bad ones.
# ---------------------------------------------------------------------------------------
GOOD = [
    # the SPEC examples, verbatim
    ("view", {"event_id": "v-1", "ts": "2026-11-23T10:00:00Z", "campaign_id": "summer-sale",
              "channel": "tiktok", "user_id": "u9", "completed": True, "watch_ms": 14000}),
    ("click", {"event_id": "c-1", "ts": 1795428060000, "campaign_id": "summer-sale",
               "channel": "tiktok", "click_id": "ttclid-77"}),
    ("order", {"event_id": "o-1", "ts": "2026-11-23T17:03:10+07:00", "order_id": "A100",
               "customer_id": "cust-5", "revenue": "350000", "currency": "IDR",
               "click_id": "ttclid-77"}),
    ("spend", {"event_id": "s-1", "ts": "2026-11-23T10:00:00Z", "campaign_id": "summer-sale",
               "channel": "tiktok", "amount": 12.5, "currency": "USD"}),
    *[("engagement", edit("engagement", action=a)) for a in sorted(ENGAGEMENT_ACTIONS)],
    # ts: every RFC 3339 spelling the worker takes
    *[("view", edit("view", ts=ts)) for ts in (
        0, "2026-11-23t10:00:00z", "2026-11-23 10:00:00Z", "2026-11-23T10:00:00.1Z",
        "2026-11-23T10:00:00.123456789012Z", "2026-11-23T10:00:00+23:59",
        "2026-11-23T10:00:00-00:00", "2026-11-23T10:00:00+05:99",  # minutes > 59: worker's
        "2024-02-29T00:00:00Z", "2000-02-29T23:59:59Z", "1960-01-01T00:00:00Z",
        "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-23:59", "2026-04-30T00:00:00Z",
    )],
    # null is absent: optional fields may be null
    ("view", edit("view", channel=None, user_id=None, completed=None, watch_ms=None)),
    ("click", edit("click", click_id=None)),
    ("order", edit("order", campaign_id=None, click_id=None, promo_code=None,
                   new_customer=None, channel=None)),
    ("order", edit("order", campaign_id="summer-sale", new_customer=False, promo_code="S10")),
    # SPEC sets no length on these: user_id up to the event's 64 KiB, an order's
    # click_id and promo_code any string (an empty one is as good as none).
    ("view", edit("view", user_id="u" * 129)),
    ("view", edit("view", user_id="u" * 60_000)),
    ("order", edit("order", promo_code="", click_id="")),
    ("order", edit("order", promo_code="P" * 300, click_id="k" * 300)),
    # limits, at the limit
    ("view", edit("view", event_id="e" * 128, campaign_id="c" * 128, channel="x" * 64,
                  user_id="u" * 128, watch_ms=0)),
    ("view", edit("view", campaign_id="a.b_c:d-9", channel="TikTok ñandú 📱",
                  event_id="any text\n\tgoes")),
    # unknown fields, and the routing 'type' field, are ignored
    ("view", edit("view", type="view", extra={"deep": [1, 2]})),
    ("spend", edit("spend", type="click")),
    # amounts: numbers, strings, zeros (negative zero is zero), just below 10^15
    *[("spend", edit("spend", amount=a)) for a in (
        0, 0.0, -0.0, 1e3, 999999999999999, 999999999999999.9, "0", "-0", "-00.000", "12.50",
        "000000000000000000012.5", "999999999999999.999999",
    )],
    # currency codes are taken in any case
    ("order", edit("order", currency="usd")),
    ("spend", edit("spend", currency="Eur")),
    # content_type: lower-case as sent, any script, 1-64 characters, or null
    *[(t, edit(t, content_type=v)) for t in ("view", "engagement", "click") for v in (
        "tutorial", "live_2026", "x" * 64, "vidéo", "ß", "ς", "ŉ", "日本", "a b", "\u0085",
        "\U00010428", None,
    )],
    ("order", edit("order", content_type="Not Checked On Orders")),
    # order cost: like revenue, optional
    *[("order", edit("order", cost=v)) for v in (0, "0", 12.5, "200000", "999999999999999.9",
                                                  -0.0, None)],
    # order items: up to 100 lines; unknown fields in a line are ignored
    *[("order", edit("order", items=v)) for v in (
        None, [],
        [{"product_id": "sku-1", "quantity": 1, "revenue": "0"}],
        [{"product_id": "p" * 128, "quantity": 2**63, "revenue": 999999999999999, "x": None}],
        [{"product_id": f"p{i}", "quantity": i + 1, "revenue": i / 4} for i in range(100)],
    )],
]

BAD = [
    # not an object at all (an array would be a batch: see the batch tests)
    *[("view", doc) for doc in (42, "v-1", None, True)],
    # event_id
    *[("view", edit("view", event_id=v)) for v in (DROP, None, "", "e" * 129, 7, True)],
    # ts: impossible dates and times, wrong shapes
    *[("view", edit("view", ts=ts)) for ts in (
        DROP, None, True, -1, 1.5, "1795428060000", [TS_MS], {"ms": TS_MS},
        "2026-02-30T10:00:00Z", "2100-02-29T00:00:00Z", "2026-13-01T00:00:00Z",
        "2026-00-10T00:00:00Z", "2026-04-31T00:00:00Z", "0000-01-01T00:00:00Z",
        "2026-11-23T24:00:00Z", "2026-11-23T23:60:00Z", "2026-11-23T23:59:60Z",
        "2026-11-23T10:00:00+24:00", "2026-11-23T10:00:00+23:60", "2026-11-23T10:00:00+0530",
        "2026-11-23T10:00:00", "2026-11-23", "2026-11-23T10:00:00.Z", "2026-11-23T10:00Z",
        "2026-11-23T10:00:00Z\n", " 2026-11-23T10:00:00Z", "26-11-23T10:00:00Z",
        "\uff12\uff10\uff12\uff16-11-23T10:00:00Z",  # full-width digits
        "2026-11-23T10:00:00.123456\uff17Z",  # past the microseconds the worker reads
        "2026-11-23T10:00:00UTC",
    )],
    # campaign_id
    *[("view", edit("view", campaign_id=v)) for v in (
        DROP, None, "", "c" * 129, "summer sale!", "summer\n", "ñ", 5,
    )],
    *[(t, edit(t, campaign_id=DROP)) for t in ("engagement", "click", "spend")],
    ("order", edit("order", campaign_id="bad id")),
    # channel
    *[("view", edit("view", channel=v)) for v in (
        "", "c" * 65, "tik\x01tok", "tiktok\x7f", "tiktok\n", 3, True, ["tiktok"],
    )],
    # view fields
    *[("view", edit("view", user_id=v)) for v in ("", 9)],
    *[("view", edit("view", completed=v)) for v in ("yes", 1, 0)],
    *[("view", edit("view", watch_ms=v)) for v in (-1, 1.5, "5", True)],
    # engagement action
    *[("engagement", edit("engagement", action=v)) for v in (
        DROP, None, "dislike", "Like", 1, ["like"], {"kind": "like"},
    )],
    # click_id
    *[("click", edit("click", click_id=v)) for v in ("", "k" * 129, 77)],
    # orders
    *[("order", edit("order", **{name: v})) for name in ("order_id", "customer_id")
      for v in (DROP, None, "", "x" * 129, 100)],
    *[("order", edit("order", revenue=v)) for v in (
        DROP, None, "-1", -0.01, True, "twelve", "NaN", "nan", "Infinity", "-inf", "1e3",
        " 12", "12.", ".5", "+5", "1_000", "12\n", [12], {}, "1000000000000000", 1e15,
        10**15, "-0.5",
    )],
    *[("order", edit("order", currency=v)) for v in (
        DROP, None, "US", "USDX", "dollars", 1, "US1", "USD\n", "ÜSD",
    )],
    ("order", edit("order", new_customer="no")),
    ("order", edit("order", new_customer=1)),
    ("order", edit("order", promo_code=10)),
    ("order", edit("order", click_id=[])),
    # spend
    *[("spend", edit("spend", amount=v)) for v in (DROP, -5, "-5", "5 USD")],
    ("spend", edit("spend", currency=DROP)),
    # content_type: upper- or title-case letters, empty, too long, control characters
    *[(t, edit(t, content_type=v)) for t in ("view", "engagement", "click") for v in (
        "Tutorial", "LIVE", "İ", "ǅ", "Σ", "\U00010400", "vidÉo", "", "x" * 65, "live\n",
        "\x7f", 7, True, ["live"], {"kind": "live"},
    )],
    # order cost
    *[("order", edit("order", cost=v)) for v in cast(tuple[Any, ...], (
        -1, "-0.01", "free", True, [1], {}, "1e3", 1e15, "1000000000000000",
    ))],
    # order items: not an array, too many, a line that is no object or breaks a rule
    *[("order", edit("order", items=v)) for v in cast(tuple[Any, ...], (
        {}, "sku-1", 1, True,
        [{"product_id": f"p{i}", "quantity": 1, "revenue": 1} for i in range(101)],
        [None], ["sku-1"], [[]],
        [{"quantity": 1, "revenue": "1"}],
        [{"product_id": None, "quantity": 1, "revenue": "1"}],
        [{"product_id": "", "quantity": 1, "revenue": "1"}],
        [{"product_id": "p" * 129, "quantity": 1, "revenue": "1"}],
        [{"product_id": 5, "quantity": 1, "revenue": "1"}],
        [{"product_id": "p", "revenue": "1"}],
        [{"product_id": "p", "quantity": None, "revenue": "1"}],
        [{"product_id": "p", "quantity": 0, "revenue": "1"}],
        [{"product_id": "p", "quantity": -1, "revenue": "1"}],
        [{"product_id": "p", "quantity": 1.5, "revenue": "1"}],
        [{"product_id": "p", "quantity": "1", "revenue": "1"}],
        [{"product_id": "p", "quantity": True, "revenue": "1"}],
        [{"product_id": "p", "quantity": 1}],
        [{"product_id": "p", "quantity": 1, "revenue": None}],
        [{"product_id": "p", "quantity": 1, "revenue": "-1"}],
        [{"product_id": "p", "quantity": 1, "revenue": "1e3"}],
        [{"product_id": "p", "quantity": 1, "revenue": 1e15}],
        [{"product_id": "p", "quantity": 1, "revenue": "1"}, {"product_id": "q"}],
    ))],
]


@pytest.mark.parametrize(("event_type", "doc"), GOOD, ids=[f"good{i}" for i in range(len(GOOD))])
def test_good_events_pass_the_schema_and_the_worker(event_type: EventType, doc: Any) -> None:
    assert agree(doc, event_type) is True


@pytest.mark.parametrize(("event_type", "doc"), BAD, ids=[f"bad{i}" for i in range(len(BAD))])
def test_bad_events_fail_the_schema_and_the_worker(event_type: EventType, doc: Any) -> None:
    assert agree(doc, event_type) is False


def _object_rows() -> list[Any]:
    """The bad-input rows of test_events.py that are one JSON event object."""
    rows = []
    for param in BAD_EVENTS:
        event_type, raw, _ = param.values
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue
        reason = str(param.id)
        # whole-message size and clock rules are not the schema's: tested below instead
        if isinstance(doc, dict) and "64KiB" not in reason and "future" not in reason:
            rows.append(pytest.param(event_type, doc, id=reason))
    return rows


@pytest.mark.parametrize(("event_type", "doc"), _object_rows())
def test_the_worker_s_bad_input_table_fails_the_schema_too(
    event_type: EventType, doc: Any
) -> None:
    assert agree(doc, event_type) is False


# --- property: any edit of a valid event, same verdict --------------------------------------

_FIELDS = sorted({name for t in EVENT_TYPES for name in event_schema(t)["properties"]}
                 | {"type", "extra"})
_TRICKY_FIELDS = ("ts", "revenue", "amount", "currency", "campaign_id", "channel")
_TRICKY_TEXT = st.sampled_from([
    "", "x", "2026-11-23T10:00:00Z", "2026-02-29T10:00:00+01:00", "2024-02-29 23:59:59.5-23:59",
    "12.5", "-0", "0.000", "1e5", "999999999999999", "1000000000000000", "USD", "usd", "XYZ",
    "like", "profile_visit", "summer-sale", "Tik\tTok", "a\n", "\x7f",
])
_TS_CHARS = "0123456789:+-TtZz .\n"


@st.composite
def _mutated_ts(draw: st.DrawFn) -> str:
    text = list(draw(st.sampled_from(["2026-11-23T10:00:00Z", "2024-02-29T23:59:59.123+05:30",
                                      "1999-12-31 00:00:00-23:59"])))
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(text) - 1))
        text[i] = draw(st.sampled_from(_TS_CHARS))
    return "".join(text)


@st.composite
def _ts_from_parts(draw: st.DrawFn) -> str:
    """RFC 3339 look-alikes with every part near or past its limit."""
    def two(top: int) -> str:
        return f"{draw(st.integers(0, top)):02d}"

    year = draw(st.sampled_from([0, 1, 1900, 1970, 2000, 2024, 2026, 2100, 2400, 9999])
                | st.integers(0, 9999))
    fraction = draw(st.sampled_from(["", ".", ".5", ".123456", ".1234567890"]))
    offset = draw(st.sampled_from(["Z", "z", "", "UTC", "+0530", "numeric"]))
    if offset == "numeric":
        offset = f"{draw(st.sampled_from('+-'))}{two(25)}:{two(99)}"
    separator = draw(st.sampled_from("Tt _"))
    return (f"{year:04d}-{two(13)}-{two(32)}{separator}{two(25)}:{two(61)}:{two(61)}"
            f"{fraction}{offset}")


@st.composite
def _decimal_text(draw: st.DrawFn) -> str:
    """Decimal strings of every length around the 15-digit limit, signed or not."""
    digits = draw(st.text("0123456789", min_size=0, max_size=18))
    zeros = "0" * draw(st.integers(0, 3))
    fraction = draw(st.sampled_from(["", ".", ".0", ".5", ".999", ".00"]))
    sign = draw(st.sampled_from(["", "", "-", "+", " "]))
    return f"{sign}{zeros}{digits}{fraction}"


_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20),
    st.text(string.ascii_letters + string.digits + "._:- ", min_size=1, max_size=140),
    _TRICKY_TEXT, _mutated_ts(), _ts_from_parts(), _decimal_text(),
    st.decimals(allow_nan=False, allow_infinity=False).map(str),
    st.floats(-1e16, 1e16, allow_nan=False),
)
_GOOD_LINE = {"product_id": "sku-1", "quantity": 2, "revenue": "12.5"}


@st.composite
def _item_lines(draw: st.DrawFn) -> list[Any]:
    """An order's items: valid lines, a few with a field edited, dropped or added."""
    lines: list[Any] = []
    for _ in range(draw(st.sampled_from([0, 1, 2, 3, 100, 101]))):
        line: Any = dict(_GOOD_LINE)
        if draw(st.integers(0, 3)) == 0:
            name = draw(st.sampled_from(["product_id", "quantity", "revenue", "extra"]))
            value = draw(st.one_of(st.just(DROP), _SCALARS))
            if value is DROP:
                line.pop(name, None)
            else:
                line[name] = value
        elif draw(st.integers(0, 19)) == 0:
            line = draw(_SCALARS)
        lines.append(line)
    return lines


_VALUES = st.one_of(_SCALARS, st.lists(_SCALARS, max_size=2),
                    st.dictionaries(st.text(max_size=3), _SCALARS, max_size=2), _item_lines())


@settings(max_examples=1500, deadline=None, derandomize=True)
@given(
    event_type=st.sampled_from(EVENT_TYPES),
    edits=st.lists(st.tuples(st.sampled_from(_FIELDS) | st.sampled_from(_TRICKY_FIELDS),
                             st.one_of(st.just(DROP), _VALUES)), min_size=1, max_size=3),
)
def test_any_edit_of_a_valid_event_gets_the_same_verdict(
    event_type: EventType, edits: list[tuple[str, Any]]
) -> None:
    agree(edit(event_type, **dict(edits)), event_type)


# --- the rules no JSON Schema states: the gap, shown ----------------------------------------

NOW_MS = TS_MS + 30 * 60_000


def test_the_clock_rule_is_the_worker_s_alone() -> None:
    doc = edit("view", ts=NOW_MS + MAX_FUTURE_MS + 1000)
    assert schema_accepts(doc, "view", fx=True)
    assert not worker_accepts(doc, "view", now_ms=NOW_MS)


def test_a_currency_without_a_rate_passes_only_the_static_schema() -> None:
    doc = edit("spend", currency="JPY")
    assert schema_accepts(doc, "spend", fx=False)
    assert not schema_accepts(doc, "spend", fx=True)
    assert not worker_accepts(doc, "spend")


def test_message_size_is_the_worker_s_alone() -> None:
    doc = edit("view", pad="x" * 70_000)
    assert schema_accepts(doc, "view", fx=True)
    assert not worker_accepts(doc, "view")


@pytest.mark.parametrize("field", ["ts", "watch_ms"])
def test_a_whole_number_written_with_a_fraction_is_refused_by_the_worker_alone(
    field: str,
) -> None:
    doc = edit("view", **{field: float(TS_MS)})
    assert agree(doc, "view") is None
    assert schema_accepts(doc, "view", fx=True)
    assert not worker_accepts(doc, "view")


def test_an_item_quantity_written_with_a_fraction_is_refused_by_the_worker_alone() -> None:
    doc = edit("order", items=[{"product_id": "p", "quantity": 2.0, "revenue": "1"}])
    assert agree(doc, "order") is None
    assert schema_accepts(doc, "order", fx=True)
    assert not worker_accepts(doc, "order")


def test_every_schema_names_what_it_cannot_state() -> None:
    for event_type in EVENT_TYPES:
        description = event_schema(event_type)["description"]
        for rule in NOT_EXPRESSIBLE:
            assert rule in description
        assert "future" in description and "[fx]" in description and "bytes" in description


# --- the schemas themselves ---------------------------------------------------------------

@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_schemas_are_valid_draft_2020_12(event_type: EventType) -> None:
    for currencies in (None, FX_CODES):
        schema = orjson.loads(schema_json(event_type, currencies))
        Draft202012Validator.check_schema(schema)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_the_content_type_pattern_agrees_with_the_worker_on_every_character() -> None:
    """Each Unicode character alone as a content_type (the lower-case rule is per character)."""
    pattern = re.compile(event_schema("view")["properties"]["content_type"]["pattern"])
    disagree = []
    for code in range(sys.maxunicode + 1):
        if 0xD800 <= code <= 0xDFFF:  # surrogates: no JSON text holds one alone
            continue
        char = chr(code)
        try:
            validation._content_type(char)
            worker = True
        except validation._Invalid:
            worker = False
        if worker != bool(pattern.search(char)):
            disagree.append(hex(code))
    assert disagree == []
    assert not pattern.search("A") and not pattern.search("\x00") and pattern.search("a")


def test_required_fields_follow_the_spec() -> None:
    required = {t: set(event_schema(t)["required"]) for t in EVENT_TYPES}
    common = {"event_id", "ts", "campaign_id"}
    assert required == {
        "view": common, "engagement": common | {"action"}, "click": common,
        "order": {"event_id", "ts", "order_id", "customer_id", "revenue", "currency"},
        "spend": common | {"amount", "currency"},
    }


def test_served_schema_lists_the_deployment_s_currencies() -> None:
    currency = event_schema("order", ["EUR", "USD"])["properties"]["currency"]
    assert "EUR, USD" in currency["description"]


def test_unknown_type_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown event type 'impression'"):
        event_schema("impression")  # type: ignore[arg-type]
