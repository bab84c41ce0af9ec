"""No generated password reaches the plan in plain text: not in Secrets, Helm values, env, outputs or renders.

The offline engine synthesises each RandomPassword's `result`; these tests recompute those exact values and
search every byte the plan and the render produce for them. A control program that leaks on purpose proves
the search finds a leak.
"""

from __future__ import annotations

import json
from pathlib import Path

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random
import pytest
from pulumi.runtime import mocks, rpc

from mlops_infra.tooling.offline import OfflineMocks, evaluate
from mlops_infra.tooling.plan import Plan, plan_json
from mlops_infra.tooling.render import render

from plan_support import STACKS, reference_plan

PASSWORD_TYPE = "random:index/randomPassword:RandomPassword"


def generated_passwords(plan: Plan) -> dict[str, str]:
    """{resource name: the value the offline engine gave that RandomPassword's result}."""
    engine = OfflineMocks(region=plan.config.region or "local", stack=plan.stack)
    values = {}
    for resource in plan.of_type(PASSWORD_TYPE):
        args = mocks.MockResourceArgs(
            typ=resource.type, name=resource.name, inputs=dict(resource.inputs), custom=True
        )
        _, outputs = engine.new_resource(args)
        values[resource.name] = str(rpc.unwrap_rpc_secret(outputs["result"]))
    return values


def leaks(plan: Plan, tmp_path: Path) -> list[str]:
    """Where any generated password appears in the plan JSON or in a rendered file."""
    texts = {"plan --json": json.dumps(plan_json(plan))}
    for path in render(plan, tmp_path):
        texts[path.name] = path.read_text()
    return [
        f"{resource} in {where}"
        for resource, value in generated_passwords(plan).items()
        for where, text in texts.items()
        if value in text
    ]


@pytest.mark.parametrize("stack", ["local", "dev", "prod", "prod-gcp"])
def test_generated_passwords_never_appear_in_plain_text(stack: str, tmp_path: Path) -> None:
    plan = reference_plan(stack)
    names = set(generated_passwords(plan))
    assert {"redis-password", "mlflow-db-password", "monitoring-grafana-admin"} <= names
    assert all(len(v) == 32 for v in generated_passwords(plan).values())
    assert leaks(plan, tmp_path) == []


def test_the_leak_search_finds_a_leak(tmp_path: Path) -> None:
    """Control: a password copied out of its secret wrapper into a ConfigMap must be reported."""

    def leaky_program() -> dict[str, object]:
        provider = k8s.Provider("p")
        password = random.RandomPassword("leaky", length=32, special=False)
        k8s.core.v1.ConfigMap(
            "leak",
            metadata={"name": "leak", "namespace": "default"},
            data={"password": pulumi.Output.unsecret(password.result)},
            opts=pulumi.ResourceOptions(provider=provider),
        )
        return {}

    plan = evaluate(STACKS / "Pulumi.local.yaml", program=leaky_program)
    assert leaks(plan, tmp_path) == ["leaky in plan --json", "leaky in configmap-default-leak.yaml"]
