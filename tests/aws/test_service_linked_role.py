"""Finding 1: a fresh account has no AWSServiceRoleForAutoScaling, and a KMS key policy may only name principals
that exist. The plan declares the role (adopting it where it exists) and creates the EBS key after it."""

from __future__ import annotations

import pytest
from aws_plan_helpers import policy
from policy.plan_edits import findings

from mlops_infra.tooling.offline import ACCOUNT_ID, evaluate

from plan_support import STACKS

SLR = "aws:iam/serviceLinkedRole:ServiceLinkedRole"
ROLE_ARN = (
    f"arn:aws:iam::{ACCOUNT_ID}:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"
)


def autoscaling_principals(key) -> set[str]:  # type: ignore[no-untyped-def]
    statements = policy(key)["Statement"]
    return {s["Principal"]["AWS"] for s in statements if s["Sid"].startswith("AutoScaling")}


@pytest.mark.parametrize("stack", ["dev", "test", "prod"])
def test_fresh_account_key_names_only_principals_the_plan_creates_first(stack_plan, stack):
    """Fails on the code that built the role's ARN from the account id: nothing declared it, and the first
    apply in a fresh account stopped at CreateKey (MalformedPolicyDocumentException, invalid principals)."""
    plan = stack_plan(stack)
    assert findings(plan, "policy-principals-exist") == []
    (role,) = plan.of_type(SLR)
    key = plan.named(f"mlops-{stack}-ebs")
    assert autoscaling_principals(key) == {role.outputs["arn"]} == {ROLE_ARN}
    assert role.urn in key.depends_on, "the key is created only after the role exists"


def test_the_role_is_never_ours_to_delete_and_is_created_in_a_fresh_account(stack_plan):
    (role,) = stack_plan("prod").of_type(SLR)
    assert role.inputs == {"awsServiceName": "autoscaling.amazonaws.com"}  # minimal: an import matches
    assert role.retain_on_delete, "account-wide: a destroy of this stack must leave it"
    assert role.import_id is None, "the offline account is fresh: the role is created"
    assert set(role.ignore_changes) >= {"description", "tags"}


def test_an_existing_role_is_adopted_not_created_again():
    """`CreateServiceLinkedRole` on an existing role fails ("has been taken"): where the account has it, the plan
    imports it by its ARN (its id); a custom-suffix variant of the role does not count."""
    suffixed = ROLE_ARN + "_custom"
    plan = evaluate(STACKS / "Pulumi.dev.yaml", existing_roles=(suffixed,))
    (role,) = plan.of_type(SLR)
    assert role.import_id is None
    plan = evaluate(STACKS / "Pulumi.dev.yaml", existing_roles=(suffixed, ROLE_ARN))
    (role,) = plan.of_type(SLR)
    assert role.import_id == ROLE_ARN
    assert role.retain_on_delete
    assert autoscaling_principals(plan.named("mlops-dev-ebs")) == {ROLE_ARN}
    assert findings(plan, "policy-principals-exist") == []
