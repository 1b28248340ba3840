"""Memory per remembered event id, per customer and per campaign-channel, measured.

Builds each piece of state the way the stages do (book entry plus table entry) and
divides the traced allocation by the count. Run: python -m bench.state_memory
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable

from streams.attribution.customers import CustomerBook
from streams.attribution.orders import OrderRoute
from streams.config.settings import Window
from streams.flow.forwards import Forwards
from streams.stages.click_records import MemoryClickStore
from streams.stages.counting import CountStage
from streams.stages.joining import ClickStage
from streams.windows.counts import FIELDS
from streams.windows.extras import ExtrasDelta
from streams.windows.minutes import TOTAL
from streams.windows.reach import user_key
from streams.windows.state import KpiState

N = 100_000
NOW = 1_795_430_000_000


def measure(build: Callable[[], object], count: int) -> float:
    """Bytes allocated per item by ``build`` (kept alive until measured)."""
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    kept = build()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del kept
    return (after - before) / count


def event_ids() -> object:
    """The count stage remembering N ids, 40 per source message (a typical forward)."""
    stage = CountStage(KpiState(1440), {}, 86_400_000)
    per_message = 40
    for offset in range(N // per_message):
        forwards = Forwards()
        for i in range(per_message):  # 40-character ids
            forwards.add("v", f"{offset:06d}{i:02d}-3f2a9c1e-tracker-event-id", NOW, "tiktok")
        stage.handle("summer-sale", forwards, 0, offset, NOW)
    return stage


def clicks() -> object:
    """The join stage remembering N clicks (20-character click ids), 40 per message."""
    stage = ClickStage(MemoryClickStore(), {}, 7 * 86_400_000, 60_000)
    per_message = 40
    for offset in range(N // per_message):
        for i in range(per_message):
            stage.remember(f"ttclid-{offset:08d}{i:05d}",
                           (NOW, "summer-sale", "tiktok", "tutorial"), 0, offset)
        stage.end_message(0, offset)
    return stage


def customers() -> object:
    book, table = CustomerBook(86_400_000), {}
    for i in range(N):
        order = OrderRoute(f"o-{i}", NOW + i, f"customer-{i:010d}", None, 10_000_000,
                           "summer-sale", "tiktok", None)
        book.decide(order, 0, i, NOW)
        table[order.customer_id] = book.records[order.customer_id]
    return book, table


SCRAPED_WINDOWS = (Window("5m", 5), Window("1h", 60), Window("24h", 1440))
VIEWERS_PER_MINUTE = 50
"""Distinct viewers a campaign-channel's minute bucket sketches in the seed-KPI measurement."""


def _seed_extras(cc: int, minute: int) -> ExtrasDelta:
    """One minute's extras: 50 viewers (a third of them seen the minute before), three
    products and two content types, as a busy campaign-channel's minute has."""
    users = [user_key(f"viewer-{cc}-{minute * 33 + i}") for i in range(VIEWERS_PER_MINUTE)]
    return ExtrasDelta(users, {"sku-a": [2, 40_000_000], "sku-b": [1, 15_000_000],
                               f"sku-{minute % 7}": [1, 9_990_000]},
                       {"tutorial": [30, 2, 1, 0, 0], "unboxing": [10, 1, 0, 1, 25_000_000]})


def campaign_channels(minutes: int, count: int, seed: bool = False) -> Callable[[], object]:
    def build() -> object:
        state, table = KpiState(1440), {}
        for cc in range(count):
            for minute in range(minutes):
                key = (f"campaign-{cc:05d}", "tiktok", minute)
                delta = [5, 2, 1, 1] + [0] * (len(FIELDS) - 4)
                extras = {key: _seed_extras(cc, minute)} if seed else None
                changed = state.apply({key: delta}, minute, minute, extras)
                table.update({k: v for k, v in changed.items() if v is not None})
        if seed:  # scraped, as a worker is every few seconds: hours gone by are rolled up
            list(state.extras_rows(minutes - 1, SCRAPED_WINDOWS, lambda _: True))
        return state, table
    return build


def main() -> None:
    # The tests' dict store; a worker keeps its ids on disk (python -m bench.state_scale).
    print(f"per remembered event id, in dicts: {measure(event_ids, N):6.0f} bytes")
    print(f"per remembered click (attribution): {measure(clicks, N):5.0f} bytes")
    print(f"per remembered customer:          {measure(customers, N):7.0f} bytes")
    for minutes in (1, 60, 1440):
        per_cc = measure(campaign_channels(minutes, N // 100), N // 100)
        print(f"per campaign-channel, {minutes:4d} live minute buckets: "
              f"{per_cc / 1024:8.1f} KiB")
    for minutes in (1, 60, 1440):
        per_cc = measure(campaign_channels(minutes, N // 1000, seed=True), N // 1000)
        print(f"the same with viewers, products, content, {minutes:4d} minutes: "
              f"{per_cc / 1024:8.1f} KiB")
    _ = TOTAL


if __name__ == "__main__":
    main()
