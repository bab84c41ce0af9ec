"""cluster-autoscaler from its upstream chart, with values built (and tested) in Python.

Cloud-agnostic in shape: the AWS platform passes auto-discovery by ASG tags and an IRSA annotation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from mlops_infra.components.accelerators import GROUP_LABEL, ROLE_LABEL
from mlops_infra.components.k8s.cluster import ClusterHandle

CHART = "cluster-autoscaler"
CHART_REPO = "https://kubernetes.github.io/autoscaler"
CHART_VERSION = "9.59.0"  # upstream chart 9.59.0 (appVersion 1.35.0); the image tag is set per cluster minor
RELEASE = "cluster-autoscaler"
IMAGE_REPOSITORY = "registry.k8s.io/autoscaling/cluster-autoscaler"

# Labels that differ between otherwise identical groups; ignored when balancing similar groups.
BALANCING_IGNORE_LABELS = (
    "eks.amazonaws.com/nodegroup",
    "eks.amazonaws.com/nodegroup-image",
    "eks.amazonaws.com/sourceLaunchTemplateId",
    "eks.amazonaws.com/sourceLaunchTemplateVersion",
    "k8s.amazonaws.com/eniConfig",
    GROUP_LABEL,
    "topology.ebs.csi.aws.com/zone",
)


@dataclass(frozen=True)
class PriorityGroup:
    """A node group as the priority expander sees it: an ASG-name pattern and a priority (higher wins)."""

    pattern: str
    priority: int


@dataclass(frozen=True)
class AutoscalerSettings:
    """How eagerly cluster-autoscaler adds and removes nodes (its command-line flags)."""

    expander: str = "priority,least-waste"  # chainable: priority first, least-waste among equals
    scale_down_delay_after_add: str = "10m"
    scale_down_utilization_threshold: float = 0.5
    # Counts GPU *requests* on GPU nodes: an idle GPU node is removed even if its CPU is busy.
    gpu_scale_down_utilization_threshold: float = 0.5
    balance_similar_node_groups: bool = True
    max_node_provision_time: str = "15m"


@dataclass(frozen=True)
class ClusterAutoscalerArgs:
    cluster: ClusterHandle
    image_tag: str
    settings: AutoscalerSettings = field(default_factory=AutoscalerSettings)
    scale_down_unneeded_time: str = "10m"
    cloud_provider: str = "aws"
    region: str | None = None
    service_account: str = "cluster-autoscaler"
    service_account_annotations: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    priorities: Sequence[PriorityGroup] = ()
    replicas: int = 1
    namespace: str = "kube-system"
    node_selector: Mapping[str, str] = field(default_factory=lambda: {ROLE_LABEL: "system"})
    tolerations: Sequence[Mapping[str, str]] = field(
        default_factory=lambda: [{"key": "CriticalAddonsOnly", "operator": "Exists", "effect": "NoSchedule"}]
    )


def expander_priorities(groups: Sequence[PriorityGroup]) -> dict[str, list[str]]:
    """The priority expander's table (string keys: Helm values are JSON; the chart casts them to int).

    A catch-all at 1 keeps groups without a pattern eligible, last.
    """
    table: dict[int, list[str]] = {1: [".*"]}
    for group in groups:
        if group.priority <= 1:
            raise ValueError(f"priority of {group.pattern!r} must be > 1 (1 is the catch-all)")
        table.setdefault(group.priority, []).append(group.pattern)
    return {str(k): v for k, v in sorted(table.items())}


def extra_args(settings: AutoscalerSettings, scale_down_unneeded_time: str) -> dict[str, Any]:
    args: dict[str, Any] = {
        "expander": settings.expander,
        "balance-similar-node-groups": settings.balance_similar_node_groups,
        "scale-down-unneeded-time": scale_down_unneeded_time,
        "scale-down-delay-after-add": settings.scale_down_delay_after_add,
        "scale-down-utilization-threshold": settings.scale_down_utilization_threshold,
        "scale-down-gpu-utilization-threshold": settings.gpu_scale_down_utilization_threshold,
        "max-node-provision-time": settings.max_node_provision_time,
        "skip-nodes-with-local-storage": False,  # emptyDir scratch space must not pin a GPU node forever
        "aws-use-static-instance-list": False,  # read instance types live, so new GPU types are known
    }
    for i, label in enumerate(BALANCING_IGNORE_LABELS, start=1):
        args[f"balancing-ignore-label_{i}"] = label
    return args


def autoscaler_values(args: ClusterAutoscalerArgs) -> dict[str, Any]:
    """Helm values: auto-discovery, pinned image, IRSA service account, system nodes only, non-root."""
    values: dict[str, Any] = {
        "cloudProvider": args.cloud_provider,
        "autoDiscovery": {"clusterName": args.cluster.name},
        "image": {"repository": IMAGE_REPOSITORY, "tag": args.image_tag},
        "rbac": {
            "create": True,
            "serviceAccount": {
                "create": True,
                "name": args.service_account,
                "annotations": dict(args.service_account_annotations),
            },
        },
        "extraArgs": extra_args(args.settings, args.scale_down_unneeded_time),
        "replicaCount": args.replicas,
        "priorityClassName": "system-cluster-critical",
        "nodeSelector": dict(args.node_selector),
        "tolerations": [dict(t) for t in args.tolerations],
        "podDisruptionBudget": {"maxUnavailable": 1},
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 65534,
            "runAsGroup": 65534,
            "fsGroup": 65534,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containerSecurityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "resources": {"requests": {"cpu": "100m", "memory": "300Mi"}, "limits": {"memory": "600Mi"}},
        # The ServiceMonitor CRD arrives with the monitoring stack; metrics stay on the Service meanwhile.
        "serviceMonitor": {"enabled": False},
    }
    if args.region:
        values["awsRegion"] = args.region
    if "priority" in args.settings.expander.split(","):
        values["expanderPriorities"] = expander_priorities(args.priorities)
    return values


class ClusterAutoscaler(pulumi.ComponentResource):
    """Scales node groups (to and from zero) from pending pods; one Helm release."""

    def __init__(self, name: str, args: ClusterAutoscalerArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlops:k8s:ClusterAutoscaler", name, None, opts)
        self.values = autoscaler_values(args)
        self.release = k8s.helm.v3.Release(
            RELEASE,
            k8s.helm.v3.ReleaseArgs(
                name=RELEASE,
                chart=CHART,
                version=CHART_VERSION,
                repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=CHART_REPO),
                namespace=args.namespace,
                values=self.values,
                atomic=True,
                cleanup_on_fail=True,
            ),
            opts=args.cluster.opts(self),
        )
        self.register_outputs({"release": self.release.name})
