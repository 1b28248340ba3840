"""ClickBook.due looks only at what is due (a heap of times, the offsets' marks), and
gives exactly what the book that scanned every waiting order at every message and held
every click in a dict gave (the book here asks the click records' store)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.attribution.clicks import KEEP_RELEASED_MS, Click, ClickBook, Waiting
from streams.attribution.named import UNATTRIBUTED
from streams.attribution.orders import OrderRoute
from streams.stages.click_records import MemoryClickStore

WEEK_MS = 7 * 86_400_000
GRACE_MS = 30_000
START_MS = 1_795_000_000_000


@dataclass
class ScanningBook:
    """The book before: ``due`` went through every waiting order of every click id."""

    window_ms: int
    grace_ms: int
    clicks: dict[str, Click] = field(default_factory=dict)
    waiting: dict[str, list[Waiting]] = field(default_factory=dict)

    def remember(self, click_id: str, click: Click, offset: int) -> list[OrderRoute]:
        known = self.clicks.get(click_id)
        if known is None or click[:3] < known[:3]:
            self.clicks[click_id] = click
        return [w.order for w in self.waiting.get(click_id, [])
                if self._release(w, offset, claim=True)]

    def join(self, order: OrderRoute, now_ms: int) -> OrderRoute | None:
        if self._claim(order):
            return order
        assert order.click_id is not None
        self.waiting.setdefault(order.click_id, []).append(Waiting(now_ms + self.grace_ms, order))
        return None

    def due(self, now_ms: int, offset: int) -> tuple[list[OrderRoute], set[str]]:
        released: list[OrderRoute] = []
        touched: set[str] = set()
        keep_until = now_ms - max(self.grace_ms, KEEP_RELEASED_MS)
        for click_id in list(self.waiting):
            entries = self.waiting[click_id]
            for entry in entries:
                if entry.due_ms <= now_ms and self._release(entry, offset, claim=False):
                    released.append(entry.order)
                    touched.add(click_id)
            kept = [e for e in entries if e.released is None or e.due_ms > keep_until]
            if len(kept) != len(entries):
                touched.add(click_id)
                if kept:
                    self.waiting[click_id] = kept
                else:
                    del self.waiting[click_id]
        return released, touched

    def _release(self, entry: Waiting, offset: int, *, claim: bool) -> bool:
        if entry.released is not None:
            return entry.released == offset
        if claim:
            if not self._claim(entry.order):
                return False
        else:
            entry.order.campaign = UNATTRIBUTED
        entry.released = offset
        return True

    def _claim(self, order: OrderRoute) -> bool:
        click = self.clicks.get(order.click_id or "")
        if click is None or not 0 <= order.ts_ms - click[0] <= self.window_ms:
            return False
        order.campaign, order.channel, order.content = click[1], click[2], click[3]
        return True


def _order(event_id: str, click_id: str, ts_ms: int) -> OrderRoute:
    return OrderRoute(event_id, ts_ms, "customer", None, 1_000_000, None, "web", click_id)


def _seen(orders: list[OrderRoute]) -> list[tuple[str, str | None, str]]:
    return [(o.event_id, o.campaign, o.channel) for o in orders]


def _waiting(book: ClickBook | ScanningBook) -> dict[str, list[tuple[int, str, int | None]]]:
    return {click_id: [(e.due_ms, e.order.event_id, e.released) for e in entries]
            for click_id, entries in book.waiting.items()}


CLICK_IDS = st.sampled_from(["a", "b", "c", "d"])
STEPS = st.lists(st.one_of(
    st.tuples(st.just("order"), CLICK_IDS, st.integers(-60_000, 60_000)),
    st.tuples(st.just("click"), CLICK_IDS, st.integers(-120_000, 0)),
    st.tuples(st.just("due"), st.integers(0, 3)),  # 0: a new message; k: the k-th back again
    st.tuples(st.just("later"), st.sampled_from([1, 5_000, GRACE_MS, KEEP_RELEASED_MS, 200_000])),
    st.tuples(st.just("rebuild"),),
), max_size=60)


@settings(max_examples=300, deadline=None)
@given(steps=STEPS)
def test_due_gives_what_scanning_every_waiting_order_gave(steps: list[tuple]) -> None:
    store = MemoryClickStore()

    def known(click_id: str) -> tuple[Click, int] | None:
        return store.click(0, click_id)

    book, scanning = ClickBook(WEEK_MS, GRACE_MS, known), ScanningBook(WEEK_MS, GRACE_MS)
    now, offset, offsets, orders = START_MS, 0, [], 0
    for step in steps:
        kind = step[0]
        if kind == "later":
            now += step[1]
            continue
        if kind == "rebuild":  # a restart: the waiting orders from their table
            rebuilt = ClickBook(WEEK_MS, GRACE_MS, known)
            for click_id, entries in book.waiting.items():
                rebuilt.load_waiting(click_id, [replace(e, order=replace(e.order))
                                                for e in entries])
            book = rebuilt
            continue
        if kind == "due" and step[1] and len(offsets) >= step[1]:
            at = offsets[-step[1]]  # a message read again (not committed before)
        else:
            offset += 1
            offsets.append(offset)
            at = offset
        if kind == "order":
            orders += 1
            event_id, click_id, ago = f"o{orders}", step[1], step[2]
            joined = book.join(_order(event_id, click_id, now + ago), now)
            expected = scanning.join(_order(event_id, click_id, now + ago), now)
            assert (joined and _seen([joined])) == (expected and _seen([expected]))
        elif kind == "click":
            click: Click = (now + step[2], f"campaign-{step[1]}", "tiktok", None)
            assert _seen(book.remember(step[1], click, at)) == _seen(
                scanning.remember(step[1], click, at))
            if book.added:  # the stage writes the message's record
                store[(0, at)] = [[click_id, *kept] for click_id, kept in book.added.items()]
                book.added.clear()
            assert {click_id: held[0] for click_id in "abcd"
                    if (held := store.click(0, click_id))} == scanning.clicks
        else:
            released, touched = book.due(now, at)
            expected_released, expected_touched = scanning.due(now, at)
            assert _seen(released) == _seen(expected_released)
            assert touched == expected_touched
        assert _waiting(book) == _waiting(scanning)


def test_due_looks_only_at_orders_whose_time_has_come() -> None:
    """10,000 orders waiting for clicks that have not come: a message before any wait
    ends releases nothing and touches nothing; at the first wait's end, only that one."""
    book = ClickBook(WEEK_MS, GRACE_MS)
    for i in range(10_000):
        book.join(_order(f"o{i}", f"click-{i}", START_MS + i), START_MS + i)
    assert book.due(START_MS + GRACE_MS - 1, 1) == ([], set())
    released, touched = book.due(START_MS + GRACE_MS, 2)
    assert _seen(released) == [("o0", UNATTRIBUTED, "web")] and touched == {"click-0"}
    assert len(book.waiting) == 10_000  # marked, kept for a replay of offset 2
    released, _ = book.due(START_MS + GRACE_MS, 2)  # that replay sends it again
    assert _seen(released) == [("o0", UNATTRIBUTED, "web")]
