"""``kpistream demo`` end to end: it starts, shows live KPIs, and stops cleanly."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

from streams.commands.demo import render_table
from streams.commands.traffic import campaigns
from streams.kafka.tansu import free_port
from tests.integration.harness import wait_until


def _demo_env(tmp_path: Path, web_port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KPISTREAM_")}
    env.update(
        KPISTREAM_WEB_PORT=str(web_port),
        KPISTREAM_BROKER=f"kafka://127.0.0.1:{free_port()}",
        TMPDIR=str(tmp_path),  # the demo's log, config and data dir land here
        PYTHONUNBUFFERED="1",
    )
    return env


def _views_per_campaign(output: str) -> dict[str, int]:
    """Views of each campaign in the last table printed."""
    last = output.rsplit("KPIs over the last", 1)[-1]
    views = {}
    for line in last.splitlines():
        cells = line.split()
        if cells and cells[0] in campaigns():
            views[cells[0]] = int(cells[1].replace(",", ""))
    return views


def _pids(output: str) -> list[int]:
    broker = re.search(r"broker kafka://\S+ \(pid (\d+)\)", output)
    worker = re.search(r"worker pid (\d+)", output)
    assert broker and worker, output
    return [int(broker.group(1)), int(worker.group(1))]


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return False
    return True


def test_demo_runs_for_its_duration_and_shows_kpis(tmp_path: Path) -> None:
    port = free_port()
    done = subprocess.run(
        [sys.executable, "-m", "streams", "demo", "--duration", "25"],
        env=_demo_env(tmp_path, port), capture_output=True, text=True, timeout=150,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert f"http://127.0.0.1:{port}/metrics" in output
    views = _views_per_campaign(output)
    assert set(views) == set(campaigns()), output
    assert all(v > 0 for v in views.values()), views
    assert re.search(r"events: [\d,]+ accepted \| \d+ invalid \| \d+ duplicate", output)
    assert "Traceback" not in output
    assert not any(_running(pid) for pid in _pids(output))


def test_ctrl_c_stops_everything_cleanly(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "demo.out"
    with log.open("wb") as out:
        # A session of its own, so the SIGINT can go to the whole process group as a
        # terminal's Ctrl-C does.
        demo = subprocess.Popen(
            [sys.executable, "-m", "streams", "demo"], env=_demo_env(tmp_path, port),
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        wait_until(lambda: "all campaigns" in log.read_text() or demo.poll() is not None,
                   120, "the demo's first table")
        assert demo.poll() is None, log.read_text()
        pids = _pids(log.read_text())
        os.killpg(demo.pid, signal.SIGINT)
        code = demo.wait(timeout=60)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    output = log.read_text()
    assert code == 0, output
    assert "Traceback" not in output
    assert "stopped" in output.splitlines()[-1]
    wait_until(lambda: not any(_running(pid) for pid in pids), 5, "worker and broker to exit")
    assert not _listening(port)


METRICS = """\
# TYPE marketing_views gauge
marketing_views{campaign="a",channel="tiktok",window="5m"} 900
marketing_views{campaign="a",channel="youtube",window="5m"} 100
marketing_views{campaign="a",channel="tiktok",window="1h"} 5000
marketing_views{campaign="b",channel="tiktok",window="5m"} 10
# TYPE marketing_reach gauge
marketing_reach{campaign="a",channel="tiktok",window="5m"} 700
marketing_reach{campaign="a",channel="youtube",window="5m"} 80
marketing_reach{campaign="a",channel="tiktok",window="1h"} 4000
marketing_reach{campaign="b",channel="tiktok",window="5m"} 9
# TYPE marketing_clicks gauge
marketing_clicks{campaign="a",channel="tiktok",window="5m"} 9
marketing_clicks{campaign="a",channel="youtube",window="5m"} 11
# TYPE marketing_orders gauge
marketing_orders{campaign="a",channel="tiktok",window="5m"} 1
marketing_orders{campaign="a",channel="youtube",window="5m"} 2
marketing_orders{campaign="c",channel="instagram",window="5m"} 1
# TYPE marketing_new_customers gauge
marketing_new_customers{campaign="a",channel="youtube",window="5m"} 2
# TYPE marketing_revenue gauge
marketing_revenue{campaign="a",channel="tiktok",window="5m",currency="USD"} 30
marketing_revenue{campaign="a",channel="youtube",window="5m",currency="USD"} 50
marketing_revenue{campaign="c",channel="instagram",window="5m",currency="USD"} 40
# TYPE marketing_spend gauge
marketing_spend{campaign="a",channel="tiktok",window="5m",currency="USD"} 20
marketing_spend{campaign="a",channel="youtube",window="5m",currency="USD"} 5
# TYPE marketing_gross_profit gauge
marketing_gross_profit{campaign="a",channel="tiktok",window="5m",currency="USD"} 12
marketing_gross_profit{campaign="a",channel="youtube",window="5m",currency="USD"} 30
marketing_gross_profit{campaign="a",channel="youtube",window="1h",currency="USD"} 999
marketing_gross_profit{campaign="c",channel="instagram",window="5m",currency="USD"} 10
# TYPE marketing_product_revenue gauge
""" + "".join(
    f'marketing_product_revenue{{campaign="{campaign}",channel="{channel}",window="{window}",'
    f'product="{product}",currency="USD"}} {revenue}\n'
    for campaign, channel, window, product, revenue in [
        ("a", "youtube", "5m", "sku-1", 20),
        ("a", "youtube", "5m", "sku-2", 18),
        ("a", "youtube", "5m", "other", 12),
        ("a", "tiktok", "5m", "sku-2", 10),
        ("a", "tiktok", "5m", "other", 20),
        ("a", "tiktok", "1h", "sku-9", 900),
        ("c", "instagram", "5m", "other", 40),
    ]
) + """\
# TYPE kpistream_events counter
kpistream_events_total{type="view",outcome="accepted"} 1010
kpistream_events_total{type="click",outcome="accepted"} 20
kpistream_events_total{type="view",outcome="invalid"} 3
"""


def test_table_sums_channels_and_rederives_ratios() -> None:
    table = render_table(METRICS, "5m")
    lines = table.splitlines()
    assert lines[1].split() == ["campaign", "views", "reach*", "eng", "%", "CTR", "%", "conv",
                                "%", "orders", "revenue", "spend", "ROAS", "POAS", "CAC",
                                "top", "product"]
    rows = {line.split()[0]: line.split() for line in lines[2:-2]}
    assert set(rows) == {"a", "b", "c", "all"}
    # views, reach, eng %, CTR %, conv %, orders, revenue, spend, ROAS, POAS, CAC, top product;
    # sku-2 leads a only over both channels (28 to sku-1's 20), and "other" never leads
    assert rows["a"][1:] == ["1,000", "780", "0.00", "2.00", "15.00", "3", "80.00", "25.00",
                             "3.20", "1.68", "12.50", "sku-2"]
    assert rows["b"][1:] == ["10", "9", "0.00", "0.00", "-", "0", "0.00", "0.00", "-", "-",
                             "-", "-"]
    assert rows["c"][1:] == ["0", "0", "-", "-", "-", "1", "40.00", "0.00", "-", "-", "-", "-"]
    assert rows["all"][2:] == ["1,010", "789", "0.00", "1.98", "20.00", "4", "120.00",
                               "25.00", "4.80", "2.08", "12.50", "sku-2"]
    assert lines[-2] == ("* reach: estimated unique viewers per channel, summed over channels "
                         "(and campaigns): a viewer on two counts twice")
    assert "money in USD" in table
    assert lines[-1] == "events: 1,030 accepted | 3 invalid | 0 duplicate"
    assert max(len(line) for line in lines) <= 120


def test_table_without_campaigns_says_so() -> None:
    lines = render_table(METRICS, "24h").splitlines()
    assert lines[0] == "KPIs over the last 24h"  # no money in the window, so no currency
    assert lines[2:] == ["(no events in this window yet)",
                         "events: 1,030 accepted | 3 invalid | 0 duplicate"]
