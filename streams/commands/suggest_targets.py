"""``kpistream suggest-targets``: [[targets]] entries from a Prometheus server's history.

For each campaign and ratio KPI: the KPI of every window-long period of the lookback
(every day, for the 24h window), re-derived from the summed numerator and denominator at
the end of that period; periods below a minimum volume are left out; the baseline is
their median (streams.planning.baselines); the target sits ``--uplift`` percent better. The
result is TOML text for a person to review, on stdout or in a new file: the command
never edits the settings a deployment runs with, nor anything else.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any, Final

from metrics.names import RATIOS
from streams.commands.prometheus_api import PrometheusApi, PrometheusError
from streams.config.durations import parse_duration_ms
from streams.config.settings import Settings
from streams.config.targets import KPIS
from streams.planning.baselines import (
    LOWER_IS_BETTER,
    Baseline,
    Day,
    baseline,
    day_figures,
    suggested_limit,
)

__all__ = ["DEFAULT_MIN_VOLUME", "Suggestion", "add_parser", "run", "suggest", "to_toml"]

DEFAULT_MIN_VOLUME: Final[Mapping[str, Fraction]] = {
    "views": Fraction(1000), "clicks": Fraction(100), "spend": Fraction(100),
    "orders": Fraction(20)}
"""Least denominator (``KPIS[kpi].guard``) of a period for it to count in a baseline, and
the suggested target's ``min_denominator``."""
_KPIS: Final = tuple(k for k in RATIOS if KPIS[k].guard is not None)


@dataclass(frozen=True, slots=True)
class Suggestion:
    """One campaign's KPI: its baseline and the suggested limit, or why there is none."""

    campaign: str
    kpi: str
    min_volume: Fraction
    baseline: Baseline | None
    limit: Decimal | None
    periods: int
    """Periods of the lookback with any figure at all."""


def add_parser(commands: Any) -> None:
    """Register ``kpistream suggest-targets``."""
    parser = commands.add_parser(
        "suggest-targets", help="suggest [[targets]] from a Prometheus server's KPI history",
        description="Read each campaign's KPI history from Prometheus and write [[targets]] "
                    "entries a chosen improvement beyond its baseline (the median day), each "
                    "with a comment saying what it rests on, for a person to review. Changes "
                    "nothing: paste the entries you want into the settings file.")
    parser.add_argument("--prometheus", default="http://localhost:9090",
                        help="base URL of the Prometheus server (default %(default)s)")
    parser.add_argument("--lookback", default="28d",
                        help="how much history to read (default %(default)s)")
    parser.add_argument("--uplift", type=float, default=10.0,
                        help="percent better than the baseline: 10, 15 or 20 (default 10)")
    parser.add_argument("--window", default="24h",
                        help="KPI window to read and to target; one of [kpi] windows "
                             "(default %(default)s: one figure per day)")
    parser.add_argument("--kpi", action="append", choices=_KPIS, default=None,
                        help="a KPI to suggest for (repeat; default: every ratio KPI)")
    parser.add_argument("--min-volume", action="append", default=[], metavar="MEASURE=N",
                        help="least denominator of a period, e.g. spend=500 (defaults: "
                        + ", ".join(f"{k}={v}" for k, v in DEFAULT_MIN_VOLUME.items()) + ")")
    parser.add_argument("--min-days", type=int, default=7,
                        help="fewest periods with enough volume for a baseline (default 7)")
    parser.add_argument("--for", dest="for_", default="1h",
                        help="the suggested targets' for (default %(default)s)")
    parser.add_argument("--severity", choices=("page", "ticket"), default="ticket",
                        help="the suggested targets' severity (default %(default)s)")
    parser.add_argument("--output", default=None,
                        help="new file to write (default: stdout); never the settings file")
    parser.set_defaults(run=run)


def run(settings: Settings, args: argparse.Namespace,
        now_s: Callable[[], float] | None = None) -> int:
    """Suggest and write; 0 on success, 1 when Prometheus fails us, 2 on bad arguments."""
    try:
        options = _options(settings, args)
    except ValueError as exc:
        print(f"kpistream suggest-targets: {exc}", file=sys.stderr)
        return 2
    now = int((now_s or (lambda: dt.datetime.now(dt.UTC).timestamp()))())
    api = PrometheusApi(args.prometheus)
    try:
        suggestions = suggest(api, *options, now_s=now, window=args.window)
    except PrometheusError as exc:
        print(f"kpistream suggest-targets: {exc}", file=sys.stderr)
        return 1
    text = to_toml(suggestions, api.url, args.lookback, args.window, options[4], args.for_,
                   args.severity, now)
    if args.output is None:
        sys.stdout.write(text)
        return 0
    try:
        # "x": never over an existing file, so never over the settings a deployment runs with
        with open(args.output, "x", encoding="utf-8") as out:
            out.write(text)
    except OSError as exc:
        print(f"kpistream suggest-targets: cannot write {args.output}: {exc}", file=sys.stderr)
        return 1
    return 0


Options = tuple[int, int, Sequence[str], Mapping[str, Fraction], Fraction, int]


def _options(settings: Settings, args: argparse.Namespace) -> Options:
    lookback_s = parse_duration_ms(args.lookback) // 1000
    windows = {w.label: w.minutes * 60 for w in settings.windows}
    if args.window not in windows:
        raise ValueError(f"--window {args.window!r} is not one of the settings' [kpi] "
                         f"windows: {', '.join(windows)}")
    step_s = windows[args.window]
    if lookback_s < step_s:
        raise ValueError(f"--lookback {args.lookback} is shorter than the {args.window} window")
    if not 0 < args.uplift < 100:
        raise ValueError(f"--uplift must be a percentage above 0 and below 100, got "
                         f"{args.uplift}")
    volumes = dict(DEFAULT_MIN_VOLUME)
    for item in args.min_volume:
        measure, _, number = item.partition("=")
        if measure not in volumes:
            raise ValueError(f"--min-volume {item!r}: the measure is one of "
                             f"{', '.join(volumes)}")
        try:
            volumes[measure] = Fraction(number)
        except ValueError:
            raise ValueError(f"--min-volume {item!r}: {number!r} is not a number") from None
    if args.min_days < 1:
        raise ValueError(f"--min-days must be 1 or more, got {args.min_days}")
    parse_duration_ms(args.for_)
    uplift = Fraction(Decimal(str(args.uplift))) / 100
    return lookback_s, step_s, tuple(args.kpi or _KPIS), volumes, uplift, args.min_days


def suggest(api: PrometheusApi, lookback_s: int, step_s: int, kpis: Sequence[str],
            volumes: Mapping[str, Fraction], uplift: Fraction, min_days: int, *,
            now_s: int, window: str = "24h") -> list[Suggestion]:
    """Ask Prometheus for the sums behind ``kpis`` and suggest a limit for each campaign."""
    retention = api.retention_s()
    if retention is not None and lookback_s > retention:
        raise PrometheusError(f"the lookback of {lookback_s // 86_400}d reaches past what "
                              f"Prometheus at {api.url} keeps ({float(retention) / 86_400:g}d, "
                              "its storage retention): give a shorter --lookback")
    end = now_s // step_s * step_s  # the last period boundary (midnight UTC for 24h)
    start = end - lookback_s + step_s
    measures = sorted({m for k in kpis for m in (*RATIOS[k][0], RATIOS[k][1],
                                                 str(KPIS[k].guard))})
    sums: dict[str, dict[int, dict[str, Fraction]]] = {}
    for measure in measures:
        expr = f'sum by (campaign) (marketing_{measure}{{window="{window}"}})'
        for series in api.query_range(expr, start, end, step_s):
            campaign = series.labels.get("campaign", "")
            for t, v in series.samples:
                sums.setdefault(campaign, {}).setdefault(t, {})[measure] = v
    if not sums:
        raise PrometheusError(
            f"no KPI history in Prometheus at {api.url} for window {window!r} over the last "
            f"{lookback_s // 86_400}d: is it scraping the workers (marketing_spend"
            f'{{window="{window}"}}), and for that long?')
    suggestions = []
    for campaign in sorted(sums):
        for kpi in kpis:
            guard = str(KPIS[kpi].guard)
            days = []
            for t, figures in sorted(sums[campaign].items()):
                value = day_figures(kpi, figures)
                if value is not None and guard in figures:
                    day = dt.datetime.fromtimestamp(t - step_s, dt.UTC).date()
                    days.append(Day(day, value[0], figures[guard]))
            if not days:
                continue
            base = baseline(days, volumes[guard], min_days)
            limit = None if base is None else suggested_limit(kpi, base.value, uplift)
            suggestions.append(Suggestion(campaign, kpi, volumes[guard], base, limit, len(days)))
    return suggestions


def to_toml(suggestions: Sequence[Suggestion], url: str, lookback: str, window: str,
            uplift: Fraction, for_: str, severity: str, now_s: int) -> str:
    """The entries, each under a comment with its baseline, days and sample size."""
    when = dt.datetime.fromtimestamp(now_s, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    pct = f"{float(uplift * 100):g} %"
    lines = [
        f"# [[targets]] suggested by `kpistream suggest-targets` from {url} at {when}:",
        f"# each KPI {pct} better than its baseline over the last {lookback}, one figure "
        f"per {window}",
        "# window (windows ending at 00:00 UTC for 24h). A min above the baseline fires "
        "whenever",
        "# a period is worse than the target: review each entry (value, for, severity) "
        "before",
        "# pasting it into the settings file.",
        "",
    ]
    for s in suggestions:
        guard = str(KPIS[s.kpi].guard)
        volume = f"{_figure(s.min_volume)} {guard}"
        if s.baseline is None or s.limit is None:
            lines += [f"# {s.campaign} {s.kpi}: skipped, fewer than the minimum days with at "
                      f"least {volume} among its {s.periods} periods", ""]
            continue
        b = s.baseline
        how = ("median of the 7 weekday medians" if b.method == "weekday"
               else "median of all days")
        bound = "max" if s.kpi in LOWER_IS_BETTER else "min"
        lines += [
            f"# {s.campaign} {s.kpi}: baseline {_figure(b.value)} ({how}) from {len(b.days)} "
            f"days {b.days[0].day} to {b.days[-1].day} with at least {volume} each;",
            f"# sample: {_figure(b.volume)} {guard} in all; {s.periods - len(b.days)} "
            "days left out for low volume",
            "[[targets]]",
            f'kpi = "{s.kpi}"',
            f'campaign = "{s.campaign}"',
            f"{bound} = {format(s.limit, 'f')}",
            f'window = "{window}"',
            f'for = "{for_}"',
            f'severity = "{severity}"',
            f"min_denominator = {_figure(s.min_volume)}",
            "",
        ]
    return "\n".join(lines)


def _figure(value: Fraction) -> str:
    text = f"{float(value):.6g}"
    return text if "e" not in text else format(Decimal(text), "f")
