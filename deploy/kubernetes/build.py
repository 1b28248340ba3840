"""Writes the generated files of the Kubernetes manifests: python deploy/kubernetes/build.py

- components/prometheus-operator/prometheusrule.yaml: the rules of ``kpistream
  alert-rules`` (streams/commands/alert_rules.py, one source) for base/kpistream.toml, as a
  Prometheus Operator PrometheusRule;
- components/prometheus-operator/dashboards/kpistream.json: the Grafana dashboard,
  copied from deploy/grafana/dashboards/kpistream.json, because kustomize (and so
  ``kubectl apply -k``) reads no file outside a kustomization's directory.

tests/deploy/test_kubernetes.py fails when either differs from what this script writes.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SETTINGS = HERE / "base" / "kpistream.toml"
RULE = HERE / "components" / "prometheus-operator" / "prometheusrule.yaml"
DASHBOARD_SOURCE = REPO / "deploy" / "grafana" / "dashboards" / "kpistream.json"
DASHBOARD = HERE / "components" / "prometheus-operator" / "dashboards" / "kpistream.json"
RULE_LABELS = {"app.kubernetes.io/name": "kpistream", "release": "kube-prometheus-stack"}
"""kube-prometheus-stack loads PrometheusRules with its Helm release's name as release."""


def prometheus_rule_text() -> str:
    """The PrometheusRule for base/kpistream.toml."""
    sys.path.insert(0, str(REPO))
    from streams.commands.alert_rules import prometheus_rule
    from streams.config.settings import load_settings

    settings = load_settings({"KPISTREAM_CONFIG": str(SETTINGS)})
    return prometheus_rule(settings, name="kpistream", namespace="kpistream",
                           labels=RULE_LABELS)


def main() -> int:
    RULE.write_text(prometheus_rule_text(), encoding="utf-8")
    DASHBOARD.parent.mkdir(parents=True, exist_ok=True)
    DASHBOARD.write_bytes(DASHBOARD_SOURCE.read_bytes())
    for path in (RULE, DASHBOARD):
        sys.stdout.write(f"wrote {path.relative_to(REPO)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
