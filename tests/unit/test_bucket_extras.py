"""A bucket's extras hold only the maps it has something in, and read and travel the same."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from streams.windows.extras import BucketExtras, ExtrasDelta
from streams.windows.reach import UserSketch

named = st.dictionaries(st.sampled_from(["review", "shoe-42", "tutorial"]),
                        st.lists(st.integers(0, 2**70), min_size=2, max_size=2), max_size=2)


def test_a_bucket_of_views_with_viewers_holds_no_empty_maps() -> None:
    """Views with a user id and a content type: no products or LTV maps held (two empty
    dicts were 128 of its ~480 bytes), and they read as empty."""
    sketch = UserSketch()
    sketch.add([7, 8])
    extras = BucketExtras()
    extras.add(ExtrasDelta(users=[7, 8], content={"review": [2, 0, 0, 0, 0]}), sketch)
    assert extras.held_products is None and extras.held_ltv is None
    assert extras.products == {} and extras.ltv == {}
    assert extras.content == {"review": [2, 0, 0, 0, 0]}
    assert set(extras.to_wire()) == {"r", "c"}
    extras.add(ExtrasDelta(products={"shoe-42": [1, 990_000]}, ltv={30: 5}), None)
    assert extras.products == {"shoe-42": [1, 990_000]} and extras.ltv == {30: 5}
    assert extras.content == {"review": [2, 0, 0, 0, 0]}


@given(products=named, content=named, ltv=st.dictionaries(st.sampled_from([30, 90]),
                                                          st.integers(0, 2**70), max_size=2))
def test_extras_come_back_from_the_changelog_as_they_went(
    products: dict[str, list[int]], content: dict[str, list[int]], ltv: dict[int, int],
) -> None:
    extras = BucketExtras()
    extras.add(ExtrasDelta(products=products, content=content, ltv=ltv), None)
    back = BucketExtras.from_wire(extras.to_wire())
    assert back == extras
    assert (back.products, back.content, back.ltv) == (products, content, ltv)
    assert (back.held_products is None, back.held_content is None,
            back.held_ltv is None) == (not products, not content, not ltv)
