"""Every object every stack renders validates strictly: built-in kinds against the official Kubernetes schemas
of the version the stack pins, custom resources against their CRD schemas with unknown fields rejected."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from mlops_infra.tooling.render import render

from plan_support import REFERENCE_STACKS, reference_plan

CRD_SCHEMAS = Path(__file__).parent / "schemas" / "crds"


@cache
def crd_schema(api_version: str, kind: str) -> dict[str, Any] | None:
    group, _, version = api_version.rpartition("/")
    path = CRD_SCHEMAS / group / f"{kind.lower()}_{version}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _closed(schema: Any) -> Any:
    """Reject unknown fields: every object schema with properties gets additionalProperties false."""
    if isinstance(schema, dict):
        schema = {k: _closed(v) for k, v in schema.items()}
        open_ended = "additionalProperties" in schema or schema.get("x-kubernetes-preserve-unknown-fields")
        if schema.get("type") == "object" and "properties" in schema and not open_ended:
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [_closed(v) for v in schema]
    return schema


def validate_object(obj: dict[str, Any], version: str) -> None:
    api_version, kind = obj["apiVersion"], obj["kind"]
    if "/" in api_version and "." in api_version.split("/")[0]:
        schema = crd_schema(api_version, kind)
        if schema is not None:
            # The CRD schemas carry Go regexes ("(?i)" mid-pattern) that the metaschema check rejects; validate
            # the object without checking the schema itself.
            closed = _closed(schema)
            error = jsonschema.exceptions.best_match(
                jsonschema.validators.validator_for(closed)(closed).iter_errors(obj)
            )
            if error is not None:
                raise error
            return
        if not api_version.split("/")[0].endswith(".k8s.io"):
            pytest.fail(f"no schema for custom resource {api_version} {kind}: add one under {CRD_SCHEMAS}")
    kubernetes_validate.validate(obj, f"{version}.0", strict=True)


@pytest.mark.parametrize("stack", REFERENCE_STACKS)
def test_every_rendered_object_validates(stack: str, tmp_path: Path) -> None:
    plan = reference_plan(stack)
    files = render(plan, tmp_path)
    manifests = [f for f in files if not f.name.startswith("helm-")]
    assert manifests, "a stack renders at least its namespaces"
    errors = []
    for path in manifests:
        obj = yaml.safe_load(path.read_text())
        assert path.name.startswith(obj["kind"].lower() + "-")
        try:
            validate_object(obj, plan.config.cluster.version)
        except (jsonschema.ValidationError, kubernetes_validate.ValidationError) as exc:
            errors.append(f"{path.name}: {getattr(exc, 'message', exc)}")
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize("stack", REFERENCE_STACKS)
def test_helm_values_files_pin_chart_and_repo(stack: str, tmp_path: Path) -> None:
    for path in render(reference_plan(stack), tmp_path):
        if path.name.startswith("helm-"):
            values = yaml.safe_load(path.read_text())
            assert values["repo"] or str(values["chart"]).startswith("oci://"), (
                f"{path.name}: no chart source"
            )
            assert values["version"] and values["version"][0].isdigit(), (
                f"{path.name}: chart version not pinned"
            )


def test_strict_validation_rejects_unknown_fields() -> None:
    """The validator itself must fail on a typo, or the tests above prove nothing."""
    bad = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "dataa": {}}
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_object(bad, "1.33")
    rule = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "x"},
        "spec": {"groups": [{"name": "g", "rulez": []}]},
    }
    with pytest.raises(jsonschema.ValidationError):
        validate_object(rule, "1.33")
