"""Write the Kubernetes objects and Helm values of an offline plan as YAML files, one object per file."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from mlops_infra.tooling.plan import Plan, RecordedResource

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


MARKER = ".mlops-infra-render"


class RenderTargetError(Exception):
    """The output directory holds files this command did not write; nothing was changed."""


def _previous_render(out: Path) -> set[str]:
    """Files an earlier `render` wrote into `out` (listed in its marker); refuses a directory with others, so
    a stale manifest is never left behind and nobody's files are overwritten."""
    if not out.exists():
        return set()
    if not out.is_dir():
        raise RenderTargetError(f"{out}: exists and is not a directory")
    marker = out / MARKER
    try:
        known = set(json.loads(marker.read_text())) if marker.is_file() else set()
    except (OSError, ValueError, TypeError):
        known = set()
    foreign = sorted(p.name for p in out.iterdir() if p.name != MARKER and p.name not in known)
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise RenderTargetError(
            f"{out}: holds files an earlier render did not write ({shown}); render into an empty or new "
            "directory, or remove them"
        )
    return known


def render(plan: Plan, out: Path) -> list[Path]:
    """Write every object and Helm release of the plan under `out`; returns the files written. Files of an
    earlier render into the same directory that the plan no longer produces are removed."""
    previous = _previous_render(out)
    documents: dict[Path, dict[str, Any]] = {}
    for resource in plan.k8s_objects():
        obj = manifest(resource)
        path = out / manifest_filename(obj)
        if path in documents:
            raise ValueError(f"two objects render to {path.name}: {resource.urn}")
        documents[path] = obj
    for resource in plan.helm_releases():
        values = helm_values(resource)
        documents[out / f"helm-{_slug(str(values['release']))}.values.yaml"] = values
    out.mkdir(parents=True, exist_ok=True)
    for name in previous - {p.name for p in documents}:
        (out / name).unlink(missing_ok=True)
    for path, doc in documents.items():
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
    (out / MARKER).write_text(json.dumps(sorted(p.name for p in documents), indent=0))
    return list(documents)
