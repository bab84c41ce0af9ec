"""The AWS side of a stack: VPC, EKS, node groups, add-ons, autoscaler and accelerator software."""

from __future__ import annotations

import math
from typing import Any

import pulumi

from mlops_infra.components import pricing
from mlops_infra.components.aws.addons import AFTER_COMPUTE, BEFORE_COMPUTE, EksAddons, EksAddonsArgs
from mlops_infra.components.aws.autoscaler_iam import NAMESPACE as CA_NAMESPACE
from mlops_infra.components.aws.autoscaler_iam import SERVICE_ACCOUNT as CA_SERVICE_ACCOUNT
from mlops_infra.components.aws.autoscaler_iam import cluster_autoscaler_policy_json
from mlops_infra.components.aws.cluster import EksCluster, EksClusterArgs
from mlops_infra.components.aws.irsa import ROLE_ARN_ANNOTATION, irsa_binder, irsa_role
from mlops_infra.components.aws.karpenter import Karpenter, KarpenterArgs
from mlops_infra.components.aws.network import Network, NetworkArgs
from mlops_infra.components.aws.node_groups import ManagedNodeGroup, NodeGroupArgs, node_group_for
from mlops_infra.components.aws.node_pools import KarpenterNodePool, KarpenterNodePoolArgs
from mlops_infra.components.aws.storage import EbsStorageClass, EbsStorageClassArgs
from mlops_infra.components.aws.versions import autoscaler_image_tag
from mlops_infra.components.k8s.accelerators import (
    AcceleratorDevicePlugins,
    AcceleratorDevicePluginsArgs,
    AcceleratorMonitoring,
    AcceleratorMonitoringArgs,
)
from mlops_infra.components.k8s.cluster import ClusterHandle, NetworkFacts
from mlops_infra.components.k8s.cluster_autoscaler import (
    AutoscalerSettings,
    ClusterAutoscaler,
    ClusterAutoscalerArgs,
    PriorityGroup,
)
from mlops_infra.platform.config import CLUSTER_AUTOSCALER_ONLY, NodeGroupConfig, StackConfig


def zones_of(config: StackConfig) -> tuple[str, ...]:
    """Configured zones, or the region's a/b/c up to the environment's zone count."""
    if config.zones:
        return tuple(config.zones)
    return tuple(f"{config.region}{letter}" for letter in "abc"[: config.defaults.zone_count])


def hourly_price(group: NodeGroupConfig, region: str | None = None) -> float:
    """The cheapest hourly price among the group's instance types at its capacity type (in `region`, else the
    reference region); a type without a price (a team type, or not offered there) ranks last."""
    spot = group.capacity == "spot"
    found = [pricing.hourly(t, spot=spot, region=region) for t in group.instance_types]
    return min((p for p in found if p is not None), default=math.inf)


def autoscaler_priorities(groups: list[NodeGroupConfig], region: str | None = None) -> list[PriorityGroup]:
    """Spot before on-demand, then cheaper before dearer. Only groups that can fit a pod compete, so this
    orders e.g. a spot GPU group before an on-demand fallback GPU group. EKS names a managed group's ASG
    `eks-<group>-<uuid>`; the uuid part keeps `gpu` from also matching `gpu-a10g`."""
    ranked = sorted(
        (g for g in groups if g.role != "system"),
        key=lambda g: (g.capacity != "spot", hourly_price(g, region), g.name),
    )
    return [
        PriorityGroup(pattern=f"^eks-{g.name}-[0-9a-f-]{{36}}$", priority=10 * (len(ranked) - i))
        for i, g in enumerate(ranked)
    ]


class AwsPlatform(pulumi.ComponentResource):
    """Everything on AWS one stack needs: VPC, EKS, node groups, add-ons, cluster-autoscaler and the device
    plugins; `after_services` adds the accelerator exporters once the monitoring stack's CRDs exist.

    Its children were once parented to the stack's Platform directly: they carry an alias to that old parent,
    so a stack deployed before keeps every resource (no replacement)."""

    def __init__(self, name: str, config: StackConfig, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlops:aws:AwsPlatform", name, None, opts)
        if config.region is None:
            raise ValueError("an AWS stack needs aws:region")
        self.config = config
        old_parent = opts.parent if opts is not None else None
        self._moved_from: list[pulumi.Input[str] | pulumi.Alias] = (
            [pulumi.Alias(parent=old_parent)] if old_parent is not None else []
        )
        self.handle, self.outputs = self._declare(config)
        self.register_outputs({})

    def _child(self, depends_on: list[pulumi.Resource] | None = None) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(parent=self, aliases=self._moved_from, depends_on=depends_on)

    def after_services(self, depends_on: list[pulumi.Resource]) -> None:
        """GPU/Neuron exporters need the Prometheus Operator CRDs: declared after the monitoring stack."""
        exporters = {g.role for g in self.config.node_groups} & {"gpu", "neuron"}
        if not exporters or not depends_on or not self.config.services.monitoring.enabled:
            return
        AcceleratorMonitoring(
            "accelerator-monitoring",
            AcceleratorMonitoringArgs(cluster=self.handle),
            opts=self._child(depends_on),
        )

    @property
    def karpenter(self) -> bool:
        return self.config.autoscaler.engine == "karpenter"

    @property
    def managed_groups(self) -> list[NodeGroupConfig]:
        """Groups that are EKS managed node groups: all of them, or only the system group under Karpenter (the
        controller must not run on nodes it manages)."""
        groups = self.config.node_groups
        return [g for g in groups if g.role == "system"] if self.karpenter else list(groups)

    def _karpenter(
        self,
        config: StackConfig,
        handle: ClusterHandle,
        eks: EksCluster,
        subnet_by_zone: dict[str, pulumi.Input[str]],
        zones: tuple[str, ...],
        after_nodes: pulumi.ResourceOptions,
    ) -> dict[str, pulumi.Input[Any]]:
        """The Karpenter controller, then one NodePool + EC2NodeClass per non-system group. Whatever waits for the
        cluster (services, workloads) waits for the pools too: their pods run on nodes only the pools launch."""
        assert config.region is not None
        pooled = [g for g in config.node_groups if g.role != "system"]
        controller = Karpenter(
            f"{config.cluster_name}-karpenter",
            KarpenterArgs(
                cluster=handle,
                cluster_name=config.cluster_name,
                cluster_endpoint=eks.endpoint,
                region=config.region,
                oidc_provider_arn=eks.oidc_provider_arn,
                oidc_issuer=eks.oidc_issuer,
                identity="pod-identity" if config.cluster.pod_identity_agent else "irsa",
                replicas=config.defaults.controller_replicas,
                spot=any(g.capacity == "spot" for g in pooled),
                node_overlays=any(g.sharing is not None for g in pooled),
                tags=config.all_tags,
            ),
            opts=after_nodes,
        )
        consolidate_after = (
            config.autoscaler.scale_down_unneeded_time or config.defaults.scale_down_unneeded_time
        )
        ami = f"al2023@{config.autoscaler.ami_version or 'latest'}"
        pools = []
        for group in pooled:
            group_zones = tuple(group.zones or zones)
            pools.append(
                KarpenterNodePool(
                    f"{config.cluster_name}-{group.name}",
                    KarpenterNodePoolArgs(
                        cluster=handle,
                        group=group.spec(),
                        node_role_name=controller.node_role.name,
                        subnet_ids=[subnet_by_zone[z] for z in group_zones],
                        zones=group_zones,
                        security_group_id=eks.cluster.vpc_config.cluster_security_group_id,
                        ebs_kms_key_arn=eks.ebs_key.arn,
                        ami_alias=ami,
                        consolidate_after=consolidate_after,
                        tags=config.all_tags,
                        depends_on=[controller.release],
                    ),
                    opts=after_nodes,
                )
            )
        handle.depends_on.extend(pools)
        return {"nodePools": [g.name for g in pooled], "interruptionQueue": controller.queue.queue_name}

    def _declare(self, config: StackConfig) -> tuple[ClusterHandle, dict[str, pulumi.Input[Any]]]:
        assert config.region is not None
        name = config.cluster_name
        tags = config.all_tags
        zones = zones_of(config)
        retention = config.defaults.log_retention_days

        network = Network(
            f"{name}-vpc",
            NetworkArgs(
                cluster_name=name,
                region=config.region,
                zones=zones,
                cidr=config.network.cidr,
                nat_gateways="per-zone" if config.nat_gateways == "per-zone" else "single",
                flow_logs=config.flow_logs,
                flow_log_retention_days=retention,
                tags=tags,
            ),
            opts=self._child(),
        )
        eks = EksCluster(
            name,
            EksClusterArgs(
                name=name,
                version=config.cluster.version,
                region=config.region,
                subnet_ids=network.private_subnet_ids,
                endpoint_private=config.endpoint_private,
                public_cidrs=tuple(config.cluster.endpoint.public_cidrs),
                log_types=tuple(config.cluster.logging),
                log_retention_days=retention,
                admin_role_arns=tuple(config.cluster.admin_role_arns),
                deletion_protection=config.protect_stateful,
                tags=tags,
                ebs_key_for_ec2_fleet=self.karpenter,
            ),
            opts=self._child(),
        )
        core_addons = (
            BEFORE_COMPUTE
            if config.cluster.pod_identity_agent
            else tuple(a for a in BEFORE_COMPUTE if a != "eks-pod-identity-agent")
        )
        addons_before = EksAddons(
            f"{name}-addons-core",
            EksAddonsArgs(
                cluster_name=eks.cluster.name,
                version=config.cluster.version,
                addons=core_addons,
                oidc_provider_arn=eks.oidc_provider_arn,
                oidc_issuer=eks.oidc_issuer,
                role_prefix=name,
                tags=tags,
            ),
            opts=self._child(),
        )

        subnet_by_zone = dict(zip(zones, network.private_subnet_ids, strict=True))
        node_groups: list[ManagedNodeGroup] = []
        for group in self.managed_groups:
            subnets = [subnet_by_zone[z] for z in (group.zones or zones)]
            node_groups.append(
                node_group_for(
                    f"{name}-{group.name}",
                    NodeGroupArgs(
                        cluster_name=name,
                        cluster_version=config.cluster.version,
                        group=group.spec(),
                        subnet_ids=subnets,
                        ebs_kms_key_arn=eks.ebs_key.arn,
                        tags=tags,
                    ),
                    opts=self._child([eks, addons_before, network]),
                )
            )
        addons_after = EksAddons(
            f"{name}-addons",
            EksAddonsArgs(
                cluster_name=eks.cluster.name,
                version=config.cluster.version,
                addons=AFTER_COMPUTE,
                oidc_provider_arn=eks.oidc_provider_arn,
                oidc_issuer=eks.oidc_issuer,
                role_prefix=name,
                ebs_kms_key_arn=eks.ebs_key.arn,
                tags=tags,
            ),
            opts=self._child(list(node_groups)),
        )
        ready: list[pulumi.Resource] = [*node_groups, addons_after]

        handle = ClusterHandle(
            name=name,
            cloud="aws",
            version=config.cluster.version,
            provider=eks.provider,
            node_groups=[g.spec() for g in config.node_groups],
            bind_workload_identity=irsa_binder(name, eks.oidc_provider_arn, eks.oidc_issuer, eks, tags),
            depends_on=list(ready),
            network=NetworkFacts(
                network_id=network.vpc_id,
                private_subnet_ids=list(network.private_subnet_ids),
                node_security_group_id=eks.cluster.vpc_config.cluster_security_group_id,
                zones=zones,
                vpc_cidr=config.network.cidr,
            ),
        )
        after_nodes = self._child(ready)
        EbsStorageClass(
            f"{name}-storage",
            EbsStorageClassArgs(cluster=handle, kms_key_arn=eks.ebs_key.arn, retain=config.protect_stateful),
            opts=after_nodes,
        )
        outputs: dict[str, pulumi.Input[Any]] = {}
        if self.karpenter:
            outputs |= self._karpenter(config, handle, eks, subnet_by_zone, zones, after_nodes)
        elif config.autoscaler.enabled:
            role = irsa_role(
                f"{name}-cluster-autoscaler",
                eks.oidc_provider_arn,
                eks.oidc_issuer,
                CA_NAMESPACE,
                CA_SERVICE_ACCOUNT,
                cluster_autoscaler_policy_json(name),
                eks,
                tags=tags,
            )
            ClusterAutoscaler(
                f"{name}-autoscaler",
                ClusterAutoscalerArgs(
                    cluster=handle,
                    image_tag=autoscaler_image_tag(config.cluster.version),
                    settings=AutoscalerSettings(
                        **config.autoscaler.model_dump(include=set(CLUSTER_AUTOSCALER_ONLY))
                    ),
                    scale_down_unneeded_time=config.autoscaler.scale_down_unneeded_time
                    or config.defaults.scale_down_unneeded_time,
                    region=config.region,
                    service_account=CA_SERVICE_ACCOUNT,
                    service_account_annotations={ROLE_ARN_ANNOTATION: role.arn},
                    priorities=autoscaler_priorities(list(config.node_groups), config.region),
                    replicas=config.defaults.controller_replicas,
                    namespace=CA_NAMESPACE,
                ),
                opts=after_nodes,
            )
        if any(g.role in ("gpu", "neuron") for g in config.node_groups):
            AcceleratorDevicePlugins(
                f"{name}-device-plugins", AcceleratorDevicePluginsArgs(cluster=handle), opts=after_nodes
            )

        outputs |= {
            "clusterName": eks.cluster.name,
            "clusterEndpoint": eks.endpoint,
            "kubeconfig": eks.kubeconfig,
            "oidcProviderArn": eks.oidc_provider_arn,
            "region": config.region,
            "vpcId": network.vpc_id,
            "privateSubnetIds": network.private_subnet_ids,
            "nodeGroups": [g.node_group.node_group_name for g in node_groups],
        }
        return handle, outputs
