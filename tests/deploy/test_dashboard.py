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
    assert rows == ["Views and engagement", "Clicks and conversion", "Revenue", "ROAS, ROI",
                    "CAC and AOV", "Reach and frequency", "Actions", "Watch time",
                    "Profit and POAS", "LTV and LTV:CAC", "Top products", "Content types",
                    "Compared with last week", "Budgets", "Service health"]
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
        # lifetime value has one window, "total", whatever the window selector says
        window = 'window="total"' if _kpi_of(panel) == "ltv_cac_ratio" else "$window"
        for variable in ("$campaign", "$channel", window):
            assert variable in kpi_query, (panel["title"], variable)
        assert "marketing_kpi_target{" in target_query and window in target_query
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


MULTIPLES = {"roas_ratio", "poas_ratio", "ltv_cac_ratio"}  # n times the spend, not a share


def test_units_fit_the_kpis() -> None:
    for panel in KPI_PANELS:
        kpi, unit = _kpi_of(panel), panel["fieldConfig"]["defaults"]["unit"]
        if kpi in MULTIPLES:
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
    assert health["POAS: now and last week"] == "suffix:\u00d7"
    seed_units = {
        "Reach (unique viewers)": "short", "Frequency (views per viewer)": "short",
        "Follower growth (follows)": "short", "Profile visits": "short",
        "Engagements by action": "short", "Watch time": "s",
        "Average watch time per view": "s", "Gross profit (revenue - cost)": "currencyUSD",
        "Orders without cost": "short", "LTV (revenue per acquired customer)": "currencyUSD",
        "Product revenue": "currencyUSD", "Product units": "short",
        "Views by content type": "short", "Engagements by content type": "short",
        "Clicks by content type": "short", "Orders by content type": "short",
        "Revenue by content type": "currencyUSD", "CTR by content type": "percentunit"}
    assert {t: health[t] for t in seed_units} == seed_units


def _panel_exprs(title: str) -> list[str]:
    return [q["expr"] for q in next(p for p in PANELS if p["title"] == title)["targets"]]


def test_reach_and_frequency_are_never_summed_over_channels() -> None:
    for title in ("Reach (unique viewers)", "Frequency (views per viewer)",
                  "Average watch time per view"):
        (expr,) = _panel_exprs(title)
        assert expr.startswith("max by (campaign, channel) (marketing_"), title
        assert "sum" not in expr and "avg" not in expr, title


def test_lifetime_value_is_rederived_from_ltv_times_new_customers_over_total() -> None:
    builder = _builder()
    (ltv,) = _panel_exprs("LTV (revenue per acquired customer)")
    ltv_cac, target = _panel_exprs("LTV:CAC")
    assert ltv == builder.ltv_expr("new_customers") and ltv_cac == builder.ltv_expr("spend")
    for expr in (ltv, ltv_cac):
        assert "$window" not in expr and expr.count('window="total"') == 3
        assert "marketing_ltv{" in expr and "group_left" in expr
    assert "(marketing_new_customers{" in ltv.split("/ on (campaign)")[1]
    assert "(marketing_spend{" in ltv_cac.split("/ on (campaign)")[1]
    assert 'kpi="ltv_cac_ratio"' in target and "horizon" in target


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
    f'[[targets]]\nkpi = "{kpi}"\nmin = 0.5\n'
    + ('window = "total"\n' if kpi == "ltv_cac_ratio" else f'window = "{WINDOW}"\n')
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


CONTENT = ("tutorial", "unboxing")
ACTIONS = ("like", "follow", "profile_visit", "follow", "share")
ITEMS = [{"product_id": "sku-a", "quantity": 2, "revenue": "20"},
         {"product_id": "sku-b", "quantity": 1, "revenue": "10"}]


def _events(now: int) -> list[tuple[str, Any, bytes | None]]:
    def ev(kind: str, i: int, campaign: str = CAMPAIGN, **fields: Any) -> dict[str, Any]:
        return {"event_id": f"{campaign}-{kind}-{i}", "ts": now, "campaign_id": campaign,
                "channel": CHANNEL, **fields}

    msgs: list[tuple[str, Any, bytes | None]] = []
    for campaign in (CAMPAIGN, OTHER):
        msgs += [("views", ev("v", i, campaign, user_id=f"u{i}", completed=i % 2 == 0,
                              watch_ms=1000 * i, content_type=CONTENT[i % 2]), None)
                 for i in range(20)]
        msgs += [("engagements", ev("e", i, campaign, action=action), None)
                 for i, action in enumerate(ACTIONS)]
        msgs += [("clicks", ev("c", i, campaign, content_type=CONTENT[0]), None)
                 for i in range(4)]
        # the first two orders carry their cost, the third none
        msgs += [("orders", ev("o", i, campaign, order_id=f"{campaign}-A{i}",
                               customer_id=f"{campaign}-c{i % 2}", revenue="30",
                               currency="USD", items=ITEMS,
                               **({"cost": "12"} if i < 2 else {})), None) for i in range(3)]
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



@pytest.mark.integration
def test_seed_kpi_panels_show_the_known_figures(scraped: tuple[Worker, Prometheus]) -> None:
    """Per campaign (both are alike): 20 viewers with one view each, watch 0 + 1 + ... + 19 s;
    follows 2, a profile visit 1; 3 orders of 30 (items sku-a 2 x 20, sku-b 1 x 10), two
    with a cost of 12: gross profit 2 x 18 = 36 on 20 of spend; 2 new customers whose 3
    orders bring 90 in every horizon: LTV 45, LTV:CAC 90 / 20; tutorial has 10 views and
    the 4 clicks."""
    _, prom = scraped

    def answer(title: str, ref: int = 0) -> dict[str, float]:
        result = prom.query(_fill(_panel_exprs(title)[ref]))
        return {",".join(v for k, v in sorted(r["metric"].items())): float(r["value"][1])
                for r in result}

    reach = answer("Reach (unique viewers)")
    assert reach.keys() == {f"{CAMPAIGN},{CHANNEL}"}
    assert reach[f"{CAMPAIGN},{CHANNEL}"] == pytest.approx(20, rel=0.06)  # 3 x 2 % error
    assert answer("Frequency (views per viewer)")[f"{CAMPAIGN},{CHANNEL}"] == pytest.approx(
        20 / reach[f"{CAMPAIGN},{CHANNEL}"])
    assert answer("Follower growth (follows)") == {CAMPAIGN: 2}
    assert answer("Profile visits") == {CAMPAIGN: 1}
    by_action = answer("Engagements by action")
    assert {a: by_action.get(a, 0) for a in ("like", "follow", "profile_visit", "share")} == {
        "like": 1, "follow": 2, "profile_visit": 1, "share": 1}
    assert answer("Watch time") == {CAMPAIGN: 190}
    assert answer("Average watch time per view") == {f"{CAMPAIGN},{CHANNEL}": 9.5}
    assert answer("Gross profit (revenue - cost)") == {CAMPAIGN: 36}
    poas = next(p for p in KPI_PANELS if _kpi_of(p) == "poas_ratio")
    assert [float(r["value"][1]) for r in prom.query(_fill(poas["targets"][0]["expr"]))] == [
        pytest.approx(36 / 20)]
    assert answer("Orders without cost") == {CAMPAIGN: 1}
    horizons = ("30d", "90d", "365d")
    assert answer("LTV (revenue per acquired customer)") == {
        f"{CAMPAIGN},{h}": 45 for h in horizons}
    assert answer("LTV:CAC") == {f"{CAMPAIGN},{h}": pytest.approx(90 / 20) for h in horizons}
    assert answer("LTV:CAC", 1) == {f"min,{CAMPAIGN},30d": 0.5}  # the default: the first horizon
    products = answer("Product revenue")
    assert {k: v for k, v in products.items() if v} == {"sku-a": 60, "sku-b": 30}
    assert {k: v for k, v in answer("Product units").items() if v} == {"sku-a": 6, "sku-b": 3}
    views = answer("Views by content type")
    assert {k: v for k, v in views.items() if v} == {"tutorial": 10, "unboxing": 10}
    assert {k: v for k, v in answer("Clicks by content type").items() if v} == {"tutorial": 4}
    assert answer("Orders by content type").get("unknown") == 3  # no click gave them a type
    assert answer("CTR by content type")["tutorial"] == pytest.approx(4 / 10)
