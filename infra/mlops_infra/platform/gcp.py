"""The GCP part of a stack: network, GKE cluster, node pools and Workload Identity,
handed to the cloud-agnostic platform as a ClusterHandle.
"""

from __future__ import annotations

from typing import Any

import pulumi

from mlops_infra.components.gcp.apis import MANAGED_DATABASE_APIS, REQUIRED_APIS, ProjectApis, ProjectApisArgs
from mlops_infra.components.gcp.artifact_registry import ArtifactRegistry, ArtifactRegistryArgs
from mlops_infra.components.gcp.cluster import GkeCluster, GkeClusterArgs
from mlops_infra.components.gcp.labels import gcp_labels
from mlops_infra.components.gcp.network import PODS_RANGE, SERVICES_RANGE, GkeNetwork, GkeNetworkArgs
from mlops_infra.components.gcp.node_pools import GkeNodePool, GkeNodePoolArgs
from mlops_infra.components.gcp.workload_identity import WorkloadIdentity, WorkloadIdentityArgs
from mlops_infra.components.k8s.cluster import ClusterHandle, NetworkFacts
from mlops_infra.platform.config import StackConfig


class GkePlatform(pulumi.ComponentResource):
    """Everything on GCP one stack needs before anything runs inside the cluster."""

    def __init__(self, name: str, config: StackConfig, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlops:gcp:GkePlatform", name, None, opts)
        assert config.gcp_project and config.region and config.zones, "validated by config for gcp stacks"
        project, region, zones = config.gcp_project, config.region, list(config.zones)
        labels = gcp_labels(config.all_tags)
        regional = config.defaults.high_availability
        location = region if regional else zones[0]
        pool_zones = zones if regional else [zones[0]]

        # A new project has Compute Engine, GKE, KMS, IAM, Artifact Registry... off: enable them first.
        self.apis = ProjectApis(
            f"{name}-apis",
            ProjectApisArgs(project=project, apis=stack_apis(config)),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.network = GkeNetwork(
            name,
            GkeNetworkArgs(
                project=project,
                region=region,
                cidr=config.network.cidr,
                flow_logs=config.flow_logs,
                labels=labels,
                apis=self.apis,
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.gke = GkeCluster(
            name,
            GkeClusterArgs(
                project=project,
                region=region,
                location=location,
                node_locations=zones if regional else [],
                network_id=self.network.network.id,
                subnet_id=self.network.subnet.id,
                pods_range_name=PODS_RANGE,
                services_range_name=SERVICES_RANGE,
                node_cidr=self.network.ranges.nodes,
                version=config.cluster.version,
                release_channel=config.cluster.release_channel,
                private_endpoint=config.endpoint_private,
                authorized_cidrs=list(config.cluster.endpoint.public_cidrs),
                autoscaling_profile=config.defaults.gke_autoscaling_profile,
                logging=list(config.cluster.logging),
                deletion_protection=config.protect_stateful,
                labels=labels,
                apis=self.apis,
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.node_pools = [
            GkeNodePool(
                group.name,
                GkeNodePoolArgs(
                    project=project,
                    cluster_name=self.gke.cluster.name,
                    location=self.gke.cluster.location,
                    group=group.spec(),
                    zones=pool_zones,
                    node_service_account=self.gke.node_service_account.email,
                    labels=labels,
                    apis=self.apis,
                ),
                opts=pulumi.ResourceOptions(parent=self),
            )
            for group in config.node_groups
        ]
        self.workload_identity = WorkloadIdentity(
            f"{name}-wi",
            WorkloadIdentityArgs(project=project, cluster_name=config.cluster_name, apis=self.apis),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.gke.cluster]),
        )
        self.outputs: dict[str, pulumi.Input[Any]] = {
            "gkeCluster": self.gke.cluster.name,
            "gkeLocation": location,
            "workloadPool": self.gke.workload_pool,
            "nodeServiceAccount": self.gke.node_service_account.email,
        }
        # Workload images: the stack's own repository unless the stack names a registry it pushes to.
        self.registry: ArtifactRegistry | None = None
        if config.workloads.registry is None:
            self.registry = ArtifactRegistry(
                f"{name}-images",
                ArtifactRegistryArgs(
                    project=project,
                    location=region,
                    readers=[self.gke.node_service_account.member],
                    labels=labels,
                    protect=config.protect_stateful,
                    apis=self.apis,
                ),
                opts=pulumi.ResourceOptions(parent=self),
            )
            self.outputs["imageRepository"] = self.registry.repository.registry_uri
        self.handle = ClusterHandle(
            name=config.cluster_name,
            cloud="gcp",
            version=config.cluster.version,
            provider=self.gke.provider,
            node_groups=[g.spec() for g in config.node_groups],
            bind_workload_identity=self.workload_identity.bind,
            depends_on=[pool for group in self.node_pools for pool in group.pools],
            network=NetworkFacts(
                network_id=self.network.network.id,
                private_subnet_ids=[self.network.subnet.id],
                zones=tuple(zones),
                vpc_cidr=config.network.cidr,
            ),
            prerequisites=list(self.apis.services.values()),
            image_registry=self.registry.registry if self.registry is not None else None,
        )
        self.register_outputs(self.outputs)

    def after_services(self, depends_on: list[pulumi.Resource]) -> None:
        """Nothing to add: GKE runs its own GPU/TPU device plugins and metrics."""


def stack_apis(config: StackConfig) -> tuple[str, ...]:
    """The APIs this stack calls: the cluster's, plus Cloud SQL's when MLflow's database is managed."""
    managed_db = config.services.mlflow.enabled and config.mlflow_database == "managed"
    return REQUIRED_APIS + (MANAGED_DATABASE_APIS if managed_db else ())
