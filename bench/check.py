"""Reading /metrics: the accepted-event count (fast, for polling) and the exactness check."""

from __future__ import annotations

import math
from collections import defaultdict

from prometheus_client.parser import text_string_to_metric_families

from bench.workload import Expected

__all__ = ["accepted_events", "check_kpis"]

_ACCEPTED = 'outcome="accepted"'
_COUNTER = "kpistream_events_total{"
_CHECKED_WINDOWS = ("total", "24h")
"""Every event is minutes old, so the 24h window must hold them all, like total."""


def accepted_events(text: str) -> int:
    """Sum of kpistream_events_total{outcome="accepted"}, without parsing the KPI series."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(_COUNTER) and _ACCEPTED in line:
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


def check_kpis(text: str, expected: Expected) -> list[str]:
    """Every way /metrics differs from what was sent; empty when the numbers are exact."""
    outcomes: dict[tuple[str, str], float] = defaultdict(float)
    sums: dict[tuple[str, str], float] = defaultdict(float)
    series: dict[tuple[str, str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if sample.name == "kpistream_events_total":
                outcomes[(labels["type"], labels["outcome"])] += sample.value
            elif sample.name.startswith("marketing_") and "window" in labels:
                sums[(sample.name, labels["window"])] += sample.value
                if labels["window"] == "total":
                    series[(sample.name, labels["campaign"], labels["channel"])] = sample.value
    problems = []
    for event_type, sent in sorted(expected.by_type.items()):
        accepted = outcomes[(event_type, "accepted")]
        if accepted != sent:
            problems.append(f"{event_type}: {sent} sent, {accepted:.0f} accepted")
    for (event_type, outcome), count in sorted(outcomes.items()):
        if outcome != "accepted" and count:
            problems.append(f"{event_type}: {count:.0f} counted {outcome}, none should be")
    for window in _CHECKED_WINDOWS:
        for name, want in expected.totals().items():
            got = sums[(name, window)]
            if not math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-6):
                problems.append(f'sum of {name}{{window="{window}"}} is {got}, expected {want}')
    for (campaign, channel), counts in sorted(expected.per_series.items()):
        for name, want_count in counts.items():
            got = series.get((name, campaign, channel), 0.0)
            if got != want_count:
                problems.append(f'{name}{{campaign="{campaign}",channel="{channel}",'
                                f'window="total"}} is {got}, expected {want_count}')
    return problems
