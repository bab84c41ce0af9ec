"""What every in-cluster component needs to know about the cluster it deploys onto, whatever the cloud."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pulumi
import pulumi_kubernetes as k8s

from mlops_infra.components.node_group import NodeGroupSpec

if TYPE_CHECKING:
    from mlops_infra.components.images import Registry

# (component name, namespace, service account, IAM policy JSON or role bindings) -> ServiceAccount annotations
WorkloadIdentityBinder = Callable[[str, str, str, pulumi.Input[str]], Mapping[str, pulumi.Input[str]]]


@dataclass(frozen=True)
class NetworkFacts:
    """Where managed services attach: the cluster's VPC/network, private subnets and the nodes' security group."""

    network_id: pulumi.Input[str]
    private_subnet_ids: list[pulumi.Input[str]]
    node_security_group_id: pulumi.Input[str] | None = None
    zones: tuple[str, ...] = ()
    vpc_cidr: str | None = None


@dataclass
class ClusterHandle:
    """A cluster as the cloud-agnostic components see it: a provider and facts about its nodes."""

    name: str
    cloud: str
    version: str
    provider: k8s.Provider
    node_groups: list[NodeGroupSpec] = field(default_factory=list)
    bind_workload_identity: WorkloadIdentityBinder | None = None
    depends_on: list[pulumi.Resource] = field(default_factory=list)
    network: NetworkFacts | None = None
    # Cloud resources that any further cloud resource of the stack waits for (GCP: the project's enabled APIs).
    prerequisites: list[pulumi.Resource] = field(default_factory=list)
    # Where workload images go when the stack names no registry (GCP: the stack's Artifact Registry repository);
    # `repository` is the prefix each workload's image name extends.
    image_registry: Registry | None = None

    def opts(self, parent: pulumi.Resource, **kwargs: object) -> pulumi.ResourceOptions:
        """Options for an in-cluster child: this cluster's provider, never an ambient kubeconfig."""
        return pulumi.ResourceOptions(parent=parent, provider=self.provider, **kwargs)  # type: ignore[arg-type]
