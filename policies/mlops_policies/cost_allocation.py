"""Rule `cost-allocation-tags`: every taggable cloud resource carries the tags cost reports group by.

Whether a type takes tags is the provider's own schema, read from its Python SDK (the `tags` argument of the
AWS resource, `labels`/`resourceLabels` of the Google one), so a new resource type is covered without a list
to maintain. GCP label keys are lowercase: `costCenter` is checked as `cost_center` (the platform rewrites tags
that way, see gcp/labels.py).
"""

from __future__ import annotations

import functools
import importlib
import inspect
import re
from collections.abc import Iterator, Mapping
from typing import Any

from mlops_policies.model import Resource, Rule, as_list, dig, display

DEFAULT_REQUIRED = ("team", "costCenter")
# Where a GCP type keeps its labels when not at the top level.
NESTED_GCP_LABELS: dict[str, tuple[str, ...]] = {
    "gcp:container/nodePool:NodePool": ("nodeConfig", "resourceLabels"),
    "gcp:sql/databaseInstance:DatabaseInstance": ("settings", "userLabels"),
}
# Taggable types that must stay untagged: an account-wide service-linked role is adopted with `import_`, and
# tags that differ from the existing role's would fail the import.
DEFAULT_EXEMPT_TYPES = ("aws:iam/serviceLinkedRole:ServiceLinkedRole",)


def _camel_to_snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


@functools.cache
def _sdk_parameters(type_token: str) -> frozenset[str]:
    """The constructor arguments of a resource type in its provider's Python SDK (empty if unknown)."""
    provider, _, rest = type_token.partition(":")
    module_path, _, class_name = rest.partition(":")
    module = module_path.split("/")[0]
    try:
        sdk = importlib.import_module(
            f"pulumi_{provider}.{module}" if module != "index" else f"pulumi_{provider}"
        )
        cls = getattr(sdk, class_name)
        return frozenset(inspect.signature(cls._internal_init).parameters)
    except (ImportError, AttributeError, ValueError, TypeError):
        return frozenset()


def _labels_path(r: Resource) -> tuple[str, ...] | None:
    """Where this resource keeps its cost-allocation tags, or None if its type takes none."""
    if r.type.startswith("aws:"):
        return ("tags",) if "tags" in _sdk_parameters(r.type) else None
    if r.type.startswith("gcp:"):
        if r.type in NESTED_GCP_LABELS:
            return NESTED_GCP_LABELS[r.type]
        params = _sdk_parameters(r.type)
        for name in ("resource_labels", "labels"):
            if name in params:
                return ("resourceLabels" if name == "resource_labels" else "labels",)
    return None


def cost_allocation_tags(r: Resource, config: Mapping[str, Any]) -> Iterator[str]:
    if r.type in as_list(config.get("exemptTypes", DEFAULT_EXEMPT_TYPES)):
        return
    path = _labels_path(r)
    if path is None:
        return
    required = [str(k) for k in as_list(config.get("requiredTags", DEFAULT_REQUIRED))]
    if r.type.startswith("gcp:"):
        required = [_camel_to_snake(k) for k in required]
    have = dig(r.props, *path, default={})
    have = have if isinstance(have, Mapping) else {}
    missing = [k for k in required if not str(have.get(k, "")).strip()]
    if missing:
        where = ".".join(path)
        yield (
            f"{display(r)}: {where} lacks {', '.join(missing)}; cost reports cannot attribute it "
            "(set them in the stack's `tags`)"
        )


RULES: list[Rule] = [
    Rule(
        "cost-allocation-tags",
        "cost",
        "Every taggable cloud resource carries the cost-allocation tags (team, costCenter).",
        resource_check=cost_allocation_tags,
        config_schema={
            "requiredTags": {"type": "array", "items": {"type": "string"}},
            "exemptTypes": {"type": "array", "items": {"type": "string"}},
        },
    )
]
