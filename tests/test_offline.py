"""The offline plan is faithful (what the engine would receive), complete, masked and deterministic."""

from __future__ import annotations

import json
import subprocess
import sys

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from mlops_infra.tooling.offline import evaluate
from mlops_infra.tooling.plan import SECRET, UNKNOWN, Plan

from plan_support import REFERENCE_STACKS, STACKS, reference_plan

RESOURCE_KEYS = {"urn", "type", "name", "parent", "custom", "protect", "inputs", "dependencies", "outputs"}


def _cli_json(*args: str) -> dict:  # type: ignore[type-arg]
    out = subprocess.run(
        [sys.executable, "-m", "mlops_infra.tooling.cli", *args], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def test_plan_json_shape_and_determinism() -> None:
    first = _cli_json("plan", "local", "--json")
    second = _cli_json("plan", str(STACKS / "Pulumi.local.yaml"), "--json")
    assert first == second, "the same stack gives the same JSON twice, by name or by path"
    assert {"stack", "project", "resources", "outputs"} <= set(first)
    assert first["stack"] == "local" and first["project"] == "mlops-platform"
    for resource in first["resources"]:
        assert set(resource) == RESOURCE_KEYS
        assert resource["urn"].startswith("urn:pulumi:local::mlops-platform::")
    types = {r["type"] for r in first["resources"]}
    assert "mlops:platform:Platform" in types and "kubernetes:core/v1:Namespace" in types


def test_every_resource_is_parented_and_inputs_are_camel_case() -> None:
    for stack in REFERENCE_STACKS:
        plan = reference_plan(stack)
        urns = {r.urn for r in plan.resources}
        for r in plan.resources:
            if r.type != "mlops:platform:Platform":
                assert r.parent in urns, f"{stack}: {r.urn} is not a child of a component"
            assert not any("_" in k and not k.startswith("__") for k in r.inputs), (
                f"{r.urn}: snake_case input"
            )


def test_no_unknown_values_in_reference_plans() -> None:
    """An output the mocks do not synthesise would silently drop dependent inputs: none may stay unknown."""
    for stack in REFERENCE_STACKS:
        text = json.dumps([r.inputs for r in reference_plan(stack).resources])
        assert UNKNOWN not in text, stack


def test_kubernetes_resources_use_an_explicit_provider() -> None:
    for stack in REFERENCE_STACKS:
        plan = reference_plan(stack)
        providers = {r.urn for r in plan.of_type("pulumi:providers:kubernetes")}
        assert providers, stack
        for r in plan.resources:
            if r.custom and r.type.startswith("kubernetes:"):
                assert r.provider in providers, f"{stack}: {r.urn} uses {r.provider}"


def _secret_program() -> dict[str, pulumi.Output[str]]:
    password = random.RandomPassword("pw", length=24, special=False)
    provider = k8s.Provider("p", context="kind")
    secret = k8s.core.v1.Secret(
        "s",
        metadata={"name": "s", "namespace": "default"},
        string_data={"password": password.result},
        opts=pulumi.ResourceOptions(provider=provider, protect=True),
    )
    return {"password": password.result, "secretName": secret.metadata.name}


def test_secrets_are_masked_and_protect_is_recorded() -> None:
    plan: Plan = evaluate(STACKS / "Pulumi.local.yaml", program=_secret_program)
    secret = plan.named("s")
    # A secret map keeps its (non-secret) keys so rendered Secrets still validate; every value is masked.
    assert secret.inputs["stringData"] == {"password": SECRET}
    assert secret.protect is True and plan.named("pw").protect is False
    assert secret.provider == plan.named("p").urn
    assert plan.outputs == {"password": SECRET, "secretName": "s"}


def test_human_plan_shows_cost_and_policy_findings() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "mlops_infra.tooling.cli", "plan", "dev"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    expected = _cli_json("plan", "dev", "--json")["cost"]["monthly"]["expected"]
    assert f"expected {expected:,.2f}" in out
    assert "policy findings: 0" in out


def test_evaluation_after_asyncio_run_in_the_same_thread() -> None:
    """asyncio.run() leaves the thread without a current event loop; Pulumi's runtime needs one."""
    import asyncio

    async def nothing() -> None:
        return None

    asyncio.run(nothing())
    plan = evaluate(STACKS / "Pulumi.local.yaml")
    assert any(r.type == "kubernetes:argoproj.io/v1alpha1:Rollout" for r in plan.resources)
