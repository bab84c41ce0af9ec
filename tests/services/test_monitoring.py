"""Monitoring: pinned charts, per-environment retention/storage, our rules and dashboards picked up, the
retraining webhook route, and rule/dashboard files turned into objects (or clear errors)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pulumi_kubernetes as k8s
import pytest
import yaml
from services.service_lookup import find_object, find_release

from mlops_infra.components.k8s.cluster import ClusterHandle
from mlops_infra.components.k8s.monitoring import RETRAIN_WEBHOOK_URL
from mlops_infra.components.k8s.rules import (
    EXPORTER_FILES,
    MonitoringFilesError,
    MonitoringRules,
    MonitoringRulesArgs,
    load_dashboards,
    load_rule_files,
)
from mlops_infra.platform.config import ENVIRONMENT_DEFAULTS
from mlops_infra.tooling.offline import evaluate
from mlops_infra.tooling.plan import Plan

from plan_support import MONITORING_FILES, STACKS, reference_plan

RULES_DIR = MONITORING_FILES / "rules"


def _values(plan: Plan) -> dict[str, Any]:
    return find_release(plan, "kps").inputs["values"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("stack", ["local", "dev", "prod"])
def test_retention_and_storage_follow_the_stack(stack: str) -> None:
    plan = reference_plan(stack)
    spec = _values(plan)["prometheus"]["prometheusSpec"]
    assert spec["retention"] == f"{plan.config.monitoring_retention_days}d"
    storage = spec["storageSpec"]["volumeClaimTemplate"]["spec"]["resources"]["requests"]["storage"]
    assert storage == f"{plan.config.monitoring_storage_gb}Gi"
    assert int(spec["retentionSize"].removesuffix("GB")) < plan.config.monitoring_storage_gb


def test_environment_defaults_apply_when_the_stack_sets_nothing(mutated_plan: Callable[..., Plan]) -> None:
    def unset(cfg: dict[str, Any]) -> None:
        cfg["mlops-platform:services"].pop("monitoring")

    plan = mutated_plan("local", unset, name="local-defaults")
    spec = _values(plan)["prometheus"]["prometheusSpec"]
    assert spec["retention"] == f"{ENVIRONMENT_DEFAULTS['dev'].monitoring_retention_days}d"
    storage = spec["storageSpec"]["volumeClaimTemplate"]["spec"]["resources"]["requests"]["storage"]
    assert storage == f"{ENVIRONMENT_DEFAULTS['dev'].monitoring_storage_gb}Gi"


def test_charts_are_pinned_upstream_and_pick_up_our_monitors_and_rules() -> None:
    plan = reference_plan("prod")
    for name, chart in (("kps", "kube-prometheus-stack"), ("pushgateway", "prometheus-pushgateway")):
        rel = find_release(plan, name).inputs
        assert rel["chart"] == chart and rel["namespace"] == "monitoring"
        assert rel["repositoryOpts"]["repo"] == "https://prometheus-community.github.io/helm-charts"
        assert rel["version"][0].isdigit() and rel["version"].count(".") == 2
    spec = _values(plan)["prometheus"]["prometheusSpec"]
    for key in ("serviceMonitor", "podMonitor", "rule", "probe", "scrapeConfig"):
        assert spec[f"{key}SelectorNilUsesHelmValues"] is False, key
    ksm = _values(plan)["kube-state-metrics"]["metricLabelsAllowlist"]
    assert any(entry.startswith("nodes=[") and "node.kubernetes.io/instance-type" in entry for entry in ksm)


def test_grafana_takes_its_password_from_a_secret_and_loads_labelled_dashboards() -> None:
    plan = reference_plan("prod")
    grafana = _values(plan)["grafana"]
    assert grafana["admin"] == {
        "existingSecret": "grafana-admin",
        "userKey": "admin-user",
        "passwordKey": "admin-password",
    }
    assert "adminPassword" not in json.dumps(_values(plan))
    dashboards = grafana["sidecar"]["dashboards"]
    assert dashboards["enabled"] is True and dashboards["label"] == "grafana_dashboard"
    keys = set(find_object(plan, "Secret", "monitoring", "grafana-admin").inputs["stringData"])
    assert keys == {"admin-user", "admin-password"}


def test_alerts_labelled_retrain_reach_the_retraining_webhook() -> None:
    config = _values(reference_plan("prod"))["alertmanager"]["config"]
    route = next(r for r in config["route"]["routes"] if r["receiver"] == "retraining-webhook")
    assert route["matchers"] == ['action = "retrain"']
    receiver = next(r for r in config["receivers"] if r["name"] == "retraining-webhook")
    assert receiver["webhook_configs"][0]["url"] == RETRAIN_WEBHOOK_URL
    assert RETRAIN_WEBHOOK_URL == "http://retraining-webhook.retraining.svc:8080/alerts"
    assert config["route"]["receiver"] == "null"


def pushgateway_persistence_file(values: dict[str, Any]) -> str | None:
    """Where the pushgateway of chart prometheus-pushgateway 3.8.0 persists, as its templates run it: the
    container's args are exactly `extraArgs` (templates/_helpers.tpl), the Pushgateway writes pushed metrics
    only with `--persistence.file`, and only a file under `persistentVolume.mountPath` (default /data) lives
    on the claim when `persistentVolume.enabled` (else the mount is an emptyDir, lost with the pod)."""
    volume = values.get("persistentVolume") or {}
    if not volume.get("enabled"):
        return None
    mount = str(volume.get("mountPath", "/data")).rstrip("/")
    for arg in values.get("extraArgs") or []:
        if str(arg).startswith("--persistence.file="):
            path = str(arg).split("=", 1)[1]
            return path if path.startswith(mount + "/") else None
    return None


def test_pushgateway_keeps_pushed_labels_and_survives_restarts() -> None:
    plan = reference_plan("local")
    values = find_release(plan, "pushgateway").inputs["values"]
    assert values["serviceMonitor"]["enabled"] is True and values["serviceMonitor"]["honorLabels"] is True
    # Finding 4: the volume alone keeps nothing; the file the Pushgateway persists to must be on it.
    assert pushgateway_persistence_file(values) == "/data/pushgateway.data"
    assert pushgateway_persistence_file({**values, "extraArgs": []}) is None
    assert plan.outputs["pushgatewayUrl"] == "http://pushgateway.monitoring.svc.cluster.local:9091"
    assert plan.outputs["prometheusUrl"] == "http://kps-prometheus.monitoring.svc.cluster.local:9090"


# Rule/dashboard files of a device exporter are deployed only where the stack runs that exporter.
EXPECTED_EXPORTER_FILES = {
    "local": set(),  # no accelerators
    "prod-gcp": set(),  # GKE reports accelerator metrics to Cloud Monitoring, not Prometheus
    "dev": {"gpu", "neuron"},  # GPU and Neuron groups on AWS
}


@pytest.mark.parametrize("stack", sorted(EXPECTED_EXPORTER_FILES))
def test_prometheus_rules_carry_the_alerts_of_the_files_that_apply(stack: str) -> None:
    plan = reference_plan(stack)
    stems = {p.stem for p in RULES_DIR.glob("*.yaml")}
    applies = (stems - set(EXPORTER_FILES)) | EXPECTED_EXPORTER_FILES[stack]
    expected = {
        rule["alert"]
        for stem in applies
        for group in yaml.safe_load((RULES_DIR / f"{stem}.yaml").read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }
    assert expected, "monitoring/rules has alerts"
    rules = [r for r in plan.k8s_objects() if r.inputs.get("kind") == "PrometheusRule"]
    assert {r.inputs["metadata"]["name"] for r in rules} == {f"mlops-{stem}" for stem in applies}
    declared = {
        rule["alert"]
        for r in rules
        for group in r.inputs["spec"]["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }
    assert declared == expected
    assert {r.inputs["metadata"]["namespace"] for r in rules} == {"monitoring"}
    kps = find_release(plan, "kps")
    assert all(kps.urn in r.depends_on for r in rules), "rules wait for the chart that installs the CRD"


@pytest.mark.parametrize("stack", sorted(EXPECTED_EXPORTER_FILES))
def test_dashboard_configmaps_match_the_dashboard_files_that_apply(stack: str) -> None:
    plan = reference_plan(stack)
    files = {f.name for f in (MONITORING_FILES / "dashboards").glob("*.json")}
    applies = {f for f in files if f.removesuffix(".json") not in EXPORTER_FILES} | {
        f"{stem}.json" for stem in EXPECTED_EXPORTER_FILES[stack]
    }
    maps = [r.inputs for r in plan.k8s_objects() if r.inputs.get("kind") == "ConfigMap"
            and r.inputs["metadata"].get("labels", {}).get("grafana_dashboard") == "1"]  # fmt: skip
    assert sorted(k for m in maps for k in m["data"]) == sorted(applies)


def _cluster() -> ClusterHandle:
    return ClusterHandle(name="t", cloud="local", version="1.33", provider=k8s.Provider("p"))


def test_rules_component_takes_files_or_groups_from_args(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "dashboards").mkdir()
    (tmp_path / "rules" / "My Rules.yaml").write_text(
        "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up == 0\n"
    )
    (tmp_path / "dashboards" / "serving.json").write_text(json.dumps({"title": "Serving", "panels": []}))

    def program() -> dict[str, object]:
        MonitoringRules("from-dir", MonitoringRulesArgs(cluster=_cluster(), monitoring_dir=tmp_path))
        MonitoringRules(
            "from-args",
            MonitoringRulesArgs(
                cluster=_cluster(),
                namespace="obs",
                rule_groups={"extra": {"groups": [{"name": "x", "rules": [{"record": "r", "expr": "1"}]}]}},
                dashboards={},
            ),
        )
        return {}

    plan = evaluate(STACKS / "Pulumi.local.yaml", program=program)
    rules = {
        r.inputs["metadata"]["name"]: r.inputs
        for r in plan.k8s_objects()
        if r.inputs["kind"] == "PrometheusRule"
    }
    assert set(rules) == {"mlops-my-rules", "mlops-extra"}
    assert rules["mlops-my-rules"]["spec"]["groups"][0]["rules"][0]["alert"] == "A"
    assert rules["mlops-extra"]["metadata"]["namespace"] == "obs"
    cm = next(r.inputs for r in plan.k8s_objects() if r.inputs["kind"] == "ConfigMap")
    assert (
        cm["metadata"]["name"] == "dashboard-serving" and cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    )
    assert json.loads(cm["data"]["serving.json"])["title"] == "Serving"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("groups: [\n", "not valid YAML"),
        ("rules: []\n", "non-empty `groups:`"),
        ("groups:\n  - rules: [{alert: A, expr: up}]\n", "needs a `name`"),
        ("groups:\n  - name: g\n    rules: [{alert: A, record: r, expr: up}]\n", "exactly one of"),
        ("groups:\n  - name: g\n    rules: [{alert: A}]\n", "needs `expr`"),
        ("groups:\n  - {name: g, rules: [{record: r, expr: up}]}\n  - {name: g, rules: [{record: s, expr: up}]}\n",
         "appears twice"),
    ],
)  # fmt: skip
def test_bad_rule_files_name_the_file_and_the_problem(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "broken.yaml").write_text(text)
    with pytest.raises(MonitoringFilesError, match=message) as err:
        load_rule_files(tmp_path)
    assert "broken.yaml" in str(err.value)


def test_bad_dashboards_are_refused(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text("{not json")
    with pytest.raises(MonitoringFilesError, match=r"a\.json: not valid JSON"):
        load_dashboards(tmp_path)
    (tmp_path / "a.json").write_text(json.dumps({"title": "no panels"}))
    with pytest.raises(MonitoringFilesError, match="panels"):
        load_dashboards(tmp_path)
    assert load_dashboards(tmp_path / "missing") == {}


def test_monitoring_can_be_switched_off(mutated_plan: Callable[..., Plan]) -> None:
    def off(cfg: dict[str, Any]) -> None:
        cfg["mlops-platform:services"]["monitoring"] = {"enabled": False}

    plan = mutated_plan("local", off, name="local-nomon")
    assert not [r for r in plan.helm_releases() if r.inputs["name"] in ("kps", "pushgateway")]
    kinds = {r.inputs.get("kind") for r in plan.k8s_objects()}
    assert "PrometheusRule" not in kinds and "ServiceMonitor" not in kinds
    assert "prometheusUrl" not in plan.outputs and "mlflowTrackingUri" in plan.outputs
