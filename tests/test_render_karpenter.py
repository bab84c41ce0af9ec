"""Karpenter custom resources validate strictly against the v1.14.1 CRD schemas: a typo or a field another
Karpenter version has is rejected, so a rendered NodePool that passes here is one the API server accepts."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from mlops_infra.tooling.render import render

from plan_support import reference_plan
from test_render import validate_object


def _rendered(kind: str, name: str, tmp_path: Path) -> dict[str, Any]:
    plan = reference_plan("prod-karpenter")
    render(plan, tmp_path)
    doc: dict[str, Any] = yaml.safe_load((tmp_path / f"{kind.lower()}-cluster-{name}.yaml").read_text())
    return doc


@pytest.mark.parametrize("kind", ["NodePool", "EC2NodeClass"])
def test_rendered_karpenter_objects_validate(kind: str, tmp_path: Path) -> None:
    validate_object(_rendered(kind, "gpu-a10g", tmp_path), "1.33")


@pytest.mark.parametrize(
    ("kind", "path", "value"),
    [
        ("NodePool", ("spec", "limitz"), {"cpu": "8"}),  # typo
        ("NodePool", ("spec", "disruption", "consolidationPolicy"), "WhenUnderutilized"),  # the v1beta1 value
        ("NodePool", ("spec", "template", "spec", "kubelet"), {"maxPods": 10}),  # moved to EC2NodeClass in v1
        ("NodePool", ("spec", "disruption", "budgets"), [{"nodes": "ten"}]),
        ("EC2NodeClass", ("spec", "metadataOptions", "httpTokens"), "sometimes"),
        ("EC2NodeClass", ("spec", "blockDeviceMappings", 0, "ebs", "volumeSize"), "100GB"),
        ("EC2NodeClass", ("spec", "amiFamily"), "AL2024"),
    ],
)
def test_schema_rejects_mistakes(kind: str, path: tuple[Any, ...], value: Any, tmp_path: Path) -> None:
    doc = copy.deepcopy(_rendered(kind, "gpu-a10g", tmp_path))
    target: Any = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(jsonschema.ValidationError):
        validate_object(doc, "1.33")
