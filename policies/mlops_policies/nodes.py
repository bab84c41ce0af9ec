"""The nodes a plan's node groups will bring up, as the scheduler and cluster-autoscaler will see them.

A node's labels and taints are what the node group declares plus what the cloud adds itself (EKS: node
group, capacity type, instance type, arch; GKE: node pool, accelerator, TPU topology, spot, and the GPU/TPU
taints). Allocatable is capacity minus the kubelet's reservation (EKS AMI / GKE formulas) and the cloud's
own node agents. Extended resources (GPUs, Neuron devices) exist only where a device plugin runs: on EKS the
DaemonSets we install, on GKE its managed plugins.

For an EKS group at zero nodes, cluster-autoscaler decides from a template instead: labels and taints from
`eks:DescribeNodegroup` plus the ASG's `k8s.io/cluster-autoscaler/node-template/*` tags, CPU, memory and
NVIDIA GPUs from the instance type, any other extended resource only from a `resources/<name>` tag
(kubernetes/autoscaler cluster-autoscaler/cloudprovider/aws/aws_manager.go buildNodeFromTemplate).

A Karpenter NodePool (karpenter.sh/v1) becomes one node per instance type and capacity type its requirements
admit. Karpenter, unlike a node group, picks for each pending pod a type that fits it, so a pod fits the pool
when any of these nodes takes it (`Node.any_type`). Its labels are the template's, the values of single-valued
requirements, and the well-known labels Karpenter puts on every node (aws/karpenter-provider-aws v1.14.1
pkg/providers/instancetype/types.go computeRequirements: instance type, family, size, category, generation, cpu,
memory; karpenter.sh/nodepool, capacity type). Karpenter's own view (the template) is the instance type's
capacity with 7.5 % of memory taken for VM overhead (`settings.vmMemoryOverheadPercent`, types.go memory()) and
the devices EC2 reports (nvidia.com/gpu, aws.amazon.com/neuron, aws.amazon.com/neuroncore; computeCapacity); any
other extended resource only from a NodeOverlay's `capacity` (concepts/nodeoverlays.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from mlops_infra.components import accelerators, catalog
from mlops_infra.components.aws import karpenter_types
from mlops_infra.tooling.cost.rightsize import reserved_cpu, reserved_memory_mib
from mlops_policies.model import Resource, as_list, dig, quantity

EKS_NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
NODE_POOL = "kubernetes:karpenter.sh/v1:NodePool"
NODE_OVERLAY = "kubernetes:karpenter.sh/v1alpha1:NodeOverlay"
KARPENTER_VM_MEMORY_OVERHEAD = 0.075  # chart 1.14.1 values.yaml settings.vmMemoryOverheadPercent
GKE_NODE_POOL = "gcp:container/nodePool:NodePool"
ASG_TAG = "aws:autoscaling/tag:Tag"
TEMPLATE = "k8s.io/cluster-autoscaler/node-template/"
MIB = 2.0**20
EFFECTS = {"NO_SCHEDULE": "NoSchedule", "NO_EXECUTE": "NoExecute", "PREFER_NO_SCHEDULE": "PreferNoSchedule"}
ARCH = {"x86_64": "amd64", "arm64": "arm64"}
INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"
# The cloud's own per-node agents that are not in the plan (cpu cores, memory MiB): EKS add-ons aws-node,
# kube-proxy, ebs-csi-node; GKE's kube-proxy, fluentbit, metrics agent, PD CSI node (typical requests).
CLOUD_NODE_AGENTS: dict[str, tuple[float, float]] = {"aws": (0.155, 120.0), "gcp": (0.22, 280.0)}


@dataclass(frozen=True)
class Taint:
    key: str
    value: str
    effect: str  # Kubernetes spelling


@dataclass(frozen=True)
class Node:
    """One node of a group with one instance type, as the scheduler sees it."""

    group: str
    resource: Resource
    cloud: str
    instance_type: str
    labels: Mapping[str, str]
    taints: tuple[Taint, ...]
    allocatable: Mapping[str, float]  # cpu (cores), memory (bytes), pods, extended resources
    min_size: int
    # cluster-autoscaler's view while the group is empty (EKS); None where the autoscaler reads the
    # group's real template (GKE).
    template: Node | None = None
    advertised_by_cloud: tuple[str, ...] = field(default=())
    # Karpenter picks, per pod, one of the pool's instance types that fits it; a node group may launch any type.
    any_type: bool = False


def _taints(items: Any) -> tuple[Taint, ...]:
    return tuple(
        Taint(
            str(t.get("key")),
            str(t.get("value") or ""),
            EFFECTS.get(str(t.get("effect")), str(t.get("effect"))),
        )
        for t in as_list(items)
        if isinstance(t, Mapping)
    )


def _allocatable(itype: catalog.InstanceType) -> dict[str, float]:
    agents_cpu, agents_mib = CLOUD_NODE_AGENTS[itype.cloud]
    return {
        "cpu": itype.vcpu - reserved_cpu(itype.vcpu) - agents_cpu,
        "memory": (itype.memory_gib * 1024 - reserved_memory_mib(itype) - agents_mib) * MIB,
        "pods": float(itype.max_pods),
    }


def _asg_tags_by_group(resources: Sequence[Resource]) -> dict[str, dict[str, str]]:
    """ASG tags by the Auto Scaling group they are on (the tag's `autoscalingGroupName`)."""
    tags: dict[str, dict[str, str]] = {}
    for r in resources:
        if r.type == ASG_TAG:
            key, value = r.get("tag", "key"), r.get("tag", "value")
            if isinstance(key, str):
                tags.setdefault(str(r.get("autoscalingGroupName")), {})[key] = str(value or "")
    return tags


def _asg_name(r: Resource) -> str | None:
    """A managed node group's Auto Scaling group (an output of the node group)."""
    for props in (r.outputs, r.props):
        name = dig(props or {}, "resources", 0, "autoscalingGroups", 0, "name")
        if isinstance(name, str):
            return name
    return None


def _eks_nodes(r: Resource, asg_tags: Mapping[str, str]) -> list[Node]:
    group = str(r.get("nodeGroupName", default=r.name))
    labels = {str(k): str(v) for k, v in (r.get("labels", default={}) or {}).items()}
    taints = _taints(r.get("taints"))
    capacity_type = str(r.get("capacityType", default="ON_DEMAND"))
    min_size = int(r.get("scalingConfig", "minSize", default=0) or 0)
    nodes = []
    for name in as_list(r.get("instanceTypes")):
        itype = catalog.find_instance(str(name))
        if itype is None:
            continue
        generic = {
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": ARCH[itype.arch],
            INSTANCE_TYPE_LABEL: itype.name,
        }
        real_labels = {
            **labels,
            **generic,
            "eks.amazonaws.com/nodegroup": group,
            "eks.amazonaws.com/capacityType": capacity_type,
            "kubernetes.io/hostname": f"{group}-node",
        }
        allocatable = _allocatable(itype)
        node = Node(group, r, "aws", itype.name, real_labels, taints, allocatable, min_size)
        template_labels = {**labels, **generic}
        template_taints = list(taints)
        template_alloc = {
            "cpu": float(itype.vcpu),
            "memory": itype.memory_gib * 1024 * MIB,
            "pods": float(itype.max_pods),
        }
        if itype.accelerator_kind == "gpu":
            template_alloc[accelerators.NVIDIA_GPU] = float(itype.accelerator_count)
        for key, value in asg_tags.items():
            if key.startswith(TEMPLATE + "label/"):
                template_labels[key.removeprefix(TEMPLATE + "label/")] = value
            elif key.startswith(TEMPLATE + "taint/"):
                taint_value, _, effect = value.rpartition(":")
                template_taints = [
                    t for t in template_taints if t.key != key.removeprefix(TEMPLATE + "taint/")
                ]
                template_taints.append(Taint(key.removeprefix(TEMPLATE + "taint/"), taint_value, effect))
            elif key.startswith(TEMPLATE + "resources/"):
                amount = quantity(value)
                if amount is not None:
                    template_alloc[key.removeprefix(TEMPLATE + "resources/")] = amount
        template = Node(
            group, r, "aws", itype.name, template_labels, tuple(template_taints), template_alloc, 0
        )
        nodes.append(replace(node, template=template))
    return nodes


def _single_host_topology(itype: catalog.InstanceType) -> str | None:
    for topology in itype.tpu_topologies:
        if catalog.tpu_hosts(itype.name, topology) == 1:
            return topology
    return None


def _gke_nodes(r: Resource) -> list[Node]:
    pool = str(r.get("name", default=r.name))
    machine = str(r.get("nodeConfig", "machineType", default=""))
    itype = catalog.find_instance(machine)
    if itype is None:
        return []
    labels = {str(k): str(v) for k, v in (r.get("nodeConfig", "labels", default={}) or {}).items()}
    taints = list(_taints(r.get("nodeConfig", "taints")))
    topology = r.get("placementPolicy", "tpuTopology") or _single_host_topology(itype)
    labels |= accelerators.cloud_node_labels("gcp", machine, topology)
    labels |= {
        "cloud.google.com/gke-nodepool": pool,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": ARCH[itype.arch],
        INSTANCE_TYPE_LABEL: machine,
        "kubernetes.io/hostname": f"{pool}-node",
    }
    if r.get("nodeConfig", "spot"):
        labels["cloud.google.com/gke-spot"] = "true"
    allocatable = _allocatable(itype)
    advertised: tuple[str, ...] = ()
    if itype.accelerator_kind:
        acc = accelerators.accelerator(itype.accelerator_kind, "gcp")
        if acc.taint_set_by == "cloud" and not any(t.key == acc.taint.key for t in taints):
            taints.append(Taint(acc.taint.key, acc.taint.value, acc.taint.effect))
        guest = dig(r.props, "nodeConfig", "guestAccelerators", 0) or {}
        count = guest.get("count") or itype.accelerator_count
        slices = 1
        clients = dig(guest, "gpuSharingConfig", "maxSharedClientsPerGpu")
        if clients:  # time-sharing: GKE's plugin advertises nvidia.com/gpu x clients and labels the nodes
            slices = int(clients)
            labels |= accelerators.GpuSharing("time-slicing", slices).node_labels("gcp", pool)
        elif guest.get("gpuPartitionSize"):  # MIG: one nvidia.com/gpu per instance of the partition size
            sharing = accelerators.GpuSharing("mig", profile=str(guest["gpuPartitionSize"]))
            slices = sharing.slices_per_gpu(machine)
            labels |= sharing.node_labels("gcp", pool)
        for name in acc.advertised:
            allocatable[name] = float(count * slices)
        advertised = acc.advertised
    min_size = int(
        r.get("autoscaling", "totalMinNodeCount", default=None)
        or r.get("autoscaling", "minNodeCount", default=0)
        or 0
    )
    return [Node(pool, r, "gcp", machine, labels, tuple(taints), allocatable, min_size, None, advertised)]


def _overlay_capacity(overlays: Sequence[Resource], labels: Mapping[str, str]) -> dict[str, float]:
    """Extended resources NodeOverlays add to Karpenter's view of an instance type (capacities merge)."""
    found: dict[str, float] = {}
    for overlay in overlays:
        reqs = [q for q in as_list(overlay.get("spec", "requirements")) if isinstance(q, Mapping)]
        if all(karpenter_types.requirement_admits(q, labels) for q in reqs):
            for name, value in (overlay.get("spec", "capacity", default={}) or {}).items():
                amount = quantity(value)
                if amount is not None:
                    found[str(name)] = amount
    return found


def _karpenter_nodes(r: Resource, overlays: Sequence[Resource]) -> list[Node]:
    name = str(r.get("metadata", "name", default=r.name))
    template = r.get("spec", "template", default={}) or {}
    labels = {str(k): str(v) for k, v in (dig(template, "metadata", "labels") or {}).items()}
    reqs = [q for q in as_list(dig(template, "spec", "requirements")) if isinstance(q, Mapping)]
    taints = _taints(dig(template, "spec", "taints"))
    fixed = {
        str(q["key"]): str(as_list(q.get("values"))[0])
        for q in reqs
        if q.get("operator") == "In" and len(as_list(q.get("values"))) == 1
    }
    nodes = []
    for itype in karpenter_types.admitted_types(reqs):
        well_known = karpenter_types.well_known_labels(itype)
        for capacity in karpenter_types.capacity_types(reqs):
            node_labels = {
                **labels,
                **fixed,
                **well_known,
                "karpenter.sh/nodepool": name,
                "karpenter.sh/capacity-type": capacity,
                "kubernetes.io/hostname": f"{name}-node",
            }
            allocatable = _allocatable(itype)
            seen = dict(allocatable)
            seen["memory"] -= itype.memory_gib * 1024 * KARPENTER_VM_MEMORY_OVERHEAD * MIB
            for device in karpenter_types.DEVICES:
                count = accelerators.devices_per_node(itype.name, device)
                if count:
                    seen[device] = float(count)
            seen |= _overlay_capacity(overlays, node_labels)
            view = Node(name, r, "aws", itype.name, node_labels, taints, seen, 0, any_type=True)
            nodes.append(
                Node(name, r, "aws", itype.name, node_labels, taints, allocatable, 0, view, (), True)
            )
    return nodes


def cluster_nodes(resources: Sequence[Resource]) -> list[Node]:
    """One Node per (node group, instance type) the plan declares; per (NodePool, instance type, capacity type)."""
    asg_tags = _asg_tags_by_group(resources)
    overlays = [r for r in resources if r.type == NODE_OVERLAY]
    nodes: list[Node] = []
    for r in resources:
        if r.type == EKS_NODE_GROUP:
            nodes.extend(_eks_nodes(r, asg_tags.get(str(_asg_name(r)), {})))
        elif r.type == GKE_NODE_POOL:
            nodes.extend(_gke_nodes(r))
        elif r.type == NODE_POOL:
            nodes.extend(_karpenter_nodes(r, overlays))
    return nodes


def with_devices(node: Node, devices: Mapping[str, float]) -> Node:
    """The node once device plugins registered their devices."""
    return replace(node, allocatable={**node.allocatable, **devices})
