"""Accelerator software: each DaemonSet tolerates exactly its accelerator's taint and lands only on those nodes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pulumi_kubernetes as k8s
from aws_plan_helpers import node_groups, release

from mlops_infra.components.k8s.accelerators import (
    DCGM_EXPORTER_VERSION,
    NEURON_CHART,
    NEURON_CHART_VERSION,
    NVIDIA_DEVICE_PLUGIN_VERSION,
    AcceleratorMonitoring,
    AcceleratorMonitoringArgs,
)
from mlops_infra.components.k8s.cluster import ClusterHandle
from mlops_infra.tooling.offline import evaluate

STACKS = Path(__file__).resolve().parents[2] / "stacks"
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
NEURON_TOLERATION = {"key": "aws.amazon.com/neuron", "operator": "Exists", "effect": "NoSchedule"}


EFFECTS = {"NO_SCHEDULE": "NoSchedule", "NO_EXECUTE": "NoExecute", "PREFER_NO_SCHEDULE": "PreferNoSchedule"}


def _tolerates(tolerations: list[dict[str, Any]], taint: dict[str, str]) -> bool:
    """Kubernetes' toleration matching, for a node-group taint as EKS spells it."""
    effect = EFFECTS[taint["effect"]]
    return any(
        t.get("key") in (None, taint["key"])
        and t.get("effect") in (None, effect)
        and (t["operator"] == "Exists" or t.get("value") == taint.get("value"))
        for t in tolerations
    )


def _required_labels(affinity: dict[str, Any]) -> list[dict[str, Any]]:
    terms = affinity["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    return [e for term in terms for e in term["matchExpressions"]]


def test_nvidia_device_plugin_tolerates_exactly_the_gpu_taint(stack_plan):
    plan = stack_plan("dev")
    plugin = release(plan, "nvidia-device-plugin")
    assert plugin.inputs["version"] == NVIDIA_DEVICE_PLUGIN_VERSION
    assert plugin.inputs["repositoryOpts"]["repo"] == "https://nvidia.github.io/k8s-device-plugin"
    values = plugin.inputs["values"]
    assert values["tolerations"] == [GPU_TOLERATION]
    assert _required_labels(values["affinity"]) == [
        {"key": "nvidia.com/gpu.present", "operator": "In", "values": ["true"]}
    ]
    groups = node_groups(plan)
    for config in plan.config.node_groups:
        taints = groups[config.name].inputs.get("taints", [])
        labels = groups[config.name].inputs["labels"]
        schedulable = all(_tolerates(values["tolerations"], t) for t in taints)
        selected = labels.get("nvidia.com/gpu.present") == "true"
        # It runs on every GPU group and on nothing else (no system, CPU or Neuron nodes).
        assert (schedulable and selected) == (config.role == "gpu"), config.name


def test_neuron_device_plugin_tolerates_exactly_the_neuron_taint(stack_plan):
    plan = stack_plan("dev")
    plugin = release(plan, "neuron-device-plugin")
    assert plugin.inputs["chart"] == NEURON_CHART and plugin.inputs["version"] == NEURON_CHART_VERSION
    values = plugin.inputs["values"]["devicePlugin"]
    assert values["tolerations"] == [NEURON_TOLERATION]
    assert values["nodeSelector"] == {"aws.amazon.com/neuron.present": "true"}
    assert plugin.inputs["values"]["npd"] == {"enabled": False}
    groups = node_groups(plan)
    for config in plan.config.node_groups:
        taints = groups[config.name].inputs.get("taints", [])
        labels = groups[config.name].inputs["labels"]
        runs = (
            all(_tolerates(values["tolerations"], t) for t in taints)
            and labels.get("aws.amazon.com/neuron.present") == "true"
        )
        assert runs == (config.role == "neuron"), config.name


def test_device_plugins_only_for_groups_that_exist(mutated_plan):
    def cpu_only(cfg):
        cfg["mlops-platform:nodeGroups"] = [
            g for g in cfg["mlops-platform:nodeGroups"] if g["role"] in ("system", "cpu")
        ]

    plan = mutated_plan("dev", cpu_only, name="dev-cpu")
    names = {r.inputs["name"] for r in plan.helm_releases()}
    assert not names & {"nvidia-device-plugin", "neuron-device-plugin"}
    assert "cluster-autoscaler" in names


def test_prod_has_both_plugins(stack_plan):
    names = {r.inputs["name"] for r in stack_plan("prod").helm_releases()}
    assert {"nvidia-device-plugin", "neuron-device-plugin"} <= names


def _monitoring_plan():
    """AcceleratorMonitoring as the platform would add it after the monitoring stack."""

    def program():
        from mlops_infra.platform.stack import config_from_pulumi

        config = config_from_pulumi()
        provider = k8s.Provider("cluster", kubeconfig="{}")
        handle = ClusterHandle(
            name="c",
            cloud="aws",
            version="1.33",
            provider=provider,
            node_groups=[g.spec() for g in config.node_groups],
        )
        AcceleratorMonitoring(
            "accelerator-monitoring",
            AcceleratorMonitoringArgs(cluster=handle, service_monitor_labels={"release": "kps"}),
        )
        return {}

    return evaluate(STACKS / "Pulumi.dev.yaml", program=program)


def test_exporters_tolerate_only_their_taint_and_are_scraped():
    plan = _monitoring_plan()
    (provider,) = plan.of_type("pulumi:providers:kubernetes")
    assert all(r.provider == provider.urn for r in plan.resources if r.type.startswith("kubernetes:"))

    dcgm = release(plan, "dcgm-exporter")
    assert dcgm.inputs["version"] == DCGM_EXPORTER_VERSION
    values = dcgm.inputs["values"]
    assert values["tolerations"] == [GPU_TOLERATION]
    assert values["serviceMonitor"]["enabled"] is True
    assert values["serviceMonitor"]["additionalLabels"] == {"release": "kps"}
    # The exporter labels each GPU series with the workload's pod/namespace (Kubernetes mode is on in the
    # chart): without honorLabels those become exported_pod/exported_namespace and `by (pod)` shows the
    # exporter itself.
    assert values["serviceMonitor"]["honorLabels"] is True

    (daemonset,) = plan.of_type("kubernetes:apps/v1:DaemonSet")
    pod = daemonset.inputs["spec"]["template"]["spec"]
    assert pod["tolerations"] == [NEURON_TOLERATION]
    assert _required_labels(pod["affinity"]) == [
        {"key": "aws.amazon.com/neuron.present", "operator": "In", "values": ["true"]}
    ]
    (service,) = plan.of_type("kubernetes:core/v1:Service")
    (monitor,) = plan.of_type("kubernetes:monitoring.coreos.com/v1:ServiceMonitor")
    assert monitor.inputs["spec"]["selector"]["matchLabels"] == service.inputs["spec"]["selector"]
    assert service.inputs["spec"]["selector"] == daemonset.inputs["spec"]["selector"]["matchLabels"]
    assert monitor.inputs["metadata"]["labels"]["release"] == "kps"
    for obj in (daemonset, service, monitor):
        assert obj.inputs["metadata"]["namespace"] == "kube-system" and obj.inputs["metadata"]["name"]
