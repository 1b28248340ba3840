"""Writes deploy/grafana/dashboards/kpistream.json: python deploy/grafana/build_dashboard.py

The dashboard is generated so that every KPI panel is built the same way: the KPI summed
over the selected channels per campaign (ratios re-derived from summed numerator and
denominator), and the campaign's target from ``marketing_kpi_target`` as a dashed line.
Below them: the main KPIs beside the same time last week, every campaign side by side in
a table, and budgets (spend against the budget line, pacing).
tests/deploy/test_dashboard.py checks the JSON file is what this script writes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from metrics.names import RATIOS

DATASOURCE = {"type": "prometheus", "uid": "kpistream-prometheus"}
OUT = Path(__file__).resolve().parent / "dashboards" / "kpistream.json"
SEL = 'campaign=~"$campaign", channel=~"$channel", window="$window"'

COUNT, MONEY, PERCENT = "short", "currencyUSD", "percentunit"
MULTIPLE = "suffix:\u00d7"  # ROAS: a multiple of the spend, shown with a multiplication sign


# Rows of (title, KPI, unit).
ROWS: list[tuple[str, list[tuple[str, str, str]]]] = [
    ("Reach and engagement", [
        ("Views", "views", COUNT),
        ("Completed views", "completed_views", COUNT),
        ("Engagements", "engagements", COUNT),
        ("Engagement rate (engagements / views)", "engagement_ratio", PERCENT),
        ("Completion rate (completed / views)", "completion_ratio", PERCENT),
    ]),
    ("Clicks and conversion", [
        ("Clicks", "clicks", COUNT),
        ("CTR (clicks / views)", "click_through_ratio", PERCENT),
        ("Orders", "orders", COUNT),
        ("New customers", "new_customers", COUNT),
        ("Conversion rate (orders / clicks)", "conversion_ratio", PERCENT),
        ("Repeat purchase rate", "repeat_purchase_ratio", PERCENT),
    ]),
    ("Revenue", [
        ("Revenue", "revenue", MONEY),
        ("Spend", "spend", MONEY),
    ]),
    ("ROAS, ROI", [
        ("ROAS (revenue / spend)", "roas_ratio", MULTIPLE),
        ("ROI ((revenue - spend) / spend)", "roi_ratio", PERCENT),
    ]),
    ("CAC and AOV", [
        ("CAC (spend / new customers)", "cac", MONEY),
        ("AOV (revenue / orders)", "aov", MONEY),
    ]),
]

# The KPIs set side by side in the table: (title, KPI, unit).
COMPARED: list[tuple[str, str, str]] = [
    ("ROI", "roi_ratio", PERCENT),
    ("ROAS", "roas_ratio", MULTIPLE),
    ("CTR", "click_through_ratio", PERCENT),
    ("Conversion rate", "conversion_ratio", PERCENT),
    ("CAC", "cac", MONEY),
]
LAST_WEEK = "1w"
# Every ratio KPI beside last week: the table's five first, then the rest in ROWS order.
BESIDE_LAST_WEEK: list[tuple[str, str, str]] = [*COMPARED, *(
    (title.split(" (")[0], kpi, unit) for _, panels in ROWS for title, kpi, unit in panels
    if kpi in RATIOS and kpi not in {k for _, k, _ in COMPARED})]

HEALTH: list[tuple[str, str, str, str]] = [
    ("Events read per second", "short",
     "sum by (type, outcome) (rate(kpistream_events_total[$__rate_interval]))",
     "{{type}} {{outcome}}"),
    ("Dead-letter share of input", PERCENT,
     'sum(rate(kpistream_events_total{outcome="invalid"}[$__rate_interval]))\n/\n'
     "sum(rate(kpistream_events_total[$__rate_interval]))",
     "invalid"),
    ("Age of the newest event (event time)", "s",
     "time() - max by (type) (kpistream_last_event_timestamp_seconds)", "{{type}}"),
    ("Workers up and ready", "short",
     'sum(up{job="kpistream"})', "up"),
    ("Consumer lag (messages)", "short",
     "sum by (group, topic) (kpistream_consumer_lag)", "{{group}} {{topic}}"),
]
HEALTH_EXTRA = {"Workers up and ready": ("sum(kpistream_ready)", "ready")}


def _sum(metric: str, offset: str = "") -> str:
    shift = f" offset {offset}" if offset else ""
    return f"sum by (campaign) (marketing_{metric}{{{SEL}}}{shift})"


def kpi_expr(kpi: str, offset: str = "") -> str:
    """The KPI per campaign over the selected channels, summed before dividing; with
    ``offset``, as it was that long ago."""
    if kpi not in RATIOS:
        return _sum(kpi, offset)
    numerator, denominator = RATIOS[kpi]
    top = " - ".join(_sum(m, offset) for m in numerator)
    if len(numerator) > 1:
        top = f"({top})"
    return f"{top}\n/\n({_sum(denominator, offset)} > 0)"


def target_expr(kpi: str) -> str:
    # Drop targets are fractions of the past value, not a level to draw beside the KPI.
    return ('max by (campaign, bound) (marketing_kpi_target{campaign=~"$campaign", '
            f'kpi="{kpi}", bound=~"min|max", window="$window"}})')


def _budget(metric: str) -> str:
    return f'max by (campaign, period) ({metric}{{campaign=~"$campaign"}})'


BUDGET_PANELS: list[tuple[str, str, list[tuple[str, str]], str]] = [
    ("Spend against the budget", MONEY, [
        (_budget("marketing_budget_spend"), "{{campaign}} {{period}} spent"),
        (f"{_budget('marketing_budget')}\n* on (campaign, period)\n"
         f"{_budget('marketing_budget_elapsed_ratio')}", "{{campaign}} {{period}} on pace"),
        (_budget("marketing_budget"), "{{campaign}} {{period}} budget"),
    ], "Spend (all channels) so far in the budget's period: a day from local midnight in "
       "the budget's timezone, or a lifetime budget's start to its end. Dashed: the budget, "
       "and the spend that would be on pace by now."),
    ("Budget pacing (1 = on pace)", "short", [
        (_budget("marketing_budget_pacing_ratio"), "{{campaign}} {{period}}"),
    ], "Spend so far / the budget's share for the time elapsed. BudgetOverspending fires "
       "above 1.5, BudgetUnderspending below 0.5 once a quarter of the period has passed."),
]


def _panel(panel_id: int, title: str, unit: str, targets: list[dict[str, Any]],
           x: int, y: int, description: str = "") -> dict[str, Any]:
    defaults: dict[str, Any] = {
        "unit": unit, "custom": {"lineWidth": 2, "fillOpacity": 0, "spanNulls": False},
    }
    if unit in (MONEY, PERCENT, MULTIPLE):
        defaults["decimals"] = 2
    return {
        "id": panel_id,
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "gridPos": {"h": 8, "w": 8, "x": x, "y": y},
        "fieldConfig": {
            "defaults": defaults,
            "overrides": [{
                "matcher": {"id": "byRegexp", "options": ".* (target|last week|budget|on pace)$"},
                "properties": [
                    {"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}},
                    {"id": "custom.lineWidth", "value": 1},
                ],
            }],
        },
        "options": {"legend": {"displayMode": "list", "placement": "bottom"},
                    "tooltip": {"mode": "multi", "sort": "desc"}},
        "targets": targets,
    }


def _query(ref: str, expr: str, legend: str) -> dict[str, Any]:
    return {"refId": ref, "datasource": DATASOURCE, "expr": expr, "legendFormat": legend,
            "range": True, "instant": False}


def _table(panel_id: int, y: int) -> dict[str, Any]:
    """Every selected campaign in one row each, a column per KPI (instant values)."""
    targets = [{"refId": chr(ord("A") + i), "datasource": DATASOURCE, "expr": kpi_expr(kpi),
                "legendFormat": title, "range": False, "instant": True, "format": "table"}
               for i, (title, kpi, _) in enumerate(COMPARED)]
    rename = {f"Value #{chr(ord('A') + i)}": title for i, (title, _, _) in enumerate(COMPARED)}
    overrides = [{"matcher": {"id": "byName", "options": title},
                  "properties": [{"id": "unit", "value": unit}, {"id": "decimals", "value": 2}]}
                 for title, _, unit in COMPARED]
    return {
        "id": panel_id,
        "type": "table",
        "title": "Campaigns side by side",
        "description": "Each campaign over the selected channels and window, ratios "
                       "re-derived from sums. Sort by a column to rank campaigns.",
        "datasource": DATASOURCE,
        "gridPos": {"h": 8, "w": 24, "x": 0, "y": y},
        "fieldConfig": {"defaults": {}, "overrides": overrides},
        "options": {"showHeader": True, "sortBy": [{"displayName": "ROI", "desc": True}]},
        "transformations": [
            {"id": "merge", "options": {}},
            {"id": "organize", "options": {"excludeByName": {"Time": True},
                                           "renameByName": {"campaign": "Campaign", **rename}}},
        ],
        "targets": targets,
    }


def _row(panel_id: int, title: str, y: int) -> dict[str, Any]:
    return {"id": panel_id, "type": "row", "title": title, "collapsed": False,
            "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []}


def _variable(name: str, label: str, query: str, multi: bool,
              current: str | None = None) -> dict[str, Any]:
    variable: dict[str, Any] = {
        "name": name, "label": label, "type": "query", "datasource": DATASOURCE,
        "query": {"query": query, "refId": f"{name}-values"}, "definition": query,
        "refresh": 2, "sort": 1, "multi": multi, "includeAll": multi,
    }
    if multi:
        variable["allValue"] = ".*"
        variable["current"] = {"selected": True, "text": ["All"], "value": ["$__all"]}
    elif current is not None:
        variable["current"] = {"selected": True, "text": current, "value": current}
    return variable


def dashboard() -> dict[str, Any]:
    panels: list[dict[str, Any]] = []
    y = 0
    next_id = iter(range(1, 1000))
    target_note = ("Dashed: the campaign's target for this window (marketing_kpi_target); "
                   "targets apply to the campaign over all channels.")
    for title, kpis in ROWS:
        panels.append(_row(next(next_id), title, y))
        y += 1
        for i, (panel_title, kpi, unit) in enumerate(kpis):
            x, row_y = (i % 3) * 8, y + (i // 3) * 8
            panels.append(_panel(
                next(next_id), panel_title, unit,
                [_query("A", kpi_expr(kpi), "{{campaign}}"),
                 _query("B", target_expr(kpi), "{{campaign}} {{bound}} target")],
                x, row_y, f"marketing_{kpi} per campaign over the selected channels. "
                + target_note))
        y += ((len(kpis) + 2) // 3) * 8
    panels.append(_row(next(next_id), "Compared with last week", y))
    y += 1
    for i, (panel_title, kpi, unit) in enumerate(BESIDE_LAST_WEEK):
        panels.append(_panel(
            next(next_id), f"{panel_title}: now and last week", unit,
            [_query("A", kpi_expr(kpi), "{{campaign}}"),
             _query("B", kpi_expr(kpi, LAST_WEEK), "{{campaign}} last week")],
            (i % 3) * 8, y + (i // 3) * 8,
            f"marketing_{kpi} per campaign over the selected channels; dashed: the same "
            "time a week before. Alerts on drops: [[targets]] drop (deploy/README.md)."))
    y += ((len(BESIDE_LAST_WEEK) + 2) // 3) * 8
    panels.append(_table(next(next_id), y))
    y += 8
    panels.append(_row(next(next_id), "Budgets", y))
    y += 1
    for i, (panel_title, unit, queries, description) in enumerate(BUDGET_PANELS):
        panels.append(_panel(
            next(next_id), panel_title, unit,
            [_query(chr(ord("A") + j), expr, legend) for j, (expr, legend) in enumerate(queries)],
            i * 12, y, description))
        panels[-1]["gridPos"]["w"] = 12
    y += 8
    panels.append(_row(next(next_id), "Service health", y))
    y += 1
    for i, (panel_title, unit, expr, legend) in enumerate(HEALTH):
        queries = [_query("A", expr, legend)]
        if panel_title in HEALTH_EXTRA:
            queries.append(_query("B", *HEALTH_EXTRA[panel_title]))
        panels.append(_panel(next(next_id), panel_title, unit, queries,
                             (i % 3) * 8, y + (i // 3) * 8))
    return {
        "uid": "kpistream",
        "title": "kpistream: marketing KPIs",
        "description": "Live campaign KPIs from kpistream workers, with their targets.",
        "tags": ["kpistream", "marketing"],
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "refresh": "30s",
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": [
            _variable("campaign", "Campaign", "label_values(marketing_views, campaign)", True),
            _variable("channel", "Channel",
                      'label_values(marketing_views{campaign=~"$campaign"}, channel)', True),
            _variable("window", "Window", "label_values(marketing_views, window)", False,
                      current="1h"),
        ]},
        "annotations": {"list": []},
        "panels": panels,
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    OUT.write_text(render(), encoding="utf-8")
    sys.stdout.write(f"wrote {OUT}\n")
