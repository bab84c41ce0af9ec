"""`check PLAN.json`: the pack runs on any saved plan, with the same verdict as on the stack it came from, and
catches tampering the stack config cannot express."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mlops_infra.tooling import cli
from mlops_infra.tooling.guardrails import add_to_plan_document
from mlops_infra.tooling.plan import plan_json
from mlops_policies.runner import check_document, check_plan

from plan_support import REFERENCE_STACKS


def _document(plan: Any) -> dict[str, Any]:
    return json.loads(json.dumps(add_to_plan_document(plan, plan_json(plan))))


@pytest.mark.parametrize("stack", REFERENCE_STACKS)
def test_a_saved_plan_gets_the_verdict_of_its_stack(stack_plan, stack: str) -> None:
    plan = stack_plan(stack)
    from_stack = sorted((v.policy, v.urn, v.message) for v in check_plan(plan))
    from_document = sorted(
        (v.policy, v.urn, v.message) for v in check_document(_document(plan), "saved.json")
    )
    assert from_document == from_stack


def _write(tmp_path: Path, doc: dict[str, Any]) -> Path:
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(doc))
    return path


def test_tampered_saved_plan_fails_check(
    stack_plan, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = _document(stack_plan("prod"))
    mlflow = next(
        r for r in doc["resources"] if r["type"].endswith(":Deployment") and r["name"] == "mlflow-deployment"
    )
    mlflow["inputs"]["spec"]["template"]["spec"]["volumes"].append(
        {"name": "docker", "hostPath": {"path": "/var/run/docker.sock"}}
    )
    doc["resources"].append(
        {
            "urn": "urn:pulumi:prod::mlops-platform::aws:iam/policy:Policy::god",
            "type": "aws:iam/policy:Policy",
            "name": "god",
            "custom": True,
            "inputs": {
                "policy": json.dumps({"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}),
                "tags": {"team": "ml-platform", "costCenter": "4711"},
            },
        }
    )
    code = cli.main(["check", str(_write(tmp_path, doc)), "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 1 and result["passed"] is False
    (found,) = result["stacks"].values()
    assert {v["policy"] for v in found["violations"]} == {"k8s-no-host-path", "iam-no-admin-wildcard"}


def test_a_saved_plan_cannot_relax_its_own_enforcement(stack_plan, tmp_path: Path) -> None:
    doc = _document(stack_plan("prod"))
    doc["policyConfig"] = {"all": "advisory"}  # not something check reads
    doc["resources"][0]["inputs"]["tags"] = {}
    bad = next(r for r in doc["resources"] if r["type"] == "aws:rds/instance:Instance")
    bad["inputs"]["publiclyAccessible"] = True
    assert cli.main(["check", str(_write(tmp_path, doc))]) == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[1, 2]", "expected the object `mlops-infra plan STACK --json` prints"),
        ('{"resources": 3}', "no `resources` list"),
        ('{"resources": [{"urn": 1}]}', "resources[0] needs string urn, type and name"),
        ('{"resources": []}', "environment None; a plan names dev, test or prod"),
        ("{not json", "not a readable JSON file"),
    ],
)
def test_malformed_saved_plans_are_input_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    path = tmp_path / "plan.json"
    path.write_text(text)
    assert cli.main(["check", str(path)]) == 2
    assert message in capsys.readouterr().err
