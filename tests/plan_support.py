"""Offline plans of the reference stacks, cached per test session (importable by any test module)."""

from __future__ import annotations

import copy
import functools
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
