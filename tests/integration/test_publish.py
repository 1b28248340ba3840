"""``kpistream publish`` on the real broker, and the worker's /schemas pages."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.kafka.tansu import free_port
from tests.integration.harness import Deployment, Samples, Worker, value, wait_until

FX = "[fx]\nEUR = 1.08\n"


def events_total(samples: Samples, outcome: str) -> float:
    return sum(v for (name, labels), v in samples.items()
               if name == "kpistream_events_total" and ("outcome", outcome) in labels)


def kpistream(deployment: Deployment, *args: str, env: dict[str, str] | None = None
              ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streams", *args],
        env=env or deployment.env(free_port()), capture_output=True, text=True, timeout=120,
        check=False,
    )


def write(path: Path, lines: list[Any]) -> Path:
    path.write_bytes(b"".join(
        (line if isinstance(line, bytes) else orjson.dumps(line)) + b"\n" for line in lines))
    return path


@pytest.fixture(scope="module")
def deployment(deploy_module: Callable[..., Deployment]) -> tuple[Deployment, Worker]:
    deployment = deploy_module(extra_toml=FX)
    return deployment, deployment.start_worker()


def now_ms() -> int:
    return int(time.time() * 1000)


def test_good_lines_are_sent_bad_ones_reported_and_kept_back(
    deployment: tuple[Deployment, Worker], tmp_path: Path
) -> None:
    deploy, worker = deployment
    before = worker.samples()
    campaign = "pub-mixed"
    base = {"ts": now_ms(), "campaign_id": campaign, "channel": "tiktok"}
    good = [
        {"type": "view", "event_id": "p-v1", **base},
        {"type": "view", "event_id": "p-v2", **base, "completed": True},
        {"type": "click", "event_id": "p-c1", **base, "click_id": "ttclid-p1"},
        {"type": "engagement", "event_id": "p-e1", **base, "action": "share"},
        {"type": "order", "event_id": "p-o1", **base, "order_id": "P1", "customer_id": "c1",
         "revenue": "20", "currency": "EUR"},
        {"type": "spend", "event_id": "p-s1", **base, "amount": "4.5", "currency": "USD"},
        # a batch line: 3 good views and 1 bad one
        [{"type": "view", "event_id": f"p-b{i}", **base} for i in range(3)]
        + [{"type": "view", "event_id": "p-bad", **base, "ts": "soon"}],
    ]
    bad = [
        {"type": "spend", "event_id": "p-x1", **base, "amount": -1, "currency": "USD"},
        {"type": "order", "event_id": "p-x2", **base, "order_id": "X", "customer_id": "c",
         "revenue": 1, "currency": "JPY"},
        b"{broken",
        {"event_id": "p-x3", **base},  # no type
    ]
    path = write(tmp_path / "events.ndjson", good[:3] + bad[:2] + good[3:] + bad[2:])
    done = kpistream(deploy, "publish", str(path))
    assert done.returncode == 1, done.stderr
    out = done.stdout.splitlines()
    assert out[0] == f"{path}:4: invalid spend: field 'amount' is -1; it cannot be negative"
    assert out[1].startswith(f"{path}:5: invalid order: currency JPY has no exchange rate")
    assert out[2] == f"{path}:9[3]: invalid view: field 'ts' is \"soon\"; it must be RFC 3339 " \
                     "with an offset, like 2026-11-23T10:00:00Z"
    assert out[3].startswith(f"{path}:10: invalid unknown: message is not valid UTF-8 JSON")
    assert out[4].startswith(f"{path}:11: invalid unknown: no event type")
    assert re.match(r"1 file, 11 messages, 14 events: 9 sent, 5 invalid", out[5]), out[5]
    accepted = events_total(before, "accepted") + 9
    wait_until(lambda: events_total(worker.samples(), "accepted") == accepted, 30,
               "9 more accepted events at the worker")
    samples = worker.samples()
    assert events_total(samples, "invalid") == events_total(before, "invalid")
    labels = {"campaign": campaign, "channel": "tiktok", "window": "total"}
    assert value(samples, "marketing_views", **labels) == 5
    assert value(samples, "marketing_completed_views", **labels) == 1
    assert value(samples, "marketing_clicks", **labels) == 1
    assert value(samples, "marketing_engagements", **labels) == 1
    assert value(samples, "marketing_revenue", currency="USD", **labels) == pytest.approx(21.6)
    assert value(samples, "marketing_spend", currency="USD", **labels) == 4.5


def test_a_json_array_file_with_a_type_option(
    deployment: tuple[Deployment, Worker], tmp_path: Path
) -> None:
    deploy, worker = deployment
    path = tmp_path / "clicks.json"
    clicks = [{"event_id": f"pa-c{i}", "ts": now_ms(), "campaign_id": "pub-array",
               "channel": "tiktok"} for i in range(4)]
    path.write_bytes(orjson.dumps(clicks, option=orjson.OPT_INDENT_2))
    done = kpistream(deploy, "publish", "--type", "click", str(path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "4 events: 4 sent, 0 invalid" in done.stdout
    wait_until(lambda: value(worker.samples(), "marketing_clicks", campaign="pub-array",
                             channel="tiktok", window="total") == 4, 30, "4 clicks")


def test_no_validate_lets_the_worker_dead_letter_with_the_reasons_validate_gave(
    deployment: tuple[Deployment, Worker], tmp_path: Path
) -> None:
    deploy, worker = deployment
    base = {"ts": now_ms(), "campaign_id": "pub-dead", "currency": "USD"}
    bad = [
        {"event_id": "d1", **base, "amount": "-2"},
        {"event_id": "d2", **base, "amount": "ten"},
        {"event_id": "d3", **{**base, "currency": "XYZ"}, "amount": 1},
        {"event_id": "d4", **{**base, "campaign_id": "no spaces allowed"}, "amount": 1},
        {"ts": now_ms(), "campaign_id": "pub-dead", "amount": 1, "currency": "USD"},
        [{"event_id": "d5", **base, "amount": 1}, {"event_id": "d6", **base}],
    ]
    path = write(tmp_path / "bad.ndjson", bad)
    checked = kpistream(deploy, "validate", "--type", "spend", str(path))
    assert checked.returncode == 1
    expected = sorted(line.split(": invalid spend: ", 1)[1]
                      for line in checked.stdout.splitlines()[:-1])
    assert len(expected) == 6
    invalid_before = events_total(worker.samples(), "invalid")
    done = kpistream(deploy, "publish", "--type", "spend", "--no-validate", str(path))
    assert done.returncode == 0, done.stdout + done.stderr
    wait_until(lambda: events_total(worker.samples(), "invalid") == invalid_before + 6, 30,
               "6 more invalid events at the worker")
    letters = [r for r in deploy.read_topic("deadletter", 100, timeout_s=5)
               if r["topic"] == deploy.topics["spend"]]
    assert sorted(r["reason"] for r in letters) == expected


def test_rate_limits_the_pace(deployment: tuple[Deployment, Worker], tmp_path: Path) -> None:
    deploy, _ = deployment
    views = [{"type": "view", "event_id": f"r{i}", "ts": now_ms(), "campaign_id": "pub-rate"}
             for i in range(30)]
    path = write(tmp_path / "paced.ndjson", views)
    done = kpistream(deploy, "publish", "--rate", "20", str(path))
    assert done.returncode == 0, done.stderr
    took = re.search(r"; ([0-9.]+) s$", done.stdout.strip())
    assert took is not None, done.stdout
    seconds = float(took.group(1))
    assert seconds >= 1.4  # the 30th event leaves 29 / 20 s after the first; printed to 0.1 s


def test_an_unreachable_broker_exits_3_naming_the_setting(
    deployment: tuple[Deployment, Worker], tmp_path: Path
) -> None:
    deploy, _ = deployment
    path = write(tmp_path / "one.ndjson", [{"type": "view", "event_id": "u1", "ts": 1,
                                            "campaign_id": "c"}])
    env = {**deploy.env(free_port()), "KPISTREAM_BROKER": f"kafka://127.0.0.1:{free_port()}"}
    done = kpistream(deploy, "publish", str(path), env=env)
    assert done.returncode == 3
    assert "KPISTREAM_BROKER" in done.stderr


def test_bad_options_are_refused(deployment: tuple[Deployment, Worker]) -> None:
    deploy, _ = deployment
    done = kpistream(deploy, "publish", "--rate", "0", "x.ndjson")
    assert done.returncode == 2 and "--rate" in done.stderr


# --- the worker serves the schemas ------------------------------------------------------

def test_the_worker_serves_the_schemas_with_its_currencies(
    deployment: tuple[Deployment, Worker],
) -> None:
    _, worker = deployment
    with urllib.request.urlopen(worker.url("/schemas/order.json"), timeout=5) as response:
        assert response.headers["Content-Type"].startswith("application/schema+json")
        schema = orjson.loads(response.read())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert "EUR, USD" in schema["properties"]["currency"]["description"]
    for event_type in ("view", "engagement", "click", "spend"):
        assert worker.status(f"/schemas/{event_type}.json") == 200
    assert worker.status("/schemas/impression.json") == 404

