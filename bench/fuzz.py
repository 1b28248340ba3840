"""Coverage-guided fuzzing (atheris, libFuzzer) of what reads bytes from Kafka.

Targets, each with its oracle:

* ``parse``: ``parse_message`` on any bytes, as every input type: never raises, returns
  only Events and Rejections, and the fast path gives exactly the precise path's verdicts.
* ``wire``: the internal formats (kpi-events columns, order routes) on any bytes: they
  raise only their own error, and whatever decodes encodes back to the same events.

    python -m bench.fuzz --target parse --runs 2000000     # a long run, minutes
    python -m bench.fuzz --target wire --seconds 600

The test suite runs each briefly (tests/unit/test_fuzz.py); a crash prints the input
libFuzzer found and exits non-zero.
"""

from __future__ import annotations

import argparse
import sys
from decimal import Decimal

import atheris

with atheris.instrument_imports():
    import orjson

    from streams.attribution.orders import OrderRoute
    from streams.events.validation import (
        EVENT_TYPES,
        Event,
        Rejection,
        ValidationRules,
        parse_message,
    )
    from streams.flow.forwards import Forwards, MalformedForwards

RULES = ValidationRules({"USD": Decimal(1), "EUR": Decimal("1.08"), "IDR": Decimal("0.000063")})
NOW_MS = 1_795_430_000_000


def parse_target(data: bytes) -> None:
    if not data:
        return
    event_type = EVENT_TYPES[data[0] % len(EVENT_TYPES)]
    raw = data[1:]
    fast = parse_message(raw, event_type, RULES, NOW_MS)
    precise = parse_message(raw, event_type, RULES, NOW_MS, fast=False)
    assert all(isinstance(v, Event | Rejection) for v in fast), fast
    assert [repr(v) for v in fast] == [repr(v) for v in precise], raw


def wire_target(data: bytes) -> None:
    try:
        forwards = Forwards.from_wire(data)
    except MalformedForwards:
        pass
    else:
        if all(isinstance(v, str) for v in forwards.ids + forwards.channels) and all(
                type(v) is int for v in forwards.ts_ms):
            again = Forwards.from_wire(forwards.to_wire())
            assert list(again) == list(forwards)
    try:
        fields = orjson.loads(data)
        route = OrderRoute.from_wire(fields)
    except (orjson.JSONDecodeError, TypeError, ValueError):
        return
    if type(route.value_micros) is int and type(route.ts_ms) is int:
        assert OrderRoute.from_wire(orjson.loads(orjson.dumps(route.to_wire()))) == route


TARGETS = {"parse": parse_target, "wire": wire_target}
TOKENS = ['"event_id"', '"ts"', '"campaign_id"', '"channel"', '"user_id"', '"completed"',
          '"watch_ms"', '"action"', '"click_id"', '"order_id"', '"customer_id"', '"revenue"',
          '"currency"', '"promo_code"', '"new_customer"', '"amount"', '""', "null", "true",
          "false", "[]", "{}", '"USD"', '"EUR"', '"like"', '"2026-11-23T10:00:00Z"',
          '"1e3"', "1795430000000", "1000000000000000", '"999999999999999.999999"', '"\\u0000"',
          '"content_type"', '"tutorial"', '"Tutorial"', '"cost"', '"items"', '"product_id"',
          '"quantity"']
"""A libFuzzer dictionary: the fields and values that reach the validator's branches."""
SEEDS = {
    "parse": [b"\x00" + orjson.dumps({"event_id": "v", "ts": NOW_MS, "campaign_id": "c",
                                      "user_id": "u", "watch_ms": 5}),
              b"\x03" + orjson.dumps([{"event_id": "o", "ts": "2026-11-23T10:00:00Z",
                                       "order_id": "A", "customer_id": "x",
                                       "revenue": "999999999999999.999999",
                                       "currency": "EUR"}]),
              b"\x01" + orjson.dumps({"event_id": "e", "ts": NOW_MS, "campaign_id": "c",
                                      "action": "like", "content_type": "live"}),
              b"\x03" + orjson.dumps({"event_id": "o", "ts": NOW_MS, "order_id": "A",
                                      "customer_id": "x", "revenue": 5, "currency": "IDR",
                                      "cost": "1.5", "items": [{"product_id": "p",
                                                                "quantity": 1,
                                                                "revenue": "0.5"}]})],
    "wire": [orjson.dumps(["vs", ["a", "b"], [1, 2], ["web", "tv"],
                           [0, "10000000000000000000000"]]),
             orjson.dumps(["o", 1, "c", None, 5, "camp", "web", "k"])],
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", choices=sorted(TARGETS), required=True)
    parser.add_argument("--runs", type=int, default=0, help="inputs to try (0: no limit)")
    parser.add_argument("--seconds", type=int, default=0, help="time limit (0: none)")
    parser.add_argument("--corpus", help="a folder to keep the corpus in")
    args = parser.parse_args(argv)
    libfuzzer = [sys.argv[0], "-rss_limit_mb=4096", "-print_final_stats=1"]
    if args.corpus:
        from pathlib import Path

        Path(args.corpus).mkdir(parents=True, exist_ok=True)
        dictionary = Path(args.corpus).parent / f"{Path(args.corpus).name}.dict"
        dictionary.write_text("".join(f"t{i}={orjson.dumps(t).decode()}\n"
                                      for i, t in enumerate(TOKENS)), encoding="utf-8")
        libfuzzer += [f"-dict={dictionary}", f"-artifact_prefix={Path(args.corpus).parent}/"]
    if args.runs:
        libfuzzer.append(f"-runs={args.runs}")
    if args.seconds:
        libfuzzer.append(f"-max_total_time={args.seconds}")
    if args.corpus:
        from pathlib import Path

        corpus = Path(args.corpus)
        for i, seed in enumerate(SEEDS[args.target]):
            (corpus / f"seed-{i}").write_bytes(seed)
        libfuzzer.append(str(corpus))
    atheris.Setup(libfuzzer, TARGETS[args.target])
    atheris.Fuzz()


if __name__ == "__main__":
    main()
