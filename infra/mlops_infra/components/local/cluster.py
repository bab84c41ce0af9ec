"""A cluster that already exists (kind, minikube, k3d, Docker Desktop) reached through a kubeconfig context."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from mlops_infra.components.k8s.cluster import ClusterHandle


@dataclass(frozen=True)
class LocalClusterArgs:
    version: str = "1.33"
    context: str | None = None  # None: the kubeconfig's current context, chosen on purpose for local stacks


class LocalCluster(pulumi.ComponentResource):
    """Wraps the current kube context in an explicit provider, so local stacks still never use a default one."""

    def __init__(self, name: str, args: LocalClusterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlops:local:LocalCluster", name, None, opts)
        self.provider = k8s.Provider(
            f"{name}-k8s",
            k8s.ProviderArgs(context=args.context),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.handle = ClusterHandle(name=name, cloud="local", version=args.version, provider=self.provider)
        self.register_outputs({})
