"""`cost-allocation-tags`: every taggable resource (by the provider's own schema) carries team and costCenter."""

from __future__ import annotations

from typing import Any

import pytest
from policy.plan_edits import edit_plan, findings

from plan_support import REFERENCE_STACKS

RULE = "cost-allocation-tags"


@pytest.mark.parametrize("stack", REFERENCE_STACKS)
def test_reference_stacks_tag_everything_taggable(stack_plan, stack: str) -> None:
    assert findings(stack_plan(stack), RULE) == []


def test_a_stack_without_cost_tags_is_caught_on_every_taggable_resource(mutated_plan) -> None:
    def untagged(cfg: dict[str, Any]) -> None:
        cfg["mlops-platform:tags"] = {"owner": "someone"}

    found = findings(mutated_plan("prod", untagged), RULE)
    assert len(found) > 50  # VPC, subnets, NATs, cluster, node groups, roles, keys, buckets, ...
    vpc = next(v for v in found if "aws:ec2/vpc:Vpc" in str(v.urn))
    assert vpc.message.endswith(
        "tags lacks team, costCenter; cost reports cannot attribute it (set them in the stack's `tags`)"
    )
    assert not any("rolePolicyAttachment" in str(v.urn) for v in found)  # not taggable: not reported


def test_gcp_labels_use_the_snake_case_key_and_nested_places(stack_plan) -> None:
    plan = edit_plan(
        stack_plan("prod-gcp"),
        lambda r: r.type == "gcp:container/nodePool:NodePool",
        lambda inputs: inputs["nodeConfig"]["resourceLabels"].pop("cost_center"),
    )
    messages = [v.message for v in findings(plan, RULE)]
    assert messages and all("nodeConfig.resourceLabels lacks cost_center" in m for m in messages)
