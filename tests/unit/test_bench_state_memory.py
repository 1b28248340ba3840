"""The state-memory measurement still builds each piece of state the way the stages do.

Not a timed or sized test: it only checks that every measurement runs on the current
stage interfaces and gives a positive figure (it once broke silently when the internal
message format changed).
"""

from __future__ import annotations

import re

import pytest

from bench import state_memory


def test_every_state_measurement_runs_and_gives_a_figure(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(state_memory, "N", 4_000)
    state_memory.main()
    out = capsys.readouterr().out
    figures = {line.split(":")[0].strip(): float(re.findall(r"[\d.]+", line.split(":")[1])[0])
               for line in out.splitlines()}
    assert set(figures) == {
        "per remembered event id, in dicts", "per remembered click (attribution)",
        "per remembered customer", "per campaign-channel,    1 live minute buckets",
        "per campaign-channel,   60 live minute buckets",
        "per campaign-channel, 1440 live minute buckets",
        *(f"the same with viewers, products, content, {m:4d} minutes" for m in (1, 60, 1440)),
    }
    assert all(value > 0 for value in figures.values())
