"""Shared fixtures: offline plans of the reference stacks (cached) and of mutated copies of them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlops_infra.tooling.offline import evaluate
from mlops_infra.tooling.plan import Plan

from plan_support import load_stack_doc, reference_plan


@pytest.fixture(scope="session")
def stack_plan() -> Callable[[str], Plan]:
    """`stack_plan("prod")`: the offline plan of a reference stack, evaluated once per session."""
    return reference_plan


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
