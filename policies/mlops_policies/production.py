"""What prod needs beyond a valid config: rules for settings that silently remove a prod guarantee.

- `prod-serving-on-demand`: long-running pods that hold accelerators cannot land on spot node groups
  (spot capacity is reclaimed with two minutes' notice, taking serving replicas with it).
- `prod-managed-database`: no database runs in the cluster: a single-replica in-cluster PostgreSQL replaces a
  multi-AZ, backed-up managed one, and its backup and protection guarantees vanish.
- `prod-monitoring-and-analysis`: the monitoring stack is installed, and every canary Rollout has an
  analysis that can roll it back.
- `prod-flow-logs`: every VPC has flow logs (GCP: every subnetwork logs its flows).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from mlops_policies.cost import accelerator_request
from mlops_policies.model import (
    HELM_RELEASE,
    LONG_RUNNING_KINDS,
    Resource,
    Rule,
    as_list,
    containers,
    dig,
    display,
    environment_of,
    exempt,
    k8s_kind,
    pod_spec,
)
from mlops_policies.nodes import cluster_nodes
from mlops_policies.pods import pod_templates
from mlops_policies.scheduling import build_cluster, group_problem

StackFindings = Iterator[tuple[str | None, str]]
DATABASE_IMAGES = ("postgres", "mysql", "mariadb", "mongo")


def _prod(resources: Sequence[Resource], config: Mapping[str, Any]) -> bool:
    return environment_of(resources, config) == "prod"


def prod_serving_on_demand(resources: Sequence[Resource], config: Mapping[str, Any]) -> StackFindings:
    if not _prod(resources, config):
        return
    nodes = cluster_nodes(resources)
    pods = pod_templates(resources)
    cluster = build_cluster(nodes, pods)
    spot = {n.group for n in nodes if n.labels.get("eks.amazonaws.com/capacityType") == "SPOT"}
    spot |= {n.group for n in nodes if n.labels.get("cloud.google.com/gke-spot") == "true"}
    spot |= {n.group for n in nodes if n.labels.get("karpenter.sh/capacity-type") == "spot"}
    for pod in pods:
        if pod.kind not in LONG_RUNNING_KINDS or accelerator_request(pod.spec) is None:
            continue
        landing = sorted(g for g in spot if group_problem(pod, cluster, g) is None)
        if landing:
            yield (
                pod.owner.urn,
                (
                    f"{pod.display} holds accelerators and can land on spot node group(s) {', '.join(landing)}; spot "
                    "capacity is reclaimed with two minutes' notice: serve from on-demand groups in prod"
                ),
            )


def _image_name(image: Any) -> str:
    return str(image).rsplit("/", 1)[-1].split("@")[0].split(":")[0]


def prod_managed_database(resources: Sequence[Resource], config: Mapping[str, Any]) -> StackFindings:
    if not _prod(resources, config):
        return
    for r in resources:
        spec = pod_spec(r)
        if k8s_kind(r) != "StatefulSet" or spec is None or exempt(r, "prod-managed-database"):
            continue
        images = {_image_name(c.get("image")) for _, c in containers(spec, init=False)}
        found = sorted(i for i in images if i.startswith(DATABASE_IMAGES))
        if found:
            yield (
                r.urn,
                (
                    f"{display(r)} runs {', '.join(found)} in the cluster in prod: no multi-AZ failover, no managed "
                    "backups or point-in-time recovery; use the managed database (services.*.database: managed)"
                ),
            )


def prod_monitoring_and_analysis(resources: Sequence[Resource], config: Mapping[str, Any]) -> StackFindings:
    if not _prod(resources, config):
        return
    if not any(
        r.type == HELM_RELEASE and str(r.get("chart")).endswith("kube-prometheus-stack") for r in resources
    ):
        yield (
            None,
            (
                "prod has no monitoring stack (services.monitoring.enabled: false): no alerts, no drift or latency "
                "signals, and no canary analysis to roll a bad model back"
            ),
        )
    for r in resources:
        if k8s_kind(r) != "Rollout" or dig(r.props, "spec", "strategy", "canary") is None:
            continue
        canary = dig(r.props, "spec", "strategy", "canary", default={})
        steps = as_list(canary.get("steps"))
        analysed = canary.get("analysis") or any(isinstance(s, Mapping) and s.get("analysis") for s in steps)
        if not analysed:
            yield r.urn, f"{display(r)}: a prod canary without analysis never rolls back by itself; add one"


def prod_flow_logs(resources: Sequence[Resource], config: Mapping[str, Any]) -> StackFindings:
    if not _prod(resources, config):
        return
    flow_logs = [r for r in resources if r.type == "aws:ec2/flowLog:FlowLog"]
    for vpc in (r for r in resources if r.type == "aws:ec2/vpc:Vpc"):
        if not any(vpc.urn in f.dependencies for f in flow_logs):
            yield (
                vpc.urn,
                f"{display(vpc)}: prod VPC without flow logs (network.flowLogs); incidents leave no trace",
            )
    for subnet in (r for r in resources if r.type == "gcp:compute/subnetwork:Subnetwork"):
        if not subnet.get("logConfig"):
            yield subnet.urn, f"{display(subnet)}: prod subnetwork without flow logs (logConfig)"


RULES: list[Rule] = [
    Rule(
        "prod-serving-on-demand",
        "reliability",
        "In prod, long-running accelerator pods cannot land on spot node groups.",
        stack_check=prod_serving_on_demand,
    ),
    Rule(
        "prod-managed-database",
        "reliability",
        "In prod, databases are managed services, not StatefulSets in the cluster.",
        stack_check=prod_managed_database,
    ),
    Rule(
        "prod-monitoring-and-analysis",
        "reliability",
        "In prod, the monitoring stack runs and every canary Rollout has an analysis.",
        stack_check=prod_monitoring_and_analysis,
    ),
    Rule(
        "prod-flow-logs",
        "security",
        "In prod, VPCs and subnetworks log their flows.",
        stack_check=prod_flow_logs,
    ),
]
