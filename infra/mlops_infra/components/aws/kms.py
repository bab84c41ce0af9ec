"""Customer-managed KMS keys with rotation: one for Kubernetes Secrets (envelope encryption), one for EBS."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pulumi
import pulumi_aws as aws

DELETION_WINDOW_DAYS = 30


def _policy(account_id: str, partition: str, statements: list[dict[str, Any]]) -> str:
    """The account root may administer the key (so IAM policies apply); extra statements are appended."""
    root = {
        "Sid": "AccountAdministers",
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:{partition}:iam::{account_id}:root"},
        "Action": "kms:*",
        "Resource": "*",
    }
    return json.dumps({"Version": "2012-10-17", "Statement": [root, *statements]}, sort_keys=True)


def autoscaling_ebs_statements(role_arn: str) -> list[dict[str, Any]]:
    """What the Auto Scaling service-linked role needs to launch instances with volumes under this key.

    Without it, managed node groups whose launch template names a customer key fail to launch
    (`Client.InvalidKMSKey.InvalidState`). The role must exist before the key (see service_linked_roles.py).
    """
    return [
        {
            "Sid": "AutoScalingUsesKey",
            "Effect": "Allow",
            "Principal": {"AWS": role_arn},
            "Action": [
                "kms:Encrypt",
                "kms:Decrypt",
                "kms:ReEncrypt*",
                "kms:GenerateDataKey*",
                "kms:DescribeKey",
            ],
            "Resource": "*",
        },
        {
            "Sid": "AutoScalingCreatesGrants",
            "Effect": "Allow",
            "Principal": {"AWS": role_arn},
            "Action": "kms:CreateGrant",
            "Resource": "*",
            "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}},
        },
    ]


def ec2_ebs_statements(account_id: str, region: str) -> list[dict[str, Any]]:
    """Any principal of this account may use the key, but only through EC2 in this region (what EBS does with
    its own keys). Karpenter launches nodes with EC2 Fleet, where the EC2 Spot / Fleet service-linked roles may be
    the ones creating the volumes; the Karpenter docs' fix for nodes that terminate before Ready on an encrypted
    volume (aws/karpenter-provider-aws troubleshooting.md, v1.14; issue #1407) is exactly this statement."""
    return [
        {
            "Sid": "AccountUsesKeyThroughEc2",
            "Effect": "Allow",
            "Principal": {"AWS": "*"},
            "Action": [
                "kms:Encrypt",
                "kms:Decrypt",
                "kms:ReEncrypt*",
                "kms:GenerateDataKey*",
                "kms:CreateGrant",
                "kms:DescribeKey",
            ],
            "Resource": "*",
            "Condition": {
                "StringEquals": {
                    "kms:ViaService": f"ec2.{region}.amazonaws.com",
                    "kms:CallerAccount": account_id,
                }
            },
        }
    ]


def kms_key(
    name: str,
    description: str,
    tags: Mapping[str, str],
    parent: pulumi.Resource,
    autoscaling_role_arn: pulumi.Input[str] | None = None,
    protect: bool = False,
    ec2_region: str | None = None,
) -> aws.kms.Key:
    """A symmetric key with yearly rotation, a 30-day deletion window and an alias `alias/<name>`.

    `autoscaling_role_arn`: the Auto Scaling service-linked role's ARN output, to let Auto Scaling launch
    instances with volumes under this key; taking the output orders the key after the role.
    `ec2_region`: also let this account's principals use the key through EC2 in that region (Karpenter nodes).
    """
    identity = aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=parent))
    partition = aws.get_partition_output(opts=pulumi.InvokeOutputOptions(parent=parent))

    def statements(account_id: str, role_arn: str | None) -> list[dict[str, Any]]:
        found = autoscaling_ebs_statements(role_arn) if role_arn is not None else []
        return found + (ec2_ebs_statements(account_id, ec2_region) if ec2_region else [])

    policy = pulumi.Output.all(identity.account_id, partition.partition, autoscaling_role_arn).apply(
        lambda a: _policy(a[0], a[1], statements(a[0], a[2]))
    )
    key = aws.kms.Key(
        name,
        description=description,
        enable_key_rotation=True,
        deletion_window_in_days=DELETION_WINDOW_DAYS,
        policy=policy,
        tags=dict(tags),
        opts=pulumi.ResourceOptions(parent=parent, protect=protect),
    )
    aws.kms.Alias(
        f"{name}-alias",
        name=f"alias/{name}",
        target_key_id=key.key_id,
        opts=pulumi.ResourceOptions(parent=parent),
    )
    return key
