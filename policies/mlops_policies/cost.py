"""Cost rules: stay within budget, let accelerators scale to zero on spot outside prod, bound every group,
use priced (and allowed) machine types, and never request more accelerators than a node has."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mlops_infra.components import accelerators, catalog, pricing
from mlops_infra.components.aws import karpenter_types
from mlops_infra.tooling.cost.estimator import Schedule, estimate
from mlops_policies.model import (
    Resource,
    Rule,
    as_list,
    containers,
    display,
    environment_of,
    pod_spec,
    quantity,
)
from mlops_policies.security import EKS_NODE_GROUP, GKE_NODE_POOL, matches_any

NODE_POOL = "kubernetes:karpenter.sh/v1:NodePool"

StackFindings = Iterator[tuple[str | None, str]]


@dataclass(frozen=True)
class NodeGroupView:
    """A node group / node pool whichever cloud declared it."""

    resource: Resource
    instance_types: tuple[str, ...]
    spot: bool
    min_size: int
    max_size: int

    @property
    def cloud(self) -> str:
        return "gcp" if self.resource.type == GKE_NODE_POOL else "aws"

    @property
    def sharing(self) -> accelerators.GpuSharing | None:
        """How the group shares its GPUs, from the labels its nodes carry (GKE: its accelerator config)."""
        if self.resource.type == GKE_NODE_POOL:
            guest = self.resource.get("nodeConfig", "guestAccelerators", 0, default={}) or {}
            clients = (guest.get("gpuSharingConfig") or {}).get("maxSharedClientsPerGpu")
            if clients:
                return accelerators.GpuSharing("time-slicing", int(clients))
            if guest.get("gpuPartitionSize"):
                return accelerators.GpuSharing("mig", profile=str(guest["gpuPartitionSize"]))
            return None
        labels = self.resource.get("spec", "template", "metadata", "labels") or self.resource.get("labels")
        return accelerators.sharing_from_labels(labels if isinstance(labels, Mapping) else {})

    def devices(self, itype: catalog.InstanceType, resource: str) -> int:
        """Units of `resource` a node of this type offers, slices of shared GPUs counted."""
        sharing = self.sharing
        if sharing is not None and itype.accelerator_kind == "gpu":
            return sharing.devices_per_node(itype.name, self.cloud).get(resource, 0)
        return accelerators.devices_per_node(itype.name, resource)

    @property
    def known(self) -> list[catalog.InstanceType]:
        return [i for i in (catalog.find_instance(n) for n in self.instance_types) if i is not None]

    @property
    def accelerator_kind(self) -> str | None:
        kinds = sorted(str(i.accelerator_kind) for i in self.known if i.accelerator_kind)
        if kinds:
            return kinds[0]
        ami = str(self.resource.get("amiType", default=""))
        if "NVIDIA" in ami:
            return "gpu"
        if "NEURON" in ami:
            return "neuron"
        if self.resource.get("nodeConfig", "guestAccelerators"):
            return "gpu"
        return None


def _node_pool_view(r: Resource) -> NodeGroupView:
    """A Karpenter NodePool as a group: its types are those its requirements name (or admit), it has spot when
    it admits spot, its minimum is a static pool's `replicas` (a dynamic pool keeps none), and its maximum the
    most nodes its limits allow of any admitted type (0 when it has no limits)."""
    reqs = [q for q in as_list(r.get("spec", "template", "spec", "requirements")) if isinstance(q, Mapping)]
    named = next(
        (
            q.get("values")
            for q in reqs
            if q.get("key") == karpenter_types.INSTANCE_TYPE and q.get("operator") == "In"
        ),
        None,
    )
    admitted = karpenter_types.admitted_types(reqs)
    types = tuple(str(t) for t in as_list(named)) if named else tuple(t.name for t in admitted)
    limits = r.get("spec", "limits", default={}) or {}
    ceilings = [karpenter_types.nodes_within_limits(t, limits) for t in admitted]
    max_nodes = 0 if not ceilings or None in ceilings else max(c for c in ceilings if c is not None)
    replicas = r.get("spec", "replicas")
    return NodeGroupView(
        r,
        types,
        "spot" in karpenter_types.capacity_types(reqs),
        int(replicas) if isinstance(replicas, int | float) else 0,
        max_nodes,
    )


def node_groups(resources: Sequence[Resource]) -> list[NodeGroupView]:
    groups = []
    for r in resources:
        if r.type == NODE_POOL:
            groups.append(_node_pool_view(r))
        if r.type == EKS_NODE_GROUP:
            scaling = r.get("scalingConfig", default={})
            groups.append(
                NodeGroupView(
                    r,
                    tuple(as_list(r.get("instanceTypes"))),
                    str(r.get("capacityType", default="")).upper() == "SPOT",
                    int(scaling.get("minSize", 0)),
                    int(scaling.get("maxSize", 0)),
                )
            )
        elif r.type == GKE_NODE_POOL:
            cfg = r.get("nodeConfig", default={})
            auto = r.get("autoscaling", default={})
            fixed = int(r.get("nodeCount", default=r.get("initialNodeCount", default=0)))
            lo = int(auto.get("totalMinNodeCount", auto.get("minNodeCount", fixed))) if auto else fixed
            hi = int(auto.get("totalMaxNodeCount", auto.get("maxNodeCount", fixed))) if auto else fixed
            groups.append(
                NodeGroupView(
                    r,
                    (str(cfg.get("machineType", "")),),
                    bool(cfg.get("spot") or cfg.get("preemptible")),
                    lo,
                    hi,
                )
            )
    return groups


def _nonprod(resources: Sequence[Resource], config: Mapping[str, Any]) -> str | None:
    env = environment_of(resources, config)
    return env if env is not None and env != "prod" else None


def budget_within_limit(resources: Sequence[Resource], config: Mapping[str, Any]) -> StackFindings:
    limit = config.get("monthlyUsd")
    if not isinstance(limit, int | float) or isinstance(limit, bool):
        return
    basis = str(config.get("basis", "expected"))
    schedules = {
        str(name): Schedule(
            float(s["hoursPerDayActive"]),
            float(s["daysPerWeek"]),
            int(s["activeNodes"]) if isinstance(s.get("activeNodes"), int) else None,
        )
        for name, s in (config.get("scaleDownSchedules") or {}).items()
        if isinstance(s, Mapping) and "hoursPerDayActive" in s and "daysPerWeek" in s
    }
    region = config.get("region")
    result = estimate(resources, schedules=schedules, region=region if isinstance(region, str) else None)
    total = getattr(result.monthly, "max" if basis == "max" else "expected")
    if total > limit:
        biggest = sorted(
            result.items,
            key=lambda i: getattr(i.monthly, "max" if basis == "max" else "expected"),
            reverse=True,
        )[:3]
        top = ", ".join(
            f"{i.sku} {getattr(i.monthly, 'max' if basis == 'max' else 'expected'):,.0f}" for i in biggest
        )
        yield (
            None,
            (
                f"estimated {basis} monthly cost {total:,.2f} USD exceeds the budget of {limit:,.2f} USD "
                f"(largest items: {top}); lower maxSize/desiredSize, use spot or smaller types, or raise budget.monthlyUsd"
            ),
        )


def accelerators_scale_to_zero_nonprod(
    resources: Sequence[Resource], config: Mapping[str, Any]
) -> StackFindings:
    env = _nonprod(resources, config)
    if env is None:
        return
    for g in node_groups(resources):
        if g.accelerator_kind and g.min_size > 0:
            yield (
                g.resource.urn,
                (
                    f"{display(g.resource)}: {g.accelerator_kind} group keeps {g.min_size} node(s) running in {env}; "
                    "set minSize: 0 so the autoscaler removes idle accelerators"
                ),
            )


def spot_for_nonprod_accelerators(resources: Sequence[Resource], config: Mapping[str, Any]) -> StackFindings:
    env = _nonprod(resources, config)
    if env is None:
        return
    for g in node_groups(resources):
        if g.accelerator_kind and not g.spot:
            saving = ""
            known = g.known
            discount = pricing.spot_discount(known[0].name) if known else None
            if discount is not None:
                saving = f" (spot is {discount:.0%} cheaper for {known[0].name} per the price tables)"
            yield (
                g.resource.urn,
                (
                    f"{display(g.resource)}: {g.accelerator_kind} group runs on-demand in {env}{saving}; "
                    "set capacity: spot for non-prod accelerators"
                ),
            )


def node_group_max_bounded(r: Resource, config: Mapping[str, Any]) -> Iterator[str]:
    views = node_groups([r])
    if not views:
        return
    g = views[0]
    max_nodes = int(config.get("maxNodes", 100))
    max_accel = int(config.get("maxAcceleratorNodes", 16))
    limit = max_accel if g.accelerator_kind else max_nodes
    if g.max_size <= 0 and r.type == NODE_POOL:
        yield (
            f"{display(r)}: no spec.limits bound how many nodes it launches (Karpenter then stops only at the "
            "account's quotas); set limits (nodes, cpu, memory: the group's maxSize does this)"
        )
    elif g.max_size <= 0:
        yield f"{display(r)}: no maximum size; set maxSize so a runaway scale-up cannot run up the bill"
    elif g.max_size > limit:
        kind = f"{g.accelerator_kind} " if g.accelerator_kind else ""
        yield (
            f"{display(r)}: maxSize {g.max_size} exceeds the {kind}limit of {limit} nodes; lower maxSize "
            f"or raise {'maxAcceleratorNodes' if g.accelerator_kind else 'maxNodes'} in the policy config"
        )


def allowed_instance_types(r: Resource, config: Mapping[str, Any]) -> Iterator[str]:
    views = node_groups([r])
    if not views:
        return
    allowed = [str(p) for p in as_list(config.get("allowed"))] or ["*"]
    denied = [str(p) for p in as_list(config.get("denied"))]
    team = {str(t) for t in as_list(config.get("teamTypes"))}
    for name in views[0].instance_types:
        if catalog.find_instance(name) is None and name not in team:
            yield (
                f"{display(r)}: instance type {name} is neither in the instance catalog nor in the stack's "
                "team catalog file (instanceCatalog), so nothing is known about it; pick a catalog type or "
                "add it to a team catalog file"
            )
        elif not matches_any(name, allowed) or matches_any(name, denied):
            yield (
                f"{display(r)}: instance type {name} is not allowed here (allowed: {', '.join(allowed)}; "
                f"denied: {', '.join(denied) or 'none'}); choose another type"
            )


def _requests(container: Mapping[str, Any]) -> dict[str, float]:
    res = container.get("resources") or {}
    out: dict[str, float] = {}
    for section in ("limits", "requests"):  # requests win; extended resources may only be in limits
        for key, value in (res.get(section) or {}).items():
            q = quantity(value)
            if q is not None:
                out[key] = q
    return out


def pod_requests(spec: Mapping[str, Any]) -> dict[str, float]:
    """Effective pod request: sum over app containers, max with each init container (scheduler's rule)."""
    total: dict[str, float] = {}
    for where, c in containers(spec, init=False):
        del where
        for k, v in _requests(c).items():
            total[k] = total.get(k, 0.0) + v
    for c in as_list(spec.get("initContainers")):
        if isinstance(c, Mapping):
            for k, v in _requests(c).items():
                total[k] = max(total.get(k, 0.0), v)
    return total


def accelerator_request(spec: Mapping[str, Any]) -> tuple[str, str, float] | None:
    for key, value in pod_requests(spec).items():
        kind = accelerators.kind_of_resource(key)
        if kind is not None and value > 0:
            return key, kind, value
    return None


def gpu_request_fits_node(resources: Sequence[Resource], config: Mapping[str, Any]) -> StackFindings:
    groups = node_groups(resources)
    for r in resources:
        spec = pod_spec(r)
        if spec is None:
            continue
        found = accelerator_request(spec)
        if found is None:
            continue
        resource_name, kind, count = found
        requests = pod_requests(spec)
        cpu, mem = requests.get("cpu", 0.0), requests.get("memory", 0.0) / 2**30
        shapes = [
            (g, i)
            for g in groups
            if g.accelerator_kind == kind
            for i in g.known
            if i.accelerator_kind == kind
        ]
        if not shapes:
            yield (
                r.urn,
                (
                    f"{display(r)}: requests {count:g} {resource_name} but the stack has no {kind} node group; "
                    f"add a nodeGroups entry with role: {kind} or drop the request"
                ),
            )
            continue
        fits = [
            i
            for g, i in shapes
            if g.devices(i, resource_name) >= count and i.vcpu >= cpu and i.memory_gib >= mem
        ]
        # Slices of shared GPUs: nvidia.com/gpu.shared and nvidia.com/mig-* on EKS, nvidia.com/gpu on shared GKE pools.
        slices = kind == "gpu" and (
            resource_name != accelerators.NVIDIA_GPU or all(g.sharing is not None for g, _ in shapes)
        )
        if not fits:
            group, biggest = max(shapes, key=lambda s: s[0].devices(s[1], resource_name))
            yield (
                r.urn,
                (
                    f"{display(r)}: requests {count:g} {resource_name}, {cpu:g} CPU, {mem:.1f} GiB but the largest "
                    f"{kind} node ({biggest.name}) has {group.devices(biggest, resource_name)}, {biggest.vcpu} vCPU, "
                    f"{biggest.memory_gib:g} GiB; the pod would stay Pending - lower the request or add a larger type"
                ),
            )
        elif not math.isclose(count, round(count)):
            yield r.urn, f"{display(r)}: {resource_name} must be requested in whole devices, got {count:g}"
        elif slices and count > 1:
            yield (
                r.urn,
                f"{display(r)}: requests {count:g} {resource_name} slices of a shared GPU; a pod gets one slice (the "
                "NVIDIA device plugin runs with failRequestsGreaterThanOne, GKE allows one per container) - request 1",
            )


RULES: list[Rule] = [
    Rule(
        "budget-within-limit",
        "cost",
        "The estimated monthly cost stays within the stack's budget.",
        stack_check=budget_within_limit,
        config_schema={
            "monthlyUsd": {"type": "number"},
            "basis": {"type": "string", "enum": ["expected", "max"]},
            "scaleDownSchedules": {"type": "object"},
            "region": {"type": "string"},
        },
    ),
    Rule(
        "accelerators-scale-to-zero-nonprod",
        "cost",
        "Outside prod, accelerator groups can scale to zero.",
        stack_check=accelerators_scale_to_zero_nonprod,
        config_schema={"environment": {"type": "string"}},
    ),
    Rule(
        "spot-for-nonprod-accelerators",
        "cost",
        "Outside prod, accelerator groups use spot capacity.",
        stack_check=spot_for_nonprod_accelerators,
        config_schema={"environment": {"type": "string"}},
    ),
    Rule(
        "node-group-max-bounded",
        "cost",
        "Every node group has a bounded maximum size.",
        resource_check=node_group_max_bounded,
        config_schema={
            "maxNodes": {"type": "integer", "minimum": 1},
            "maxAcceleratorNodes": {"type": "integer", "minimum": 1},
        },
    ),
    Rule(
        "allowed-instance-types",
        "cost",
        "Node groups use known (catalog or team catalog), allowed machine types.",
        resource_check=allowed_instance_types,
        config_schema={
            "allowed": {"type": "array", "items": {"type": "string"}},
            "denied": {"type": "array", "items": {"type": "string"}},
            "teamTypes": {"type": "array", "items": {"type": "string"}},
        },
    ),
    Rule(
        "gpu-request-fits-node",
        "cost",
        "Accelerator requests fit a node of the stack's accelerator groups.",
        stack_check=gpu_request_fits_node,
    ),
]
