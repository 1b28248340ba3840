"""docker-compose.yml and the Dockerfile, checked without a Docker engine: every file they
mount or build from exists, every image is pinned, the pieces point at each other."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.config.settings import EVENT_TOPIC_KEYS, settings_from
from tests.deploy.servers import DEPLOY, REPO
from tests.kafka_broker import kafka_version

COMPOSE: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text(encoding="utf-8"))
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]


def _pinned(image: str) -> bool:
    name, _, tag = image.rpartition(":")
    return bool(name) and "/" not in tag and tag not in ("", "latest")


def _workers() -> list[str]:
    return sorted(name for name, svc in SERVICES.items()
                  if "build" in svc and svc.get("command") == ["worker"])


def _dockerfile() -> tuple[Path, list[str]]:
    build = SERVICES[_workers()[0]]["build"]
    context = (REPO / build["context"]).resolve()
    dockerfile = context / build.get("dockerfile", "Dockerfile")
    return context, dockerfile.read_text(encoding="utf-8").splitlines()


def test_the_stack_has_its_services() -> None:
    assert {"kafka", "kafka-init", "prometheus", "alertmanager", "grafana"} <= set(SERVICES)
    assert len(_workers()) == 2
    assert SERVICES["kafka"]["image"].startswith("apache/kafka:")
    assert "controller" in SERVICES["kafka"]["environment"]["KAFKA_PROCESS_ROLES"]  # KRaft
    assert SERVICES["kafka-init"]["restart"] == "no"
    for name in _workers():
        assert SERVICES[name]["depends_on"]["kafka-init"]["condition"] == (
            "service_completed_successfully")


def test_compose_runs_the_kafka_version_the_tests_run() -> None:
    """The apache/kafka image of compose is the release the integration tests start."""
    version = kafka_version()
    assert re.fullmatch(r"4\.\d+\.\d+", version), version
    for name in ("kafka", "kafka-init"):
        assert SERVICES[name]["image"] == f"apache/kafka:{version}", name


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_every_image_is_pinned(service: str) -> None:
    svc = SERVICES[service]
    assert "image" in svc or "build" in svc, service
    if "image" in svc:
        assert _pinned(svc["image"]), f"{service}: {svc['image']!r} is not pinned to a tag"


def test_the_dockerfile_base_image_is_pinned_and_its_copies_exist() -> None:
    context, lines = _dockerfile()
    bases = [line.split()[1] for line in lines if line.startswith("FROM ")]
    assert bases and all(_pinned(b) for b in bases), bases
    assert bases[0].startswith("python:3.11")
    ignored = (context / ".dockerignore").read_text(encoding="utf-8").splitlines()
    copied = [src for line in lines if line.startswith("COPY ")
              for src in line.split()[1:-1] if not src.startswith("--")]
    assert copied
    for src in copied:
        assert (context / src).exists(), f"the Dockerfile copies {src}, missing from the repo"
        assert f"!{src.rstrip('/')}" in {i.rstrip("/") for i in ignored}, (
            f".dockerignore leaves {src} out of the build context")
    assert any("pip install ." in line for line in lines)
    assert lines[-1] == 'CMD ["worker"]' and 'ENTRYPOINT ["kpistream"]' in lines


def test_every_mounted_file_exists_and_named_volumes_are_declared() -> None:
    declared = set(COMPOSE.get("volumes") or {})
    for name, svc in SERVICES.items():
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith((".", "/")):
                assert (REPO / source).exists(), f"{name} mounts {source}, missing from the repo"
            else:
                assert source in declared, f"{name} uses volume {source}, not declared"


def test_prometheus_scrapes_the_compose_workers_and_alerts_to_alertmanager() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text(encoding="utf-8"))
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    targets = {t for sc in jobs["kpistream"]["static_configs"] for t in sc["targets"]}
    assert targets == {f"{name}:6066" for name in _workers()}
    (alertmanager,) = [t for am in config["alerting"]["alertmanagers"]
                       for sc in am["static_configs"] for t in sc["targets"]]
    assert alertmanager.split(":")[0] in SERVICES
    mounts = [v.split(":")[:2] for v in SERVICES["prometheus"]["volumes"]]
    assert ["./deploy/prometheus/rules", "/etc/prometheus/rules"] in mounts
    assert re.fullmatch(r"/etc/prometheus/rules/.*\.yml", config["rule_files"][0])


def test_grafana_is_provisioned_with_the_datasource_the_dashboard_uses() -> None:
    mounts = dict(v.split(":")[:2] for v in SERVICES["grafana"]["volumes"])
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    source = DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
    (datasource,) = yaml.safe_load(source.read_text(encoding="utf-8"))["datasources"]
    assert datasource["url"] == "http://prometheus:9090"
    providers = DEPLOY / "grafana" / "provisioning" / "dashboards" / "kpistream.yml"
    (provider,) = yaml.safe_load(providers.read_text(encoding="utf-8"))["providers"]
    assert mounts["./deploy/grafana/dashboards"] == provider["options"]["path"]
    dashboard = (DEPLOY / "grafana" / "dashboards" / "kpistream.json").read_text(encoding="utf-8")
    assert f'"uid": "{datasource["uid"]}"' in dashboard


def test_workers_read_deploy_kpistream_toml_and_kafka_init_creates_its_topics() -> None:
    settings = settings_from(
        tomllib.loads((DEPLOY / "kpistream.toml").read_text(encoding="utf-8")), {})
    for name in _workers():
        svc = SERVICES[name]
        mounts = dict(v.split(":")[:2] for v in svc["volumes"])
        assert mounts["./deploy/kpistream.toml"] == svc["environment"]["KPISTREAM_CONFIG"]
        assert svc["environment"]["KPISTREAM_BROKER"] == "kafka://kafka:9092"
    script = SERVICES["kafka-init"]["command"][0]
    for key in (*EVENT_TOPIC_KEYS, "deadletter"):
        assert getattr(settings.topics, key) in re.split(r"[\s;]+", script)
    assert f"--partitions {settings.partitions}" in script


def test_the_demo_simulator_is_a_profile_running_kpistream_simulate() -> None:
    simulator = SERVICES["simulator"]
    assert simulator["profiles"] == ["demo"]
    assert simulator["command"][0] == "simulate"


def test_the_collector_runs_on_its_own_with_tokens() -> None:
    collector = SERVICES["collector"]
    assert collector["command"] == ["collector"]
    assert "KPISTREAM_COLLECTOR_TOKENS" in collector["environment"]
    assert "profiles" not in collector
