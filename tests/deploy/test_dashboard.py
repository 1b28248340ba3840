"""The Grafana dashboard: generated, well-formed, units right, and every panel query
(variables filled in) answers with data from a real Prometheus scraping a real worker."""

from __future__ import annotations

import importlib.util
import json
import re
import time
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import pytest
import yaml

from streams.commands.alert_rules import RATIOS as RULE_RATIOS
from streams.config.targets import KPIS
from tests.deploy.servers import DEPLOY, Prometheus
from tests.integration.harness import Deployment, Worker, value, wait_until

DASHBOARD_FILE = DEPLOY / "grafana" / "dashboards" / "kpistream.json"
DASHBOARD: dict[str, Any] = json.loads(DASHBOARD_FILE.read_text(encoding="utf-8"))
PANELS = [p for p in DASHBOARD["panels"] if p["type"] != "row"]
KPI_PANELS = [p for p in PANELS if "marketing_kpi_target{" in p["targets"][-1]["expr"]]
CAMPAIGN, OTHER, CHANNEL, WINDOW = "dash-camp", "dash-other", "tiktok", "5m"


def _builder() -> ModuleType:
    path = DEPLOY / "grafana" / "build_dashboard.py"
    spec = importlib.util.spec_from_file_location("build_dashboard", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _kpi_of(panel: dict[str, Any]) -> str:
    match = re.search(r'kpi="([a-z_]+)"', panel["targets"][-1]["expr"])
    assert match, f"panel {panel['title']!r} draws no target"
    return match.group(1)


def test_checked_in_dashboard_is_what_the_builder_writes() -> None:
    assert DASHBOARD_FILE.read_text(encoding="utf-8") == _builder().render(), (
        "deploy/grafana/dashboards/kpistream.json is stale: "
        "run python deploy/grafana/build_dashboard.py")


def test_builder_derives_ratios_like_the_recording_rules() -> None:
    assert _builder().RATIOS == RULE_RATIOS


def test_rows_variables_and_datasource() -> None:
    rows = [p["title"] for p in DASHBOARD["panels"] if p["type"] == "row"]
    assert rows == ["Reach and engagement", "Clicks and conversion", "Revenue", "ROAS, ROI",
                    "CAC and AOV", "Compared with last week", "Budgets", "Service health"]
    variables = {v["name"]: v for v in DASHBOARD["templating"]["list"]}
    assert set(variables) == {"campaign", "channel", "window"}
    assert variables["campaign"]["multi"] and variables["channel"]["multi"]
    assert not variables["window"]["multi"]
    source = DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
    uid = yaml.safe_load(source.read_text(encoding="utf-8"))["datasources"][0]["uid"]
    for item in [*PANELS, *variables.values()]:
        assert item["datasource"]["uid"] == uid, item.get("title", item.get("name"))
    for panel in PANELS:
        for query in panel["targets"]:
            assert query["datasource"]["uid"] == uid


def test_every_kpi_has_a_panel_with_its_target_and_the_selection() -> None:
    assert sorted(_kpi_of(p) for p in KPI_PANELS) == sorted(KPIS)
    for panel in KPI_PANELS:
        kpi_query, target_query = (q["expr"] for q in panel["targets"])
        for variable in ("$campaign", "$channel", "$window"):
            assert variable in kpi_query, (panel["title"], variable)
        assert "marketing_kpi_target{" in target_query and "$window" in target_query
        assert 'bound=~"min|max"' in target_query  # a drop target is no level to draw
        assert "avg" not in kpi_query  # ratios are re-derived from sums, never averaged


COMPARED = {"roi_ratio": "ROI", "roas_ratio": "ROAS", "click_through_ratio": "CTR",
            "conversion_ratio": "Conversion rate", "cac": "CAC"}


def test_the_main_kpis_are_drawn_beside_last_week_and_side_by_side() -> None:
    builder = _builder()
    compared = [p for p in PANELS if p["title"].endswith(": now and last week")]
    assert [p["title"].removesuffix(": now and last week") for p in compared][:5] == list(
        COMPARED.values())
    drawn = []
    for panel in compared:
        now, then = (q["expr"] for q in panel["targets"])
        (kpi,) = [k for k in RULE_RATIOS if builder.kpi_expr(k) == now]
        drawn.append(kpi)
        # the same expression, every selector shifted by a week
        assert then == now.replace('window="$window"}', 'window="$window"} offset 1w')
        assert panel["targets"][1]["legendFormat"] == "{{campaign}} last week"
    assert drawn[:5] == list(COMPARED) and sorted(drawn) == sorted(RULE_RATIOS)
    (table,) = [p for p in PANELS if p["type"] == "table"]
    assert [q["expr"] for q in table["targets"]] == [builder.kpi_expr(k) for k in COMPARED]
    assert all(q["instant"] and q["format"] == "table" for q in table["targets"])
    renamed = table["transformations"][1]["options"]["renameByName"]
    assert list(renamed.values()) == ["Campaign", *COMPARED.values()]
    units = {o["matcher"]["options"]: o["properties"][0]["value"]
             for o in table["fieldConfig"]["overrides"]}
    assert units == {"ROI": "percentunit", "ROAS": "suffix:\u00d7", "CTR": "percentunit",
                     "Conversion rate": "percentunit", "CAC": "currencyUSD"}


def test_budget_panels_draw_spend_against_the_budget_line() -> None:
    spend = next(p for p in PANELS if p["title"] == "Spend against the budget")
    exprs = [q["expr"] for q in spend["targets"]]
    assert exprs[0] == 'max by (campaign, period) (marketing_budget_spend{campaign=~"$campaign"})'
    assert exprs[2] == 'max by (campaign, period) (marketing_budget{campaign=~"$campaign"})'
    assert "marketing_budget_elapsed_ratio" in exprs[1]
    assert [q["legendFormat"].split()[-1] for q in spend["targets"]] == [
        "spent", "pace", "budget"]
    dashed = spend["fieldConfig"]["defaults"], spend["fieldConfig"]["overrides"][0]
    assert re.fullmatch(dashed[1]["matcher"]["options"], "summer-sale day budget")
    assert re.fullmatch(dashed[1]["matcher"]["options"], "summer-sale day on pace")
    assert not re.fullmatch(dashed[1]["matcher"]["options"], "summer-sale day spent")


def test_units_fit_the_kpis() -> None:
    for panel in KPI_PANELS:
        kpi, unit = _kpi_of(panel), panel["fieldConfig"]["defaults"]["unit"]
        if kpi == "roas_ratio":
            assert unit == "suffix:\u00d7"
        elif KPIS[kpi].kind == "ratio":
            assert unit == "percentunit", kpi  # fractions shown as percent
        elif KPIS[kpi].kind == "money":
            assert unit.startswith("currency"), kpi
        else:
            assert unit == "short", kpi
    health = {p["title"]: p["fieldConfig"]["defaults"].get("unit") for p in PANELS
              if p not in KPI_PANELS}
    assert health["Spend against the budget"] == "currencyUSD"
    for title, kpi in COMPARED.items():
        panel = next(p for p in KPI_PANELS if _kpi_of(p) == title)
        assert health[f"{kpi}: now and last week"] == panel["fieldConfig"]["defaults"]["unit"]
    assert health["Repeat purchase rate: now and last week"] == "percentunit"
    assert health["AOV: now and last week"] == "currencyUSD"
    assert health["Dead-letter share of input"] == "percentunit"
    assert health["Age of the newest event (event time)"] == "s"


def test_panels_do_not_overlap() -> None:
    cells: dict[tuple[int, int], str] = {}
    for panel in DASHBOARD["panels"]:
        g = panel["gridPos"]
        assert g["x"] + g["w"] <= 24
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, (panel["title"], cells.get((x, y)))
                cells[(x, y)] = panel["title"]


# Every KPI gets a target in the dashboard's window, so every target line has data;
# dash-other has its own ROAS entry over another window.
_TARGETS = "\n".join(
    f'[[targets]]\nkpi = "{kpi}"\nmin = 0.5\nwindow = "{WINDOW}"\n'
    + ('min_denominator = 1\n' if spec.guard else "")
    for kpi, spec in KPIS.items()
)
SETTINGS = f"""
[kpi]
windows = ["{WINDOW}", "1h"]

[[budgets]]
campaign = "{CAMPAIGN}"
amount = 100
timezone = "UTC"

{_TARGETS}
[[targets]]
kpi = "roas_ratio"
campaign = "{OTHER}"
min = 3
window = "total"
severity = "page"
"""


def _events(now: int) -> list[tuple[str, Any, bytes | None]]:
    def ev(kind: str, i: int, campaign: str = CAMPAIGN, **fields: Any) -> dict[str, Any]:
        return {"event_id": f"{campaign}-{kind}-{i}", "ts": now, "campaign_id": campaign,
                "channel": CHANNEL, **fields}

    msgs: list[tuple[str, Any, bytes | None]] = []
    for campaign in (CAMPAIGN, OTHER):
        msgs += [("views", ev("v", i, campaign, user_id=f"u{i}", completed=i % 2 == 0), None)
                 for i in range(20)]
        msgs += [("engagements", ev("e", i, campaign, action="like"), None) for i in range(5)]
        msgs += [("clicks", ev("c", i, campaign), None) for i in range(4)]
        msgs += [("orders", ev("o", i, campaign, order_id=f"{campaign}-A{i}",
                               customer_id=f"{campaign}-c{i % 2}", revenue="30",
                               currency="USD"), None) for i in range(3)]
        msgs.append(("spend", ev("s", 0, campaign, amount="20", currency="USD"), None))
    msgs.append(("views", b"{not json", None))  # one dead letter, for the health row
    return msgs


@pytest.fixture(scope="module")
def scraped(deploy_module: Callable[..., Deployment],
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Worker, Prometheus]]:
    deployment = deploy_module(extra_toml=SETTINGS)
    worker = deployment.start_worker()
    deployment.publish(_events(int(time.time() * 1000)))
    wait_until(lambda: value(worker.samples(), "marketing_orders", campaign=OTHER,
                             channel=CHANNEL, window=WINDOW) == 3, 60, "the orders to count")
    with Prometheus(tmp_path_factory.mktemp("prometheus"), [f"127.0.0.1:{worker.port}"]) as prom:
        wait_until(lambda: bool(prom.query(f'marketing_orders{{campaign="{CAMPAIGN}"}}')), 30,
                   "Prometheus to scrape the worker")
        yield worker, prom


@pytest.mark.integration
def test_the_worker_exports_resolved_targets_and_its_health(
    scraped: tuple[Worker, Prometheus],
) -> None:
    worker, _ = scraped
    samples = worker.samples()

    def target(campaign: str, window: str) -> float | None:
        return value(samples, "marketing_kpi_target", campaign=campaign, kpi="roas_ratio",
                     bound="min", window=window)

    assert target(CAMPAIGN, WINDOW) == 0.5
    assert target(OTHER, "total") == 3 and target(OTHER, WINDOW) is None
    assert value(samples, "marketing_kpi_target_min_denominator", campaign=CAMPAIGN,
                 kpi="roas_ratio", bound="min", window=WINDOW) == 1
    assert value(samples, "kpistream_ready") == 1
    lag = {dict(labels)["topic"]: v for (name, labels), v in samples.items()
           if name == "kpistream_consumer_lag"}
    assert lag and all(v >= 0 for v in lag.values())


def _fill(expr: str) -> str:
    filled = (expr.replace("$campaign", CAMPAIGN).replace("$channel", CHANNEL)
              .replace("$window", WINDOW).replace("$__rate_interval", "1m"))
    assert "$" not in filled, filled
    return filled


@pytest.mark.integration
def test_template_variables_list_real_values(scraped: tuple[Worker, Prometheus]) -> None:
    _, prom = scraped
    for variable in DASHBOARD["templating"]["list"]:
        match = re.fullmatch(r"label_values\((.*), (\w+)\)", variable["definition"])
        assert match, variable["definition"]
        series, label = _fill(match.group(1)), match.group(2)
        values = {r["metric"][label] for r in prom.query(series)}
        assert {"campaign": CAMPAIGN, "channel": CHANNEL, "window": WINDOW}[label] in values


@pytest.mark.integration
def test_every_panel_query_returns_data(scraped: tuple[Worker, Prometheus]) -> None:
    _, prom = scraped
    queries = {f"{p['title']} [{q['refId']}]": _fill(q["expr"])
               for p in PANELS for q in p["targets"]}
    empty = dict(queries)

    def answered() -> bool:
        for name, expr in list(empty.items()):
            # "Last week" is asked a week from now, so it reads what was scraped today.
            at = time.time() + 7 * 86_400 if "offset 1w" in expr else None
            if prom.query(expr, at):
                del empty[name]
        return not empty

    try:
        wait_until(answered, 30, "every panel query to return a series")
    except AssertionError:
        raise AssertionError(f"queries without data: {json.dumps(empty, indent=1)}") from None
    assert len(queries) >= 2 * len(KPIS)
    ctr = prom.query(_fill(next(p for p in KPI_PANELS if _kpi_of(p) == "click_through_ratio")
                           ["targets"][0]["expr"]))
    assert [float(r["value"][1]) for r in ctr] == [pytest.approx(4 / 20)]

