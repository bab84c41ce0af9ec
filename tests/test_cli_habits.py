"""CLI habits a user expects: --version, any subdirectory, re-rendering into the same directory, plain output
that stays readable in a file, NO_COLOR."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mlops_infra import __version__
from mlops_infra.tooling import cli
from mlops_infra.tooling.render import MARKER, RenderTargetError, render

from plan_support import ROOT


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"mlops-infra {__version__}"


def test_commands_work_from_a_subdirectory(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(ROOT / "monitoring" / "tests")
    assert cli.main(["validate", "local"]) == 0
    assert "stacks/Pulumi.local.yaml: valid (dev, local" in capsys.readouterr().out


def test_render_replaces_its_own_earlier_files_and_refuses_others(stack_plan, tmp_path: Path) -> None:
    plan = stack_plan("local")
    first = render(plan, tmp_path)
    assert (tmp_path / MARKER).is_file()
    dropped = next(r for r in plan.k8s_objects() if r.inputs.get("kind") == "HorizontalPodAutoscaler")
    smaller = dataclasses.replace(plan, resources=[r for r in plan.resources if r is not dropped])
    second = render(smaller, tmp_path)
    assert len(second) == len(first) - 1
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != MARKER) == sorted(p.name for p in second)

    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(RenderTargetError, match=r"holds files an earlier render did not write \(notes.txt\)"):
        render(plan, tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"  # nothing removed, nothing written
    assert len([p for p in tmp_path.iterdir() if p.name != MARKER]) == len(second) + 1


def test_render_into_a_foreign_directory_is_an_input_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "keep.yaml").write_text("a: 1")
    assert cli.main(["render", "local", "--out", str(tmp_path)]) == 2
    assert "holds files an earlier render did not write (keep.yaml)" in capsys.readouterr().err


def _piped(*args: str) -> str:
    """The CLI's stdout as a file gets it: not a terminal, however narrow COLUMNS says the screen is."""
    env = {**os.environ, "COLUMNS": "40", "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-m", "mlops_infra.tooling.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def test_plan_piped_to_a_file_is_a_tree_with_counts_and_never_folds(tmp_path: Path) -> None:
    stdout = _piped("plan", "prod")
    lines = stdout.splitlines()
    assert lines[0] == "Plan for stack prod (prod, aws, us-east-1):"
    assert "+ mlops:platform:Platform  mlops-platform" in lines
    backend = next(line for line in lines if line.endswith("+ mlops:aws:AwsPlatform  mlops-prod"))
    group = next(
        line for line in lines if line.endswith("+ aws:eks/nodeGroup:NodeGroup  mlops-prod-gpu-a10g")
    )
    # nested: Platform > AwsPlatform > GpuNodeGroup > NodeGroup
    assert len(group) - len(group.lstrip()) == len(backend) - len(backend.lstrip()) + 8
    assert any(line.strip() == "1  kubernetes provider" for line in lines)  # not "pulumi 1"
    summary = next(line for line in lines if "resources to create" in line)
    assert re.fullmatch(r"\d+ resources to create, \d+ components, \d+ protected", summary), summary
    assert "\x1b[" not in stdout  # no colour codes in a file, NO_COLOR respected
    assert not any(line.rstrip() != line for line in lines if line)  # no padding: nothing folded into columns
    budget_line = next(line for line in lines if line.startswith("monthly cost (USD)"))
    assert "13,8" in budget_line  # numbers stay whole on one line


def test_cost_table_piped_to_a_file_keeps_rows_whole() -> None:
    lines = _piped("cost", "prod-karpenter").splitlines()
    system = [line for line in lines if "mlops-prod-karpenter-system" in line]
    assert system and "aws:m6i.xlarge:on-demand" in system[0]  # one resource, one row: names whole
    total = next(line for line in lines if line.startswith("│ total"))
    assert re.search(r"\d{1,3}(,\d{3})*\.\d{2} │\s*$", total), total  # the max column's number whole
    assert len(max(lines, key=len)) < 400  # natural width, not padded to the console width
