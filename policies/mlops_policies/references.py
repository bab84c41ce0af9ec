"""Reference integrity: what one object of the plan points at exists, as the API server and controllers will
resolve it at run time (nothing checks this at `pulumi up`: a Service selecting no pods, a pod naming a
missing Secret or a PVC two nodes fight over all apply cleanly and fail later).

- `selectors-resolve`: Service, PodDisruptionBudget and NetworkPolicy selectors select pods of the plan in
  their namespace; ServiceMonitor selectors select Services, PodMonitor selectors pods, in the namespaces
  they watch; HorizontalPodAutoscaler targets exist.
- `pod-references-resolve`: every ConfigMap, Secret, PersistentVolumeClaim and ServiceAccount a pod uses
  (volumes, projected sources, env, envFrom, imagePullSecrets), and its namespace, is declared, or is one
  Kubernetes creates itself (`default` ServiceAccount, `kube-root-ca.crt`). Optional references are skipped.
- `rwo-claims-single-node`: a ReadWriteOnce claim is mounted by pods that can never run on two nodes at once.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from mlops_policies.model import Resource, Rule, as_list, containers, dig, k8s_kind, namespace_of
from mlops_policies.pods import PodTemplate, pod_templates
from mlops_policies.selectors import equality_selector_matches, selector_matches

StackFindings = Iterator[tuple[str | None, str]]
BUILT_IN = {("ServiceAccount", "default"), ("ConfigMap", "kube-root-ca.crt")}
BUILT_IN_NAMESPACES = {"default", "kube-system", "kube-public", "kube-node-lease"}
HOSTNAME = "kubernetes.io/hostname"


def _name(r: Resource) -> str:
    return str(r.get("metadata", "name", default=r.name))


def _objects(resources: Sequence[Resource], kind: str) -> list[Resource]:
    return [r for r in resources if k8s_kind(r) == kind]


def _declared(resources: Sequence[Resource]) -> set[tuple[str, str | None, str]]:
    """(kind, namespace, name) of every Kubernetes object, and the namespaces Helm releases create."""
    found = {(str(k8s_kind(r)), namespace_of(r), _name(r)) for r in resources if k8s_kind(r)}
    for r in resources:
        if r.type == "kubernetes:helm.sh/v3:Release" and r.get("createNamespace"):
            found.add(("Namespace", None, str(r.get("namespace"))))
    return found


# ---------------------------------------------------------------------------------------- selectors


def _pods_in(pods: Sequence[PodTemplate], namespace: str | None) -> list[PodTemplate]:
    return [p for p in pods if p.namespace == (namespace or "default") and p.owner.type != HELM]


HELM = "kubernetes:helm.sh/v3:Release"


def _watched_namespaces(monitor: Resource) -> set[str] | None:
    """ServiceMonitor/PodMonitor namespaceSelector: its own namespace by default, `any: true` all (None)."""
    selector = monitor.get("spec", "namespaceSelector", default={})
    if isinstance(selector, Mapping) and selector.get("any"):
        return None
    names = as_list(selector.get("matchNames")) if isinstance(selector, Mapping) else []
    return {str(n) for n in names} or {namespace_of(monitor) or "default"}


def check_selectors(resources: Sequence[Resource], config: Mapping[str, Any]) -> StackFindings:
    del config
    pods = pod_templates(resources)
    services = _objects(resources, "Service")
    for svc in services:
        selector = svc.get("spec", "selector")
        if selector and not any(
            equality_selector_matches(selector, p.labels) for p in _pods_in(pods, namespace_of(svc))
        ):
            yield (
                svc.urn,
                f"Service {namespace_of(svc)}/{_name(svc)} selects {dict(selector)}: no pod of the plan has those labels",
            )
    for kind in ("PodDisruptionBudget", "NetworkPolicy"):
        field = "selector" if kind == "PodDisruptionBudget" else "podSelector"
        for r in _objects(resources, kind):
            selector = r.get("spec", field)
            if selector and not any(
                selector_matches(selector, p.labels) for p in _pods_in(pods, namespace_of(r))
            ):
                yield r.urn, f"{kind} {namespace_of(r)}/{_name(r)}: spec.{field} selects no pod of the plan"
    for monitor in _objects(resources, "ServiceMonitor") + _objects(resources, "PodMonitor"):
        watched = _watched_namespaces(monitor)
        selector = monitor.get("spec", "selector", default={})
        if k8s_kind(monitor) == "ServiceMonitor":
            targets = [s for s in services if watched is None or namespace_of(s) in watched]
            hit = any(
                selector_matches(selector, s.get("metadata", "labels", default={}) or {}) for s in targets
            )
        else:
            hit = any(
                selector_matches(selector, p.labels)
                for p in pods
                if watched is None or p.namespace in watched
            )
        if not hit:
            what = "Service" if k8s_kind(monitor) == "ServiceMonitor" else "pod"
            yield (
                monitor.urn,
                f"{k8s_kind(monitor)} {namespace_of(monitor)}/{_name(monitor)} selects no {what} of the plan",
            )
    declared = _declared(resources)
    for hpa in _objects(resources, "HorizontalPodAutoscaler"):
        target = hpa.get("spec", "scaleTargetRef", default={})
        key = (str(target.get("kind")), namespace_of(hpa), str(target.get("name")))
        if key not in declared:
            yield (
                hpa.urn,
                f"HorizontalPodAutoscaler {namespace_of(hpa)}/{_name(hpa)} scales {key[0]} {key[2]}, which the plan does not declare",
            )


# ---------------------------------------------------------------------------------------- pod references


def pod_references(spec: Mapping[str, Any]) -> Iterator[tuple[str, str, str]]:
    """(kind, name, where) of every object a pod spec needs, optional ones left out."""
    yield "ServiceAccount", str(spec.get("serviceAccountName") or "default"), "serviceAccountName"
    for secret in as_list(spec.get("imagePullSecrets")):
        yield "Secret", str(dig(secret, "name")), "imagePullSecrets"
    for volume in as_list(spec.get("volumes")):
        where = f"volume {volume.get('name')}"
        if (cm := volume.get("configMap")) and not cm.get("optional"):
            yield "ConfigMap", str(cm.get("name")), where
        if (secret := volume.get("secret")) and not secret.get("optional"):
            yield "Secret", str(secret.get("secretName")), where
        if claim := volume.get("persistentVolumeClaim"):
            yield "PersistentVolumeClaim", str(claim.get("claimName")), where
        for source in as_list(dig(volume, "projected", "sources")):
            for kind, key in (("ConfigMap", "configMap"), ("Secret", "secret")):
                if (ref := source.get(key)) and not ref.get("optional"):
                    yield kind, str(ref.get("name")), where
    for label, container in containers(spec):
        for env in as_list(container.get("env")):
            for kind, key in (("ConfigMap", "configMapKeyRef"), ("Secret", "secretKeyRef")):
                ref = dig(env, "valueFrom", key)
                if isinstance(ref, Mapping) and not ref.get("optional"):
                    yield kind, str(ref.get("name")), f"{label} env {env.get('name')}"
        for source in as_list(container.get("envFrom")):
            for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
                ref = source.get(key)
                if isinstance(ref, Mapping) and not ref.get("optional"):
                    yield kind, str(ref.get("name")), f"{label} envFrom"


def check_pod_references(resources: Sequence[Resource], config: Mapping[str, Any]) -> StackFindings:
    del config
    declared = _declared(resources)
    namespaces = {name for kind, _, name in declared if kind == "Namespace"} | BUILT_IN_NAMESPACES
    for pod in pod_templates(resources):
        if pod.owner.type == HELM:
            continue  # a chart's own references are the chart's business
        if pod.namespace not in namespaces:
            yield pod.owner.urn, f"{pod.display}: namespace {pod.namespace} is not declared"
        missing = sorted(
            {
                f"{kind} {name} ({where})"
                for kind, name, where in pod_references(pod.spec)
                if (kind, name) not in BUILT_IN and (kind, pod.namespace, name) not in declared
            }
        )
        if missing:
            yield (
                pod.owner.urn,
                f"{pod.display} references what the plan does not declare: {'; '.join(missing)}",
            )


# ---------------------------------------------------------------------------------------- RWO claims


def _at_most_one_pod(pod: PodTemplate) -> bool:
    """A pod set that never runs two pods at once (so never on two nodes)."""
    spec = pod.owner.props.get("spec") or {}
    one_replica: bool = dig(spec, "replicas", default=1) == 1
    if pod.kind == "Deployment":
        return one_replica and dig(spec, "strategy", "type") == "Recreate"
    if pod.kind == "StatefulSet":  # the old pod is gone before its successor starts
        return one_replica
    if pod.kind == "CronJob":
        return bool(
            dig(spec, "concurrencyPolicy") == "Forbid"
            and dig(spec, "jobTemplate", "spec", "parallelism", default=1) == 1
        )
    return False


def _colocated(pod: PodTemplate, group: Sequence[PodTemplate]) -> bool:
    """A required pod-affinity term on the hostname whose selector matches every pod of the group."""
    terms = dig(
        pod.spec, "affinity", "podAffinity", "requiredDuringSchedulingIgnoredDuringExecution", default=[]
    )
    return any(
        isinstance(t, Mapping)
        and t.get("topologyKey") == HOSTNAME
        and all(selector_matches(t.get("labelSelector"), other.labels) for other in group)
        for t in as_list(terms)
    )


def _rwo_claims(resources: Sequence[Resource]) -> dict[tuple[str, str], Resource]:
    claims = {}
    for r in _objects(resources, "PersistentVolumeClaim"):
        modes = {str(m) for m in as_list(r.get("spec", "accessModes"))}
        if modes & {"ReadWriteOnce", "ReadWriteOncePod"} and "ReadWriteMany" not in modes:
            claims[(namespace_of(r) or "default", _name(r))] = r
    return claims


def check_rwo_claims(resources: Sequence[Resource], config: Mapping[str, Any]) -> StackFindings:
    del config
    claims = _rwo_claims(resources)
    users: dict[tuple[str, str], list[PodTemplate]] = {}
    for pod in pod_templates(resources):
        for kind, name, _ in pod_references(pod.spec):
            if kind == "PersistentVolumeClaim" and (pod.namespace, name) in claims:
                users.setdefault((pod.namespace, name), []).append(pod)
    for key, group in sorted(users.items()):
        if len(group) == 1 and _at_most_one_pod(group[0]):
            continue
        if all(_colocated(p, group) for p in group):
            continue
        names = ", ".join(p.display for p in group)
        yield (
            claims[key].urn,
            (
                f"PersistentVolumeClaim {key[0]}/{key[1]} is ReadWriteOnce but mounted by {names}, which can run at "
                "the same time on different nodes: the later pod stalls on a multi-attach error. Keep them on one node "
                f"(a required podAffinity on {HOSTNAME} matching all of them) or use ReadWriteMany storage"
            ),
        )


RULES = [
    Rule(
        name="selectors-resolve",
        category="reliability",
        description="Service, PDB, NetworkPolicy, ServiceMonitor/PodMonitor selectors and HPA targets resolve",
        stack_check=check_selectors,
    ),
    Rule(
        name="pod-references-resolve",
        category="reliability",
        description="ConfigMaps, Secrets, claims, service accounts and namespaces a pod uses are declared",
        stack_check=check_pod_references,
    ),
    Rule(
        name="rwo-claims-single-node",
        category="reliability",
        description="A ReadWriteOnce claim is never mounted by pods that can run on two nodes at once",
        stack_check=check_rwo_claims,
    ),
]
