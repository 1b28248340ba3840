"""Micro-benchmark of validation alone: parse_message per event, next to orjson.loads.

In process, no Kafka: builds the bench's event mix (bench.workload: 90% views, ts half
RFC 3339, half epoch ms) as single-event and 1,000-event batch messages, and times over
all of them ``orjson.loads`` alone (the floor), ``parse_message`` and
``parse_message(..., fast=False)`` (the precise rules alone, the reference). One process,
one core; figures are the best of ``--repeat`` runs, in microseconds per event.

    .venv/bin/python -m bench.validation                  # 200,000 events, both modes
    .venv/bin/python -m bench.validation --events 50000 --repeat 5 --mode batch
    .venv/bin/python -m bench.validation --types view         # the common case alone
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence

import orjson

from bench.workload import FX, TOPIC_KEYS, Mode, make_workload
from streams.events.validation import EVENT_TYPES, Event, ValidationRules, parse_message

__all__ = ["main"]

_TYPE_OF = {TOPIC_KEYS[t]: t for t in EVENT_TYPES}
"""Input topic key -> its event type."""


def _best(run: Callable[[], object], repeat: int) -> float:
    """Best wall time of ``repeat`` runs, in seconds: the one least disturbed by other work."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def bench_mode(
    mode: Mode, events: int, repeat: int, types: Sequence[str] = EVENT_TYPES,
) -> dict[str, float]:
    """Microseconds per event of each way of reading this mode's messages (of ``types``)."""
    now_ms = int(time.time() * 1000)
    workload = make_workload(events, mode, now_ms)
    rules = ValidationRules(dict(FX))
    work = [(raw, _TYPE_OF[key]) for key, msgs in workload.messages.items() for raw in msgs
            if _TYPE_OF[key] in types]
    events = sum(len(orjson.loads(raw)) if mode == "batch" else 1 for raw, _ in work)
    loads = orjson.loads

    def run_loads() -> None:
        for raw, _ in work:
            loads(raw)

    def run_parse(fast: bool) -> Callable[[], None]:
        def run() -> None:
            for raw, event_type in work:
                parse_message(raw, event_type, rules, now_ms, fast=fast)
        return run

    # Every event must come out accepted, or the figures would time the rejection path.
    accepted = sum(
        isinstance(v, Event) for raw, t in work for v in parse_message(raw, t, rules, now_ms)
    )
    if accepted != events:
        raise SystemExit(f"{mode}: only {accepted} of {events} events accepted")
    seconds = {
        "orjson.loads": _best(run_loads, repeat),
        "parse_message": _best(run_parse(True), repeat),
        "fast=False": _best(run_parse(False), repeat),
    }
    return {name: s / events * 1e6 for name, s in seconds.items()}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="validation micro-benchmark (see the module)")
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3, help="best of N runs (default 3)")
    parser.add_argument("--mode", choices=("single", "batch", "both"), default="both")
    parser.add_argument("--types", default=",".join(EVENT_TYPES),
                        help="time only these event types of the mix, e.g. view")
    args = parser.parse_args(argv)
    modes: list[Mode] = ["single", "batch"] if args.mode == "both" else [args.mode]
    types = args.types.split(",")
    if unknown := set(types) - set(EVENT_TYPES):
        parser.error(f"unknown event types {sorted(unknown)}; known: {', '.join(EVENT_TYPES)}")
    print(f"{args.events:,} events of the bench mix ({args.types}), best of {args.repeat}, "
          "us per event (in brackets: above orjson.loads)")
    for mode in modes:
        figures = bench_mode(mode, args.events, args.repeat, types)
        floor = figures["orjson.loads"]
        print(f"{mode:>6}: " + "  ".join(
            f"{name} {us:.2f}" + ("" if name == "orjson.loads" else f" (+{us - floor:.2f})")
            for name, us in figures.items()
        ))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
