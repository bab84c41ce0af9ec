"""`canary-weights-are-shares`: a Rollout without a traffic router declares only weights its minimum replica
count realises. Passing on every reference stack, firing on the old 5 -> 25 -> 50 steps (finding 6)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from policy.plan_edits import edit_plan, findings

from mlops_infra.tooling.plan import Plan, RecordedResource

from plan_support import REFERENCE_STACKS

RULE = "canary-weights-are-shares"
ROLLOUT = "kubernetes:argoproj.io/v1alpha1:Rollout"
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"


def of_type(token: str) -> Callable[[RecordedResource], bool]:
    return lambda r: r.type == token


def old_steps(inputs: dict[str, Any]) -> None:
    """The deployer before the fix: 5 -> 25 -> 50 -> 100 with the controller's default fenceposts."""
    canary = inputs["spec"]["strategy"]["canary"]
    canary.pop("maxSurge")
    canary.pop("maxUnavailable")
    canary["steps"] = [
        {"setWeight": 5}, {"pause": {"duration": "2m"}}, {"setWeight": 25}, {"pause": {"duration": "5m"}},
        {"setWeight": 50}, {"pause": {"duration": "5m"}}, {"setWeight": 100},
    ]  # fmt: skip


@pytest.mark.parametrize("stack", REFERENCE_STACKS)
def test_reference_stacks_declare_real_shares(stack_plan: Callable[[str], Plan], stack: str) -> None:
    assert findings(stack_plan(stack), RULE) == []


def test_old_steps_fail_with_the_share_they_really_give(stack_plan: Callable[[str], Plan]) -> None:
    (prod,) = findings(edit_plan(stack_plan("prod"), of_type(ROLLOUT), old_steps), RULE)
    assert prod.enforcement == "mandatory"
    assert prod.message.startswith(
        "Rollout serving/fraud-server: steps[0] setWeight 5 gives the canary 25.0 % of the traffic at 3 replica(s)"
    )
    dev = findings(edit_plan(stack_plan("dev"), of_type(ROLLOUT), old_steps), RULE)
    assert [f.message.split(": ")[1].split(" of the")[0] for f in dev] == [
        "steps[0] setWeight 5 gives the canary 50.0 %",
        "steps[2] setWeight 25 gives the canary 50.0 %",
    ]


def test_the_hpa_minimum_decides_and_a_traffic_router_is_out_of_scope(
    stack_plan: Callable[[str], Plan],
) -> None:
    old = edit_plan(stack_plan("prod"), of_type(ROLLOUT), old_steps)
    twenty = edit_plan(old, of_type(HPA), lambda i: i["spec"].update(minReplicas=20, maxReplicas=40))
    assert findings(twenty, RULE) == []  # 1 canary pod of 20 is 5 %
    routed = edit_plan(
        old, of_type(ROLLOUT), lambda i: i["spec"]["strategy"]["canary"].update(trafficRouting={"nginx": {}})
    )
    assert findings(routed, RULE) == []
