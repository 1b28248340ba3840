"""``kpistream collector`` end to end: HTTP in, the real broker, a real worker counting."""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.events.validation import Rejection, ValidationRules, parse_message
from streams.kafka.tansu import free_port
from tests.integration.harness import Deployment, Samples, Worker, value, wait_until

SHOP_TOKEN = "shop-backend-token-0123456789"
PIXEL_TOKEN = "pixel-token-abcdefghijklmnop"
FX = "[fx]\nEUR = 1.08\n"
RULES = ValidationRules({"USD": Decimal(1), "EUR": Decimal("1.08")})


@dataclass
class Collector:
    """A ``kpistream collector`` process."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=body,
                                     method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=15) as response:
                return int(response.status), dict(response.headers), response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read()

    def post(self, events: Any, token: str | None = SHOP_TOKEN, query: str = ""
             ) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        status, _, body = self.request("POST", f"/v1/events{query}", orjson.dumps(events),
                                       headers)
        return status, orjson.loads(body)

    def status(self, path: str) -> int:
        try:
            return self.request("GET", path)[0]
        except OSError:
            return 0

    def samples(self) -> Samples:
        from prometheus_client.parser import text_string_to_metric_families

        text = self.request("GET", "/metrics")[2].decode()
        return {(s.name, frozenset(s.labels.items())): s.value
                for family in text_string_to_metric_families(text) for s in family.samples}

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)


def start_collector(env: dict[str, str], log: Path, *, wait_for: str = "/ready") -> Collector:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "streams", "collector"],
        env={**env, "KPISTREAM_COLLECTOR_PORT": str(port),
             "KPISTREAM_COLLECTOR_HOST": "127.0.0.1"},
        stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )
    collector = Collector(process, port, log)
    wait_until(lambda: collector.status(wait_for) == 200 or process.poll() is not None, 30,
               f"collector {wait_for}")
    assert process.poll() is None, log.read_text()
    return collector


@dataclass
class Stack:
    deployment: Deployment
    worker: Worker
    collector: Collector


@pytest.fixture(scope="module")
def stack(deploy_module: Callable[..., Deployment]) -> Iterator[Stack]:
    deployment = deploy_module(extra_toml=FX)
    worker = deployment.start_worker()
    env = {**deployment.env(free_port()),
           "KPISTREAM_COLLECTOR_TOKENS": f"shop-backend={SHOP_TOKEN},pixel={PIXEL_TOKEN}"}
    collector = start_collector(env, deployment.tmp / "collector.log")
    yield Stack(deployment, worker, collector)
    collector.stop()


def now_ms() -> int:
    return int(time.time() * 1000)


def view(campaign: str, i: int, **fields: Any) -> dict[str, Any]:
    return {"type": "view", "event_id": f"{campaign}-v{i}", "ts": now_ms(),
            "campaign_id": campaign, "channel": "tiktok", **fields}


def total(worker: Worker, metric: str, campaign: str, **labels: str) -> float | None:
    return value(worker.samples(), metric, campaign=campaign, channel="tiktok",
                 window="total", **labels)


def wait_for_kpi(worker: Worker, metric: str, campaign: str, expected: float,
                 **labels: str) -> None:
    wait_until(lambda: total(worker, metric, campaign, **labels) == expected, 30,
               f"{metric}{{campaign={campaign}}} == {expected} at the worker")


# --- the happy path ---------------------------------------------------------------------

def test_health_and_ready(stack: Stack) -> None:
    assert stack.collector.status("/health") == 200
    assert stack.collector.status("/ready") == 200


def test_a_batch_of_good_events_is_taken_and_counted_by_the_worker(stack: Stack) -> None:
    before = value(stack.worker.samples(), "kpistream_events_total", type="view",
                   outcome="accepted") or 0
    status, body = stack.collector.post([view("col-good", i) for i in range(5)])
    assert (status, body) == (202, {"accepted": 5, "rejected": 0})
    wait_for_kpi(stack.worker, "marketing_views", "col-good", 5)
    assert value(stack.worker.samples(), "kpistream_events_total", type="view",
                 outcome="accepted") == before + 5


def test_one_event_with_the_type_in_the_query(stack: Stack) -> None:
    click = {"event_id": "col-q-c1", "ts": now_ms(), "campaign_id": "col-query",
             "channel": "tiktok", "click_id": "ttclid-1"}
    assert stack.collector.post(click, query="?type=click") == (
        202, {"accepted": 1, "rejected": 0})
    wait_for_kpi(stack.worker, "marketing_clicks", "col-query", 1)


def test_a_batch_of_mixed_types_reaches_each_topic(stack: Stack) -> None:
    campaign = "col-mixed"
    events = [
        view(campaign, 1), view(campaign, 2),
        {"type": "order", "event_id": "col-m-o1", "ts": now_ms(), "campaign_id": campaign,
         "channel": "tiktok", "order_id": "M1", "customer_id": "c1", "revenue": "10",
         "currency": "EUR"},
        {"type": "spend", "event_id": "col-m-s1", "ts": now_ms(), "campaign_id": campaign,
         "channel": "tiktok", "amount": 5, "currency": "USD"},
    ]
    assert stack.collector.post(events, token=PIXEL_TOKEN)[0] == 202
    wait_for_kpi(stack.worker, "marketing_views", campaign, 2)
    wait_for_kpi(stack.worker, "marketing_revenue", campaign, pytest.approx(10.8),
                 currency="USD")
    wait_for_kpi(stack.worker, "marketing_spend", campaign, 5, currency="USD")


# --- refusals -----------------------------------------------------------------------------

def test_bad_events_get_400_with_reasons_and_the_good_ones_are_still_taken(
    stack: Stack,
) -> None:
    campaign = "col-partial"
    bad_ts = view(campaign, 2, ts="yesterday")
    bad_watch = view(campaign, 4, watch_ms=-5)
    events = [view(campaign, 1), bad_ts, view(campaign, 3), bad_watch, 7,
              {**view(campaign, 5), "type": "impression"}, view(campaign, 6)]
    status, body = stack.collector.post(events)
    assert status == 400
    assert body["accepted"] == 3 and body["rejected"] == 4
    assert "3 valid events of this request were accepted and stored" in body["message"]
    reasons = {e["index"]: e["reason"] for e in body["errors"]}
    assert sorted(reasons) == [1, 3, 4, 5]

    def worker_reason(event: dict[str, Any]) -> str:
        doc = {k: v for k, v in event.items() if k != "type"}
        (verdict,) = parse_message(orjson.dumps(doc), "view", RULES, now_ms())
        assert isinstance(verdict, Rejection)
        return verdict.reason

    assert reasons[1] == worker_reason(bad_ts)
    assert reasons[3] == worker_reason(bad_watch)
    assert reasons[4] == "event must be a JSON object, got number"
    assert reasons[5].startswith("field 'type' is \"impression\"")
    wait_for_kpi(stack.worker, "marketing_views", campaign, 3)


def test_without_a_valid_token_401(stack: Stack) -> None:
    for token in (None, "not-the-token-at-all-0000", ""):
        status, body = stack.collector.post([view("col-401", 1)], token=token)
        assert status == 401, token
        assert "Authorization: Bearer" in body["error"]
    status, headers, _ = stack.collector.request(
        "POST", "/v1/events", b"{}", {"Authorization": f"Basic {SHOP_TOKEN}"})
    assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")


def test_over_the_body_limit_413(stack: Stack) -> None:
    big = orjson.dumps([view("col-413", i, pad="x" * 2000) for i in range(600)])
    assert len(big) > 1024 * 1024
    status, _, body = stack.collector.request(
        "POST", "/v1/events", big, {"Authorization": f"Bearer {SHOP_TOKEN}"})
    assert status == 413 and b"1048576" in body
    # the same without a Content-Length: the limit holds while reading
    conn = http.client.HTTPConnection("127.0.0.1", stack.collector.port, timeout=15)
    try:
        conn.request("POST", "/v1/events", body=iter([big[:600_000], big[600_000:]]),
                     headers={"Authorization": f"Bearer {SHOP_TOKEN}"},
                     encode_chunked=True)
        response = conn.getresponse()
        assert response.status == 413
    finally:
        conn.close()
    assert stack.collector.post([view("col-413", i) for i in range(1001)])[0] == 413


def test_a_body_that_is_not_json_or_has_a_bad_type_parameter_400(stack: Stack) -> None:
    status, _, body = stack.collector.request(
        "POST", "/v1/events", b"{nope", {"Authorization": f"Bearer {SHOP_TOKEN}"})
    assert status == 400 and b"not valid UTF-8 JSON" in body
    assert stack.collector.post([], query="")[0] == 400
    status, body = stack.collector.post(view("x", 1), query="?type=impression")
    assert status == 400 and "impression" in body["error"]


# --- browsers ---------------------------------------------------------------------------

def test_cors_preflight_and_answers_readable_by_a_page(stack: Stack) -> None:
    origin = {"Origin": "https://shop.example"}
    status, headers, _ = stack.collector.request("OPTIONS", "/v1/events", None, {
        **origin, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type"})
    assert status == 204
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert "Authorization" in headers["Access-Control-Allow-Headers"]
    assert "POST" in headers["Access-Control-Allow-Methods"]
    status, headers, _ = stack.collector.request("POST", "/v1/events", b"{}", origin)
    assert status == 401 and headers["Access-Control-Allow-Origin"] == "*"
    status, headers, _ = stack.collector.request(
        "POST", "/v1/events", orjson.dumps(view("col-cors", 1)),
        {**origin, "Authorization": f"Bearer {PIXEL_TOKEN}", "Content-Type": "text/plain"})
    assert status == 202 and headers["Access-Control-Allow-Origin"] == "*"


# --- its own metrics ----------------------------------------------------------------------

def test_metrics_count_requests_events_and_latency(stack: Stack) -> None:
    collector = stack.collector
    collector.post([view("col-metrics", 1), view("col-metrics", 2, ts=-1)], token=PIXEL_TOKEN)
    collector.post([view("col-metrics", 3)], token="wrong-token-wrong-token")
    samples = collector.samples()
    assert (value(samples, "kpistream_collector_requests_total", status="400") or 0) >= 1
    assert (value(samples, "kpistream_collector_requests_total", status="401") or 0) >= 1
    assert (value(samples, "kpistream_collector_events_total", tracker="pixel", type="view",
                  outcome="accepted") or 0) >= 1
    assert (value(samples, "kpistream_collector_events_total", tracker="pixel", type="view",
                  outcome="invalid") or 0) >= 1
    assert value(samples, "kpistream_collector_events_total", tracker="shop-backend",
                 type="spend", outcome="failed") == 0
    requests = sum(v for (name, _), v in samples.items()
                   if name == "kpistream_collector_requests_total")
    assert value(samples, "kpistream_collector_request_duration_seconds_count") == requests
    assert not any(name.endswith("_created") for name, _ in samples)
    assert SHOP_TOKEN not in collector.request("GET", "/metrics")[2].decode()


# --- start-up -----------------------------------------------------------------------------

def test_not_ready_until_kafka_answers(tmp_path: Path) -> None:
    env = {**os.environ, "KPISTREAM_BROKER": f"kafka://127.0.0.1:{free_port()}",
           "KPISTREAM_COLLECTOR_TOKENS": f"shop-backend={SHOP_TOKEN}"}
    collector = start_collector(env, tmp_path / "collector.log", wait_for="/health")
    try:
        assert collector.status("/ready") == 503
        status, body = collector.post(view("col-503", 1))
        assert status == 503 and "Kafka" in body["error"]
    finally:
        collector.stop()


@pytest.mark.parametrize(("env", "words"), [
    ({}, ["[collector.tokens]", "KPISTREAM_COLLECTOR_TOKENS", "no tracker token"]),
    ({"KPISTREAM_COLLECTOR_TOKENS": "shop=short"}, ["KPISTREAM_COLLECTOR_TOKENS shop",
                                                   "16-512"]),
    ({"KPISTREAM_COLLECTOR_TOKENS": f"a={SHOP_TOKEN},b={SHOP_TOKEN}"}, ["another tracker"]),
    ({"KPISTREAM_COLLECTOR_TOKENS": f"a={SHOP_TOKEN}", "KPISTREAM_COLLECTOR_PORT": "99999"},
     ["KPISTREAM_COLLECTOR_PORT", "99999"]),
    ({"KPISTREAM_COLLECTOR_TOKENS": f"a={SHOP_TOKEN}", "KPISTREAM_COLLECTOR_MAX_BODY": "1kb"},
     ["KPISTREAM_COLLECTOR_MAX_BODY"]),
])
def test_bad_settings_stop_it_at_start_naming_the_setting(
    tmp_path: Path, env: dict[str, str], words: list[str]
) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KPISTREAM_")}
    done = subprocess.run([sys.executable, "-m", "streams", "collector"],
                          env={**clean, **env}, capture_output=True, timeout=60, check=False)
    assert done.returncode == 2
    error = done.stderr.decode()
    for word in words:
        assert word in error, error
    assert SHOP_TOKEN not in error and "short" not in error.replace("shop=", "")


def test_batch_messages_keep_every_event_and_stay_under_the_limits() -> None:
    from streams.commands.http_collector import _BATCH_BYTES, _batched
    from streams.commands.validate import Outgoing
    from streams.events.validation import MAX_BATCH_EVENTS

    events = [Outgoing("view" if i % 3 else "click",
                       orjson.dumps(view("chunk", i, pad="x" * (i % 7) * 300)), None, 1)
              for i in range(2500)]
    messages = _batched(events)
    for event_type in ("view", "click"):
        sent = [e for m in messages if m.type == event_type for e in orjson.loads(m.value)]
        assert sent == [orjson.loads(e.value) for e in events if e.type == event_type]
    assert all(len(m.value) <= _BATCH_BYTES for m in messages)
    assert all(m.events == len(orjson.loads(m.value)) <= MAX_BATCH_EVENTS for m in messages)
    assert _batched(events[:1]) == events[:1]  # one event: a message of its own, keyed
