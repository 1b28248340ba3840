"""The in-process benches of a scrape's parts run and check what they time."""

from __future__ import annotations

from bench import collect_rows, scrape_rows


def test_scrape_rows_writes_generate_latests_answer() -> None:
    """Its exit status is 0 only when the gzipped answer is generate_latest's text."""
    assert scrape_rows.main(["--series", "12", "--scrapes", "1"]) == 0


def test_collect_rows_smoke_runs_and_adds_up() -> None:
    assert collect_rows.main(["--smoke"]) == 0
