"""Memory per remembered event id, per customer and per campaign-channel, measured.

Builds each piece of state the way the stages do (book entry plus table entry) and
divides the traced allocation by the count. Run: python -m bench.state_memory
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable

from streams.attribution.customers import CustomerBook
from streams.attribution.orders import OrderRoute
from streams.flow.forwards import Forwards
from streams.stages.counting import CountStage
from streams.stages.joining import ClickStage
from streams.windows.counts import FIELDS
from streams.windows.minutes import TOTAL
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
    stage = ClickStage({}, {}, 7 * 86_400_000, 60_000)
    per_message = 40
    for offset in range(N // per_message):
        for i in range(per_message):
            stage.remember(f"ttclid-{offset:08d}{i:05d}", (NOW, "summer-sale", "tiktok"), 0,
                           offset)
        stage.end_message(0, offset)
    return stage


def customers() -> object:
    book, table = CustomerBook(400 * 86_400_000, 86_400_000), {}
    for i in range(N):
        order = OrderRoute(f"o-{i}", NOW + i, f"customer-{i:010d}", None, 10_000_000,
                           "summer-sale", "tiktok", None)
        book.decide(order, 0, i, NOW)
        table[order.customer_id] = book.records[order.customer_id]
    return book, table


def campaign_channels(minutes: int) -> Callable[[], object]:
    def build() -> object:
        state, table = KpiState(1440), {}
        count = N // 100
        for cc in range(count):
            for minute in range(minutes):
                delta = [5, 2, 1, 1] + [0] * (len(FIELDS) - 4)
                changed = state.apply({(f"campaign-{cc:05d}", "tiktok", minute): delta}, minute,
                                      minute)
                table.update({k: v for k, v in changed.items() if v is not None})
        return state, table
    return build


def main() -> None:
    print(f"per remembered event id (dedup):  {measure(event_ids, N):7.0f} bytes")
    print(f"per remembered click (attribution): {measure(clicks, N):5.0f} bytes")
    print(f"per remembered customer:          {measure(customers, N):7.0f} bytes")
    for minutes in (1, 60, 1440):
        per_cc = measure(campaign_channels(minutes), N // 100)
        print(f"per campaign-channel, {minutes:4d} live minute buckets: "
              f"{per_cc / 1024:8.1f} KiB")
    _ = TOTAL


if __name__ == "__main__":
    main()
