"""End to end on the real broker: a known data set in, every KPI exact at /metrics."""

from __future__ import annotations

import gzip
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.harness import Deployment, Samples, kpi_series, value, wait_until

MIN = 60_000
FX = """
[fx]
EUR = 1.08
IDR = 0.000063

[promo_codes]
SUMMER10 = "summer"
"""


def _accepted(samples: Samples) -> float:
    return sum(v for (name, labels), v in samples.items()
               if name == "kpistream_events_total" and ("outcome", "accepted") in labels)


def _invalid(samples: Samples) -> float:
    return sum(v for (name, labels), v in samples.items()
               if name == "kpistream_events_total" and ("outcome", "invalid") in labels)


def _dataset(now: int) -> tuple[list[tuple[str, Any, bytes | None]], int, int]:
    """Messages (with assorted keys), number of valid events, number of invalid events."""
    msgs: list[tuple[str, Any, bytes | None]] = []
    keys = [None, b"x", b"summer", b"other"]

    def ev(kind: str, i: int, ts: int | str, **fields: Any) -> dict[str, Any]:
        return {"event_id": f"{kind}-{i}", "ts": ts, **fields}

    # summer/tiktok, this minute: 40 views (20 completed), 8 engagements, 4 clicks.
    for i in range(40):
        msgs.append(("views", ev("v", i, now, campaign_id="summer", channel="tiktok",
                                 completed=i % 2 == 0, user_id=f"u{i}"), keys[i % 4]))
    for i in range(8):
        msgs.append(("engagements", ev("e", i, now, campaign_id="summer", channel="TikTok",
                                       action="like"), keys[i % 4]))
    for i in range(4):
        msgs.append(("clicks", ev("c", i, now, campaign_id="summer", channel="tiktok",
                                  click_id=f"ttclid-{i}"), keys[i % 4]))
    # summer/instagram, 30 minutes ago: 10 views (in 1h and 24h, not 5m).
    for i in range(10):
        msgs.append(("views", ev("vi", i, now - 30 * MIN, campaign_id="summer",
                                 channel="instagram"), keys[i % 4]))
    # winter/youtube: 5 views 3 hours ago (24h only), 3 views two days ago (total only),
    # sent as one batch message.
    batch = [ev("vw", i, now - 180 * MIN, campaign_id="winter", channel="youtube")
             for i in range(5)]
    batch += [ev("vo", i, now - 2 * 1440 * MIN, campaign_id="winter", channel="youtube")
              for i in range(3)]
    batch.append({"event_id": "bad-in-batch", "ts": now, "channel": "youtube"})  # no campaign
    msgs.append(("views", batch, None))
    # Orders: RFC 3339 with offset; IDR and EUR converted; customer c1 buys twice.
    iso_now = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(now / 1000))
    msgs.append(("orders", ev("o", 1, iso_now, campaign_id="summer", channel="tiktok",
                              order_id="A1", customer_id="c1", revenue="350000",
                              currency="IDR"), b"k1"))
    msgs.append(("orders", ev("o", 2, now, campaign_id="summer", channel="tiktok",
                              order_id="A2", customer_id="c1", revenue=10, currency="EUR"),
                 None))
    msgs.append(("orders", ev("o", 3, now, order_id="A3",
                              customer_id="c2", revenue="19.99", currency="USD",
                              promo_code="SUMMER10"), b"k3"))
    msgs.append(("orders", ev("o", 4, now, order_id="A4", customer_id="c3",
                              revenue="5", currency="USD"), None))
    # Spend: 12.5 USD + 7.5 EUR (8.1 USD) on summer/tiktok.
    msgs.append(("spend", ev("s", 1, now, campaign_id="summer", channel="tiktok",
                             amount=12.5, currency="USD"), None))
    msgs.append(("spend", ev("s", 2, now, campaign_id="summer", channel="tiktok",
                             amount="7.5", currency="EUR"), b"z"))
    # Bad input.
    msgs.append(("views", b"{not json", None))
    msgs.append(("spend", ev("bad", 1, now, campaign_id="summer", amount=-3,
                             currency="USD"), None))
    msgs.append(("orders", ev("bad", 2, now, campaign_id="summer", order_id="B",
                              customer_id="c9", revenue=1, currency="XXX"), None))
    msgs.append(("views", ev("bad", 3, now + 10 * MIN, campaign_id="summer"), None))
    valid = 40 + 8 + 4 + 10 + 8 + 4 + 2
    invalid = 1 + 4
    return msgs, valid, invalid


@pytest.fixture(scope="module")
def loaded(deploy_module: Callable[..., Deployment]) -> tuple[Deployment, Samples, int]:
    """The deployment, its samples once every event counted, and the data set's now (ms)."""
    deployment = deploy_module(extra_toml=FX)
    worker = deployment.start_worker()
    now = int(time.time() * 1000)
    if now % MIN > 50_000:  # keep the whole test inside one minute's windows
        time.sleep((MIN - now % MIN) / 1000 + 0.1)
        now = int(time.time() * 1000)
    messages, valid, invalid = _dataset(now)
    deployment.publish(messages)
    wait_until(lambda: _accepted(worker.samples()) >= valid and
               _invalid(worker.samples()) >= invalid, 30, f"{valid} accepted events")
    return deployment, worker.samples(), now


def test_every_kpi_is_exact(loaded: tuple[Deployment, Samples, int]) -> None:
    _, samples, _ = loaded
    # the series with no label beyond campaign, channel, window (and currency); the
    # labelled seed KPIs (actions, content types, LTV) are in test_seed_kpis.py
    plain = {"campaign", "channel", "window", "currency"}
    tiktok = {(name, labels["window"]): v
              for (name, pairs), v in samples.items()
              if name.startswith("marketing_") and (labels := dict(pairs)).keys() <= plain
              and labels.get("campaign") == "summer" and labels.get("channel") == "tiktok"}
    revenue = 22.05 + 10.8
    spend = 12.5 + 8.1
    expected_tiktok = {
        "marketing_views": 40, "marketing_completed_views": 20,
        "marketing_engagements": 8, "marketing_clicks": 4, "marketing_orders": 2,
        "marketing_new_customers": 1, "marketing_revenue": revenue, "marketing_spend": spend,
        "marketing_click_through_ratio": 0.1, "marketing_engagement_ratio": 0.2,
        "marketing_completion_ratio": 0.5, "marketing_conversion_ratio": 0.5,
        "marketing_roas_ratio": revenue / spend, "marketing_roi_ratio": (revenue - spend) / spend,
        "marketing_cac": spend, "marketing_aov": revenue / 2,
        "marketing_repeat_purchase_ratio": 0.5,
        # 40 views by 40 viewers, none with a watch time; orders without cost, no margin
        "marketing_reach": 40, "marketing_frequency": 1, "marketing_watch_seconds": 0,
        "marketing_gross_profit": 0, "marketing_orders_without_cost": 2, "marketing_poas_ratio": 0,
    }
    for window in ("5m", "1h", "24h", "total"):
        got = {name: v for (name, w), v in tiktok.items() if w == window}
        assert got == pytest.approx(expected_tiktok, rel=1e-12), window


def test_windows_hold_late_events_in_their_own_minute(
    loaded: tuple[Deployment, Samples, int],
) -> None:
    _, samples, _ = loaded
    summer, winter = kpi_series(samples, "summer"), kpi_series(samples, "winter")
    views = "marketing_views"
    # A count with nothing in its window is a real 0; only ratios go absent.
    assert [summer.get((views, "instagram", w)) for w in ("5m", "1h", "24h", "total")] == [
        0, 10, 10, 10,
    ]
    assert [winter.get((views, "youtube", w)) for w in ("5m", "1h", "24h", "total")] == [
        0, 0, 5, 8,
    ]
    assert (views.replace("views", "click_through_ratio"), "youtube", "5m") not in winter


def test_ratios_with_zero_denominator_are_absent(loaded: tuple[Deployment, Samples, int]) -> None:
    _, samples, _ = loaded
    instagram = {k: v for k, v in kpi_series(samples, "summer").items() if k[1] == "instagram"}
    names = {name for name, _, _ in instagram}
    assert "marketing_views" in names
    for ratio in ("marketing_conversion_ratio", "marketing_roas_ratio", "marketing_roi_ratio",
                  "marketing_cac", "marketing_aov", "marketing_repeat_purchase_ratio"):
        assert ratio not in names


def test_orders_attributed_by_promo_code_or_unattributed(
    loaded: tuple[Deployment, Samples, int],
) -> None:
    _, samples, _ = loaded
    # SUMMER10 maps to summer; the order named no channel, so it is summer/unknown.
    assert value(samples, "marketing_orders", campaign="summer", channel="unknown",
                 window="total") == 1
    assert value(samples, "marketing_revenue", campaign="summer", channel="unknown",
                 window="total", currency="USD") == pytest.approx(19.99)
    assert value(samples, "marketing_new_customers", campaign="summer", channel="unknown",
                 window="total") == 1
    assert value(samples, "marketing_orders", campaign="unattributed", channel="unknown",
                 window="total") == 1
    assert value(samples, "marketing_revenue", campaign="unattributed", channel="unknown",
                 window="total", currency="USD") == 5.0


def test_money_gauges_carry_the_reporting_currency(loaded: tuple[Deployment, Samples, int]) -> None:
    _, samples, _ = loaded
    assert value(samples, "marketing_spend", campaign="summer", channel="tiktok",
                 window="total", currency="USD") == pytest.approx(20.6)


def test_bad_events_are_dead_lettered_with_reasons(loaded: tuple[Deployment, Samples, int]) -> None:
    deployment, samples, _ = loaded
    records = deployment.read_topic("deadletter", 5)
    reasons = sorted(r["reason"] for r in records)
    assert len(records) == 5
    assert any("not valid UTF-8 JSON" in r for r in reasons)
    assert any("'amount'" in r and "negative" in r for r in reasons)
    assert any("XXX" in r and "[fx]" in r for r in reasons)
    assert any("'ts'" in r and "future" in r for r in reasons)
    assert any("'campaign_id'" in r for r in reasons)
    for record in records:
        assert record["topic"] in deployment.topics.values()
        assert isinstance(record["partition"], int) and isinstance(record["offset"], int)
        assert record["raw"]
    batch_record = next(r for r in records if "'campaign_id'" in r["reason"])
    assert batch_record["index"] == 8 and "bad-in-batch" in batch_record["raw"]
    assert value(samples, "kpistream_events_total", type="view", outcome="invalid") == 3
    assert value(samples, "kpistream_events_total", type="spend", outcome="invalid") == 1
    assert value(samples, "kpistream_events_total", type="order", outcome="invalid") == 1
    assert value(samples, "kpistream_events_total", type="view", outcome="accepted") == 58


def test_last_event_timestamp_tracks_newest_event_time(
    loaded: tuple[Deployment, Samples, int],
) -> None:
    _, samples, now_ms = loaded
    # The newest valid view is stamped now; the one 10 minutes ahead was refused.
    assert value(samples, "kpistream_last_event_timestamp_seconds", type="view") == now_ms / 1000


def test_metrics_answers_gzip_when_asked_as_prometheus_does(
    loaded: tuple[Deployment, Samples, int],
) -> None:
    deployment, samples, _ = loaded
    worker = deployment.workers[0]
    request = urllib.request.Request(worker.url("/metrics"),
                                     headers={"Accept-Encoding": "gzip"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.headers["Content-Encoding"] == "gzip"
        text = gzip.decompress(response.read()).decode("utf-8")
    unzipped = {(s.name, frozenset(s.labels.items())): s.value
                for family in text_string_to_metric_families(text) for s in family.samples}
    kpis = {key: v for key, v in samples.items() if key[0].startswith("marketing_")}
    assert kpis and {key: unzipped[key] for key in kpis} == kpis
    with urllib.request.urlopen(worker.url("/metrics"), timeout=10) as plain:
        assert plain.headers.get("Content-Encoding") is None
