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
    return DEVICE_RESOURCES.get(resource)


def devices_per_node(instance_type: str, resource: str) -> int:
    """How many units of `resource` one node of this type advertises (NeuronCores count cores)."""
    itype = catalog.instance(instance_type)
    kind = kind_of_resource(resource)
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
