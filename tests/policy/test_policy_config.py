"""One source of truth for a stack's policy settings: `policies/config/<stack>.json` is generated from the stack
config by the function `check` uses, the Pulumi CLI would accept it, and the real pack given that file reaches
the same verdict as `mlops-infra check`, including on a plan over budget, which the old per-environment files
(no budget in them) let through."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from policy.crossguard_engine import ConfigRejected, Finding, engine_findings, reconcile

from mlops_infra.platform.config import load_stack
from mlops_infra.tooling.cli import main
from mlops_infra.tooling.plan import Plan
from mlops_infra.tooling.policy_files import policy_config_text
from mlops_policies.model import Violation
from mlops_policies.runner import check_plan, resources_from_plan
from mlops_policies.settings import default_config

from plan_support import REFERENCE_STACKS, ROOT, STACKS

CONFIG_DIR = ROOT / "policies" / "config"


def _offline(violations: Sequence[Violation]) -> list[Finding]:
    found = [Finding(v.policy, v.enforcement, v.urn) for v in violations]
    return sorted(found, key=lambda f: (f.policy, f.urn or "", f.enforcement))


@pytest.mark.parametrize("stack", REFERENCE_STACKS)
def test_committed_file_is_what_the_stack_config_gives(stack: str) -> None:
    path = CONFIG_DIR / f"{stack}.json"
    fix = "run `make policy-config` and commit the result"
    assert path.is_file(), f"{path.relative_to(ROOT)} is missing: {fix}"
    expected = policy_config_text(load_stack(STACKS / f"Pulumi.{stack}.yaml"))
    assert path.read_text() == expected, f"{path.relative_to(ROOT)} is stale: {fix}"


def test_every_file_belongs_to_a_stack() -> None:
    assert sorted(p.stem for p in CONFIG_DIR.glob("*.json")) == REFERENCE_STACKS


def test_policy_config_command_writes_checks_and_names_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """In a project root of its own: missing -> written -> up to date -> stale after a budget edit -> orphan."""
    (tmp_path / "stacks").mkdir()
    stack_file = tmp_path / "stacks" / "Pulumi.dev.yaml"
    shutil.copy(STACKS / "Pulumi.dev.yaml", stack_file)
    monkeypatch.chdir(tmp_path)
    target = Path("policies/config/dev.json")

    assert main(["policy-config", "--check"]) == 1
    assert (
        "policies/config/dev.json: missing; regenerate it with `make policy-config`"
        in capsys.readouterr().out
    )
    assert not target.exists()

    assert main(["policy-config"]) == 0
    assert target.read_text() == (CONFIG_DIR / "dev.json").read_text()
    assert main(["policy-config", "--check"]) == 0
    capsys.readouterr()

    stack_file.write_text(stack_file.read_text().replace("monthlyUsd: 800", "monthlyUsd: 900"))
    assert main(["policy-config", "dev", "--check"]) == 1
    assert "policies/config/dev.json: stale" in capsys.readouterr().out
    assert main(["policy-config", "dev"]) == 0
    assert json.loads(target.read_text())["budget-within-limit"]["monthlyUsd"] == 900

    Path("policies/config/staging.json").write_text("{}\n")
    assert main(["policy-config", "--check"]) == 1
    assert "policies/config/staging.json: no stack 'staging' in stacks/; delete it" in capsys.readouterr().out

    stack_file.write_text(stack_file.read_text().replace("monthlyUsd: 900", "monthlyUsd: -1"))
    assert main(["policy-config", "dev"]) == 2
    assert "mlops-platform:budget.monthlyUsd" in capsys.readouterr().err


@pytest.mark.parametrize("stack", REFERENCE_STACKS)
def test_the_pulumi_cli_accepts_the_file(stack: str) -> None:
    levels = reconcile(json.loads((CONFIG_DIR / f"{stack}.json").read_text()))
    assert {level for level, _ in levels.values()} <= {"advisory", "mandatory"}


def test_a_file_the_pulumi_cli_would_refuse_is_recognised() -> None:
    with pytest.raises(ConfigRejected, match="budget-within-limit"):
        reconcile({"all": "mandatory", "budget-within-limit": {"monthlyUsd": "a lot"}})
    with pytest.raises(ConfigRejected, match="not a valid level"):
        reconcile({"all": "blocking"})


@pytest.mark.parametrize("stack", REFERENCE_STACKS)
def test_the_pack_with_the_stack_file_reaches_the_verdict_of_check(
    stack: str, stack_plan: Callable[[str], Plan]
) -> None:
    plan = stack_plan(stack)
    document = json.loads((CONFIG_DIR / f"{stack}.json").read_text())
    assert engine_findings(resources_from_plan(plan), document) == _offline(check_plan(plan))


def test_a_plan_over_budget_fails_both_and_the_old_environment_file_let_it_through(
    mutated_plan: Callable[..., Plan],
) -> None:
    plan = mutated_plan(
        "prod", lambda cfg: cfg["mlops-platform:budget"].update(monthlyUsd=10000), "prod-over"
    )
    resources = resources_from_plan(plan)
    offline = _offline(check_plan(plan))
    assert Finding("budget-within-limit", "mandatory", None) in offline
    assert engine_findings(resources, json.loads(policy_config_text(plan.config))) == offline
    # Before: `pulumi up` got the environment's defaults only (the old policies/config/prod.json).
    old = engine_findings(resources, default_config("prod"))
    assert "budget-within-limit" not in {f.policy for f in old}
    assert old != offline
