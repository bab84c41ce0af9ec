"""helm-values-known: every Helm release sets only value keys its pinned chart version defines, checked
against the key sets extracted from the charts' sources (mlops_infra/data/chart_keys)."""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from typing import Any

import pytest
from policy.plan_edits import edit_plan, findings

from mlops_infra.components.k8s import monitoring
from mlops_infra.components.k8s.accelerators import dcgm_exporter_values, neuron_device_plugin_values
from mlops_infra.components.k8s.monitoring import (
    MonitoringSettings,
    kube_prometheus_stack_values,
    pushgateway_values,
)
from mlops_infra.tooling import chart_keys
from mlops_infra.tooling.offline import evaluate
from mlops_infra.tooling.plan import Plan, RecordedResource
from mlops_policies.charts import helm_values_known
from mlops_policies.model import HELM_RELEASE, Resource

from plan_support import REFERENCE_STACKS, STACKS

RULE = "helm-values-known"


def release(name: str) -> Callable[[RecordedResource], bool]:
    return lambda r: r.type == HELM_RELEASE and r.inputs.get("name") == name


def test_every_fact_file_parses_and_names_its_source() -> None:
    sets = chart_keys.key_sets()
    files = [
        e.name
        for e in resources.files("mlops_infra.tooling.chart_key_sets").iterdir()
        if e.name.endswith(".json")
    ]
    assert len(sets) == len(files) >= 12
    for ks in sets.values():
        assert ks.source["repo"].startswith("https://github.com/")
        assert len(ks.source.get("commit", "")) == 40, f"{ks.chart} {ks.version}: no source commit"
        assert ks.keys and ks.open <= ks.keys


@pytest.mark.parametrize("stack", REFERENCE_STACKS)
def test_reference_stacks_set_only_defined_keys(stack_plan: Callable[[str], Plan], stack: str) -> None:
    plan = stack_plan(stack)
    assert plan.helm_releases(), "every reference stack installs charts"
    assert findings(plan, RULE) == []


def test_every_release_of_every_stack_has_a_key_set(stack_plan: Callable[[str], Plan]) -> None:
    pins = {
        (chart_keys.chart_name(r.inputs["chart"]), r.inputs["version"])
        for stack in REFERENCE_STACKS
        for r in stack_plan(stack).helm_releases()
    }
    assert {
        ("kube-prometheus-stack", "86.2.0"),
        ("prometheus-pushgateway", "3.8.0"),
        ("argo-rollouts", "2.40.1"),
        ("cluster-autoscaler", "9.59.0"),
        ("nvidia-device-plugin", "0.17.4"),
        ("dcgm-exporter", "4.1.3"),
        ("neuron-helm-chart", "1.1.2"),
    } <= pins
    assert all(chart_keys.key_set(*pin) is not None for pin in pins)


def test_unknown_top_level_key_is_caught_with_its_path(stack_plan: Callable[[str], Plan]) -> None:
    def misspell(inputs: dict[str, Any]) -> None:
        inputs["values"]["extraArgz"] = ["--persistence.file=/data/pushgateway.db"]

    bad = edit_plan(stack_plan("prod"), release("pushgateway"), misspell)
    [v] = findings(bad, RULE)
    assert v.enforcement == "mandatory"
    assert "values.extraArgz is not a value chart prometheus-pushgateway 3.8.0 defines" in v.message


def test_misspelt_key_under_a_subchart_is_checked_against_the_subchart(
    stack_plan: Callable[[str], Plan],
) -> None:
    def misspell(inputs: dict[str, Any]) -> None:
        dashboards = inputs["values"]["grafana"]["sidecar"]["dashboards"]
        dashboards["serchNamespace"] = dashboards.pop("searchNamespace")
        inputs["values"]["kube-state-metrics"]["metricLabelAllowlist"] = ["pods=[app]"]
        inputs["values"]["prometheus"]["prometheusSpec"]["retentionSizee"] = "10GB"

    bad = edit_plan(stack_plan("dev"), release("kps"), misspell)
    messages = sorted(v.message for v in findings(bad, RULE))
    assert len(messages) == 3
    assert "values.grafana.sidecar.dashboards.serchNamespace is not a value" in messages[0]
    assert "values.kube-state-metrics.metricLabelAllowlist is not a value" in messages[1]
    assert "values.prometheus.prometheusSpec.retentionSizee is not a value" in messages[2]


def test_changed_version_pin_without_a_key_set_is_caught(
    monkeypatch: pytest.MonkeyPatch, stack_plan: Callable[[str], Plan]
) -> None:
    monkeypatch.setattr(monitoring, "PUSHGATEWAY_VERSION", "3.9.0")
    plan = evaluate(STACKS / "Pulumi.local.yaml")
    [v] = findings(plan, RULE)
    assert (
        "Helm release monitoring-pushgateway: no value key set for chart prometheus-pushgateway 3.9.0"
        in v.message
    )
    assert "regenerate it with scripts/chart_keys.py" in v.message


def test_subchart_without_a_key_set_is_caught(stack_plan: Callable[[str], Plan]) -> None:
    def enable_windows(inputs: dict[str, Any]) -> None:
        inputs["values"]["prometheus-windows-exporter"] = {"prometheus": {"monitor": {"enabled": True}}}

    bad = edit_plan(stack_plan("dev"), release("kps"), enable_windows)
    [v] = findings(bad, RULE)
    # kube-prometheus-stack 86.2.0 asks for "0.12.*": the exact version is only known once packaged
    assert "no value key set for chart prometheus-windows-exporter 0.12.*" in v.message
    assert "(subchart under values.prometheus-windows-exporter)" in v.message


def test_open_paths_accept_any_children() -> None:
    kps = ("kube-prometheus-stack", monitoring.KUBE_PROMETHEUS_STACK_VERSION)
    values = {
        "prometheus": {"prometheusSpec": {"nodeSelector": {"any/label": "x"}, "resources": {"limits": {}}}},
        "grafana": {"nodeSelector": {"pool": "system"}, "grafana.ini": {"server": {"root_url": "x"}}},
        "global": {"imageRegistry": "mirror.example", "imagePullSecrets": [{"name": "pull"}]},
    }
    assert chart_keys.undefined_keys(*kps, values) == []
    # a key only the templates read (not in values.yaml) is defined: persistentVolume.storageClass
    pgw = ("prometheus-pushgateway", monitoring.PUSHGATEWAY_VERSION)
    assert chart_keys.undefined_keys(*pgw, {"persistentVolume": {"storageClass": "gp3"}}) == []
    assert chart_keys.undefined_keys(*pgw, {"persistentVolume": {"storageClas": "gp3"}}) == [
        "persistentVolume.storageClas"
    ]


def _ks(
    chart: str, keys: list[str], open_: tuple[str, ...] = (), subcharts: dict[str, str] | None = None
) -> Any:
    paths = {tuple(k.split(".")) for k in keys}
    paths |= {p[:i] for p in paths for i in range(1, len(p))}
    subs = {key: (name, "1.0.0") for key, name in (subcharts or {}).items()}
    opened = frozenset(tuple(k.split(".")) for k in open_)
    return chart_keys.KeySet(chart, "1.0.0", frozenset(paths), opened, subs, {"repo": "x"})


def test_subchart_values_and_globals_are_routed(monkeypatch: pytest.MonkeyPatch) -> None:
    sets = {
        ("parent", "1.0.0"): _ks(
            "parent", ["own", "global.fromParent", "s.readByParent"], subcharts={"s": "sub"}
        ),
        ("sub", "1.0.0"): _ks("sub", ["x", "labels", "global.fromSub"], ("labels",), subcharts={"t": "leaf"}),
        ("leaf", "1.0.0"): _ks("leaf", ["deep", "global.fromLeaf"]),
    }
    monkeypatch.setattr(chart_keys, "key_sets", lambda: sets)
    values = {
        "own": 1,
        "global": {"fromParent": 1, "fromSub": 2, "fromLeaf": 3, "fromNowhere": 4},
        "s": {"x": 1, "readByParent": 2, "labels": {"any": "x"}, "own": 3, "t": {"deep": 1, "x": 2}},
    }
    assert chart_keys.undefined_keys("parent", "1.0.0", values) == ["global.fromNowhere", "s.own", "s.t.x"]
    del sets[("leaf", "1.0.0")]
    with pytest.raises(chart_keys.MissingKeySet, match=r"chart leaf 1.0.0 \(subchart under values.s.t\)"):
        chart_keys.undefined_keys("parent", "1.0.0", values)


def test_chart_references_resolve_like_helm_does() -> None:
    assert chart_keys.chart_name("oci://public.ecr.aws/neuron/neuron-helm-chart") == "neuron-helm-chart"
    assert chart_keys.key_set("prometheus-community/kube-prometheus-stack", "86.2.0") is not None
    assert chart_keys.key_set("argo-rollouts", "v2.40.1") is not None
    assert chart_keys.format_path(("grafana", "grafana.ini", "x")) == 'grafana."grafana.ini".x'


def test_value_builders_with_every_option_use_defined_keys() -> None:
    """Options the reference stacks may not switch on (storage class, webhook auth, no Grafana)."""
    for settings in (
        MonitoringSettings(storage_class="gp3", retrain_webhook_auth=True, host_root_fs=False),
        MonitoringSettings(grafana=False),
    ):
        kps = kube_prometheus_stack_values(settings)
        assert (
            chart_keys.undefined_keys("kube-prometheus-stack", monitoring.KUBE_PROMETHEUS_STACK_VERSION, kps)
            == []
        )
        pgw = pushgateway_values(settings)
        assert chart_keys.undefined_keys("prometheus-pushgateway", monitoring.PUSHGATEWAY_VERSION, pgw) == []
    from mlops_infra.components.k8s import accelerators

    dcgm = dcgm_exporter_values({"release": "kps"})
    assert (
        chart_keys.undefined_keys(accelerators.DCGM_EXPORTER_CHART, accelerators.DCGM_EXPORTER_VERSION, dcgm)
        == []
    )
    neuron = neuron_device_plugin_values()
    assert (
        chart_keys.undefined_keys(accelerators.NEURON_CHART, accelerators.NEURON_CHART_VERSION, neuron) == []
    )


def test_rule_ignores_other_resources_and_odd_shapes() -> None:
    def check(props: dict[str, Any], type_: str = HELM_RELEASE) -> list[str]:
        return list(helm_values_known(Resource("urn:x", type_, "x", props), {}))

    assert (
        check({"chart": "argo-rollouts", "version": "2.40.1", "values": {"nope": 1}}, "kubernetes:v1:Pod")
        == []
    )
    assert (
        check({"chart": "argo-rollouts", "values": {"nope": 1}}) == []
    )  # unpinned: k8s-image-pinned's finding
    assert check({"chart": "argo-rollouts", "version": "2.40.1", "values": "[unknown]"}) == []
    [message] = check(
        {"chart": "argo-rollouts", "version": "2.40.1", "values": {"controller": {"replica": 2}}}
    )
    assert "values.controller.replica is not a value chart argo-rollouts 2.40.1 defines" in message
