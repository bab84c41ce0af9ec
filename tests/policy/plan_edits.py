"""Helpers for policy and cost tests (import as `policy.plan_edits`; `tests/` is on pythonpath): edit one resource of a real offline plan, and run rules over a plan.

`edited(plan, match, change)` copies a real plan and changes the inputs (or protect flag) of the resources
`match` selects - how a component regression would look - so each rule is shown failing on a plan that
is otherwise exactly what the stack declares. Config-level mistakes use the `mutated_plan` fixture.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from typing import Any

from mlops_infra.tooling.plan import Plan, RecordedResource
from mlops_policies.model import Violation
from mlops_policies.runner import check_plan

Match = Callable[[RecordedResource], bool]


def edit_plan(
    plan: Plan,
    match: Match,
    change: Callable[[dict[str, Any]], None] | None = None,
    *,
    protect: bool | None = None,
    drop: bool = False,
) -> Plan:
    resources: list[RecordedResource] = []
    hits = 0
    for r in plan.resources:
        if not match(r):
            resources.append(r)
            continue
        hits += 1
        if drop:
            continue
        inputs = copy.deepcopy(r.inputs)
        if change is not None:
            change(inputs)
        resources.append(
            dataclasses.replace(r, inputs=inputs, protect=r.protect if protect is None else protect)
        )
    assert hits, "the edit matched no resource: the plan no longer has what this test expects"
    return dataclasses.replace(plan, resources=resources)


def findings(plan: Plan, rule: str, overrides: dict[str, Any] | None = None) -> list[Violation]:
    return [v for v in check_plan(plan, overrides) if v.policy == rule]
