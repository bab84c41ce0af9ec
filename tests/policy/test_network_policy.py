"""`network-policies-enforced`: the stacks' NetworkPolicies are enforced by the cluster's network plugin."""

from __future__ import annotations

import json
from typing import Any

import pytest
from policy.plan_edits import edit_plan, findings

from plan_support import REFERENCE_STACKS

RULE = "network-policies-enforced"
ADDON = "aws:eks/addon:Addon"


def _vpc_cni(r: Any) -> bool:
    return bool(r.type == ADDON and r.inputs.get("addonName") == "vpc-cni")


@pytest.mark.parametrize("stack", REFERENCE_STACKS)
def test_reference_stacks_enforce_their_network_policies(stack_plan, stack: str) -> None:
    assert findings(stack_plan(stack), RULE) == []


def test_eks_vpc_cni_turns_the_network_policy_agent_on(stack_plan) -> None:
    (cni,) = [r for r in stack_plan("prod").resources if _vpc_cni(r)]
    assert json.loads(cni.inputs["configurationValues"]) == {"enableNetworkPolicy": "true"}


def test_finding_8_vpc_cni_without_network_policy_is_caught(stack_plan) -> None:
    plan = edit_plan(stack_plan("prod"), _vpc_cni, lambda inputs: inputs.pop("configurationValues"))
    (violation,) = findings(plan, RULE)
    assert "accepted and not enforced" in violation.message


def test_an_old_vpc_cni_is_caught(stack_plan) -> None:
    plan = edit_plan(
        stack_plan("dev"), _vpc_cni, lambda inputs: inputs.update(addonVersion="v1.13.4-eksbuild.1")
    )
    (violation,) = findings(plan, RULE)
    assert "predates network policy support" in violation.message


def test_gke_without_dataplane_v2_is_caught(stack_plan) -> None:
    plan = edit_plan(
        stack_plan("prod-gcp"),
        lambda r: r.type == "gcp:container/cluster:Cluster",
        lambda inputs: inputs.update(datapathProvider="LEGACY_DATAPATH"),
    )
    (violation,) = findings(plan, RULE)
    assert "without Dataplane V2" in violation.message
