"""`mlops-infra check` and the guardrail fields of `plan --json`: exit codes and shapes of the contract."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlops_infra.tooling.cli import main

from plan_support import REFERENCE_STACKS, ROOT, load_stack_doc


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


def _write(tmp_path: Path, stack: str, mutate: Any, name: str) -> Path:
    doc = load_stack_doc(stack)
    mutate(doc["config"])
    path = tmp_path / f"Pulumi.{name}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@pytest.mark.parametrize("stack", REFERENCE_STACKS)
def test_check_passes_every_reference_stack(stack: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["check", stack, "--json"])
    doc = json.loads(capsys.readouterr().out)
    blocking = [v for v in doc["stacks"][stack]["violations"] if v["enforcement"] == "mandatory"]
    assert (code, blocking) == (0, [])


def test_check_fails_on_a_mandatory_violation_with_the_rule_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(
        tmp_path, "prod", lambda cfg: cfg.update({"mlops-platform:budget": {"monthlyUsd": 1000}}), "prod-over"
    )
    assert main(["check", str(path), "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["passed"] is False
    [v] = doc["stacks"]["prod-over"]["violations"]
    assert set(v) == {"policy", "enforcement", "urn", "message"}
    assert v["policy"] == "budget-within-limit" and v["enforcement"] == "mandatory"
    assert "exceeds the budget of 1,000.00 USD" in v["message"]


def test_advisory_findings_do_not_fail_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(
        tmp_path, "dev", lambda cfg: cfg.update({"mlops-platform:budget": {"monthlyUsd": 5}}), "dev-over"
    )
    assert main(["check", str(path)]) == 0
    out = capsys.readouterr().out
    assert "budget-within-limit" in out and "advisory" in out


def test_policy_config_override_and_bad_override(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(
        tmp_path, "dev", lambda cfg: cfg.update({"mlops-platform:budget": {"monthlyUsd": 5}}), "dev-strict"
    )
    strict = tmp_path / "strict.json"
    strict.write_text(json.dumps({"budget-within-limit": "mandatory"}))
    assert main(["check", str(path), "--policy-config", str(strict)]) == 1
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"no-such-rule": "mandatory"}))
    capsys.readouterr()
    assert main(["check", str(path), "--policy-config", str(bad)]) == 2
    assert "unknown rules no-such-rule" in capsys.readouterr().err


def test_invalid_config_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(
        tmp_path, "dev", lambda cfg: cfg.update({"mlops-platform:budget": {"monthlyUsd": -1}}), "dev-bad"
    )
    assert main(["check", str(path)]) == 2
    assert "mlops-platform:budget.monthlyUsd" in capsys.readouterr().err


def test_plan_json_carries_cost_and_violations(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "dev", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert main(["cost", "dev", "--json"]) == 0
    cost = json.loads(capsys.readouterr().out)
    assert plan["cost"] == cost
    assert isinstance(plan["violations"], list)
    assert all(set(v) == {"policy", "enforcement", "urn", "message"} for v in plan["violations"])


def test_console_script_reports_without_traceback(tmp_path: Path) -> None:
    path = _write(
        tmp_path, "dev", lambda cfg: cfg["mlops-platform:nodeGroups"][2].update(minSize=1), "dev-warm"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "mlops_infra.tooling.cli", "check", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"COLUMNS": "250", "PATH": ""},
    )
    assert proc.returncode == 1, proc.stderr
    assert "accelerators-scale-to-zero-nonprod" in proc.stdout and "Traceback" not in proc.stderr
