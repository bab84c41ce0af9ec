"""Which instance types a Karpenter NodePool may launch, and how many of each its limits allow.

Pure facts over the catalog (no Pulumi), read by the NodePool builder, the scheduling model and the cost
estimate. From aws/karpenter-provider-aws v1.14.1: the well-known labels of an instance type
(pkg/providers/instancetype/types.go computeRequirements and its `instanceTypeScheme` for category and
generation), the requirement operators of the NodePool CRD (In, NotIn, Exists, DoesNotExist, Gt, Lt, Gte, Lte),
and `spec.limits` (concepts/nodepools.md: provisioning stops once a limit would be exceeded; `nodes` counts
nodes, any other key sums that resource over the pool's nodes).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from mlops_infra.components import accelerators, catalog
from mlops_infra.components.k8s.objects import quantity

INSTANCE_TYPE = "node.kubernetes.io/instance-type"
CAPACITY_TYPE = "karpenter.sh/capacity-type"
CAPACITY_TYPES = ("on-demand", "spot")
ARCH = {"x86_64": "amd64", "arm64": "arm64"}
_CATEGORY_RE = re.compile(r"^([a-z]+)(-[0-9]+tb)?([0-9]+).*\.")  # types.go instanceTypeScheme
# Resources Karpenter reads from EC2 for every instance type (types.go computeCapacity), that pods request.
DEVICES = (accelerators.NVIDIA_GPU, accelerators.NEURON_DEVICE, accelerators.NEURON_CORE)


def well_known_labels(itype: catalog.InstanceType) -> dict[str, str]:
    """The labels Karpenter puts on a node of this instance type (those the catalog can tell)."""
    family, _, size = itype.name.partition(".")
    labels = {
        INSTANCE_TYPE: itype.name,
        "karpenter.k8s.aws/instance-family": family,
        "karpenter.k8s.aws/instance-size": size,
        "karpenter.k8s.aws/instance-cpu": str(itype.vcpu),
        "karpenter.k8s.aws/instance-memory": str(int(itype.memory_gib * 1024)),
        "kubernetes.io/arch": ARCH[itype.arch],
        "kubernetes.io/os": "linux",
    }
    match = _CATEGORY_RE.match(itype.name)
    if match:
        labels["karpenter.k8s.aws/instance-category"] = match.group(1)
        labels["karpenter.k8s.aws/instance-generation"] = match.group(3)
    return labels


def _values(req: Mapping[str, Any]) -> list[str]:
    values = req.get("values")  # a list, or the policy engine's read-only sequence proxy
    return [str(v) for v in values] if isinstance(values, Sequence) and not isinstance(values, str) else []


def requirement_admits(req: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """One requirement against a node's labels; a key the node lacks passes only NotIn and DoesNotExist."""
    key, op, values = str(req.get("key")), str(req.get("operator")), _values(req)
    if key not in labels:
        return op in ("NotIn", "DoesNotExist")
    have = labels[key]
    if op == "In":
        return have in values
    if op == "NotIn":
        return have not in values
    if op in ("Exists", "DoesNotExist"):
        return op == "Exists"
    if op in ("Gt", "Lt", "Gte", "Lte") and len(values) == 1:
        try:
            a, b = int(have), int(values[0])
        except ValueError:
            return False
        return {"Gt": a > b, "Lt": a < b, "Gte": a >= b, "Lte": a <= b}[op]
    return False


def admitted_types(requirements: Sequence[Mapping[str, Any]]) -> list[catalog.InstanceType]:
    """Catalog AWS types every requirement on a well-known instance label admits (other keys do not narrow)."""
    found = []
    for itype in catalog.instances("aws"):
        labels = well_known_labels(itype)
        if all(requirement_admits(r, labels) for r in requirements if r.get("key") in labels):
            found.append(itype)
    return found


def capacity_types(requirements: Sequence[Mapping[str, Any]]) -> list[str]:
    """Capacity types the requirements admit (Karpenter's default without a requirement: on-demand)."""
    reqs = [r for r in requirements if r.get("key") == CAPACITY_TYPE]
    if not reqs:
        return ["on-demand"]
    return [c for c in CAPACITY_TYPES if all(requirement_admits(r, {CAPACITY_TYPE: c}) for r in reqs)]


def nodes_within_limits(itype: catalog.InstanceType, limits: Mapping[str, Any]) -> int | None:
    """How many nodes of this type the pool's limits allow (None: no limit bounds it)."""
    per_node: dict[str, float] = {
        "nodes": 1.0,
        "cpu": float(itype.vcpu),
        "memory": itype.memory_gib * 2.0**30,
    }
    for device in DEVICES:
        per_node[device] = float(accelerators.devices_per_node(itype.name, device))
    bounds = []
    for key, value in limits.items():
        amount, each = quantity(value), per_node.get(str(key), 0.0)
        if amount is not None and each > 0:
            bounds.append(math.floor(amount / each + 1e-9))
    return min(bounds) if bounds else None
