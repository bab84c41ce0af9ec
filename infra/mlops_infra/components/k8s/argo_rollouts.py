"""Argo Rollouts controller from its upstream chart: canaries that roll back by themselves on bad metrics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from mlops_infra.components.k8s.cluster import ClusterHandle

CHART = "argo-rollouts"
CHART_REPO = "https://argoproj.github.io/argo-helm"
CHART_VERSION = "2.40.1"  # Argo Rollouts v1.8.x


@dataclass(frozen=True)
class ArgoRolloutsArgs:
    cluster: ClusterHandle
    namespace: pulumi.Input[str] = "argo-rollouts"
    controller_replicas: int = 2


def rollouts_values(args: ArgoRolloutsArgs, system_tolerations: list[dict[str, str]]) -> dict[str, Any]:
    """Controller HA, non-root, on system nodes; CRDs kept on uninstall so Rollouts are never cascaded away."""
    return {
        "installCRDs": True,
        "keepCRDs": True,
        "controller": {
            "replicas": args.controller_replicas,
            "tolerations": system_tolerations,
            "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
            "pdb": {"enabled": True, "minAvailable": 1},
            "metrics": {"enabled": True, "serviceMonitor": {"enabled": True}},
        },
        "containerSecurityContext": {
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "dashboard": {"enabled": False},
    }


class ArgoRollouts(pulumi.ComponentResource):
    def __init__(self, name: str, args: ArgoRolloutsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlops:k8s:ArgoRollouts", name, None, opts)
        tolerations = [{"key": "CriticalAddonsOnly", "operator": "Exists", "effect": "NoSchedule"}]
        self.release = k8s.helm.v3.Release(
            name,
            name="argo-rollouts",
            chart=CHART,
            version=CHART_VERSION,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=CHART_REPO),
            namespace=args.namespace,
            values=rollouts_values(args, tolerations),
            atomic=True,
            opts=args.cluster.opts(self),
        )
        self.register_outputs({"status": self.release.status})
