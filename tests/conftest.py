"""Shared fixtures: offline plans of the reference stacks (cached) and of mutated copies of them."""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlops_infra.offline import Plan, evaluate

ROOT = Path(__file__).resolve().parents[1]
STACKS = ROOT / "stacks"
REFERENCE_STACKS = sorted(p.name.split(".")[1] for p in STACKS.glob("Pulumi.*.yaml"))


@functools.cache
def reference_plan(stack: str) -> Plan:
    return evaluate(STACKS / f"Pulumi.{stack}.yaml")


@pytest.fixture(scope="session")
def stack_plan() -> Callable[[str], Plan]:
    """`stack_plan("prod")`: the offline plan of a reference stack, evaluated once per session."""
    return reference_plan


def load_stack_doc(stack: str) -> dict[str, Any]:
    return copy.deepcopy(yaml.safe_load((STACKS / f"Pulumi.{stack}.yaml").read_text()))


@pytest.fixture
def mutated_plan(tmp_path: Path) -> Callable[..., Plan]:
    """`mutated_plan("dev", lambda cfg: ...)`: plan of a copy of a reference stack whose `config:` the
    callback edits in place (keys as in the stack file, e.g. cfg["mlops-platform:nodeGroups"])."""

    def build(stack: str, mutate: Callable[[dict[str, Any]], None], name: str | None = None) -> Plan:
        doc = load_stack_doc(stack)
        mutate(doc["config"])
        path = tmp_path / f"Pulumi.{name or stack}.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        return evaluate(path)

    return build
