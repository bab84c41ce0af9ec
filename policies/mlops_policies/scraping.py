"""Scraping rules: no pod is scraped by two targets, or every series it exports counts twice.

Prometheus keeps one target per scrape path, so a pod reached by two ServiceMonitor endpoints (say through two
Services that select it) is scraped twice under two `job`/`service` labels: `sum(rate(...))` doubles, and
dashboards and alerts with it. Label-only analysis misses the case that matters most, because the Services do
not select the same pods as declared: Argo Rollouts changes their selectors at run time.

The rule resolves each ServiceMonitor to the Services it selects (namespaceSelector, then its label selector on
the Services' labels), each Service to pod sets (its selector on the pod template labels of Deployments,
StatefulSets, DaemonSets, Rollouts, ...), each PodMonitor to pod sets directly, and each endpoint to a container
port and path. It does so in two phases of every Rollout, as Argo Rollouts v1.8.3 drives the Services
(`rollout/service.go`: reconcileStableAndCanaryService, reconcileActiveService, reconcilePreviewService; label
key `rollouts-pod-template-hash` from `pkg/apis/rollouts/v1alpha1/types.go`):

- during a rollout the stable (blue-green: active) Service selects the stable ReplicaSet and the canary
  (preview) Service the new one, each through the hash label Argo adds to the selector;
- once promoted (or aborted) both Services select the stable ReplicaSet, and only its pods remain.

Objects inside Helm releases are not visible to the rule (a release is one opaque resource).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mlops_policies.model import (
    K8S_WORKLOAD_KINDS,
    Resource,
    Rule,
    as_list,
    containers,
    display,
    k8s_kind,
    pod_spec,
    pod_template_labels,
    truthy,
)

HASH_LABEL = "rollouts-pod-template-hash"
DEFAULT_PATH = "/metrics"
StackFindings = Iterator[tuple[str | None, str]]


@dataclass(frozen=True)
class PodSet:
    """Pods that share one template (one ReplicaSet of a Rollout)."""

    name: str
    namespace: str
    labels: Mapping[str, str]
    ports: Mapping[str, int]  # named container ports


@dataclass(frozen=True)
class Phase:
    """Which pod sets exist and which hash label Argo puts on the selector of each Service it manages."""

    name: str
    pods: tuple[PodSet, ...]
    pinned: Mapping[tuple[str, str], str]  # (namespace, Service name) -> hash label value


def _namespace(r: Resource) -> str:
    ns = r.get("metadata", "namespace")
    return ns if isinstance(ns, str) and ns else "default"


def _name(r: Resource) -> str:
    return str(r.get("metadata", "name", default=r.name))


def selects(selector: Any, labels: Mapping[str, Any]) -> bool:
    """A metav1.LabelSelector (matchLabels + matchExpressions); an empty selector selects everything."""
    if not isinstance(selector, Mapping):
        return False
    match = selector.get("matchLabels") or {}
    if not isinstance(match, Mapping) or any(labels.get(k) != v for k, v in match.items()):
        return False
    for expr in as_list(selector.get("matchExpressions")):
        key, op, values = expr.get("key"), expr.get("operator"), as_list(expr.get("values"))
        present = key in labels
        if (
            (op == "In" and (not present or labels[key] not in values))
            or (op == "NotIn" and present and labels[key] in values)
            or (op == "Exists" and not present)
            or (op == "DoesNotExist" and present)
        ):
            return False
    return True


def _service_selects(service: Resource, pinned: str | None, pods: PodSet) -> bool:
    """A Service's spec.selector (plain map; none selects no pods) plus the hash Argo pins on it."""
    selector = service.get("spec", "selector")
    if not isinstance(selector, Mapping) or not selector or _namespace(service) != pods.namespace:
        return False
    wanted = {**selector, **({HASH_LABEL: pinned} if pinned is not None else {})}
    return all(pods.labels.get(k) == v for k, v in wanted.items())


def _in_namespaces(monitor: Resource, namespace: str) -> bool:
    """namespaceSelector: `any: true`, `matchNames`, or (neither) the monitor's own namespace."""
    ns_selector = monitor.get("spec", "namespaceSelector", default={})
    if truthy(ns_selector.get("any", False)):
        return True
    names = as_list(ns_selector.get("matchNames"))
    return namespace in names if names else namespace == _namespace(monitor)


def _container_port(pods: PodSet, ref: Any) -> int | None:
    """A container port given by number or by name; None if the pods have no port of that name."""
    if isinstance(ref, bool):
        return None
    if isinstance(ref, int | float):
        return int(ref)
    if isinstance(ref, str):
        return int(ref) if ref.isdigit() else pods.ports.get(ref)
    return None


def _service_target_ports(service: Resource, endpoint: Mapping[str, Any], pods: PodSet) -> list[int]:
    """Container ports an endpoint scrapes on these pods through this Service."""
    if endpoint.get("port") is None and endpoint.get("targetPort") is not None:
        port = _container_port(pods, endpoint["targetPort"])
        return [port] if port is not None else []
    found = []
    for svc_port in as_list(service.get("spec", "ports")):
        if endpoint.get("port") is not None and svc_port.get("name") != endpoint["port"]:
            continue
        port = _container_port(pods, svc_port.get("targetPort", svc_port.get("port")))
        if port is not None:
            found.append(port)
    return found


def _pod_target_ports(endpoint: Mapping[str, Any], pods: PodSet) -> list[int | str]:
    """PodMonitor: portNumber, port (a container port name) or targetPort; none of them: every port."""
    for key in ("portNumber", "port", "targetPort"):
        if endpoint.get(key) is not None:
            port = _container_port(pods, endpoint[key])
            return [port] if port is not None else []
    return [*sorted(set(pods.ports.values()))] or ["(pod IP)"]


def _pod_set(workload: Resource, extra: Mapping[str, str], suffix: str) -> PodSet:
    ports: dict[str, int] = {}
    spec = pod_spec(workload) or {}
    for _, container in containers(spec, init=False):
        for port in as_list(container.get("ports")):
            if isinstance(port.get("name"), str) and isinstance(port.get("containerPort"), int | float):
                ports[port["name"]] = int(port["containerPort"])
    labels = {**pod_template_labels(workload), **extra}
    return PodSet(display(workload) + suffix, _namespace(workload), labels, ports)


def phases(resources: Sequence[Resource]) -> list[Phase]:
    """The pod sets and Argo's selector pins during a rollout and once it is promoted."""
    during: list[PodSet] = []
    after: list[PodSet] = []
    pinned_during: dict[tuple[str, str], str] = {}
    pinned_after: dict[tuple[str, str], str] = {}
    for r in resources:
        kind = k8s_kind(r)
        if kind not in K8S_WORKLOAD_KINDS:
            continue
        if kind != "Rollout":
            during.append(_pod_set(r, {}, ""))
            after.append(_pod_set(r, {}, ""))
            continue
        ns = _namespace(r)
        stable = _pod_set(r, {HASH_LABEL: "<stable>"}, " (stable ReplicaSet)")
        new = _pod_set(r, {HASH_LABEL: "<new>"}, " (new ReplicaSet)")
        during += [stable, new]
        after.append(stable)
        for strategy, stable_key, new_key in (
            ("canary", "stableService", "canaryService"),
            ("blueGreen", "activeService", "previewService"),
        ):
            for key, during_hash in ((stable_key, "<stable>"), (new_key, "<new>")):
                svc = r.get("spec", "strategy", strategy, key)
                if isinstance(svc, str) and svc:
                    pinned_during[(ns, svc)] = during_hash
                    pinned_after[(ns, svc)] = "<stable>"
    return [
        Phase("during a rollout", tuple(during), pinned_during),
        Phase("once a rollout is promoted", tuple(after), pinned_after),
    ]


Target = tuple[str, int | str, str]  # pod set, container port, path
ScrapePath = tuple[str, str]  # description, URN of the monitor


def scrape_paths(resources: Sequence[Resource], phase: Phase) -> dict[Target, list[ScrapePath]]:
    """(pod set, container port, path) -> every scrape path that reaches it in this phase."""
    services = [r for r in resources if k8s_kind(r) == "Service"]
    reached: dict[Target, list[ScrapePath]] = defaultdict(list)
    for monitor in resources:
        kind = k8s_kind(monitor)
        if kind == "ServiceMonitor":
            for svc in services:
                labels = svc.get("metadata", "labels", default={})
                if not _in_namespaces(monitor, _namespace(svc)) or not selects(
                    monitor.get("spec", "selector", default={}), labels
                ):
                    continue
                pin = phase.pinned.get((_namespace(svc), _name(svc)))
                for pods in phase.pods:
                    if not _service_selects(svc, pin, pods):
                        continue
                    for i, endpoint in enumerate(as_list(monitor.get("spec", "endpoints"))):
                        path = endpoint.get("path") or DEFAULT_PATH
                        for port in _service_target_ports(svc, endpoint, pods):
                            reached[(pods.name, port, path)].append(
                                (f"{display(monitor)} endpoints[{i}] via {display(svc)}", monitor.urn)
                            )
        elif kind == "PodMonitor":
            for pods in phase.pods:
                if not _in_namespaces(monitor, pods.namespace) or not selects(
                    monitor.get("spec", "selector", default={}), pods.labels
                ):
                    continue
                for i, endpoint in enumerate(as_list(monitor.get("spec", "podMetricsEndpoints"))):
                    path = endpoint.get("path") or DEFAULT_PATH
                    for pod_port in _pod_target_ports(endpoint, pods):
                        reached[(pods.name, pod_port, path)].append(
                            (f"{display(monitor)} podMetricsEndpoints[{i}]", monitor.urn)
                        )
    return reached


def no_duplicate_scrape(resources: Sequence[Resource], config: Mapping[str, Any]) -> StackFindings:
    """One finding per pod port and path reached twice, naming the phases in which it is (reported on the
    monitor of the last path, where an exemption annotation would go)."""
    findings: dict[tuple[Target, tuple[ScrapePath, ...]], list[str]] = {}
    for phase in phases(resources):
        for target, paths in scrape_paths(resources, phase).items():
            if len(paths) > 1:
                findings.setdefault((target, tuple(paths)), []).append(phase.name)
    for ((pods, port, path), route), when in findings.items():
        yield (
            route[-1][1],
            (
                f"{pods} port {port} {path} is scraped {len(route)} times {' and '.join(when)}: "
                f"{'; '.join(p for p, _ in route)}. Every series it exports is counted {len(route)} times "
                "(request rates, dashboards, alerts); scrape it through one Service that Argo Rollouts does not "
                "re-point, or one PodMonitor"
            ),
        )


RULES: list[Rule] = [
    Rule(
        "no-duplicate-scrape",
        "reliability",
        "No pod port is scraped by two ServiceMonitor/PodMonitor paths (Argo Rollouts' Service selectors included).",
        stack_check=no_duplicate_scrape,
    ),
]
