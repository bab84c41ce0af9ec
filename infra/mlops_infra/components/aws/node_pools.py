"""A node group as Karpenter runs it: one `NodePool` (karpenter.sh/v1) and one `EC2NodeClass` (karpenter.k8s.aws/v1).

The group's nodes look exactly like a managed group's (the same labels and taints from `node_groups`, IMDSv2 with
hop limit 1, an encrypted gp3 root volume under the cluster's EBS key, the EKS-optimised AL2023 AMI whose NVIDIA or
Neuron variant Karpenter picks per instance type), so workloads and device plugins cannot tell who launched them.
What the group's config means here (field names from the v1.14.1 CRDs and website/content/en/v1.14/concepts):

- instance types -> `requirements` on `node.kubernetes.io/instance-type`, `karpenter.k8s.aws/instance-family` and
  `karpenter.k8s.aws/instance-size` (together exactly the listed types), plus capacity type, arch, OS and zones;
- `maxSize` -> `limits`: `nodes` (Karpenter >= 1.12) and the cpu, memory and accelerator totals of that many of
  the largest listed type, so no scale-out goes past what the group would have cost as a managed group;
- `disruption`: consolidation once a node has been unneeded for the environment's scale-down time, a budget of one
  node at a time for accelerators (a third of the nodes for CPU groups, like the managed groups' update config),
  and no `terminationGracePeriod`: draining then uses the Eviction API and waits for every PodDisruptionBudget
  (concepts/disruption.md, "TerminationGracePeriod": with it set, pods behind a blocking PDB are deleted anyway);
- `minSize`/`desiredSize`: Karpenter keeps no idle minimum; the desired size is recorded as the annotation
  `mlops.platform/expected-nodes`, which only the cost estimate reads;
- `sharing`: Karpenter knows a type's GPUs from EC2 but not the slices the device plugin will advertise
  (`nvidia.com/gpu.shared`), so it would never launch a node for a pod asking for one. A NodeOverlay
  (karpenter.sh/v1alpha1, alpha: the controller runs with `featureGates.nodeOverlay`) adds that capacity to the
  pool's types in Karpenter's simulation (concepts/nodeoverlays.md, `spec.capacity`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from mlops_infra.components import accelerators, catalog
from mlops_infra.components.aws.karpenter_types import ARCH, CAPACITY_TYPE, INSTANCE_TYPE
from mlops_infra.components.aws.node_groups import ROOT_DEVICE, node_labels, node_taints
from mlops_infra.components.k8s.cluster import ClusterHandle
from mlops_infra.components.node_group import NodeGroupSpec

NODE_POOL_API = "karpenter.sh/v1"
NODE_OVERLAY_API = "karpenter.sh/v1alpha1"
NODE_CLASS_API = "karpenter.k8s.aws/v1"
NODE_CLASS_GROUP = "karpenter.k8s.aws"
EXPECTED_NODES_ANNOTATION = "mlops.platform/expected-nodes"
INSTANCE_FAMILY = "karpenter.k8s.aws/instance-family"
INSTANCE_SIZE = "karpenter.k8s.aws/instance-size"
NODE_POOL_LABEL = "karpenter.sh/nodepool"
ZONE = "topology.kubernetes.io/zone"
EXPIRE_AFTER = (
    "720h"  # Karpenter's default, written out: nodes are replaced (drained, PDBs respected) monthly
)
# Disruption budget per role: how many nodes Karpenter may take down at once (consolidation, drift, expiry).
BUDGETS = {"cpu": "33%", "gpu": "1", "neuron": "1"}


def family_and_size(instance_type: str) -> tuple[str, str]:
    """`g5.2xlarge` -> (`g5`, `2xlarge`), the values of Karpenter's instance-family and instance-size labels."""
    family, _, size = instance_type.partition(".")
    return family, size


def requirements(group: NodeGroupSpec, zones: Sequence[str]) -> list[dict[str, Any]]:
    """NodePool requirements that admit exactly the group's instance types, capacity type and zones."""
    types = sorted(group.instance_types)
    arches = sorted({ARCH[catalog.instance(t).arch] for t in types})
    return [
        {"key": INSTANCE_TYPE, "operator": "In", "values": types},
        {"key": INSTANCE_FAMILY, "operator": "In", "values": sorted({family_and_size(t)[0] for t in types})},
        {"key": INSTANCE_SIZE, "operator": "In", "values": sorted({family_and_size(t)[1] for t in types})},
        {"key": CAPACITY_TYPE, "operator": "In", "values": [group.capacity]},
        {"key": "kubernetes.io/arch", "operator": "In", "values": arches},
        {"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]},
        {"key": ZONE, "operator": "In", "values": list(zones)},
    ]


def limits(group: NodeGroupSpec) -> dict[str, str]:
    """What the pool may launch in total: `maxSize` nodes, and the resources of `maxSize` of its largest type."""
    types = [catalog.instance(t) for t in group.instance_types]
    out = {
        "nodes": str(group.max_size),
        "cpu": str(group.max_size * max(t.vcpu for t in types)),
        "memory": f"{group.max_size * max(int(t.memory_gib) for t in types)}Gi",
    }
    if group.role in accelerators.KINDS:
        resource = accelerators.accelerator(group.role, "aws").resource
        per_node = max(accelerators.devices_per_node(t.name, resource) for t in types)
        out[resource] = str(group.max_size * per_node)
    return out


def disruption(group: NodeGroupSpec, consolidate_after: str) -> dict[str, Any]:
    return {
        "consolidationPolicy": "WhenEmptyOrUnderutilized",
        "consolidateAfter": consolidate_after,
        "budgets": [{"nodes": BUDGETS.get(group.role, "10%")}],
    }


def node_pool_spec(group: NodeGroupSpec, zones: Sequence[str], consolidate_after: str) -> dict[str, Any]:
    taints = [
        {"key": t.key, "effect": t.effect, **({"value": t.value} if t.value else {})}
        for t in node_taints(group)
    ]
    return {
        "template": {
            "metadata": {"labels": node_labels(group)},
            "spec": {
                "nodeClassRef": {"group": NODE_CLASS_GROUP, "kind": "EC2NodeClass", "name": group.name},
                "requirements": requirements(group, zones),
                **({"taints": taints} if taints else {}),
                "expireAfter": EXPIRE_AFTER,
            },
        },
        "limits": limits(group),
        "disruption": disruption(group, consolidate_after),
    }  # fmt: skip


def metadata_options() -> dict[str, Any]:
    """IMDSv2 only, hop limit 1: a pod cannot reach the node role's credentials."""
    return {
        "httpEndpoint": "enabled",
        "httpProtocolIPv6": "disabled",
        "httpPutResponseHopLimit": 1,
        "httpTokens": "required",
    }


def node_class_spec(
    group: NodeGroupSpec,
    role_name: pulumi.Input[str],
    subnet_ids: Sequence[pulumi.Input[str]],
    security_group_id: pulumi.Input[str],
    ebs_kms_key_arn: pulumi.Input[str],
    ami_alias: str,
    tags: Mapping[str, str],
) -> dict[str, Any]:
    return {
        "role": role_name,
        "amiSelectorTerms": [{"alias": ami_alias}],
        "subnetSelectorTerms": [{"id": s} for s in subnet_ids],
        "securityGroupSelectorTerms": [{"id": security_group_id}],
        "metadataOptions": metadata_options(),
        "blockDeviceMappings": [
            {
                "deviceName": ROOT_DEVICE,
                "rootVolume": True,
                "ebs": {
                    "volumeSize": f"{group.disk_size_gb}Gi",
                    "volumeType": "gp3",
                    "iops": 3000,
                    "throughput": 125,
                    "encrypted": True,
                    "kmsKeyID": ebs_kms_key_arn,
                    "deleteOnTermination": True,
                },
            }
        ],
        "tags": {**tags, "node-group": group.name},
    }


def shared_gpu_overlays(group: NodeGroupSpec) -> list[dict[str, Any]]:
    """NodeOverlay specs telling Karpenter how many GPU slices each of the pool's types offers (one per count)."""
    if group.sharing is None:
        return []
    by_capacity: dict[tuple[tuple[str, int], ...], list[str]] = {}
    for name in sorted(group.instance_types):
        devices = group.sharing.devices_per_node(name, "aws")
        by_capacity.setdefault(tuple(sorted(devices.items())), []).append(name)
    return [
        {
            "requirements": [
                {"key": NODE_POOL_LABEL, "operator": "In", "values": [group.name]},
                {"key": INSTANCE_TYPE, "operator": "In", "values": types},
            ],
            "capacity": {resource: str(count) for resource, count in capacity},
        }
        for capacity, types in by_capacity.items()
    ]


@dataclass(frozen=True)
class KarpenterNodePoolArgs:
    cluster: ClusterHandle
    group: NodeGroupSpec
    node_role_name: pulumi.Input[str]
    subnet_ids: list[pulumi.Input[str]]
    zones: tuple[str, ...]
    security_group_id: pulumi.Input[str]
    ebs_kms_key_arn: pulumi.Input[str]
    ami_alias: str = "al2023@latest"
    consolidate_after: str = "5m"
    tags: dict[str, str] = field(default_factory=dict)
    depends_on: list[pulumi.Resource] = field(default_factory=list)  # the Karpenter release (its CRDs)


class KarpenterNodePool(pulumi.ComponentResource):
    """One node group as an EC2NodeClass and the NodePool that uses it (both named after the group)."""

    def __init__(self, name: str, args: KarpenterNodePoolArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlops:aws:KarpenterNodePool", name, None, opts)
        group = args.group
        if group.role not in BUDGETS:
            raise ValueError(f"node group {group.name!r}: role {group.role!r} is not run by Karpenter here")
        child = args.cluster.opts(self, depends_on=list(args.depends_on))
        meta = {"labels": accelerators.group_labels(group.name, group.role)}
        self.node_class = k8s.apiextensions.CustomResource(
            f"{name}-nodeclass",
            api_version=NODE_CLASS_API,
            kind="EC2NodeClass",
            metadata={"name": group.name, **meta},
            spec=node_class_spec(
                group,
                args.node_role_name,
                args.subnet_ids,
                args.security_group_id,
                args.ebs_kms_key_arn,
                args.ami_alias,
                args.tags,
            ),
            opts=child,
        )
        self.node_pool = k8s.apiextensions.CustomResource(
            f"{name}-nodepool",
            api_version=NODE_POOL_API,
            kind="NodePool",
            metadata={
                "name": group.name,
                **meta,
                "annotations": {EXPECTED_NODES_ANNOTATION: str(group.desired)},
            },
            spec=node_pool_spec(group, args.zones, args.consolidate_after),
            opts=args.cluster.opts(self, depends_on=[*args.depends_on, self.node_class]),
        )
        self.overlays = [
            k8s.apiextensions.CustomResource(
                f"{name}-overlay-{i}",
                api_version=NODE_OVERLAY_API,
                kind="NodeOverlay",
                metadata={"name": f"{group.name}-shared-gpus-{i}", **meta},
                spec=spec,
                opts=child,
            )
            for i, spec in enumerate(shared_gpu_overlays(group))
        ]
        self.register_outputs({"nodePool": group.name})
