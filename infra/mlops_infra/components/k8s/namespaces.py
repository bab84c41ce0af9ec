"""The platform's namespaces, with Pod Security Standards labels so the API server enforces them."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from mlops_infra.components.k8s.cluster import ClusterHandle

# Namespace -> Pod Security Standard. Monitoring runs node-exporter (host network and PID): privileged there
# only; everything we write ourselves runs under `restricted`.
DEFAULT_NAMESPACES: dict[str, str] = {
    "mlops-system": "privileged",
    "monitoring": "privileged",
    "mlflow": "restricted",
    "redis": "restricted",
    "serving": "restricted",
    "retraining": "restricted",
    "argo-rollouts": "restricted",
}


@dataclass(frozen=True)
class NamespacesArgs:
    cluster: ClusterHandle
    namespaces: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_NAMESPACES))
    labels: dict[str, str] = field(default_factory=dict)


class Namespaces(pulumi.ComponentResource):
    """Creates each namespace once; other components look theirs up in `self.names`."""

    def __init__(self, name: str, args: NamespacesArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlops:k8s:Namespaces", name, None, opts)
        self.names: dict[str, pulumi.Output[str]] = {}
        self.resources: dict[str, k8s.core.v1.Namespace] = {}
        for ns, level in args.namespaces.items():
            resource = k8s.core.v1.Namespace(
                ns,
                metadata=k8s.meta.v1.ObjectMetaArgs(
                    name=ns,
                    labels={
                        **args.labels,
                        "pod-security.kubernetes.io/enforce": level,
                        "pod-security.kubernetes.io/warn": "restricted",
                        "pod-security.kubernetes.io/audit": "restricted",
                    },
                ),
                opts=args.cluster.opts(self),
            )
            self.resources[ns] = resource
            self.names[ns] = resource.metadata.name
        self.register_outputs({"namespaces": self.names})
