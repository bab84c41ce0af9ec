"""What a user sees when something is wrong: every problem in one run, verbatim text, a stack named after an
environment that declares another, warnings for ignored settings, and a crash that CI can tell from a finding."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from mlops_infra.tooling import cli

from plan_support import load_stack_doc


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def write(tmp_path: Path, name: str, config: dict[str, Any]) -> Path:
    path = tmp_path / f"Pulumi.{name}.yaml"
    path.write_text(yaml.safe_dump({"config": config}, sort_keys=False))
    return path


def test_schema_and_cross_field_problems_in_one_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = load_stack_doc("dev")["config"]
    config["mlops-platform:cluster"]["version"] = 1.33  # schema: YAML read a number
    groups = config["mlops-platform:nodeGroups"]
    groups[2]["role"] = "gpux"  # schema: enum
    groups[3]["minSize"], groups[3]["maxSize"] = 3, 2  # cross-field, after the group with a schema problem
    path = write(tmp_path, "staging", config)
    code, _, err = run(capsys, "validate", str(path))
    assert code == 2
    lines = err.splitlines()
    assert f"{path}: mlops-platform:cluster.version: got 1.33: YAML read 1.33 as a number" in err
    assert f"{path}: mlops-platform:nodeGroups[2].role: got 'gpux': allowed:" in err
    assert f"{path}: mlops-platform:nodeGroups[3].minSize: got 3: must be <= maxSize (2)" in lines


def test_user_text_is_printed_verbatim(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = load_stack_doc("dev")["config"]
    config["mlops-platform:cloud"] = "[bold]azure[/bold]"
    path = write(tmp_path, "verbatim", config)
    code, _, err = run(capsys, "validate", str(path))
    assert code == 2
    # rich would have turned ":cloud:" into an emoji and eaten the markup
    assert f"{path}: mlops-platform:cloud: got '[bold]azure[/bold]': allowed:" in err


@pytest.mark.parametrize(("stack", "declared"), [("prod", "dev"), ("prod-eu", "test"), ("dev", "prod")])
def test_a_stack_named_after_an_environment_must_declare_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], stack: str, declared: str
) -> None:
    config = load_stack_doc("dev")["config"]
    config["mlops-platform:environment"] = declared
    code, _, err = run(capsys, "validate", str(write(tmp_path, stack, config)))
    assert code == 2
    named = stack.split("-")[0]
    assert (
        f"mlops-platform:environment: got '{declared}': the stack is named '{stack}', so it must declare environment: {named}"
        in err
    )


def test_ignored_settings_are_warned_about_and_still_valid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = load_stack_doc("dev")["config"]
    config["mlops-platform:cluster"]["endpoint"] = {"private": False}
    code, out, err = run(capsys, "validate", str(write(tmp_path, "dev", config)))
    assert code == 0 and "valid (dev, aws" in out
    assert (
        "warning: " in err
        and "mlops-platform:cluster.endpoint.private: got false: no publicCidrs are listed" in err
    )

    gcp = load_stack_doc("prod-gcp")["config"]
    gcp["mlops-platform:autoscaler"] = {"expander": "least-waste"}
    code, _, err = run(capsys, "validate", str(write(tmp_path, "prod-gcp", gcp)))
    assert code == 0
    assert "mlops-platform:autoscaler.expander: got 'least-waste': configures the cluster-autoscaler" in err


def test_an_internal_error_has_its_own_exit_code_and_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(*_: Any) -> int:
        raise KeyError("spec")

    monkeypatch.setattr(cli, "cmd_validate", broken)
    monkeypatch.delenv("MLOPS_INFRA_DEBUG", raising=False)
    code, _, err = run(capsys, "validate", "dev")
    assert code == cli.EXIT_INTERNAL == 3
    assert err.splitlines() == [
        "internal error: KeyError: 'spec'",
        "this is a bug in mlops-infra; rerun with MLOPS_INFRA_DEBUG=1 for the traceback and report it",
    ]
    monkeypatch.setenv("MLOPS_INFRA_DEBUG", "1")
    with pytest.raises(KeyError):
        cli.main(["validate", "dev"])
