"""Right-sizing: for each accelerator node group, the cheapest catalog shape that still fits its workloads.

Inputs are the plan's own workloads (Deployments, Rollouts, StatefulSets, Jobs, CronJobs) and their
requests, so the answer follows what would really be deployed. Per candidate instance type:

- allocatable = capacity - kube/system reserved (EKS AMI formula: 255 MiB + 11 MiB x max pods; GKE's
  tiered memory formula; CPU 6 % / 1 % / 0.5 % / 0.25 % tiers on both) - 100 MiB eviction threshold
  - per-node DaemonSets (device plugin, DCGM / Neuron monitor, node-exporter, CNI, kube-proxy, CSI);
- the steady replicas (Deployments/Rollouts at `spec.replicas`) are bin-packed first-fit-decreasing;
  Jobs/CronJobs must fit on one node but are not counted as steady load (they come and go);
- candidates keep the accelerator model (A10G stays A10G: the model's latency and memory fit are known).

Monthly figures use the group's capacity type and the price in the stack's region (price tables), 730 h.
`--usage` takes observed quantiles per workload and recommends requests the way VPA (quantile + 15 %) and
Kubecost (quantile / 0.7) do, then re-packs with the VPA-style requests.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from mlops_infra.components import accelerators, catalog, pricing
from mlops_infra.components.k8s.objects import dig, pod_spec_of, quantity
from mlops_infra.platform.config import NodeGroupConfig
from mlops_infra.tooling.cost.estimator import HOURS_PER_MONTH

if TYPE_CHECKING:
    from rich.console import Console

    from mlops_infra.tooling.plan import Plan

GIB = 2.0**30
MIB = 2.0**20
EVICTION_MIB = 100.0
VPA_MARGIN = 1.15
SHARE_BELOW = 0.5  # a workload using at most half a GPU (observed) leaves most of it idle: time-slice it
KUBECOST_TARGET_UTILIZATION = 0.7
WORKLOAD_KINDS = ("Deployment", "Rollout", "StatefulSet", "Job", "CronJob")  # DaemonSets are node overhead

# Per-node DaemonSet requests (cpu cores, memory MiB). Device plugin / DCGM / Neuron monitor figures are the
# requests our accelerator add-ons set (k8s/accelerators.py); the others are typical upstream requests and
# are assumptions - edit here if your add-ons differ.
DAEMONSETS: dict[str, list[tuple[str, float, float]]] = {
    "aws": [
        ("aws-node (VPC CNI)", 0.025, 0.0),
        ("kube-proxy", 0.1, 0.0),
        ("ebs-csi-node", 0.03, 120.0),
        ("node-exporter", 0.05, 64.0),
    ],
    "gcp": [
        ("kube-proxy", 0.1, 0.0),
        ("fluentbit-gke", 0.1, 200.0),
        ("gke-metrics-agent", 0.01, 60.0),
        ("pdcsi-node", 0.01, 20.0),
        ("node-exporter", 0.05, 64.0),
    ],
    "gpu": [("nvidia-device-plugin", 0.05, 64.0), ("dcgm-exporter", 0.1, 256.0)],
    "neuron": [("neuron-device-plugin", 0.05, 64.0), ("neuron-monitor", 0.1, 100.0)],
    "tpu": [("tpu-device-plugin (GKE)", 0.05, 64.0)],
}


# ------------------------------------------------------------------------------------------------ reservations


def reserved_cpu(vcpu: int) -> float:
    """Cores kept for kubelet/system: 6 % of the first core, 1 % of the second, 0.5 % of cores 3-4,
    0.25 % above (EKS AMI bootstrap and GKE use the same tiers)."""
    tiers = ((1, 0.06), (1, 0.01), (2, 0.005), (math.inf, 0.0025))
    left, total = float(vcpu), 0.0
    for size, share in tiers:
        used = min(left, size)
        total += used * share
        left -= used
        if left <= 0:
            break
    return total


def reserved_memory_mib(itype: catalog.InstanceType) -> float:
    """kube-reserved memory plus the 100 MiB hard-eviction threshold."""
    if itype.cloud == "aws":
        return 255.0 + 11.0 * itype.max_pods + EVICTION_MIB
    gib = itype.memory_gib
    tiers = ((4, 0.25), (4, 0.20), (8, 0.10), (112, 0.06), (math.inf, 0.02))
    left, total = gib, 0.0
    for size, share in tiers:
        used = min(left, size)
        total += used * share
        left -= used
        if left <= 0:
            break
    return total * 1024 + EVICTION_MIB


@dataclass(frozen=True)
class Allocatable:
    cpu: float
    memory_mib: float
    devices: int
    pods: int


def allocatable(
    itype: catalog.InstanceType,
    kind: str,
    device_resource: str,
    sharing: accelerators.GpuSharing | None = None,
) -> Allocatable:
    """What the node offers pods; a shared GPU offers its slices (time slices or MIG instances)."""
    overhead = [*DAEMONSETS.get(itype.cloud, []), *DAEMONSETS.get(kind, [])]
    if sharing is not None and itype.accelerator_kind == "gpu":
        devices = sharing.devices_per_node(itype.name, itype.cloud).get(device_resource, 0)
    else:
        devices = accelerators.devices_per_node(itype.name, device_resource)
    return Allocatable(
        cpu=itype.vcpu - reserved_cpu(itype.vcpu) - sum(d[1] for d in overhead),
        memory_mib=itype.memory_gib * 1024 - reserved_memory_mib(itype) - sum(d[2] for d in overhead),
        devices=devices,
        pods=itype.max_pods - len(overhead),
    )


# ------------------------------------------------------------------------------------------------ workloads


@dataclass(frozen=True)
class PodShape:
    cpu: float
    memory_mib: float
    devices: float


@dataclass(frozen=True)
class Workload:
    key: str  # namespace/name
    kind: str
    replicas: int
    shape: PodShape
    device_resource: str | None
    node_selector: Mapping[str, str]

    @property
    def accelerator_kind(self) -> str | None:
        return accelerators.kind_of_resource(self.device_resource or "")

    @property
    def steady(self) -> bool:
        return self.kind not in {"Job", "CronJob"}


def _pod_shape(spec: Mapping[str, Any]) -> tuple[PodShape, str | None]:
    cpu = mem = devices = 0.0
    device_resource: str | None = None
    for container in spec.get("containers") or []:
        res = container.get("resources") or {}
        merged = {**(res.get("limits") or {}), **(res.get("requests") or {})}
        cpu += quantity(merged.get("cpu", 0)) or 0.0
        mem += (quantity(merged.get("memory", 0)) or 0.0) / MIB
        for name, value in merged.items():
            if accelerators.kind_of_resource(str(name)) is not None:  # whole devices or slices of shared GPUs
                devices += quantity(value) or 0.0
                device_resource = str(name)
    return PodShape(cpu, mem, devices), device_resource


def workloads(plan: Plan) -> list[Workload]:
    found = []
    for r in plan.k8s_objects():
        kind = r.type.rsplit(":", 1)[-1]
        spec = pod_spec_of(kind, r.inputs) if kind in WORKLOAD_KINDS else None
        if spec is None:
            continue
        shape, device_resource = _pod_shape(spec)
        replicas = int(dig(r.inputs, "spec", "replicas") or 1) if kind not in {"Job", "CronJob"} else 1
        meta = r.inputs.get("metadata") or {}
        found.append(
            Workload(
                f"{meta.get('namespace', '')}/{meta.get('name', r.name)}",
                kind,
                replicas,
                shape,
                device_resource,
                dict(spec.get("nodeSelector") or {}),
            )
        )
    return found


# ------------------------------------------------------------------------------------------------ packing


@dataclass(frozen=True)
class Packing:
    instance_type: str
    nodes: int
    hourly: float
    monthly: float
    waste: dict[str, float]  # share of allocatable left unused, per resource
    stranded_devices: int

    def to_json(self) -> dict[str, Any]:
        return {
            "instanceType": self.instance_type,
            "nodes": self.nodes,
            "hourly": round(self.hourly, 4),
            "monthly": round(self.monthly, 2),
            "waste": {k: round(v, 3) for k, v in self.waste.items()},
            "strandedDevices": self.stranded_devices,
        }


def fits(shape: PodShape, alloc: Allocatable) -> bool:
    return (
        shape.cpu <= alloc.cpu
        and shape.memory_mib <= alloc.memory_mib
        and shape.devices <= alloc.devices
        and alloc.pods >= 1
    )


def pack(
    pods: Sequence[PodShape],
    itype: catalog.InstanceType,
    kind: str,
    device_resource: str,
    spot: bool,
    region: str | None = None,
    sharing: accelerators.GpuSharing | None = None,
) -> Packing | None:
    """First-fit decreasing onto identical nodes; None if some pod fits no node of this type, or the type has
    no price in `region` (default: the reference region)."""
    hourly = pricing.hourly(itype.name, spot=spot, region=region)
    if hourly is None:
        return None
    alloc = allocatable(itype, kind, device_resource, sharing)
    if alloc.cpu <= 0 or alloc.memory_mib <= 0 or not all(fits(p, alloc) for p in pods):
        return None
    nodes: list[list[float]] = []  # free cpu, memory, devices, pods
    for pod in sorted(pods, key=lambda p: (p.devices, p.cpu, p.memory_mib), reverse=True):
        for free in nodes:
            if pod.cpu <= free[0] and pod.memory_mib <= free[1] and pod.devices <= free[2] and free[3] >= 1:
                break
        else:
            free = [alloc.cpu, alloc.memory_mib, float(alloc.devices), float(alloc.pods)]
            nodes.append(free)
        free[0] -= pod.cpu
        free[1] -= pod.memory_mib
        free[2] -= pod.devices
        free[3] -= 1
    count = len(nodes)
    capacity = {
        "cpu": alloc.cpu * count,
        "memory": alloc.memory_mib * count,
        "devices": float(alloc.devices * count),
    }
    used = {
        "cpu": sum(p.cpu for p in pods),
        "memory": sum(p.memory_mib for p in pods),
        "devices": sum(p.devices for p in pods),
    }
    waste = {k: (1 - used[k] / capacity[k]) if capacity[k] else 0.0 for k in capacity}
    stranded = int(sum(free[2] for free in nodes))
    return Packing(itype.name, count, hourly, count * hourly * HOURS_PER_MONTH, waste, stranded)


# ------------------------------------------------------------------------------------------------ report


@dataclass
class GroupAdvice:
    group: str
    kind: str
    capacity: str
    workloads: list[str]
    current: Packing | None
    recommended: Packing | None
    monthly_savings: float
    findings: list[str] = field(default_factory=list)
    replicas: int = 0  # steady pods the packings carry: the cost per replica divides by it
    sharing: SharingAdvice | None = None

    def per_replica(self, packing: Packing | None) -> float | None:
        return round(packing.monthly / self.replicas, 2) if packing and self.replicas else None

    def to_json(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "acceleratorKind": self.kind,
            "capacity": self.capacity,
            "workloads": self.workloads,
            "current": self.current.to_json() if self.current else None,
            "recommended": self.recommended.to_json() if self.recommended else None,
            "monthlySavings": round(self.monthly_savings, 2),
            "monthlyPerReplica": {
                "current": self.per_replica(self.current),
                "recommended": self.per_replica(self.recommended),
            },
            "sharing": self.sharing.to_json() if self.sharing else None,
            "findings": self.findings,
        }


@dataclass(frozen=True)
class SharingAdvice:
    """Time-slicing a group whose pods leave most of each GPU idle: slices per GPU, the packing, the saving."""

    observed_gpu: float  # the busiest workload's observed share of one GPU
    replicas_per_gpu: int
    packing: Packing
    monthly_savings: float

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": "time-slicing",
            "replicas": self.replicas_per_gpu,
            "observedGpu": round(self.observed_gpu, 3),
            "packing": self.packing.to_json(),
            "monthlySavings": round(self.monthly_savings, 2),
        }


@dataclass
class RequestAdvice:
    workload: str
    current: dict[str, float]
    observed: dict[str, float]
    vpa: dict[str, float]
    kubecost: dict[str, float]

    def to_json(self) -> dict[str, Any]:
        return {
            "workload": self.workload,
            "current": self.current,
            "observed": self.observed,
            "recommended": self.vpa,
            "kubecost": self.kubecost,
        }


@dataclass
class Report:
    stack: str
    environment: str
    groups: list[GroupAdvice]
    requests: list[RequestAdvice] = field(default_factory=list)

    @property
    def monthly_savings(self) -> float:
        return sum(g.monthly_savings for g in self.groups)

    def to_json(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "environment": self.environment,
            "currency": "USD",
            "monthlySavings": round(self.monthly_savings, 2),
            "groups": [g.to_json() for g in self.groups],
            "requests": [r.to_json() for r in self.requests],
        }


def _group_labels(group: NodeGroupConfig, cloud: str) -> dict[str, str]:
    """The labels a node of the group carries: the platform's, the group's own and the cloud's."""
    labels = {**accelerators.group_labels(group.name, group.role), **group.labels}
    if group.role in accelerators.KINDS:
        labels |= accelerators.accelerator(group.role, cloud).platform_node_labels()
        labels |= accelerators.cloud_node_labels(cloud, group.instance_types[0], group.tpu_topology)
    if group.sharing is not None:
        labels |= group.sharing.sharing().node_labels(cloud, group.name)
    return labels


def _targets(workload: Workload, groups: list[NodeGroupConfig], cloud: str) -> NodeGroupConfig | None:
    same_kind = [g for g in groups if g.role == workload.accelerator_kind]
    for g in same_kind:
        labels = _group_labels(g, cloud)
        if workload.node_selector and all(labels.get(k) == v for k, v in workload.node_selector.items()):
            return g
    return same_kind[0] if same_kind else None


def _current_type(group: NodeGroupConfig, region: str | None) -> catalog.InstanceType | None:
    """The type the group runs: on-demand the first, spot the cheapest; only types priced in `region`."""
    spot = group.capacity == "spot"
    priced = [
        (hourly, i)
        for i in (catalog.find_instance(n) for n in group.instance_types)
        if i is not None and (hourly := pricing.hourly(i.name, spot=spot, region=region)) is not None
    ]
    if not priced:
        return None
    return min(priced, key=lambda p: p[0])[1] if spot else priced[0][1]


def _candidates(current: catalog.InstanceType) -> list[catalog.InstanceType]:
    """Same accelerator model (one group per model keeps node labels true and latency comparable), same
    architecture; TPU slice shapes are tied to the topology, so a TPU group is only compared to itself."""
    if current.accelerator_kind == "tpu":
        return [current]
    return [
        i
        for i in catalog.instances(current.cloud, current.accelerator_kind)
        if i.accelerator == current.accelerator and i.arch == current.arch
    ]


def _sharing_advice(
    group: NodeGroupConfig,
    assigned: list[Workload],
    load: list[PodShape],
    current: Packing,
    gpu_use: Mapping[str, float],
    cloud: str,
    region: str | None = None,
) -> SharingAdvice | None:
    """When every steady workload of an unshared GPU group uses at most SHARE_BELOW of a GPU (observed, `--usage`),
    the cheapest time-sliced packing: slices per GPU so that each pod still gets its observed share plus the VPA
    margin, one slice per pod."""
    used = [gpu_use[w.key] for w in assigned if w.steady and w.key in gpu_use]
    if group.role != "gpu" or group.sharing is not None or not used or max(used) > SHARE_BELOW:
        return None
    busiest = max(used)
    per_gpu = accelerators.MAX_TIME_SLICES if busiest <= 0 else math.floor(1 / (busiest * VPA_MARGIN))
    sharing = accelerators.GpuSharing("time-slicing", max(2, min(accelerators.MAX_TIME_SLICES, per_gpu)))
    resource = sharing.resource(cloud)
    sliced = [PodShape(p.cpu, p.memory_mib, 1.0) for p in load]
    spot = group.capacity == "spot"
    options = [
        p
        for itype in _candidates(catalog.instance(current.instance_type))
        if (p := pack(sliced, itype, "gpu", resource, spot, region, sharing)) is not None
    ]
    best = min(options, key=lambda p: (p.monthly, p.instance_type), default=None)
    if best is None or best.monthly >= current.monthly - 0.005:
        return None
    return SharingAdvice(busiest, sharing.replicas, best, current.monthly - best.monthly)


def advise_group(
    group: NodeGroupConfig,
    assigned: list[Workload],
    environment: str,
    cloud: str,
    region: str | None = None,
    gpu_use: Mapping[str, float] | None = None,
) -> GroupAdvice:
    kind = group.role
    spot = group.capacity == "spot"
    sharing = group.sharing.sharing() if group.sharing else None
    advice = GroupAdvice(group.name, kind, group.capacity, [w.key for w in assigned], None, None, 0.0)
    if environment != "prod" and group.min_size > 0:
        advice.findings.append(
            f"keeps {group.min_size} node(s) outside prod; set minSize: 0 so idle accelerators scale to zero"
        )
    current = _current_type(group, region)
    if current is None:
        advice.findings.append(f"no price for its instance types in {region or 'the reference region'}")
        return advice
    if not assigned:
        advice.findings.append(
            "no workload of this stack requests its accelerators; it only costs while "
            "other pods scale it up - keep minSize 0 or remove the group"
        )
        return advice
    device_resource = next(
        (w.device_resource for w in assigned if w.device_resource),
        accelerators.accelerator(kind, cloud).resource,
    )
    steady = [w.shape for w in assigned if w.steady for _ in range(w.replicas)]
    transient = [w.shape for w in assigned if not w.steady]
    for w in assigned:
        if w.shape.devices and not math.isclose(w.shape.devices, round(w.shape.devices)):
            advice.findings.append(f"{w.key}: {device_resource} must be whole devices")
    load = steady or transient[:1]  # a group that only runs jobs needs room for one job
    advice.replicas = len(load)
    advice.current = pack(load, current, kind, device_resource, spot, region, sharing)
    if advice.current is None:
        advice.findings.append(f"a pod of {', '.join(advice.workloads)} does not fit {current.name} at all")
    elif advice.current.stranded_devices:
        advice.findings.append(
            f"{advice.current.stranded_devices} {device_resource} device(s) stranded on {current.name}: the nodes "
            "the steady pods need hold devices no pod requests; use a smaller type or pack more replicas"
        )
    options = []
    for itype in _candidates(current):
        if transient and not all(
            fits(t, allocatable(itype, kind, device_resource, sharing)) for t in transient
        ):
            continue
        packing = pack(load, itype, kind, device_resource, spot, region, sharing)
        if packing is not None:
            options.append(packing)
    if options:
        best = min(options, key=lambda p: (p.monthly, p.instance_type))
        if advice.current is None or best.monthly < advice.current.monthly - 0.005:
            advice.recommended = best
            advice.monthly_savings = (advice.current.monthly - best.monthly) if advice.current else 0.0
    if advice.current is not None:
        advice.sharing = _sharing_advice(group, assigned, load, advice.current, gpu_use or {}, cloud, region)
    if advice.sharing is not None:
        tip = advice.sharing
        advice.findings.append(
            f"{', '.join(advice.workloads)} use {tip.observed_gpu:.0%} of a GPU (observed): time-slicing "
            f"{tip.replicas_per_gpu} replicas per GPU (nodeGroups[].sharing: {{mode: time-slicing, replicas: "
            f"{tip.replicas_per_gpu}}}, workloads.serving.sharedGpu) runs them on {tip.packing.nodes} x "
            f"{tip.packing.instance_type} = {tip.packing.monthly:,.2f} USD/month, saving "
            f"{tip.monthly_savings:,.2f} USD/month"
        )
    return advice


def rightsize(plan: Plan, observed: Mapping[str, Mapping[str, float]] | None = None) -> Report:
    config = plan.config
    if config is None:
        raise RightsizeError(
            "right-sizing reads the node groups of a stack config; this plan has none (--program)"
        )
    groups = [g for g in config.node_groups if g.accelerated]
    found = workloads(plan)
    report = Report(plan.stack, config.environment, [])
    gpu_use = {key: float(seen["gpu"]) for key, seen in (observed or {}).items() if "gpu" in seen}
    if observed:
        report.requests, found = _apply_usage(found, observed)
    by_group: dict[str, list[Workload]] = {g.name: [] for g in groups}
    for w in found:
        if w.accelerator_kind:
            target = _targets(w, groups, config.cloud)
            if target is not None:
                by_group[target.name].append(w)
    report.groups = [
        advise_group(g, by_group[g.name], config.environment, config.cloud, config.region, gpu_use)
        for g in groups
    ]
    return report


class RightsizeError(ValueError):
    """A plan right-sizing cannot read."""


# ------------------------------------------------------------------------------------------------ usage


class WorkloadUsageError(ValueError):
    """A usage file for `rightsize --usage` that cannot be used; the message names file and key."""


def load_workload_usage(path: Path) -> dict[str, dict[str, float]]:
    """`{workloads: {"serving/fraud": {cpu: "450m", memory: "900Mi", gpu: 1}}}`: observed p95 per workload."""
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise WorkloadUsageError(f"{path}: cannot be read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise WorkloadUsageError(f"{path}: not valid YAML/JSON: {exc}") from None
    entries = doc.get("workloads") if isinstance(doc, dict) else None
    if not isinstance(entries, dict) or not entries:
        raise WorkloadUsageError(
            f"{path}: expected `workloads: {{<namespace>/<name>: {{cpu, memory, gpu}}}}`"
        )
    out: dict[str, dict[str, float]] = {}
    for key, values in entries.items():
        if not isinstance(values, dict):
            raise WorkloadUsageError(f"{path}: workloads.{key}: expected a mapping of cpu, memory, gpu")
        parsed: dict[str, float] = {}
        for name, raw in values.items():
            if name not in {"cpu", "memory", "gpu"}:
                raise WorkloadUsageError(
                    f"{path}: workloads.{key}.{name}: unknown; allowed: cpu, memory, gpu"
                )
            value = quantity(raw)
            if value is None or value < 0:
                raise WorkloadUsageError(f"{path}: workloads.{key}.{name}: got {raw!r}: not a quantity")
            parsed[name] = value / MIB if name == "memory" else value
        out[str(key)] = parsed
    return out


def _apply_usage(
    found: list[Workload], observed: Mapping[str, Mapping[str, float]]
) -> tuple[list[RequestAdvice], list[Workload]]:
    advice: list[RequestAdvice] = []
    updated: list[Workload] = []
    for w in found:
        seen = observed.get(w.key)
        if not seen:
            updated.append(w)
            continue
        current = {"cpu": w.shape.cpu, "memoryMib": w.shape.memory_mib, "devices": w.shape.devices}
        obs = {
            "cpu": seen.get("cpu", w.shape.cpu),
            "memoryMib": seen.get("memory", w.shape.memory_mib),
            "devices": seen.get("gpu", w.shape.devices),
        }
        vpa = {
            "cpu": math.ceil(obs["cpu"] * VPA_MARGIN * 100) / 100,
            "memoryMib": float(math.ceil(obs["memoryMib"] * VPA_MARGIN)),
            "devices": float(max(1, math.ceil(obs["devices"]))) if w.shape.devices else 0.0,
        }
        kubecost = {
            "cpu": round(obs["cpu"] / KUBECOST_TARGET_UTILIZATION, 3),
            "memoryMib": round(obs["memoryMib"] / KUBECOST_TARGET_UTILIZATION, 1),
            "devices": float(math.ceil(obs["devices"] / KUBECOST_TARGET_UTILIZATION))
            if w.shape.devices
            else 0.0,
        }
        advice.append(RequestAdvice(w.key, current, obs, vpa, kubecost))
        shape = PodShape(vpa["cpu"], vpa["memoryMib"], vpa["devices"])
        updated.append(Workload(w.key, w.kind, w.replicas, shape, w.device_resource, w.node_selector))
    return advice, updated


def print_report(report: Report, out: Console) -> None:
    from rich.table import Table

    table = Table(title=f"{report.stack}: accelerator groups ({report.environment})")
    for column in ("group", "workloads", "current", "recommended", "saving/month", "findings"):
        table.add_column(column, overflow="fold")
    for g in report.groups:
        cur = (
            f"{g.current.nodes} x {g.current.instance_type} = {g.current.monthly:,.2f}" if g.current else "-"
        )
        rec = (
            f"{g.recommended.nodes} x {g.recommended.instance_type} = {g.recommended.monthly:,.2f}"
            if g.recommended
            else "keep"
        )
        table.add_row(
            g.group,
            ", ".join(g.workloads) or "-",
            cur,
            rec,
            f"{g.monthly_savings:,.2f}",
            "; ".join(g.findings),
        )
    out.print(table)
    if report.requests:
        req = Table(title="requests from observed usage (VPA-style: quantile x 1.15; Kubecost: / 0.7)")
        for column in ("workload", "current cpu/mem/dev", "observed", "recommended", "kubecost"):
            req.add_column(column)
        for r in report.requests:

            def fmt(d: Mapping[str, float]) -> str:
                return f"{d['cpu']:g} / {d['memoryMib']:.0f}Mi / {d['devices']:g}"

            req.add_row(r.workload, fmt(r.current), fmt(r.observed), fmt(r.vpa), fmt(r.kubecost))
        out.print(req)
    out.print(f"total monthly saving: {report.monthly_savings:,.2f} USD")
