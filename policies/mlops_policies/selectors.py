"""Kubernetes matching semantics, as the API server and scheduler apply them: label selectors, node selector
requirements and taint tolerations (k8s.io/apimachinery labels.Selector, k8s.io/component-helpers
scheduling/corev1/nodeaffinity, toleration matching in k8s.io/api core/v1 toleration.go)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mlops_policies.model import as_list


def _requirement(labels: Mapping[str, str], req: Mapping[str, Any]) -> bool:
    """One `matchExpressions` entry (label selector or node selector requirement)."""
    key, op = req.get("key"), req.get("operator")
    values = [str(v) for v in as_list(req.get("values"))]
    present = key in labels
    if op == "In":
        return present and labels[str(key)] in values
    if op == "NotIn":
        return not present or labels[str(key)] not in values
    if op == "Exists":
        return present
    if op == "DoesNotExist":
        return not present
    if op in ("Gt", "Lt") and present and len(values) == 1:
        try:
            have, want = int(labels[str(key)]), int(values[0])
        except ValueError:
            return False
        return have > want if op == "Gt" else have < want
    return False


def selector_matches(selector: Any, labels: Mapping[str, str]) -> bool:
    """A LabelSelector (`matchLabels` + `matchExpressions`); an empty selector matches everything."""
    if not isinstance(selector, Mapping):
        return False
    match_labels = selector.get("matchLabels") or {}
    if any(labels.get(k) != v for k, v in match_labels.items()):
        return False
    return all(_requirement(labels, r) for r in as_list(selector.get("matchExpressions")))


def equality_selector_matches(selector: Any, labels: Mapping[str, str]) -> bool:
    """A Service's `spec.selector` (plain map). An empty or missing selector selects no pods."""
    if not isinstance(selector, Mapping) or not selector:
        return False
    return all(labels.get(k) == v for k, v in selector.items())


def node_affinity_matches(affinity: Any, labels: Mapping[str, str]) -> bool:
    """Required node affinity: the terms are ORed, the expressions of a term ANDed. `matchFields` (node
    name) is not known before a node exists and is taken as satisfied."""
    required = (
        affinity.get("nodeAffinity", {}).get("requiredDuringSchedulingIgnoredDuringExecution")
        if isinstance(affinity, Mapping)
        else None
    )
    if not isinstance(required, Mapping):
        return True
    terms = [t for t in as_list(required.get("nodeSelectorTerms")) if isinstance(t, Mapping)]
    if not terms:
        return False  # an empty term list matches no node
    return any(
        (t.get("matchExpressions") or t.get("matchFields"))
        and all(_requirement(labels, r) for r in as_list(t.get("matchExpressions")))
        for t in terms
    )


def tolerates(tolerations: Any, key: str, value: str, effect: str) -> bool:
    """Whether any toleration matches a taint (empty key with Exists tolerates everything; an empty effect
    matches every effect; the operator defaults to Equal)."""
    for t in as_list(tolerations):
        if not isinstance(t, Mapping):
            continue
        if t.get("effect") not in (None, "", effect):
            continue
        operator = t.get("operator") or "Equal"
        if operator == "Exists" and t.get("key") in (None, "", key):
            return True
        if operator == "Equal" and t.get("key") == key and str(t.get("value") or "") == value:
            return True
    return False
