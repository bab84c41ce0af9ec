"""A node group as the cloud components take it: plain values, checked when it is made.

The EKS node-group kinds and the GKE node pools build from a `NodeGroupSpec`, never from a stack's config, so
another repo can declare a GPU group without the rest of the platform. The checks here are the component's own
(a GPU group of CPU machines or min > max is refused whoever builds it); the stack loader adds the ones that
span a whole stack and reports them against the stack file's keys.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from mlops_infra.components import catalog
from mlops_infra.components.accelerators import KINDS, GpuSharing, NodeTaint

Role = Literal["system", "cpu", "gpu", "neuron", "tpu"]
ROLES: tuple[str, ...] = ("system", "cpu", "gpu", "neuron", "tpu")
Capacity = Literal["on-demand", "spot"]
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
_NAME_RE = re.compile(r"^[a-z]([-a-z0-9]{0,30}[a-z0-9])?$")


class NodeGroupSpecError(ValueError):
    """A node group no cloud can build; the message names the group and what is allowed."""


@dataclass(frozen=True)
class NodeGroupSpec:
    """One node group: what runs there (`role`), on which machine types, how many nodes."""

    name: str
    """Group name: lowercase letters, digits and '-', starting with a letter, at most 32 characters."""
    role: Role
    """system (add-ons), cpu, gpu, neuron (Inferentia/Trainium) or tpu; decides AMI, taints and labels."""
    instance_types: tuple[str, ...]
    """Machine types, all of the catalog and of the role's accelerator kind (one model per group)."""
    max_size: int
    """Most nodes the autoscaler may run (hosts for TPU groups)."""
    min_size: int = 0
    """Fewest nodes; 0 lets an accelerator group scale to zero."""
    desired_size: int | None = None
    """Nodes at creation (default: min_size); the autoscaler owns the count afterwards."""
    capacity: Capacity = "on-demand"
    """on-demand or spot."""
    disk_size_gb: int = 100
    """Root volume size."""
    labels: Mapping[str, str] = field(default_factory=dict)
    """Extra node labels (the platform adds its own and the accelerator's)."""
    taints: tuple[NodeTaint, ...] = ()
    """Extra taints (the accelerator's taint is added by the cloud component)."""
    tpu_topology: str | None = None
    """TPU slice topology such as 2x2 or 4x4 (TPU groups only)."""
    zones: tuple[str, ...] | None = None
    """Zones of this group; None: the cluster's zones."""
    reservation: str | None = None
    """GCP: a Compute Engine reservation to consume."""
    gpu_driver_version: Literal["DEFAULT", "LATEST", "INSTALLATION_DISABLED"] = "DEFAULT"
    """GCP: how GKE installs the NVIDIA driver on GPU pools."""
    sharing: GpuSharing | None = None
    """GPU groups: share each GPU by time-slicing or MIG (see accelerators.GpuSharing)."""

    def __post_init__(self) -> None:
        problems = list(self._problems())
        if problems:
            raise NodeGroupSpecError(f"node group {self.name!r}: " + "; ".join(problems))

    def _problems(self) -> list[str]:
        problems: list[str] = []
        if not isinstance(self.name, str) or not _NAME_RE.match(self.name):
            problems.append(
                "name must be lowercase letters, digits and '-', starting with a letter, <= 32 chars"
            )
        if self.role not in ROLES:
            problems.append(f"role {self.role!r}; allowed: {', '.join(ROLES)}")
        if not self.instance_types:
            problems.append("needs at least one instance type")
        if not (0 <= self.min_size <= self.desired <= self.max_size) or self.max_size < 1:
            problems.append(
                f"sizes must satisfy 0 <= min ({self.min_size}) <= desired ({self.desired}) <= max "
                f"({self.max_size}) and max >= 1"
            )
        if not 20 <= self.disk_size_gb <= 16384:
            problems.append(f"disk_size_gb {self.disk_size_gb}; allowed 20-16384")
        for taint in self.taints:
            if taint.effect not in TAINT_EFFECTS:
                problems.append(
                    f"taint {taint.key} effect {taint.effect!r}; allowed: {', '.join(TAINT_EFFECTS)}"
                )
        for name in self.instance_types:
            try:
                itype = catalog.instance(name)
            except catalog.UnknownInstanceType as exc:
                problems.append(str(exc))
                continue
            wanted = self.role if self.role in KINDS else None
            if itype.accelerator_kind != wanted:
                has = itype.accelerator_kind or "no accelerator"
                problems.append(f"{name} has {has}, but the role is {self.role}")
        if self.sharing is not None:
            if self.role != "gpu":
                problems.append("only GPU groups share their accelerators")
            elif self.instance_types and not any("has" in p for p in problems):
                problems.extend(self.sharing.problems(self.instance_types))
        if (self.role == "tpu") != (self.tpu_topology is not None):
            problems.append("tpu_topology is set exactly for TPU groups")
        return problems

    @property
    def desired(self) -> int:
        """Nodes at creation; the autoscaler owns the count afterwards."""
        return self.min_size if self.desired_size is None else self.desired_size

    @property
    def accelerated(self) -> bool:
        return self.role in KINDS
