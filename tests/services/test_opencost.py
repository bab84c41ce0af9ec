"""OpenCost (finding 12): installed from its upstream chart wherever monitoring is, reading the platform's
Prometheus and scraped back with honorLabels, restricted and non-root, with the cloud's pricing source (a
Cloud Billing API key, restricted to that API, on GKE)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from services.service_lookup import find_object, find_release

from mlops_infra.components.k8s.opencost import OPENCOST_REPO, OPENCOST_VERSION, PRICING_API_KEY
from mlops_infra.tooling.plan import Plan, plan_json

from plan_support import REFERENCE_STACKS, reference_plan

RESTRICTED = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def _values(plan: Plan) -> dict[str, Any]:
    return find_release(plan, "opencost").inputs["values"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("stack", REFERENCE_STACKS)
def test_opencost_runs_next_to_the_platform_prometheus(stack: str) -> None:
    plan = reference_plan(stack)
    rel = find_release(plan, "opencost")
    assert rel.inputs["chart"] == "opencost" and rel.inputs["version"] == OPENCOST_VERSION
    assert (
        rel.inputs["repositoryOpts"]["repo"]
        == OPENCOST_REPO
        == "https://opencost.github.io/opencost-helm-chart"
    )
    assert rel.inputs["namespace"] == "monitoring"
    assert find_release(plan, "kps").urn in rel.depends_on, "needs the ServiceMonitor CRD and Prometheus"
    values = _values(plan)
    internal = values["opencost"]["prometheus"]["internal"]
    # The chart builds http://<serviceName>.<namespaceName>.svc.<clusterName>:<port>: the kps Prometheus.
    prometheus = f"http://{internal['serviceName']}.{internal['namespaceName']}.svc.cluster.local:{int(internal['port'])}"
    assert internal["enabled"] is True and prometheus == plan.outputs["prometheusUrl"]
    monitor = values["opencost"]["metrics"]["serviceMonitor"]
    assert monitor["enabled"] is True and monitor["honorLabels"] is True
    assert values["opencost"]["exporter"]["defaultClusterId"] == plan.config.cluster_name


def test_opencost_runs_restricted_as_non_root_with_writable_scratch_only() -> None:
    values = _values(reference_plan("prod"))
    exporter = values["opencost"]["exporter"]
    assert RESTRICTED.items() <= exporter["securityContext"].items()
    assert exporter["securityContext"]["runAsUser"] != 0
    assert values["podSecurityContext"]["runAsNonRoot"] is True
    mounts = {m["mountPath"] for m in exporter["extraVolumeMounts"]}
    assert "/var/configs" in mounts  # OpenCost writes its pricing config there
    assert {v["name"] for v in values["extraVolumes"]} == {m["name"] for m in exporter["extraVolumeMounts"]}
    assert all("emptyDir" in v for v in values["extraVolumes"])
    assert exporter["resources"]["limits"]["memory"]
    assert values["opencost"]["ui"]["enabled"] is False


def test_gke_prices_come_from_the_cloud_billing_api_with_a_restricted_key() -> None:
    plan = reference_plan("prod-gcp")
    env = _values(plan)["opencost"]["exporter"]["env"]
    assert env == [
        {
            "name": PRICING_API_KEY,
            "valueFrom": {"secretKeyRef": {"name": "opencost-cloud-pricing", "key": PRICING_API_KEY}},
        }
    ]
    secret = find_object(plan, "Secret", "monitoring", "opencost-cloud-pricing")
    assert secret.inputs["stringData"] == {PRICING_API_KEY: "[secret]"}
    (key,) = plan.of_type("gcp:projects/apiKey:ApiKey")
    assert key.inputs["restrictions"]["apiTargets"] == [{"service": "cloudbilling.googleapis.com"}]
    assert key.inputs["project"] == plan.config.gcp_project
    services = [
        r
        for r in plan.of_type("gcp:projects/service:Service")
        if r.inputs["service"] == "cloudbilling.googleapis.com"
    ]
    assert len(services) == 1 and services[0].urn in key.depends_on
    assert "AIza" not in json.dumps(plan_json(plan)), "the key is a secret in the plan"


@pytest.mark.parametrize("stack", ["prod", "local"])
def test_aws_and_local_need_no_pricing_credentials(stack: str) -> None:
    """AWS: the public price list; local: OpenCost's default prices."""
    plan = reference_plan(stack)
    assert _values(plan)["opencost"]["exporter"]["env"] == []
    assert plan.of_type("gcp:projects/apiKey:ApiKey") == []


def test_no_opencost_without_monitoring(mutated_plan: Callable[..., Plan]) -> None:
    def off(cfg: dict[str, Any]) -> None:
        cfg["mlops-platform:services"]["monitoring"] = {"enabled": False}

    plan = mutated_plan("local", off, name="local-nomon")
    assert [r for r in plan.helm_releases() if r.inputs.get("name") == "opencost"] == []
