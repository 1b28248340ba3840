"""The kpi-events wire form: columns in, the same events out, split to fit a message."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.flow.forwards import KIND_TYPES, Forwards, MalformedForwards, add_event
from streams.windows.counts import FIELDS, WIDTH

events = st.lists(
    st.tuples(st.sampled_from(list(KIND_TYPES)), st.text(min_size=1, max_size=128),
              st.integers(0, 2**45), st.text(min_size=1, max_size=64), st.integers(0, 10**18)),
    min_size=1, max_size=60,
)


def forwards_of(items: list[tuple[str, str, int, str, int]]) -> Forwards:
    forwards = Forwards()
    for item in items:
        forwards.add(*item)
    return forwards


@settings(max_examples=80, deadline=None)
@given(items=events, max_bytes=st.integers(1, 4096))
def test_wire_messages_carry_every_event_in_order_within_the_size(
    items: list[tuple[str, str, int, str, int]], max_bytes: int
) -> None:
    messages = list(forwards_of(items).wire_messages(max_bytes))
    back = [event for wire in messages for event in Forwards.from_wire(wire)]
    assert back == items
    for wire in messages:
        assert len(wire) <= max_bytes or len(Forwards.from_wire(wire)) == 1


def test_a_batch_that_fits_is_one_message() -> None:
    forwards = forwards_of([("v", f"id-{i}", 1_000 + i, "tiktok", 0) for i in range(2_000)])
    assert len(list(forwards.wire_messages(512 * 1024))) == 1


@pytest.mark.parametrize("raw", [
    b"not json", b"{}", b"[]", b'["v", ["a"], [1], ["x"]]',
    b'["vv", ["a"], [1, 2], ["x", "y"], [0, 0]]',  # ids one short
    b'["vq", ["a", "b"], [1, 2], ["x", "y"], [0, 0]]',  # unknown kind q
    b'[["v"], ["a"], [1], ["x"], [0]]',  # kinds must be one string
])
def test_malformed_internal_messages_are_refused(raw: bytes) -> None:
    with pytest.raises(MalformedForwards):
        Forwards.from_wire(raw)


@pytest.mark.parametrize(("kind", "amount", "expected"), [
    ("v", 0, {"views": 1}),
    ("V", 0, {"views": 1, "completed_views": 1}),
    ("e", 0, {"engagements": 1}),
    ("c", 0, {"clicks": 1}),
    ("s", 2_500_000, {"spend_micros": 2_500_000}),
    ("o", 9_990_000, {"orders": 1, "revenue_micros": 9_990_000}),
    ("n", 9_990_000, {"orders": 1, "new_customers": 1, "revenue_micros": 9_990_000}),
    ("r", 0, {"new_customers": -1}),
])
def test_what_each_kind_counts(kind: str, amount: int, expected: dict[str, int]) -> None:
    acc = [0] * WIDTH
    add_event(acc, kind, amount)
    assert dict(zip(FIELDS, acc, strict=True)) == {f: expected.get(f, 0) for f in FIELDS}


def test_wire_form_is_five_columns() -> None:
    wire = forwards_of([("V", "a", 5, "web", 0), ("s", "b", 6, "tv", 7)]).to_wire()
    assert orjson.loads(wire) == ["Vs", ["a", "b"], [5, 6], ["web", "tv"], [0, 7]]
