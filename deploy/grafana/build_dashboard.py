"""Writes deploy/grafana/dashboards/kpistream.json: python deploy/grafana/build_dashboard.py

The dashboard is generated so that every KPI panel is built the same way: the KPI summed
over the selected channels per campaign (ratios re-derived from summed numerator and
denominator), and the campaign's target from ``marketing_kpi_target`` as a dashed line.
The seed KPIs follow: reach and frequency per campaign and channel (distinct viewers do
not add up over channels), actions, watch time, profit, lifetime value (window "total",
per horizon), top products and content types. Below them: the main KPIs beside the same
time last week, every campaign side by side in a table, and budgets (spend against the
budget line, pacing).
tests/deploy/test_dashboard.py checks the JSON file is what this script writes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, NamedTuple

from metrics.names import RATIOS

DATASOURCE = {"type": "prometheus", "uid": "kpistream-prometheus"}
OUT = Path(__file__).resolve().parent / "dashboards" / "kpistream.json"
SEL = 'campaign=~"$campaign", channel=~"$channel", window="$window"'
# Lifetime value has one window: everything since the campaign began.
SEL_TOTAL = 'campaign=~"$campaign", channel=~"$channel", window="total"'

COUNT, MONEY, PERCENT, SECONDS = "short", "currencyUSD", "percentunit", "s"
MULTIPLE = "suffix:\u00d7"  # ROAS: a multiple of the spend, shown with a multiplication sign


class Panel(NamedTuple):
    """A panel that is not one KPI beside its target: its own queries (expr, legend)."""

    title: str
    unit: str
    queries: list[tuple[str, str]]
    description: str = ""
    decimals: int | None = None


def _by(labels: str, metric: str, selection: str = SEL) -> str:
    return f"sum by ({labels}) (marketing_{metric}{{{selection}}})"


def _per_channel(metric: str) -> str:
    # One series per campaign-channel (a campaign lives on one worker): max drops the
    # instance label without adding anything up.
    return f"max by (campaign, channel) (marketing_{metric}{{{SEL}}})"


def _ltv_revenue() -> str:
    """Revenue within each horizon of the customers acquired: LTV x new customers."""
    return (f"sum by (campaign, horizon) (\n  marketing_ltv{{{SEL_TOTAL}}}\n"
            "  * on (campaign, channel, window) group_left\n"
            f"  max by (campaign, channel, window) (marketing_new_customers{{{SEL_TOTAL}}})\n)")


def ltv_expr(denominator: str) -> str:
    """LTV (``new_customers``) or LTV:CAC (``spend``) per campaign and horizon over the
    selected channels, as the recording rules re-derive them."""
    # "group_left ()": a parenthesis right after group_left would be read as its labels.
    return (f"{_ltv_revenue()}\n/ on (campaign) group_left ()\n"
            f"({_by('campaign', denominator, SEL_TOTAL)} > 0)")


def _actions(action: str) -> str:
    return (f'sum by (campaign) (marketing_engagement_actions{{{SEL}, action="{action}"}})')


_SPLIT_NOTE = ("The top products (by revenue) of each campaign, channel and window, the rest "
               "as \"other\": summed over channels, a product counts only where it is in the "
               "top, and the sum over products (other included) is exact.")
_CONTENT_NOTE = ("Per content type: the top types (by views) of each campaign, channel and "
                 "window, the rest as \"other\"; \"unknown\" where the event named none (an "
                 "order takes its click's type).")
_REACH_NOTE = ("Per campaign and channel, never summed: a viewer on two channels or in two "
               "campaigns is one person, so distinct viewers do not add up (a campaign lives "
               "on one worker, so each series is whole).")


# Rows of (title, KPI, unit) or a Panel of its own.
ROWS: list[tuple[str, list[tuple[str, str, str] | Panel]]] = [
    ("Views and engagement", [
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
    ("Reach and frequency", [
        Panel("Reach (unique viewers)", COUNT, [(_per_channel("reach"),
                                                 "{{campaign}} {{channel}}")],
              "marketing_reach: distinct user_id among views, estimated (HyperLogLog-class "
              "sketch, relative standard error at most 2 %). " + _REACH_NOTE),
        Panel("Frequency (views per viewer)", COUNT, [(_per_channel("frequency"),
                                                       "{{campaign}} {{channel}}")],
              "marketing_frequency: views that carry a user_id / reach. " + _REACH_NOTE, 2),
    ]),
    ("Actions", [
        Panel("Follower growth (follows)", COUNT, [(_actions("follow"), "{{campaign}}")],
              'marketing_engagement_actions{action="follow"} per campaign over the selected '
              "channels."),
        Panel("Profile visits", COUNT, [(_actions("profile_visit"), "{{campaign}}")],
              'marketing_engagement_actions{action="profile_visit"} per campaign over the '
              "selected channels."),
        Panel("Engagements by action", COUNT, [(_by("action", "engagement_actions"),
                                                "{{action}}")],
              "marketing_engagement_actions over the selected campaigns and channels, per "
              "action: like, comment, share, save, follow, profile_visit."),
    ]),
    ("Watch time", [
        Panel("Watch time", SECONDS, [(_by("campaign", "watch_seconds"), "{{campaign}}")],
              "marketing_watch_seconds per campaign over the selected channels: the watch "
              "time of the views that carry watch_ms."),
        Panel("Average watch time per view", SECONDS,
              [(_per_channel("average_watch_seconds"), "{{campaign}} {{channel}}")],
              "marketing_average_watch_seconds: watch seconds / views that carry watch_ms, "
              "per campaign and channel (the count of such views is not served, so it is "
              "not re-derived over channels).", 1),
    ]),
    ("Profit and POAS", [
        Panel("Gross profit (revenue - cost)", MONEY,
              [(_by("campaign", "gross_profit"), "{{campaign}}")],
              "marketing_gross_profit per campaign over the selected channels: revenue - "
              "cost of the orders; an order without cost counts revenue x [kpi] "
              "default_gross_margin when that is set, else nothing (see Orders without "
              "cost)."),
        ("POAS (gross profit / spend)", "poas_ratio", MULTIPLE),
        Panel("Orders without cost", COUNT,
              [(_by("campaign", "orders_without_cost"), "{{campaign}}")],
              "marketing_orders_without_cost per campaign over the selected channels: "
              "orders whose gross profit is estimated or missing."),
    ]),
    ("LTV and LTV:CAC", [
        Panel("LTV (revenue per acquired customer)", MONEY,
              [(ltv_expr("new_customers"), "{{campaign}} {{horizon}}")],
              "marketing_ltv over window total, per horizon: revenue (in any campaign) of "
              "the customers this campaign acquired, within the horizon after their first "
              "order, per customer; re-derived over the selected channels from LTV x new "
              "customers. The window selector does not apply.", 2),
        Panel("LTV:CAC", MULTIPLE,
              [(ltv_expr("spend"), "{{campaign}} {{horizon}}"),
               ('max by (campaign, bound, horizon) (marketing_kpi_target{campaign=~"$campaign", '
                'kpi="ltv_cac_ratio", bound=~"min|max", window="total"})',
                "{{campaign}} {{horizon}} {{bound}} target")],
              "marketing_ltv_cac_ratio over window total, per horizon: the acquired "
              "customers' revenue within the horizon / spend, over the selected channels. "
              "Dashed: the campaign's target (marketing_kpi_target); targets apply to the "
              "campaign over all channels.", 2),
    ]),
    ("Top products", [
        Panel("Product revenue", MONEY,
              [(_by("product", "product_revenue"), "{{product}}")],
              "marketing_product_revenue over the selected campaigns and channels. "
              + _SPLIT_NOTE, 2),
        Panel("Product units", COUNT,
              [(_by("product", "product_units"), "{{product}}")],
              "marketing_product_units (the sum of quantity) over the selected campaigns and "
              "channels. " + _SPLIT_NOTE),
    ]),
    ("Content types", [
        *(Panel(f"{title} by content type", unit,
                [(_by("content_type", f"content_{metric}"), "{{content_type}}")],
                f"marketing_content_{metric} over the selected campaigns and channels. "
                + _CONTENT_NOTE, 2 if unit == MONEY else None)
          for title, metric, unit in (("Views", "views", COUNT),
                                      ("Engagements", "engagements", COUNT),
                                      ("Clicks", "clicks", COUNT),
                                      ("Orders", "orders", COUNT),
                                      ("Revenue", "revenue", MONEY))),
        Panel("CTR by content type", PERCENT,
              [(f"{_by('content_type', 'content_clicks')}\n/\n"
                f"({_by('content_type', 'content_views')} > 0)", "{{content_type}}")],
              "Clicks / views per content type, summed before dividing. " + _CONTENT_NOTE,
              2),
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
    (item[0].split(" (")[0], item[1], item[2]) for _, panels in ROWS for item in panels
    if not isinstance(item, Panel) and item[1] in RATIOS
    and item[1] not in {k for _, k, _ in COMPARED})]

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
           x: int, y: int, description: str = "", decimals: int | None = None
           ) -> dict[str, Any]:
    defaults: dict[str, Any] = {
        "unit": unit, "custom": {"lineWidth": 2, "fillOpacity": 0, "spanNulls": False},
    }
    if decimals is not None:
        defaults["decimals"] = decimals
    elif unit in (MONEY, PERCENT, MULTIPLE):
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
        for i, item in enumerate(kpis):
            x, row_y = (i % 3) * 8, y + (i // 3) * 8
            if isinstance(item, Panel):
                panels.append(_panel(
                    next(next_id), item.title, item.unit,
                    [_query(chr(ord("A") + j), expr, legend)
                     for j, (expr, legend) in enumerate(item.queries)],
                    x, row_y, item.description, item.decimals))
                continue
            panel_title, kpi, unit = item
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
