"""Offline plans of the reference stacks, cached per test session (importable by any test module)."""

from __future__ import annotations

import copy
import functools
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from mlops_infra.tooling.offline import evaluate
from mlops_infra.tooling.plan import Plan

ROOT = Path(__file__).resolve().parents[1]
STACKS = ROOT / "stacks"
# Alert rules and dashboards ship inside the package, next to the component that deploys them.
MONITORING_FILES = ROOT / "infra/mlops_infra/components/k8s/monitoring_files"
REFERENCE_STACKS = sorted(p.name.split(".")[1] for p in STACKS.glob("Pulumi.*.yaml"))


@functools.cache
def reference_plan(stack: str) -> Plan:
    return evaluate(STACKS / f"Pulumi.{stack}.yaml")


def load_stack_doc(stack: str) -> dict[str, Any]:
    return copy.deepcopy(yaml.safe_load((STACKS / f"Pulumi.{stack}.yaml").read_text()))


def git(repo: Path, *args: str) -> str:
    """git in `repo` with a fixed identity (a CI runner has none); stdout."""
    return subprocess.run(
        ["git", "-c", "user.name=ci-test", "-c", "user.email=ci-test@example.invalid", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def committed_project_copy(repo: Path) -> Path:
    """The project's program, policies, stacks and workloads copied to `repo` and committed as one revision:
    a base for `--compare REF` that this tree's later edits cannot reach."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("infra", "policies", "stacks", "monitoring", "workloads"):
        shutil.copytree(ROOT / name, repo / name, ignore=ignore)
    shutil.copy(ROOT / "Pulumi.yaml", repo / "Pulumi.yaml")
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "base")
    return repo
