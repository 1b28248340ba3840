"""The 1 -> 2 -> 3 -> 1 worker scale test, N times in a row: how often does it lose or
double-count events?

Each run is a fresh pytest session (its own broker: Apache Kafka, or Tansu with
``--broker tansu``) of
tests/integration/test_reliability.py::test_scale_one_two_three_one_workers_while_publishing;
the test prints one ``SCALE sent=... counted=... lost=... double=...`` line (events of every
kind, summed over campaigns, at the step it ended on). Worker logs of each run are kept
under ``--keep`` (pytest's --basetemp). Run: python -m bench.scale_loop [--runs 20]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.report import machine, say, write_json

TEST = ("tests/integration/test_reliability.py"
        "::test_scale_one_two_three_one_workers_while_publishing")
_LINE = re.compile(r"^SCALE sent=(\S+) counted=(\S+) lost=(\S+) double=(\S+)$", re.MULTILINE)


@dataclass
class Run:
    sent: float
    counted: float
    lost: float
    double: float
    seconds: float
    passed: bool
    load_average: tuple[float, float, float]


def run_once(basetemp: Path, broker: str) -> Run:
    """One pytest session of the scale test; its SCALE line (NaN figures if it has none)."""
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", f"{TEST}[{broker}]", "-q", "-s", "-p", "no:cacheprovider",
         f"--basetemp={basetemp}"],
        capture_output=True, text=True, check=False,
    )
    seconds = time.monotonic() - started
    found = _LINE.findall(done.stdout)
    figures = [float(x) for x in found[-1]] if found else [float("nan")] * 4
    if not found:
        say(done.stdout[-2000:] + done.stderr[-2000:])
    return Run(*figures, seconds=seconds, passed=done.returncode == 0,
               load_average=os.getloadavg())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--broker", choices=("kafka", "tansu"), default="kafka")
    parser.add_argument("--keep", type=Path, default=Path("bench/results/scale_loop"),
                        help="folder for each run's pytest temp dir (worker logs)")
    parser.add_argument("--json", type=Path, default=Path("bench/results/scale_loop.json"))
    args = parser.parse_args()
    args.keep.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()
    print("run\tsent\tcounted\tlost\tdouble\tseconds\tpassed\tload1")
    runs: list[Run] = []
    for i in range(1, args.runs + 1):
        run = run_once(args.keep / f"run-{i}", args.broker)
        runs.append(run)
        print(f"{i}\t{run.sent:.0f}\t{run.counted:.0f}\t{run.lost:.0f}\t{run.double:.0f}\t"
              f"{run.seconds:.0f}\t{run.passed}\t{run.load_average[0]:.1f}", flush=True)
    passed = sum(run.passed for run in runs)
    print(f"{passed} of {len(runs)} passed; load average at start {load[0]:.1f} "
          f"{load[1]:.1f} {load[2]:.1f}, at end {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    write_json(args.json, {"machine": machine(load), "broker": args.broker, "passed": passed,
                           "runs": [asdict(run) for run in runs]})
    return 0 if passed == len(runs) else 1


if __name__ == "__main__":
    sys.exit(main())
