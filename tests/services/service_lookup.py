"""Lookups over offline plans shared by the platform-services tests."""

from __future__ import annotations

from mlops_infra.tooling.plan import Plan, RecordedResource


def find_object(plan: Plan, kind: str, namespace: str, name: str) -> RecordedResource:
    """The one Kubernetes object of `kind` named `namespace/name` in the plan."""
    found = [
        r
        for r in plan.k8s_objects()
        if r.inputs.get("kind") == kind
        and r.inputs["metadata"].get("namespace") == namespace
        and r.inputs["metadata"]["name"] == name
    ]
    assert len(found) == 1, f"{len(found)} {kind} objects named {namespace}/{name}"
    return found[0]


def find_release(plan: Plan, name: str) -> RecordedResource:
    found = [r for r in plan.helm_releases() if r.inputs.get("name") == name]
    assert len(found) == 1, f"{len(found)} Helm releases named {name}"
    return found[0]


def only(plan: Plan, type_token: str) -> RecordedResource:
    found = plan.of_type(type_token)
    assert len(found) == 1, f"{len(found)} resources of type {type_token}"
    return found[0]
