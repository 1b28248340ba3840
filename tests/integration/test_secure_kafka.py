"""Secure connections: Apache Kafka with a SASL_SSL listener (a CA and certificates made by
the test, SCRAM users written by StorageTool's --add-scram), the [kafka] settings of SPEC 3,
and every client kpistream runs: the worker, publish, simulate and the HTTP collector."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest

from streams.kafka.tansu import free_port
from tests.integration.harness import Deployment, Worker, value, wait_until
from tests.integration.test_collector import SHOP_TOKEN, start_collector
from tests.kafka_broker import ApacheKafka
from tests.kafka_tls import Certificates, make_certificates, sasl_ssl_listener

SCRAM_PASSWORD = "scram-Secret-4242"
PLAIN_PASSWORD = "plain-Secret-7171"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def secure_kafka(certs: Certificates) -> Iterator[ApacheKafka]:
    with ApacheKafka(secure=sasl_ssl_listener(certs, {"plainuser": PLAIN_PASSWORD}),
                     scram_users={"kpistream": SCRAM_PASSWORD}) as running:
        yield running


def secure_env(kafka: ApacheKafka, certs: Certificates, mechanism: str = "SCRAM-SHA-512",
               user: str = "kpistream", password: str = SCRAM_PASSWORD) -> dict[str, str]:
    """Only the SASL_SSL listener: the PLAINTEXT one is the test's own back door."""
    return {"KPISTREAM_BROKER": f"kafka://{kafka.secure_bootstrap}",
            "KPISTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KPISTREAM_KAFKA_SASL_MECHANISM": mechanism,
            "KPISTREAM_KAFKA_SASL_USERNAME": user,
            "KPISTREAM_KAFKA_SASL_PASSWORD": password,
            "KPISTREAM_KAFKA_SSL_CAFILE": str(certs.ca),
            "KPISTREAM_KAFKA_SSL_CERTFILE": str(certs.client_cert),
            "KPISTREAM_KAFKA_SSL_KEYFILE": str(certs.client_key)}


def kpistream(env: dict[str, str], *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[
        bytes]:
    return subprocess.run([sys.executable, "-m", "streams", *args], env=env,
                          input=stdin, capture_output=True, timeout=120, check=False)


def views(worker: Worker, campaign: str) -> float | None:
    return value(worker.samples(), "marketing_views", campaign=campaign, channel="tiktok",
                 window="total")


def test_events_flow_end_to_end_over_sasl_ssl_and_no_secret_is_logged(
    secure_kafka: ApacheKafka, certs: Certificates, tmp_path: Path,
    stopped_after: Callable[[Deployment], Deployment],
) -> None:
    deployment = stopped_after(Deployment(
        secure_kafka, tmp_path, extra_env=secure_env(secure_kafka, certs)))
    worker = deployment.start_worker()
    now = int(time.time() * 1000)

    # kpistream publish, SCRAM-SHA-512 with a client certificate
    lines = b"".join(orjson.dumps({"type": "view", "event_id": f"p{i}", "ts": now,
                                   "campaign_id": "published", "channel": "tiktok"}) + b"\n"
                     for i in range(7))
    published = kpistream(deployment.env(free_port()), "publish", "-", stdin=lines)
    assert published.returncode == 0, published.stderr.decode()
    wait_until(lambda: views(worker, "published") == 7, 30, "published views counted")

    # the HTTP collector, SCRAM-SHA-256
    collector_env = {**deployment.env(free_port()),
                     **secure_env(secure_kafka, certs, mechanism="SCRAM-SHA-256"),
                     "KPISTREAM_COLLECTOR_TOKENS": f"shop={SHOP_TOKEN}"}
    collector = start_collector(collector_env, tmp_path / "collector.log")
    try:
        status, body = collector.post([{"type": "view", "event_id": f"h{i}", "ts": now,
                                        "campaign_id": "collected", "channel": "tiktok"}
                                       for i in range(3)])
        assert (status, body) == (202, {"accepted": 3, "rejected": 0})
        wait_until(lambda: views(worker, "collected") == 3, 30, "collected views counted")
    finally:
        collector.stop()

    # kpistream simulate, SASL PLAIN over TLS without a client certificate
    plain = {**deployment.env(free_port()),
             **secure_env(secure_kafka, certs, "PLAIN", "plainuser", PLAIN_PASSWORD)}
    for key in ("KPISTREAM_KAFKA_SSL_CERTFILE", "KPISTREAM_KAFKA_SSL_KEYFILE"):
        del plain[key]
    before = sum(v for (name, labels), v in worker.samples().items()
                 if name == "kpistream_events_total" and ("outcome", "accepted") in labels)
    simulated = kpistream(plain, "simulate", "--rate", "200", "--duration", "2")
    assert simulated.returncode == 0, simulated.stderr.decode()
    wait_until(lambda: sum(v for (name, labels), v in worker.samples().items()
                           if name == "kpistream_events_total"
                           and ("outcome", "accepted") in labels) > before + 50,
               30, "simulated traffic counted")
    assert worker.status("/ready") == 200

    worker.stop()
    logs = [worker.log.read_bytes(), (tmp_path / "collector.log").read_bytes(),
            published.stdout, published.stderr, simulated.stdout, simulated.stderr]
    for text in logs:
        assert SCRAM_PASSWORD.encode() not in text and PLAIN_PASSWORD.encode() not in text


def test_a_wrong_password_stops_the_worker_at_start_naming_the_setting(
    secure_kafka: ApacheKafka, certs: Certificates, tmp_path: Path,
    stopped_after: Callable[[Deployment], Deployment],
) -> None:
    wrong = "not-the-Password-99"
    deployment = stopped_after(Deployment(
        secure_kafka, tmp_path, extra_env=secure_env(secure_kafka, certs, password=wrong)))
    with pytest.raises(AssertionError, match="worker exited") as failed:
        deployment.start_worker(ready_timeout_s=60)
    message = str(failed.value)
    assert "KPISTREAM_KAFKA_SASL_PASSWORD" in message, message
    assert "security_protocol SASL_SSL" in message, message
    assert wrong not in deployment.workers[0].log.read_text(errors="replace")


def test_publish_with_a_wrong_password_exits_3_naming_the_settings(
    secure_kafka: ApacheKafka, certs: Certificates, tmp_path: Path,
    stopped_after: Callable[[Deployment], Deployment],
) -> None:
    deployment = stopped_after(Deployment(secure_kafka, tmp_path))
    wrong = "also-not-the-Password"
    env = {**deployment.env(free_port()), **secure_env(secure_kafka, certs, password=wrong)}
    line = orjson.dumps({"type": "view", "event_id": "x", "ts": int(time.time() * 1000),
                         "campaign_id": "c", "channel": "tiktok"}) + b"\n"
    done = kpistream(env, "publish", "-", stdin=line)
    assert done.returncode == 3, done.stderr.decode()
    assert b"[kafka] security settings" in done.stderr
    assert wrong.encode() not in done.stderr + done.stdout
