"""Engine-independent shapes shared by every rule: a resource view, a rule, a violation, pod-spec helpers.

Rules are written once against :class:`Resource` (type token, camelCase props, URN, protect flag,
dependencies). The CrossGuard adapter builds it from `ResourceValidationArgs`/`PolicyResource`; the offline
runner builds it from a recorded plan. Nothing here imports pulumi_policy, so the CLI needs no dev extra.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

# Shared with the cost code; re-exported because the rules read objects through this module.
from mlops_infra.components.k8s.objects import POD_SPEC_PATHS
from mlops_infra.components.k8s.objects import dig as dig
from mlops_infra.components.k8s.objects import is_seq as is_seq
from mlops_infra.components.k8s.objects import quantity as quantity

Enforcement = Literal["advisory", "mandatory", "remediate", "disabled"]
ENFORCEMENT_LEVELS: tuple[str, ...] = ("advisory", "mandatory", "remediate", "disabled")
Category = Literal["security", "reliability", "cost"]


@dataclass(frozen=True)
class Resource:
    """One resource as a rule sees it, whichever engine produced it."""

    urn: str
    type: str
    name: str
    props: Mapping[str, Any]
    protect: bool = False
    dependencies: tuple[str, ...] = ()
    parent: str | None = None
    # What the engine knows after the step (ARNs, URLs): the offline plan's mock answers, or in CrossGuard's
    # stack policies the resource's outputs. Empty where unknown (a resource policy sees inputs only).
    outputs: Mapping[str, Any] = field(default_factory=dict)

    def get(self, *path: str | int, default: Any = None) -> Any:
        """Nested lookup that tolerates missing keys, None and wrong shapes (inputs are often partial)."""
        if any(isinstance(part, bool) for part in path):
            raise TypeError("Resource.get: pass the fallback as default=..., not as a path element")
        return dig(self.props, *path, default=default)


@dataclass(frozen=True)
class Violation:
    """One finding, in the `plan --json` / `check --json` shape."""

    policy: str
    enforcement: str
    urn: str | None
    message: str

    def to_json(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "enforcement": self.enforcement,
            "urn": self.urn,
            "message": self.message,
        }


# A resource rule yields messages for one resource; a stack rule yields (urn or None, message) pairs.
ResourceCheck = Callable[[Resource, Mapping[str, Any]], Iterable[str]]
StackCheck = Callable[[Sequence[Resource], Mapping[str, Any]], Iterable[tuple[str | None, str]]]


@dataclass(frozen=True)
class Rule:
    """A named rule. `config_schema` lists the JSON-schema properties its config may carry."""

    name: str
    category: Category
    description: str
    resource_check: ResourceCheck | None = None
    stack_check: StackCheck | None = None
    config_schema: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if (self.resource_check is None) == (self.stack_check is None):
            raise ValueError(f"rule {self.name}: give exactly one of resource_check and stack_check")

    @property
    def scope(self) -> str:
        return "resource" if self.resource_check is not None else "stack"


# ---------------------------------------------------------------------------------------------------------
# Small helpers used by many rules


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if is_seq(value):
        return list(value)
    return [value]


def truthy(value: Any) -> bool:
    """Booleans may arrive as strings from some providers' inputs."""
    if isinstance(value, str):
        return value.strip().lower() in {"true", "1", "yes"}
    return bool(value)


def environment_of(resources: Sequence[Resource], config: Mapping[str, Any]) -> str | None:
    """The stack's environment: from policy config, else the `environment` tag/label the platform puts on
    every cloud resource. None when neither exists (rules that depend on it then do nothing)."""
    env = config.get("environment")
    if isinstance(env, str) and env:
        return env
    for r in resources:
        for key in ("tags", "labels", "resourceLabels"):
            found = dig(r.props, key, "environment")
            if isinstance(found, str) and found:
                return found
        found = dig(r.props, "nodeConfig", "resourceLabels", "environment")
        if isinstance(found, str) and found:
            return found
    return None


# ---------------------------------------------------------------------------------------------------------
# Kubernetes workloads: where the pod spec lives in each kind

K8S_WORKLOAD_KINDS = POD_SPEC_PATHS
LONG_RUNNING_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Rollout"})
HELM_RELEASE = "kubernetes:helm.sh/v3:Release"


def k8s_kind(resource: Resource) -> str | None:
    """Kind of a Kubernetes custom resource from its type token (`kubernetes:apps/v1:Deployment`)."""
    if not resource.type.startswith("kubernetes:") or resource.type.startswith("kubernetes:helm.sh/"):
        return None
    return resource.type.rsplit(":", 1)[-1]


def pod_template_labels(resource: Resource) -> Mapping[str, Any]:
    kind = k8s_kind(resource)
    if kind is None or kind not in K8S_WORKLOAD_KINDS:
        return {}
    path = K8S_WORKLOAD_KINDS[kind]
    meta_path = (*path[:-1], "metadata", "labels") if kind != "Pod" else ("metadata", "labels")
    labels = dig(resource.props, *meta_path, default={})
    return labels if isinstance(labels, Mapping) else {}


def pod_spec(resource: Resource) -> Mapping[str, Any] | None:
    kind = k8s_kind(resource)
    if kind is None or kind not in K8S_WORKLOAD_KINDS:
        return None
    spec = dig(resource.props, *K8S_WORKLOAD_KINDS[kind])
    return spec if isinstance(spec, Mapping) else None


def containers(spec: Mapping[str, Any], init: bool = True) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(`containers[i]`-style label, container) for app and init containers of a pod spec."""
    keys = ("containers", "initContainers") if init else ("containers",)
    for key in keys:
        for i, container in enumerate(as_list(spec.get(key))):
            if isinstance(container, Mapping):
                yield f"{key}[{i}] {container.get('name', '?')}", container


EXEMPT_ANNOTATION = "policies.mlops-platform/exempt"
REASON_ANNOTATION = "policies.mlops-platform/exempt-reason"


def exempt(resource: Resource, rule: str) -> bool:
    """A Kubernetes object opts out of named rules with two annotations: the comma-separated rule names and a
    non-empty reason (e.g. a device-monitoring DaemonSet that must run privileged). No reason, no exemption."""
    annotations = dig(resource.props, "metadata", "annotations", default={})
    if not isinstance(annotations, Mapping) or not str(annotations.get(REASON_ANNOTATION, "")).strip():
        return False
    names = {n.strip() for n in str(annotations.get(EXEMPT_ANNOTATION, "")).split(",")}
    return rule in names


def namespace_of(resource: Resource) -> str | None:
    ns = resource.get("metadata", "namespace")
    return ns if isinstance(ns, str) else None


def display(resource: Resource) -> str:
    kind = k8s_kind(resource)
    if kind:
        ns = namespace_of(resource)
        name = resource.get("metadata", "name", default=resource.name)
        return f"{kind} {ns + '/' if ns else ''}{name}"
    return f"{resource.type.rsplit(':', 1)[-1]} {resource.name}"
