"""Rule `pods-schedulable`: every pod template the plan declares fits some node group of the stack.

A model of kube-scheduler's filters (node selector, required node affinity, taints with NoSchedule and
NoExecute, resource requests against allocatable) applied to the nodes each group brings up
(`mlops_policies.nodes`), after the DaemonSets that land on a node took their share and the device plugins
registered their devices. An EKS group that is empty between jobs must also look right to
cluster-autoscaler's scale-from-zero template, or no node ever arrives for the pod.

Not modelled: inter-pod affinity and topology spread, volume zones, quotas and capacity shortages in a zone.
A stack that declares no node groups (a local cluster) is not checked: its nodes are unknown.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from mlops_infra.components import accelerators, catalog
from mlops_policies.cost import pod_requests
from mlops_policies.model import Resource, Rule, dig
from mlops_policies.nodes import Node, cluster_nodes, with_devices
from mlops_policies.pods import PodTemplate, chart_name, pod_templates
from mlops_policies.selectors import node_affinity_matches, tolerates

BLOCKING_EFFECTS = ("NoSchedule", "NoExecute")
GIB = 2.0**30
IGNORED_REQUESTS = frozenset({"ephemeral-storage", "pods"})


def _amount(name: str, value: float) -> str:
    if name == "memory":
        return f"{value / GIB:.2f}Gi"
    return f"{value:g}"


def placement_problem(pod: PodTemplate, node: Node, load: Mapping[str, float] | None = None) -> str | None:
    """Why the scheduler would not put this pod on this node, or None if it would."""
    spec = pod.spec
    for key, value in (spec.get("nodeSelector") or {}).items():
        label = node.labels.get(key)
        if label != str(value):
            found = f"{key}={label}" if label is not None else "no such label"
            return f"nodeSelector {key}={value} (node has {found})"
    if not node_affinity_matches(spec.get("affinity"), node.labels):
        return "required node affinity matches none of its labels"
    for taint in node.taints:
        if taint.effect in BLOCKING_EFFECTS and not tolerates(
            spec.get("tolerations"), taint.key, taint.value, taint.effect
        ):
            return f"taint {taint.key}={taint.value}:{taint.effect} not tolerated"
    used = load or {}
    for name, amount in sorted(pod_requests(spec).items()):
        if amount <= 0 or name in IGNORED_REQUESTS:
            continue
        have = node.allocatable.get(name)
        if have is None:
            return f"requests {name} but nothing on the node advertises it (no device plugin runs there)"
        free = have - used.get(name, 0.0)
        if amount > free + 1e-9:
            return f"requests {name} {_amount(name, amount)}, {node.instance_type} has {_amount(name, free)} free"
    return None


@dataclass(frozen=True)
class Cluster:
    """The nodes of a stack once DaemonSets and device plugins are placed."""

    nodes: list[Node]
    daemon_load: dict[tuple[str, str], dict[str, float]]  # (group, instance type) -> requests

    def load(self, node: Node) -> dict[str, float]:
        return self.daemon_load.get((node.group, node.instance_type), {})


def build_cluster(nodes: Sequence[Node], pods: Sequence[PodTemplate]) -> Cluster:
    """Register devices where a device plugin lands, then add up what every DaemonSet takes per node."""
    plugins = [p for p in pods if p.kind == "DaemonSet" and p.advertises]
    ready: list[Node] = []
    for node in nodes:
        devices: dict[str, float] = {}
        for plugin in plugins:
            if placement_problem(plugin, node) is None:
                devices |= plugin_devices(plugin, node)
        ready.append(with_devices(node, devices) if devices else node)
    load: dict[tuple[str, str], dict[str, float]] = {}
    for node in ready:
        total: dict[str, float] = {}
        for pod in pods:
            if pod.kind == "DaemonSet" and placement_problem(pod, node) is None:
                for name, amount in pod_requests(pod.spec).items():
                    total[name] = total.get(name, 0.0) + amount
        load[(node.group, node.instance_type)] = total
    return Cluster(ready, load)


def _node_problem(pod: PodTemplate, cluster: Cluster, node: Node) -> str | None:
    load = cluster.load(node) if pod.kind != "DaemonSet" else {}
    problem = placement_problem(pod, node, load)
    if problem is not None:
        return problem
    if node.template is not None and node.min_size == 0 and pod.kind != "DaemonSet":
        problem = placement_problem(pod, node.template)
        if problem is not None:
            if node.any_type:
                return f"fits its nodes, but Karpenter's view of {node.instance_type} says: {problem}"
            return (
                f"fits its nodes, but the group scales from zero and cluster-autoscaler's template "
                f"(ASG node-template tags) says: {problem}"
            )
    return None


def plugin_devices(plugin: PodTemplate, node: Node) -> dict[str, float]:
    """What a device plugin advertises on a node. The NVIDIA plugin applies the config its node label
    (`nvidia.com/device-plugin.config`) names among the chart's `config.map`, else `config.default`: with
    time-slicing or MIG that is shared slices, not whole GPUs."""
    values = plugin.owner.get("values", default={}) or {}
    configs = dig(values, "config", "map") or {}
    if chart_name(plugin.owner) == "nvidia-device-plugin" and configs:
        name = node.labels.get(accelerators.DEVICE_PLUGIN_CONFIG_LABEL) or dig(values, "config", "default")
        text = configs.get(name)
        config = yaml.safe_load(text) if isinstance(text, str) else None
        if isinstance(config, Mapping):
            counts = accelerators.plugin_devices(config, node.instance_type, node.labels)
            return {k: float(v) for k, v in counts.items() if v}
    return {
        name: float(accelerators.devices_per_node(node.instance_type, name)) for name in plugin.advertises
    }


def group_problem(pod: PodTemplate, cluster: Cluster, group: str) -> str | None:
    """Why the pod cannot run on the group: every instance type of a node group must take it (the autoscaler
    may launch any of them), and an empty EKS group must look right to cluster-autoscaler's template; a
    Karpenter pool needs one instance type that takes it, in Karpenter's view too."""
    nodes = [n for n in cluster.nodes if n.group == group]
    problems = [_node_problem(pod, cluster, node) for node in nodes]
    if nodes and nodes[0].any_type:
        if any(p is None for p in problems):
            return None
        return f"no instance type of the pool takes it, e.g. {nodes[0].instance_type}: {problems[0]}"
    return next((p for p in problems if p is not None), None)


def unschedulable(
    cluster: Cluster, pods: Sequence[PodTemplate]
) -> Iterator[tuple[PodTemplate, dict[str, str]]]:
    """Each pod template no node group takes, with the reason per group."""
    groups = list(dict.fromkeys(n.group for n in cluster.nodes))
    for pod in pods:
        reasons: dict[str, str] = {}
        for group in groups:
            problem = group_problem(pod, cluster, group)
            if problem is None:
                break
            reasons[group] = problem
        else:
            yield pod, reasons


def devices_missing(cluster: Cluster) -> Iterator[tuple[Node, str]]:
    """Accelerator nodes where no device plugin registers the devices their instance type has."""
    for node in cluster.nodes:
        itype = catalog.find_instance(node.instance_type)
        if itype is not None and itype.accelerator_kind is not None:
            resource = accelerators.accelerator(itype.accelerator_kind, node.cloud).resource
            # Shared GPUs advertise slices (nvidia.com/gpu.shared, nvidia.com/mig-*) instead of whole GPUs.
            if not any(
                accelerators.kind_of_resource(name) == itype.accelerator_kind for name in node.allocatable
            ):
                yield node, resource


def check_pods_schedulable(
    resources: Sequence[Resource], config: Mapping[str, Any]
) -> Iterator[tuple[str | None, str]]:
    del config
    nodes = cluster_nodes(resources)
    if not nodes:
        return
    pods = pod_templates(resources)
    cluster = build_cluster(nodes, pods)
    for pod, reasons in unschedulable(cluster, pods):
        why = "; ".join(f"{group}: {reason}" for group, reason in reasons.items())
        yield pod.owner.urn, f"{pod.display} cannot be scheduled on any node group ({why})"
    for node, resource in devices_missing(cluster):
        yield (
            node.resource.urn,
            f"node group {node.group}: no device plugin runs on its {node.instance_type} nodes, so they "
            f"advertise no {resource} and accelerator pods never schedule there",
        )


RULES = [
    Rule(
        name="pods-schedulable",
        category="reliability",
        description="Every pod template fits some node group: selectors, affinity, taints, requests, "
        "devices registered by a device plugin, and the autoscaler's scale-from-zero template",
        stack_check=check_pods_schedulable,
    )
]
