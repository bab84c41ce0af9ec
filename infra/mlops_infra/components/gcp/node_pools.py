"""GKE node pools per node group: system/CPU pools, NVIDIA GPU pools and TPU slice pools, all autoscaled
by GKE's built-in cluster autoscaler, accelerators from zero.

TPU facts this module relies on (see docs/gcp.md): a TPU VM machine type (`ct5lp-hightpu-4t`, ...) carries
a fixed number of chips; a topology (`4x4`) sets the slice's chips, so hosts = chips / chips-per-host. A
single-host slice is one node, each node its own slice. A multi-host slice is one node pool with a COMPACT
placement policy and `tpu_topology`; GKE creates and deletes it atomically (0 or all hosts) and one pool
holds exactly one slice, so a group with room for N slices becomes N pools. GKE labels TPU nodes with
`cloud.google.com/gke-tpu-accelerator` and `cloud.google.com/gke-tpu-topology` and taints them itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pulumi
import pulumi_gcp as gcp

from mlops_infra.components import accelerators, catalog
from mlops_infra.components.gcp.apis import CONTAINER, IMAGE_STREAMING, ProjectApis, after
from mlops_infra.components.node_group import NodeGroupSpec

SPOT_LABEL = "cloud.google.com/gke-spot"
_EFFECTS = {"NoSchedule": "NO_SCHEDULE", "PreferNoSchedule": "PREFER_NO_SCHEDULE", "NoExecute": "NO_EXECUTE"}
# Machine families that only take Hyperdisk boot disks.
_HYPERDISK_FAMILIES = ("ct6e", "c3", "c4", "n4", "a3", "a4")


@dataclass(frozen=True)
class PoolSpec:
    """One GKE node pool to declare. Sizes are totals for the pool; `initial_per_zone` is what GKE takes."""

    name: str
    zones: tuple[str, ...]
    min_nodes: int
    max_nodes: int
    initial_per_zone: int
    tpu_topology: str | None = None  # set for multi-host slices (COMPACT placement)
    single_zone_limits: bool = False  # per-zone min/max (TPU pools live in one zone)


def tpu_hosts(group: NodeGroupSpec) -> int:
    """Nodes in one slice of this TPU group (1 for single-host slices)."""
    assert group.tpu_topology is not None, "validated by config: TPU groups have a topology"
    return catalog.tpu_hosts(group.instance_types[0], group.tpu_topology)


def pool_specs(group: NodeGroupSpec, zones: list[str]) -> list[PoolSpec]:
    """The pools of one node group in the given zones (TPU groups use the first zone only)."""
    if group.role == "tpu":
        zone = (group.zones or zones)[:1]
        hosts = tpu_hosts(group)
        if hosts == 1:
            return [
                PoolSpec(group.name, tuple(zone), group.min_size, group.max_size, group.desired, None, True)
            ]
        slices, min_slices, desired_slices = (
            group.max_size // hosts,
            group.min_size // hosts,
            group.desired // hosts,
        )
        return [
            PoolSpec(
                name=f"{group.name}-s{i}",
                zones=tuple(zone),
                min_nodes=hosts if i < min_slices else 0,
                max_nodes=hosts,
                initial_per_zone=hosts if i < desired_slices else 0,
                tpu_topology=group.tpu_topology.lower() if group.tpu_topology else None,
                single_zone_limits=True,
            )
            for i in range(slices)
        ]
    pool_zones = tuple(group.zones or zones)
    per_zone = math.ceil(group.desired / len(pool_zones)) if pool_zones else group.desired
    return [PoolSpec(group.name, pool_zones, group.min_size, group.max_size, per_zone)]


def pool_taints(group: NodeGroupSpec) -> list[tuple[str, str, str]]:
    """(key, value, GKE effect) for a group: its own taints, plus the GPU taint on GPU pools.

    GKE taints GPU nodes itself only when the cluster has non-GPU pools; declaring the taint too means it
    never depends on the order in which pools are created. ExtendedResourceToleration tolerates it for pods
    that request GPUs."""
    taints = [(t.key, t.value, _EFFECTS[t.effect]) for t in group.taints]
    if group.role == "gpu":
        taint = accelerators.accelerator("gpu", "gcp").taint
        if not any(key == taint.key for key, _, _ in taints):
            taints.append((taint.key, taint.value, _EFFECTS[taint.effect]))
    return taints


def node_labels(group: NodeGroupSpec) -> dict[str, str]:
    """Kubernetes labels this module sets on a pool's nodes (GKE adds its accelerator labels on top)."""
    return {**group.labels, **accelerators.group_labels(group.name, group.role)}


def gke_added_labels(group: NodeGroupSpec) -> dict[str, str]:
    """Labels GKE itself puts on the nodes of this group: what workloads select accelerators by."""
    labels = accelerators.cloud_node_labels("gcp", group.instance_types[0], group.tpu_topology)
    if group.capacity == "spot":
        labels[SPOT_LABEL] = "true"
    if group.sharing is not None:
        labels |= group.sharing.node_labels("gcp", group.name)
    return labels


@dataclass(frozen=True)
class TpuWorkloadPlacement:
    """What a pod spec needs to land on a TPU slice: node selector, chip request per pod, toleration."""

    node_selector: dict[str, str]
    chips_per_host: int
    hosts: int

    @property
    def resources(self) -> dict[str, dict[str, str]]:
        chips = str(self.chips_per_host)
        return {"requests": {accelerators.TPU_CHIP: chips}, "limits": {accelerators.TPU_CHIP: chips}}

    @property
    def tolerations(self) -> list[dict[str, str]]:
        return [accelerators.accelerator("tpu", "gcp").toleration()]


def tpu_workload_placement(machine_type: str, topology: str) -> TpuWorkloadPlacement:
    """How a workload (one pod per host, e.g. a JobSet/indexed Job with `hosts` pods) asks for a TPU slice."""
    itype = catalog.instance(machine_type)
    if itype.accelerator_kind != "tpu" or itype.gke_accelerator is None:
        raise ValueError(f"{machine_type} is not a TPU machine type")
    hosts = catalog.tpu_hosts(machine_type, topology)
    selector = accelerators.cloud_node_labels("gcp", machine_type, topology)
    return TpuWorkloadPlacement(node_selector=selector, chips_per_host=itype.accelerator_count, hosts=hosts)


def disk_type(machine_type: str) -> str:
    return "hyperdisk-balanced" if machine_type.split("-")[0] in _HYPERDISK_FAMILIES else "pd-balanced"


@dataclass(frozen=True)
class GkeNodePoolArgs:
    project: str
    cluster_name: pulumi.Input[str]
    location: pulumi.Input[str]
    group: NodeGroupSpec
    zones: list[str]
    node_service_account: pulumi.Input[str]
    labels: dict[str, str] = field(default_factory=dict)
    auto_upgrade: bool = True
    apis: ProjectApis | None = None  # the stack's enabled APIs: GKE, and the Container File System API


def gpu_sharing_args(group: NodeGroupSpec) -> dict[str, object]:
    """GKE's own GPU sharing on the pool's accelerator: time-sharing with N clients per GPU, or a MIG partition
    size (GKE partitions the GPUs and labels the nodes; accelerators.GpuSharing)."""
    sharing = group.sharing
    if sharing is None:
        return {}
    if sharing.mode == "mig":
        return {"gpu_partition_size": sharing.profile}
    return {
        "gpu_sharing_config": gcp.container.NodePoolNodeConfigGuestAcceleratorGpuSharingConfigArgs(
            gpu_sharing_strategy="TIME_SHARING", max_shared_clients_per_gpu=sharing.replicas
        )
    }


class GkeNodePool(pulumi.ComponentResource):
    """One node group as GKE node pools (several for a multi-host TPU group: one pool per slice)."""

    def __init__(self, name: str, args: GkeNodePoolArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlops:gcp:NodePool", name, None, opts)
        group = args.group
        machine = group.instance_types[0]
        itype = catalog.instance(machine)
        accelerated = group.role in {"gpu", "tpu"}
        guest_accelerators = None
        if group.role == "gpu":
            guest_accelerators = [
                gcp.container.NodePoolNodeConfigGuestAcceleratorArgs(
                    type=str(itype.gke_accelerator),
                    count=itype.accelerator_count,
                    gpu_driver_installation_config=gcp.container.NodePoolNodeConfigGuestAcceleratorGpuDriverInstallationConfigArgs(
                        gpu_driver_version=group.gpu_driver_version
                    ),
                    **gpu_sharing_args(group),
                )
            ]
        if group.reservation:
            reservation = gcp.container.NodePoolNodeConfigReservationAffinityArgs(
                consume_reservation_type="SPECIFIC_RESERVATION",
                key="compute.googleapis.com/reservation-name",
                values=[group.reservation],
            )
        else:
            # Spot VMs cannot use reservations; on-demand nodes use any matching one that happens to exist.
            kind = "NO_RESERVATION" if group.capacity == "spot" else "ANY_RESERVATION"
            reservation = gcp.container.NodePoolNodeConfigReservationAffinityArgs(
                consume_reservation_type=kind
            )
        node_config = gcp.container.NodePoolNodeConfigArgs(
            machine_type=machine,
            disk_size_gb=group.disk_size_gb,
            disk_type=disk_type(machine),
            image_type="COS_CONTAINERD",
            service_account=args.node_service_account,
            oauth_scopes=["https://www.googleapis.com/auth/cloud-platform"],
            labels=node_labels(group),
            resource_labels=args.labels,
            taints=[
                gcp.container.NodePoolNodeConfigTaintArgs(key=k, value=v, effect=e)
                for k, v, e in pool_taints(group)
            ],
            spot=group.capacity == "spot",
            reservation_affinity=reservation,
            guest_accelerators=guest_accelerators,
            shielded_instance_config=gcp.container.NodePoolNodeConfigShieldedInstanceConfigArgs(
                enable_secure_boot=True, enable_integrity_monitoring=True
            ),
            # Pods see the GKE metadata server (Workload Identity), never the node's own credentials.
            workload_metadata_config=gcp.container.NodePoolNodeConfigWorkloadMetadataConfigArgs(
                mode="GKE_METADATA"
            ),
            gcfs_config=gcp.container.NodePoolNodeConfigGcfsConfigArgs(enabled=True),  # image streaming
            gvnic=gcp.container.NodePoolNodeConfigGvnicArgs(enabled=True),
        )
        # Accelerator pools upgrade one node at a time without a surge node: no spare GPU/TPU quota needed.
        upgrade = gcp.container.NodePoolUpgradeSettingsArgs(
            max_surge=0 if accelerated else 1, max_unavailable=1 if accelerated else 0
        )
        self.specs = pool_specs(group, args.zones)
        self.pools: list[gcp.container.NodePool] = []
        for spec in self.specs:
            if spec.single_zone_limits:
                autoscaling = gcp.container.NodePoolAutoscalingArgs(
                    min_node_count=spec.min_nodes, max_node_count=spec.max_nodes
                )
            else:
                autoscaling = gcp.container.NodePoolAutoscalingArgs(
                    total_min_node_count=spec.min_nodes,
                    total_max_node_count=spec.max_nodes,
                    location_policy="ANY" if group.capacity == "spot" else "BALANCED",
                )
            placement = (
                gcp.container.NodePoolPlacementPolicyArgs(type="COMPACT", tpu_topology=spec.tpu_topology)
                if spec.tpu_topology
                else None
            )
            self.pools.append(
                gcp.container.NodePool(
                    spec.name,
                    name=spec.name,
                    project=args.project,
                    cluster=args.cluster_name,
                    location=args.location,
                    node_locations=list(spec.zones),
                    initial_node_count=spec.initial_per_zone,
                    autoscaling=autoscaling,
                    placement_policy=placement,
                    node_config=node_config,
                    management=gcp.container.NodePoolManagementArgs(
                        auto_repair=True, auto_upgrade=args.auto_upgrade
                    ),
                    upgrade_settings=upgrade,
                    # The autoscaler owns the node count after creation.
                    opts=pulumi.ResourceOptions(
                        parent=self,
                        ignore_changes=["initialNodeCount", "nodeCount"],
                        depends_on=after(
                            args.apis, CONTAINER, IMAGE_STREAMING
                        ),  # gcfs_config: image streaming
                    ),
                )
            )
        self.register_outputs({"pools": [p.name for p in self.pools]})
