"""The kill-anything soak, short: two SIGKILLs of random workers while a ledger producer
keeps sending all five event types (duplicates, late events, orders attributed by campaign,
promo code and click, returning customers); the summed /metrics must equal the ledger.

``python -m bench.soak`` is the long version (10 minutes at 1,000 events/s).
"""

from __future__ import annotations

from pathlib import Path

from bench.ledger import METRICS
from bench.soak import SoakConfig, render, run_soak
from streams.broker import LocalBroker


def test_two_sigkills_while_producing_lose_nothing_and_count_nothing_twice(
    broker: LocalBroker, tmp_path: Path,
) -> None:
    config = SoakConfig(duration_s=45, rate=300, workers=3, seed=11, kill_min_s=15,
                        kill_max_s=20, min_kills=2, max_kills=2, final_timeout_s=120)
    result = run_soak(broker, tmp_path, config)
    report = render(result)
    print("\n" + report)

    assert len(result.kills) == 2, report
    assert all(k.restarted_ready_s is not None for k in result.kills), report
    assert result.problems == [], report
    assert result.producer.given_up_events == 0, report
    # What the run sent is what the brief asks for: every type, and re-sends of each.
    assert all(n > 0 for n in result.sent_unique.values()), report
    assert all(n > 0 for n in result.sent_duplicates.values()), report
    lost = {name: result.metrics[name]["lost"] for name in METRICS
            if result.metrics[name]["lost"]}
    double = {name: result.metrics[name]["double"] for name in METRICS
              if result.metrics[name]["double"]}
    assert (lost, double) == ({}, {}), report
    assert result.exact, report
    # Every event acknowledged before a kill was counted again after it.
    assert all(k.covered_s is not None for k in result.kills), report
