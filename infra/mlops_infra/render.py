"""Write the Kubernetes objects and Helm values of an offline plan as YAML files, one object per file."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from mlops_infra.offline import Plan, RecordedResource

CLUSTER_SCOPE = "cluster"


def manifest(resource: RecordedResource) -> dict[str, Any]:
    """The object as the provider would send it to the API server (Pulumi's own keys removed)."""
    body = {k: v for k, v in resource.inputs.items() if not k.startswith("__")}
    ordered: dict[str, Any] = {k: body.pop(k) for k in ("apiVersion", "kind", "metadata") if k in body}
    return {**ordered, **body}


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9.-]+", "-", text.lower()).strip("-")


def manifest_filename(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    namespace = meta.get("namespace") or CLUSTER_SCOPE
    return f"{_slug(obj['kind'])}-{_slug(namespace)}-{_slug(meta.get('name', 'unnamed'))}.yaml"


def helm_values(resource: RecordedResource) -> dict[str, Any]:
    inputs = resource.inputs
    return {
        "release": inputs.get("name", resource.name),
        "namespace": inputs.get("namespace"),
        "chart": inputs.get("chart"),
        "repo": (inputs.get("repositoryOpts") or {}).get("repo"),
        "version": inputs.get("version"),
        "values": inputs.get("values", {}),
    }


def render(plan: Plan, out: Path) -> list[Path]:
    """Write every object and Helm release of the plan under `out`; returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for resource in plan.k8s_objects():
        obj = manifest(resource)
        path = out / manifest_filename(obj)
        if path in written:
            raise ValueError(f"two objects render to {path.name}: {resource.urn}")
        path.write_text(yaml.safe_dump(obj, sort_keys=False))
        written.append(path)
    for resource in plan.helm_releases():
        values = helm_values(resource)
        path = out / f"helm-{_slug(str(values['release']))}.values.yaml"
        path.write_text(yaml.safe_dump(values, sort_keys=False))
        written.append(path)
    return written
