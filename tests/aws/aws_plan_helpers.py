"""Small lookups over offline plans shared by the AWS tests."""

from __future__ import annotations

import json
from typing import Any

from mlops_infra.tooling.plan import Plan, RecordedResource


def children(plan: Plan, parent: RecordedResource, type_token: str | None = None) -> list[RecordedResource]:
    return [
        r for r in plan.resources if r.parent == parent.urn and (type_token is None or r.type == type_token)
    ]


def node_groups(plan: Plan) -> dict[str, RecordedResource]:
    """Group name (config) -> its aws:eks/nodeGroup:NodeGroup."""
    return {r.inputs["nodeGroupName"]: r for r in plan.of_type("aws:eks/nodeGroup:NodeGroup")}


def component_of(plan: Plan, resource: RecordedResource) -> RecordedResource:
    return next(r for r in plan.resources if r.urn == resource.parent)


def asg_tags(plan: Plan, group: str) -> dict[str, str]:
    """Tags the plan puts on one node group's Auto Scaling group."""
    ng = node_groups(plan)[group]
    component = component_of(plan, ng)
    tags = {}
    for tag in children(plan, component, "aws:autoscaling/tag:Tag"):
        tags[tag.inputs["tag"]["key"]] = tag.inputs["tag"]["value"]
    return tags


def policy(resource: RecordedResource, key: str = "policy") -> dict[str, Any]:
    return json.loads(resource.inputs[key])


def release(plan: Plan, name: str) -> RecordedResource:
    found = [r for r in plan.helm_releases() if r.inputs.get("name") == name]
    assert len(found) == 1, f"{len(found)} Helm releases named {name}"
    return found[0]


def walk(value: Any, path: str = "") -> list[tuple[str, Any]]:
    """Every (path, leaf) of a nested input value."""
    if isinstance(value, dict):
        return [item for k, v in value.items() for item in walk(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [item for i, v in enumerate(value) for item in walk(v, f"{path}[{i}]")]
    return [(path, value)]
