"""Kubernetes objects as plain data (a plan's inputs, a rendered manifest): nested look-ups, resource
quantities, and where each workload kind keeps its pod spec. Shared by the policies, the cost estimator and
right-sizing, so they read objects the same way."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

# Where the pod spec lives in each workload kind (Argo Rollouts' Rollout has the Deployment shape).
POD_SPEC_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": ("spec",),
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
    "Rollout": ("spec", "template", "spec"),
}


def is_seq(value: Any) -> bool:
    """Lists from the engine arrive wrapped in a Sequence proxy, not as `list`."""
    return isinstance(value, Sequence) and not isinstance(value, str | bytes)


def dig(value: Any, *path: str | int, default: Any = None) -> Any:
    """Nested look-up through maps and lists that tolerates missing keys, None and wrong shapes."""
    for part in path:
        if isinstance(part, int):
            if not is_seq(value) or not -len(value) <= part < len(value):
                return default
            value = value[part]
        else:
            if not isinstance(value, Mapping) or part not in value:
                return default
            value = value[part]
        if value is None:
            return default
    return value


# k8s.io/apimachinery resource.Quantity suffixes: decimal SI and binary.
_QUANTITY_RE = re.compile(r"^([+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?)([a-zA-Z]*)$")
_SUFFIX = {
    "": 1.0, "n": 1e-9, "u": 1e-6, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
    "Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40, "Pi": 2.0**50, "Ei": 2.0**60,
}  # fmt: skip


def quantity(value: Any) -> float | None:
    """A Kubernetes quantity ("500m", "2Gi", "1e3", 1) in base units; None if it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    if not isinstance(value, str):
        return None
    match = _QUANTITY_RE.match(value.strip())
    if not match or match.group(2) not in _SUFFIX:
        return None
    if "e" in match.group(1).lower() and match.group(2):
        return None  # an exponent and a suffix together is not a quantity
    number = float(match.group(1)) * _SUFFIX[match.group(2)]
    return number if math.isfinite(number) else None


def pod_spec_of(kind: str | None, obj: Any) -> Mapping[str, Any] | None:
    """The pod spec of a workload object of this kind, or None."""
    if kind not in POD_SPEC_PATHS:
        return None
    spec = dig(obj, *POD_SPEC_PATHS[kind])
    return spec if isinstance(spec, Mapping) else None
