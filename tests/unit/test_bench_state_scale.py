"""The state-scale benchmark's buckets part still drives the KPI state as the counting stage
does. Not a timed or sized test: it checks the run's own answers, at a small size."""

from __future__ import annotations

from bench.state_scale import buckets_part


def test_the_buckets_part_gives_the_same_sums_cold_and_in_memory() -> None:
    cold = buckets_part(40, 150, "cold")
    memory = buckets_part(40, 150, "memory")
    assert cold["buckets"] == memory["buckets"] == 40 * 150
    # each message's views are 20 + n % 37 for n = campaign + channel + minute
    expected = sum(20 + (c + i + m) % 37 for c in range(10) for i in range(4)
                   for m in range(memory["first_minute"], memory["first_minute"] + 150))
    assert cold["views_24h"] == cold["rebuilt_views_24h"] == memory["views_24h"] == expected
    assert cold["held_in_memory"] == 40 * (61 + 1)  # the hot hour and a minute, the total
    assert memory["held_in_memory"] == 40 * (150 + 1)
