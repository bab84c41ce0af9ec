"""The accelerator registry: what an accelerator kind means on each cloud, in one place.

Node groups (taints, labels, AMI types, scale-from-zero tags), workloads (the toleration, node affinity and
device request a pod uses), device plugins, policies, right-sizing, dashboards and the scheduling check all
read these facts from here, so they cannot disagree. Sources of the cloud facts:

- EKS accelerated AMIs (`AL2023_x86_64_NVIDIA`, `AL2023_ARM_64_NVIDIA`, `AL2023_x86_64_NEURON`) ship the driver;
  the device plugin runs as a DaemonSet we install (NVIDIA k8s-device-plugin chart, Neuron helm chart).
  EKS adds no accelerator label or taint of its own: the node group sets both.
- GKE installs the NVIDIA driver (`gpu_driver_installation_config`) and runs the GPU and TPU device plugins
  itself; it labels GPU nodes `cloud.google.com/gke-accelerator=<type>` and TPU nodes
  `cloud.google.com/gke-tpu-accelerator` / `cloud.google.com/gke-tpu-topology`, and taints them
  `nvidia.com/gpu=present:NoSchedule` / `google.com/tpu=present:NoSchedule`
  (cloud.google.com/kubernetes-engine/docs/how-to/gpus, .../tpus).
- The Neuron device plugin advertises `aws.amazon.com/neuron` (= `neurondevice`) and `aws.amazon.com/neuroncore`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from mlops_infra.components import catalog

Kind = Literal["gpu", "neuron", "tpu"]
KINDS: tuple[Kind, ...] = ("gpu", "neuron", "tpu")

# Labels every node group of the platform carries, whatever the cloud.
GROUP_LABEL = "mlops.platform/node-group"
ROLE_LABEL = "mlops.platform/role"

NVIDIA_GPU = "nvidia.com/gpu"
NEURON_DEVICE = "aws.amazon.com/neuron"
NEURON_DEVICE_ALIAS = "aws.amazon.com/neurondevice"
NEURON_CORE = "aws.amazon.com/neuroncore"
TPU_CHIP = "google.com/tpu"

GKE_GPU_LABEL = "cloud.google.com/gke-accelerator"
GKE_TPU_LABEL = "cloud.google.com/gke-tpu-accelerator"
GKE_TPU_TOPOLOGY_LABEL = "cloud.google.com/gke-tpu-topology"
# cluster-autoscaler's GPU label on AWS: marks a node as GPU while the device plugin starts, so the
# autoscaler does not add a second node for the same pending pod.
AWS_GPU_MODEL_LABEL = "k8s.amazonaws.com/accelerator"


@dataclass(frozen=True)
class NodeTaint:
    """A taint in Kubernetes spelling (`NoSchedule`)."""

    key: str
    value: str
    effect: str = "NoSchedule"


@dataclass(frozen=True)
class Accelerator:
    """One accelerator kind on one cloud."""

    kind: Kind
    cloud: str
    # The extended resource a pod requests, and every resource the device plugin advertises per node.
    resource: str
    advertised: tuple[str, ...]
    taint: NodeTaint
    taint_set_by: Literal["platform", "cloud", "cluster"]
    # The node label a pod selects these nodes by: (key, value); value None means "label exists".
    selector: tuple[str, str | None]
    # Who sets that label: our node group ("platform"), the cloud itself, or whoever runs the cluster.
    selector_set_by: Literal["platform", "cloud", "cluster"]
    ami_types: Mapping[str, str] = field(default_factory=dict)  # arch -> EKS AMI type
    driver: str = ""
    device_plugin: str = ""
    exporter: str | None = None

    def toleration(self) -> dict[str, str]:
        return {"key": self.taint.key, "operator": "Exists", "effect": self.taint.effect}

    def node_selector_requirement(self) -> dict[str, Any]:
        key, value = self.selector
        if value is None:
            return {"key": key, "operator": "Exists"}
        return {"key": key, "operator": "In", "values": [value]}

    def node_selector(self) -> dict[str, str]:
        """The selector as a `nodeSelector` map (only for selectors with a value; else use node_affinity)."""
        key, value = self.selector
        if value is None:
            raise ValueError(
                f"{self.kind} on {self.cloud} is selected by label existence: use node_affinity()"
            )
        return {key: value}

    def platform_node_labels(self) -> dict[str, str]:
        """Labels our node group must set for this kind (nothing where the cloud sets the selector label)."""
        key, value = self.selector
        return {key: value or "true"} if self.selector_set_by == "platform" else {}

    def node_affinity(self) -> dict[str, Any]:
        """Required node affinity to nodes of this kind (works for "label exists" selectors too)."""
        return {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchExpressions": [self.node_selector_requirement()]}]
                }
            }
        }

    def place(self, pod_spec: dict[str, Any], resources: dict[str, Any], count: int) -> None:
        """Put a pod on these nodes with `count` devices: toleration, node affinity, request and limit."""
        pod_spec["tolerations"] = [*pod_spec.get("tolerations", []), self.toleration()]
        pod_spec["affinity"] = {**pod_spec.get("affinity", {}), **self.node_affinity()}
        for section in ("requests", "limits"):
            resources.setdefault(section, {})[self.resource] = str(count)


REGISTRY: dict[tuple[str, str], Accelerator] = {
    ("gpu", "aws"): Accelerator(
        kind="gpu",
        cloud="aws",
        resource=NVIDIA_GPU,
        advertised=(NVIDIA_GPU,),
        taint=NodeTaint(NVIDIA_GPU, "true"),
        taint_set_by="platform",
        selector=("nvidia.com/gpu.present", "true"),
        selector_set_by="platform",
        ami_types={"x86_64": "AL2023_x86_64_NVIDIA", "arm64": "AL2023_ARM_64_NVIDIA"},
        driver="preinstalled in the EKS NVIDIA AMI",
        device_plugin="nvidia-device-plugin",
        exporter="dcgm-exporter",
    ),
    ("neuron", "aws"): Accelerator(
        kind="neuron",
        cloud="aws",
        resource=NEURON_DEVICE,
        advertised=(NEURON_DEVICE, NEURON_DEVICE_ALIAS, NEURON_CORE),
        taint=NodeTaint(NEURON_DEVICE, "true"),
        taint_set_by="platform",
        selector=("aws.amazon.com/neuron.present", "true"),
        selector_set_by="platform",
        ami_types={"x86_64": "AL2023_x86_64_NEURON"},
        driver="preinstalled in the EKS Neuron AMI",
        device_plugin="neuron-device-plugin",
        exporter="neuron-monitor",
    ),
    ("gpu", "gcp"): Accelerator(
        kind="gpu",
        cloud="gcp",
        resource=NVIDIA_GPU,
        advertised=(NVIDIA_GPU,),
        taint=NodeTaint(NVIDIA_GPU, "present"),
        taint_set_by="cloud",
        selector=(GKE_GPU_LABEL, None),
        selector_set_by="cloud",
        driver="installed by GKE (gpuDriverInstallationConfig)",
        device_plugin="GKE-managed",
    ),
    ("tpu", "gcp"): Accelerator(
        kind="tpu",
        cloud="gcp",
        resource=TPU_CHIP,
        advertised=(TPU_CHIP,),
        taint=NodeTaint(TPU_CHIP, "present"),
        taint_set_by="cloud",
        selector=(GKE_TPU_LABEL, None),
        selector_set_by="cloud",
        driver="part of the TPU VM image",
        device_plugin="GKE-managed",
    ),
    # A local cluster (kind, k3d, minikube) with GPUs: its owner installs the NVIDIA GPU operator, whose GPU
    # feature discovery labels GPU nodes `nvidia.com/gpu.present=true`; tolerate the usual taint in case.
    ("gpu", "local"): Accelerator(
        kind="gpu",
        cloud="local",
        resource=NVIDIA_GPU,
        advertised=(NVIDIA_GPU,),
        taint=NodeTaint(NVIDIA_GPU, ""),
        taint_set_by="cluster",
        selector=("nvidia.com/gpu.present", "true"),
        selector_set_by="cluster",
        driver="the host's",
        device_plugin="the cluster owner's (NVIDIA GPU operator)",
    ),
}

# Every extended resource any device plugin advertises -> its accelerator kind.
DEVICE_RESOURCES: dict[str, Kind] = {name: acc.kind for acc in REGISTRY.values() for name in acc.advertised}


class UnsupportedAccelerator(ValueError):
    """An accelerator kind the cloud does not offer (e.g. TPUs on AWS)."""


def accelerator(kind: str, cloud: str) -> Accelerator:
    found = REGISTRY.get((kind, cloud))
    if found is None:
        offered = sorted(c for k, c in REGISTRY if k == kind)
        raise UnsupportedAccelerator(
            f"{kind} accelerators are not available on {cloud}; "
            f"available on: {', '.join(offered) or 'no cloud'}"
        )
    return found


def supported_on(cloud: str) -> tuple[str, ...]:
    return tuple(k for k, c in REGISTRY if c == cloud)


def kind_of_resource(resource: str) -> Kind | None:
    """The accelerator kind of a device resource, shared GPU slices (`nvidia.com/gpu.shared`, MIG instances
    `nvidia.com/mig-<profile>`) included."""
    if resource == f"{NVIDIA_GPU}.shared" or resource.startswith("nvidia.com/mig-"):
        return "gpu"
    return DEVICE_RESOURCES.get(resource)


def devices_per_node(instance_type: str, resource: str) -> int:
    """How many units of `resource` one node of this type advertises without sharing (NeuronCores count cores;
    shared slices depend on the group's `GpuSharing`, see `GpuSharing.devices_per_node`)."""
    itype = catalog.instance(instance_type)
    kind = DEVICE_RESOURCES.get(resource)
    if kind is None or itype.accelerator_kind != kind:
        return 0
    return itype.neuron_cores if resource == NEURON_CORE else itype.accelerator_count


def kube_state_metrics_resource_regex() -> str:
    """The accelerator resources as kube-state-metrics names them in `resource` (`.` and `/` -> `_`)."""
    names = dict.fromkeys(acc.resource for acc in REGISTRY.values())
    return "|".join(name.replace(".", "_").replace("/", "_") for name in names)


def group_labels(group_name: str, role: str) -> dict[str, str]:
    """The labels every node group sets on its nodes."""
    return {GROUP_LABEL: group_name, ROLE_LABEL: role}


def cloud_node_labels(cloud: str, instance_type: str, topology: str | None = None) -> dict[str, str]:
    """Accelerator labels the cloud itself puts on a node of this type (GKE), or the model label our AWS
    groups set for cluster-autoscaler."""
    itype = catalog.find_instance(instance_type)
    if itype is None or itype.accelerator_kind is None:
        return {}
    if cloud == "gcp" and itype.gke_accelerator:
        if itype.accelerator_kind == "tpu":
            labels = {GKE_TPU_LABEL: itype.gke_accelerator}
            if topology:
                labels[GKE_TPU_TOPOLOGY_LABEL] = topology.strip().lower()
            return labels
        return {GKE_GPU_LABEL: itype.gke_accelerator}
    if cloud == "aws" and itype.accelerator_kind == "gpu" and itype.accelerator:
        return {AWS_GPU_MODEL_LABEL: itype.accelerator}
    return {}


# ---------------------------------------------------------------------------------------------------------
# GPU sharing: several pods on one GPU, by time-slicing (CUDA time slices, no memory isolation) or MIG (the GPU
# split into isolated instances of one profile, A100/H100 only; profiles in catalog_data/gpu_models.yaml).
#
# EKS: the NVIDIA device plugin (chart 0.17.4) reads a config per node, chosen by the node label
# `nvidia.com/device-plugin.config` among the chart's `config.map` entries (README "Updating Per-Node Configuration
# With a Node Label"). Time-slicing with `renameByDefault: true` advertises `nvidia.com/gpu.shared` (GPUs x replicas)
# instead of `nvidia.com/gpu`, so a pod asking for a whole GPU never lands on a slice; `failRequestsGreaterThanOne`
# refuses requests above 1 (more slices buy no more GPU time). MIG with `migStrategy: mixed` advertises
# `nvidia.com/mig-<profile>` per instance; the MIG manager partitions the GPUs as the node label
# `nvidia.com/mig.config` (`all-<profile>`) says. GPU feature discovery is off here (nodes are labelled by their
# group), so the group sets the labels GFD would: `nvidia.com/gpu.sharing-strategy`, `nvidia.com/gpu.replicas`,
# `nvidia.com/mig.strategy`.
# GKE: the node pool's `gpu_sharing_config` (TIME_SHARING, 2-48 clients per GPU) or `gpu_partition_size` (a MIG
# profile); GKE's device plugin keeps the resource name `nvidia.com/gpu` and labels the nodes
# `cloud.google.com/gke-gpu-sharing-strategy`, `cloud.google.com/gke-max-shared-clients-per-gpu`,
# `cloud.google.com/gke-gpu-partition-size`, which workloads must select (GKE docs "timesharing-gpus",
# "gpus-multi" (MIG)).

DEVICE_PLUGIN_CONFIG_LABEL = "nvidia.com/device-plugin.config"
SHARING_STRATEGY_LABEL = "nvidia.com/gpu.sharing-strategy"
GPU_REPLICAS_LABEL = "nvidia.com/gpu.replicas"
MIG_CONFIG_LABEL = "nvidia.com/mig.config"
MIG_STRATEGY_LABEL = "nvidia.com/mig.strategy"
GKE_SHARING_STRATEGY_LABEL = "cloud.google.com/gke-gpu-sharing-strategy"
GKE_MAX_SHARED_CLIENTS_LABEL = "cloud.google.com/gke-max-shared-clients-per-gpu"
GKE_PARTITION_SIZE_LABEL = "cloud.google.com/gke-gpu-partition-size"
SHARED_GPU = f"{NVIDIA_GPU}.shared"
MIG_PREFIX = "nvidia.com/mig-"
MAX_TIME_SLICES = 48  # GKE's limit for max_shared_clients_per_gpu; the NVIDIA plugin has none
SharingMode = Literal["time-slicing", "mig"]


def mig_resource(profile: str) -> str:
    return f"{MIG_PREFIX}{profile}"


@dataclass(frozen=True)
class GpuSharing:
    """How a GPU group shares its GPUs: `replicas` time slices per GPU, or MIG instances of `profile`."""

    mode: SharingMode
    replicas: int = 1
    profile: str | None = None

    def problems(self, instance_types: tuple[str, ...]) -> list[str]:
        """Why this sharing cannot run on these instance types (empty when it can)."""
        if self.mode == "time-slicing":
            if self.profile is not None or not 2 <= self.replicas <= MAX_TIME_SLICES:
                return [f"time-slicing takes replicas 2-{MAX_TIME_SLICES} and no profile"]
            return []
        if self.profile is None or self.replicas != 1:
            return ["mig takes a profile (e.g. 1g.5gb) and no replicas"]
        found = []
        for name in instance_types:
            profiles = catalog.mig_profiles(name)
            if self.profile not in profiles:
                itype = catalog.instance(name)
                offered = ", ".join(profiles) or "none: its GPU has no MIG"
                found.append(
                    f"{name} ({itype.accelerator} {itype.accelerator_memory_gib:g} GB) has no MIG profile "
                    f"{self.profile}; its profiles: {offered}"
                )
        return found

    def slices_per_gpu(self, instance_type: str) -> int:
        if self.mode == "time-slicing":
            return self.replicas
        return catalog.mig_profiles(instance_type).get(str(self.profile), 0)

    def resource(self, cloud: str) -> str:
        """The extended resource a pod requests for one slice."""
        if cloud == "gcp":
            return NVIDIA_GPU
        return SHARED_GPU if self.mode == "time-slicing" else mig_resource(str(self.profile))

    def devices_per_node(self, instance_type: str, cloud: str) -> dict[str, int]:
        """Every resource a node of this type advertises (whole GPUs are no longer offered on EKS)."""
        gpus = catalog.instance(instance_type).accelerator_count
        return {self.resource(cloud): gpus * self.slices_per_gpu(instance_type)}

    def node_labels(self, cloud: str, config_name: str) -> dict[str, str]:
        """Labels the platform sets on the group's nodes (EKS), or GKE sets itself (what workloads select)."""
        if cloud == "gcp":
            if self.mode == "mig":
                return {GKE_PARTITION_SIZE_LABEL: str(self.profile)}
            return {
                GKE_SHARING_STRATEGY_LABEL: "time-sharing",
                GKE_MAX_SHARED_CLIENTS_LABEL: str(self.replicas),
            }
        labels = {DEVICE_PLUGIN_CONFIG_LABEL: config_name}
        if self.mode == "mig":
            return labels | {MIG_CONFIG_LABEL: f"all-{self.profile}", MIG_STRATEGY_LABEL: "mixed"}
        return labels | {SHARING_STRATEGY_LABEL: "time-slicing", GPU_REPLICAS_LABEL: str(self.replicas)}

    def workload_selector(self, cloud: str) -> dict[str, str]:
        """The node selector of a pod that runs on one slice of this sharing."""
        labels = self.node_labels(cloud, "")
        return {
            k: v for k, v in labels.items() if k != DEVICE_PLUGIN_CONFIG_LABEL and k != MIG_STRATEGY_LABEL
        }

    def device_plugin_config(self) -> dict[str, Any]:
        """The NVIDIA device plugin's config file for nodes of this group (EKS)."""
        if self.mode == "mig":
            return {"version": "v1", "flags": {"migStrategy": "mixed"}}
        return {
            "version": "v1",
            "flags": {"migStrategy": "none"},
            "sharing": {
                "timeSlicing": {
                    "renameByDefault": True,
                    "failRequestsGreaterThanOne": True,
                    "resources": [{"name": NVIDIA_GPU, "replicas": self.replicas}],
                }
            },
        }

    def place(self, pod_spec: dict[str, Any], resources: dict[str, Any], cloud: str) -> None:
        """Put a pod on one slice: the GPU toleration, the sharing labels as node selector, a request of 1."""
        gpu = accelerator("gpu", cloud)
        pod_spec["tolerations"] = [*pod_spec.get("tolerations", []), gpu.toleration()]
        pod_spec["nodeSelector"] = {**pod_spec.get("nodeSelector", {}), **self.workload_selector(cloud)}
        for section in ("requests", "limits"):
            resources.setdefault(section, {})[self.resource(cloud)] = "1"


def plugin_devices(
    config: Mapping[str, Any], instance_type: str, node_labels: Mapping[str, str]
) -> dict[str, int]:
    """What the NVIDIA device plugin advertises on a node, given the config file it applies there (0.17.4:
    time-slicing multiplies and may rename `nvidia.com/gpu`; `migStrategy: mixed` advertises one resource per MIG
    profile, as partitioned by the MIG manager from the `nvidia.com/mig.config` label)."""
    gpus = catalog.instance(instance_type).accelerator_count
    flags = config.get("flags") or {}
    if flags.get("migStrategy") == "mixed":
        layout = str(node_labels.get(MIG_CONFIG_LABEL, ""))
        profile = layout.removeprefix("all-")
        per_gpu = catalog.mig_profiles(instance_type).get(profile, 0)
        return {mig_resource(profile): gpus * per_gpu} if layout.startswith("all-") and per_gpu else {}
    slicing = (config.get("sharing") or {}).get("timeSlicing") or {}
    for entry in slicing.get("resources") or []:
        if isinstance(entry, Mapping) and entry.get("name") == NVIDIA_GPU:
            name = SHARED_GPU if slicing.get("renameByDefault") else NVIDIA_GPU
            return {name: gpus * int(entry.get("replicas", 1))}
    return {NVIDIA_GPU: gpus}


def sharing_from_labels(labels: Mapping[str, str]) -> GpuSharing | None:
    """The sharing a node's labels announce (the inverse of `GpuSharing.node_labels`, either cloud)."""
    try:
        if labels.get(SHARING_STRATEGY_LABEL) == "time-slicing":
            return GpuSharing("time-slicing", int(labels.get(GPU_REPLICAS_LABEL, "1")))
        if labels.get(GKE_SHARING_STRATEGY_LABEL) == "time-sharing":
            return GpuSharing("time-slicing", int(labels.get(GKE_MAX_SHARED_CLIENTS_LABEL, "1")))
    except ValueError:
        return None
    layout = labels.get(MIG_CONFIG_LABEL, "")
    if layout.startswith("all-"):
        return GpuSharing("mig", profile=layout.removeprefix("all-"))
    if labels.get(GKE_PARTITION_SIZE_LABEL):
        return GpuSharing("mig", profile=labels[GKE_PARTITION_SIZE_LABEL])
    return None
