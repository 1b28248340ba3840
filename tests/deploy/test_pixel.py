"""The browser pixel of docs/trackers.md, run as documented in headless Chromium (Debian's
chromium and chromium-driver) on a page of another origin than the collector, so the
browser makes its CORS preflights for real: what it sends reaches the real collector,
the real broker and a real worker, and counts once."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from prometheus_client.parser import text_string_to_metric_families
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from streams.kafka.tansu import free_port, stop_process
from tests.deploy.servers import REPO
from tests.integration.harness import Deployment, Samples, Worker, value, wait_until

TRACKERS = REPO / "docs" / "trackers.md"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-quic")
TOKEN = "web-pixel-token-0123456789abcdef"
WRONG_TOKEN = "not-the-pixel-token-0123456789"


def documented_pixel() -> str:
    """The <script> of the "A browser pixel" section, exactly as the docs show it."""
    text = TRACKERS.read_text(encoding="utf-8")
    section = text.split("### A browser pixel", 1)[1].split("\n### ", 1)[0]
    blocks = re.findall(r"```html\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1, "docs/trackers.md: one ```html block under A browser pixel"
    return blocks[0]


def configured(snippet: str, collector: str, token: str) -> str:
    """The snippet with a site's own collector URL and token, as its user would set them."""
    out, n = re.subn(r'const COLLECTOR = "[^"]*";', f'const COLLECTOR = "{collector}";',
                     snippet)
    out, m = re.subn(r'const TOKEN = "[^"]*";', f'const TOKEN = "{token}";', out)
    assert (n, m) == (1, 1), "the documented pixel must set COLLECTOR and TOKEN once each"
    return out


PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>landing</title>
<script>
  window.pageErrors = [];
  addEventListener("error", (e) => pageErrors.push(String(e.message)));
  addEventListener("unhandledrejection", (e) => pageErrors.push(String(e.reason)));
  // Record what the pixel asks fetch for (the next page of this origin reads it back).
  const realFetch = window.fetch;
  window.fetch = function (url, init) {{
    const sent = JSON.parse(localStorage.getItem("pixelFetches") || "[]");
    sent.push({{url: String(url), keepalive: Boolean(init && init.keepalive)}});
    localStorage.setItem("pixelFetches", JSON.stringify(sent));
    return realFetch.apply(this, arguments);
  }};
</script>
{pixel}
</head>
<body>
<h1>Summer sale</h1>
<a id="profile" href="/next" data-kpistream-action="profile_visit"><span>our profile</span></a>
<script>document.body.dataset.after = "ran";</script>
</body></html>
"""


class _Pages(BaseHTTPRequestHandler):
    pages: ClassVar[dict[str, str]] = {}
    """Path -> HTML; the paths the tests add."""

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        body = self.pages.get(path)
        if body is None:
            self.send_error(404)
            return
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class Collector:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def samples(self) -> Samples:
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=5) as response:
            text = response.read().decode()
        return {(s.name, frozenset(s.labels.items())): s.value
                for family in text_string_to_metric_families(text) for s in family.samples}

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/ready", timeout=2) as response:
                return int(response.status) == 200
        except OSError:
            return False


@dataclass
class Site:
    """The worker, the collector, and a site on another origin serving the pixel."""

    worker: Worker
    collector: Collector
    page_origin: str
    other_origin: str
    """A site not in cors_origins."""
    pages: dict[str, str]
    driver: webdriver.Chrome
    tmp: Path

    def page(self, name: str, token: str) -> str:
        """Serve a landing page with the documented pixel; its path."""
        pixel = configured(documented_pixel(), f"{self.collector.url}/v1/events", token)
        self.pages[f"/{name}"] = PAGE.format(pixel=pixel)
        return f"/{name}"

    def accepted(self, event_type: str) -> float:
        return value(self.collector.samples(), "kpistream_collector_events_total",
                     tracker="web-pixel", type=event_type, outcome="accepted") or 0.0

    def posts(self, status: int) -> float:
        return value(self.collector.samples(), "kpistream_collector_requests_total",
                     status=str(status)) or 0.0

    def page_errors(self) -> list[str]:
        errors: list[str] = self.driver.execute_script("return window.pageErrors;")
        return errors

    def network(self) -> list[dict[str, Any]]:
        """Chromium's DevTools network events since the last call."""
        events = []
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message["method"].startswith("Network."):
                events.append(message)
        return events


def _chromium(tmp: Path) -> webdriver.Chrome:
    for path in (CHROMIUM, CHROMEDRIVER):
        assert path.exists(), f"{path} is missing: ./run.sh test installs Debian's chromium " \
                              "and chromium-driver"
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={tmp / 'profile'}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    service = Service(str(CHROMEDRIVER), log_output=str(tmp / "chromedriver.log"))
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SE_OFFLINE", "true")  # Selenium Manager: never download a driver
        env.setenv("SE_AVOID_STATS", "true")
        return webdriver.Chrome(service=service, options=options)


@pytest.fixture(scope="module")
def site(deploy_module: Callable[..., Deployment],
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("pixel")
    deployment = deploy_module()
    worker = deployment.start_worker()
    _Pages.pages = {"/next": "<!doctype html><title>next</title><p>next page</p>"}
    servers = [ThreadingHTTPServer(("127.0.0.1", 0), _Pages) for _ in range(2)]
    page_origin, other_origin = (f"http://127.0.0.1:{s.server_address[1]}" for s in servers)
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    port = free_port()
    log = tmp / "collector.log"
    env = {**deployment.env(free_port()), "KPISTREAM_COLLECTOR_PORT": str(port),
           "KPISTREAM_COLLECTOR_HOST": "127.0.0.1",
           "KPISTREAM_COLLECTOR_TOKENS": f"web-pixel={TOKEN}",
           "KPISTREAM_COLLECTOR_CORS_ORIGINS": page_origin}
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "streams", "collector"],
                                   env=env, stdout=out, stderr=subprocess.STDOUT)
    collector = Collector(process, port, log)
    driver = None
    try:
        wait_until(lambda: collector.ready() or process.poll() is not None, 30,
                   "the collector to be ready")
        assert process.poll() is None, log.read_text()
        driver = _chromium(tmp)
        yield Site(worker, collector, page_origin, other_origin, _Pages.pages, driver, tmp)
    finally:
        if driver is not None:
            driver.quit()
        stop_process(process)
        for server in servers:
            server.shutdown()
            server.server_close()


def kpi(worker: Worker, metric: str, campaign: str) -> float | None:
    return value(worker.samples(), metric, campaign=campaign, channel="tiktok",
                 window="total")


def test_view_click_and_an_engagement_that_leaves_the_page_count_once(site: Site) -> None:
    campaign = f"px-{uuid.uuid4().hex[:8]}"
    path = site.page("landing", TOKEN)
    site.network()  # drop what came before
    site.driver.get(f"{site.page_origin}{path}?utm_campaign={campaign}&utm_source=TikTok"
                    "&ttclid=tt-77")
    wait_until(lambda: kpi(site.worker, "marketing_views", campaign) == 1
               and kpi(site.worker, "marketing_clicks", campaign) == 1, 30,
               "the landing view and the ad click at the worker")
    landing = site.network()
    # The browser asked the collector first (Authorization is not a simple header).
    endpoint = f"{site.collector.url}/v1/events"
    sent = [(e["params"]["request"]["method"]) for e in landing
            if e["method"] == "Network.requestWillBeSent"
            and e["params"]["request"]["url"] == endpoint]
    assert sorted(sent) == ["OPTIONS", "POST"]
    (preflight,) = [e["params"]["response"] for e in landing
                    if e["method"] == "Network.responseReceived"
                    and e["params"]["type"] == "Preflight"]
    assert preflight["url"] == endpoint and preflight["status"] == 204
    headers = {k.lower(): v for k, v in preflight["headers"].items()}
    assert headers["access-control-allow-origin"] == site.page_origin

    site.driver.find_element(By.CSS_SELECTOR, "#profile span").click()
    wait_until(lambda: site.driver.title == "next", 10, "the click to navigate away")
    # The request sent while the page was left was a keepalive one (recorded by the
    # page's fetch wrapper, read back on the next page of the same origin).
    sent_by_pixel = json.loads(site.driver.execute_script(
        "return localStorage.getItem('pixelFetches');"))
    assert [f["keepalive"] for f in sent_by_pixel if f["url"] == endpoint] == [True, True]
    wait_until(lambda: kpi(site.worker, "marketing_engagements", campaign) == 1, 30,
               "the engagement sent while the page was left")

    samples = site.worker.samples()
    assert {m: value(samples, m, campaign=campaign, channel="tiktok", window="total")
            for m in ("marketing_views", "marketing_clicks", "marketing_engagements")} == {
        "marketing_views": 1, "marketing_clicks": 1, "marketing_engagements": 1}
    assert site.accepted("view") == 1 and site.accepted("click") == 1
    assert site.accepted("engagement") == 1


def test_a_wrong_token_is_refused_and_the_page_goes_on(site: Site) -> None:
    campaign = f"px-bad-{uuid.uuid4().hex[:8]}"
    refused_before = site.posts(401)
    accepted_before = site.accepted("view")
    path = site.page("landing-wrong-token", WRONG_TOKEN)
    site.driver.get(f"{site.page_origin}{path}?utm_campaign={campaign}&utm_source=tiktok"
                    "&ttclid=tt-bad")
    wait_until(lambda: site.posts(401) == refused_before + 1, 30,
               "the collector to refuse the pixel's request")
    assert site.driver.execute_script("return document.body.dataset.after;") == "ran"
    assert site.page_errors() == []
    # The 401 reached the page (CORS lets it read the answer), not a network error. Only
    # this page's requests: the last page's keepalive answer may be logged after it.
    network = site.network()
    from_this_page = {e["params"]["requestId"] for e in network
                      if e["method"] == "Network.requestWillBeSent"
                      and e["params"]["documentURL"].startswith(f"{site.page_origin}{path}")}
    answers = [e for e in network if e["method"] == "Network.responseReceived"
               and e["params"]["requestId"] in from_this_page
               and e["params"]["response"]["url"] == f"{site.collector.url}/v1/events"]
    assert [a["params"]["response"]["status"] for a in answers] == [401]
    assert site.accepted("view") == accepted_before
    assert kpi(site.worker, "marketing_views", campaign) is None


def test_a_site_not_in_cors_origins_is_refused_by_the_browser(site: Site) -> None:
    """The collector names no other origin in its preflight answer: Chromium sends nothing."""
    campaign = f"px-other-{uuid.uuid4().hex[:8]}"
    taken_before = site.posts(202)
    path = site.page("landing-other-site", TOKEN)
    endpoint = f"{site.collector.url}/v1/events"
    site.network()
    site.driver.get(f"{site.other_origin}{path}?utm_campaign={campaign}&utm_source=tiktok")
    seen: list[dict[str, Any]] = []

    def refused() -> list[dict[str, Any]]:
        seen.extend(site.network())
        ids = {e["params"]["requestId"] for e in seen
               if e["method"] == "Network.requestWillBeSent"
               and e["params"]["request"]["url"] == endpoint}
        return [e["params"] for e in seen if e["method"] == "Network.loadingFailed"
                and e["params"]["requestId"] in ids]

    wait_until(lambda: bool(refused()), 30, "Chromium to refuse the request by CORS")
    (failed,) = refused()
    assert failed["corsErrorStatus"]["corsError"] == "PreflightMissingAllowOriginHeader"
    assert sorted(e["params"]["request"]["method"] for e in seen
                  if e["method"] == "Network.requestWillBeSent"
                  and e["params"]["request"]["url"] == endpoint) == ["OPTIONS", "POST"]
    assert site.driver.execute_script("return document.body.dataset.after;") == "ran"
    assert site.page_errors() == []
    assert site.posts(202) == taken_before
