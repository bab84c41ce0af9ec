"""IAM for the Karpenter controller and its nodes, as Karpenter 1.14.1 documents it.

Source: aws/karpenter-provider-aws v1.14.1, website/content/en/v1.14/getting-started/getting-started-with-karpenter/
cloudformation.yaml: the policies `KarpenterControllerNodeLifecyclePolicy`, `...IAMIntegrationPolicy`,
`...EKSIntegrationPolicy`, `...InterruptionPolicy` and `...ResourceDiscoveryPolicy` (statements and conditions as
published; `ZonalShiftPolicy` is left out because the platform does not turn on `settings.enableZonalShift`).
Every write is scoped to this cluster: instances, launch templates and instance profiles Karpenter creates carry
`kubernetes.io/cluster/<name>: owned` plus a `karpenter.sh/nodepool` or `karpenter.k8s.aws/ec2nodeclass` tag,
and the conditions require them, so one cluster's controller can never terminate another cluster's nodes.

The node root volumes are encrypted with the cluster's EBS key (a customer key): its key policy lets the account's
principals use it through EC2 (`kms.ec2_ebs_statements`), which covers the controller and the EC2 service-linked
roles that take part in a fleet launch, so no KMS statement is needed here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

# The managed policies of the upstream template, by the name they carry there (policy name -> builder below).
POLICY_NAMES: tuple[str, ...] = (
    "NodeLifecycle",
    "IAMIntegration",
    "EKSIntegration",
    "Interruption",
    "ResourceDiscovery",
)
INTERRUPTION_QUEUE_ACTIONS: tuple[str, ...] = ("sqs:DeleteMessage", "sqs:GetQueueUrl", "sqs:ReceiveMessage")
REGIONAL_READ_ACTIONS: tuple[str, ...] = (
    "ec2:DescribeCapacityReservations",
    "ec2:DescribeImages",
    "ec2:DescribeInstances",
    "ec2:DescribeInstanceStatus",
    "ec2:DescribeInstanceTypeOfferings",
    "ec2:DescribeInstanceTypes",
    "ec2:DescribeLaunchTemplates",
    "ec2:DescribePlacementGroups",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeSpotPriceHistory",
    "ec2:DescribeSubnets",
)


@dataclass(frozen=True)
class ControllerScope:
    """What the controller's policies name: the cluster, where it runs, and the resources it may use."""

    cluster_name: str
    region: str
    account_id: str
    partition: str
    node_role_arn: str
    queue_arn: str

    def ec2(self, resource: str, account: str = "*") -> str:
        return f"arn:{self.partition}:ec2:{self.region}:{account}:{resource}"

    @property
    def owned(self) -> dict[str, str]:
        return {f"aws:ResourceTag/kubernetes.io/cluster/{self.cluster_name}": "owned"}

    @property
    def requested(self) -> dict[str, str]:
        return {
            f"aws:RequestTag/kubernetes.io/cluster/{self.cluster_name}": "owned",
            "aws:RequestTag/eks:eks-cluster-name": self.cluster_name,
        }

    @property
    def instance_profile(self) -> str:
        return f"arn:{self.partition}:iam::{self.account_id}:instance-profile/*"


_TAGGED_KINDS = (
    "fleet",
    "instance",
    "volume",
    "network-interface",
    "launch-template",
    "spot-instances-request",
)


def node_lifecycle(s: ControllerScope) -> list[dict[str, Any]]:
    tagged = [s.ec2(f"{kind}/*") for kind in _TAGGED_KINDS]
    launch = ["ec2:RunInstances", "ec2:CreateFleet"]
    return [
        {
            "Sid": "AllowScopedEC2InstanceAccessActions",
            "Effect": "Allow",
            "Resource": [
                s.ec2("image/*", ""),
                s.ec2("snapshot/*", ""),
                s.ec2("security-group/*"),
                s.ec2("subnet/*"),
                s.ec2("capacity-reservation/*"),
                s.ec2("placement-group/*"),
            ],
            "Action": launch,
        },
        {
            "Sid": "AllowScopedEC2LaunchTemplateAccessActions",
            "Effect": "Allow",
            "Resource": s.ec2("launch-template/*"),
            "Action": launch,
            "Condition": {
                "StringEquals": s.owned,
                "StringLike": {"aws:ResourceTag/karpenter.sh/nodepool": "*"},
            },
        },
        {
            "Sid": "AllowScopedEC2InstanceActionsWithTags",
            "Effect": "Allow",
            "Resource": tagged,
            "Action": [*launch, "ec2:CreateLaunchTemplate"],
            "Condition": {
                "StringEquals": s.requested,
                "StringLike": {"aws:RequestTag/karpenter.sh/nodepool": "*"},
            },
        },
        {
            "Sid": "AllowScopedResourceCreationTagging",
            "Effect": "Allow",
            "Resource": tagged,
            "Action": "ec2:CreateTags",
            "Condition": {
                "StringEquals": {
                    **s.requested,
                    "ec2:CreateAction": ["RunInstances", "CreateFleet", "CreateLaunchTemplate"],
                },
                "StringLike": {"aws:RequestTag/karpenter.sh/nodepool": "*"},
            },
        },
        {
            "Sid": "AllowScopedResourceTagging",
            "Effect": "Allow",
            "Resource": s.ec2("instance/*"),
            "Action": "ec2:CreateTags",
            "Condition": {
                "StringEquals": s.owned,
                "StringLike": {"aws:ResourceTag/karpenter.sh/nodepool": "*"},
                "StringEqualsIfExists": {"aws:RequestTag/eks:eks-cluster-name": s.cluster_name},
                "ForAllValues:StringEquals": {"aws:TagKeys": ["eks:eks-cluster-name", "karpenter.sh/nodeclaim", "Name"]},
            },
        },
        {
            "Sid": "AllowScopedDeletion",
            "Effect": "Allow",
            "Resource": [s.ec2("instance/*"), s.ec2("launch-template/*")],
            "Action": ["ec2:TerminateInstances", "ec2:DeleteLaunchTemplate"],
            "Condition": {
                "StringEquals": s.owned,
                "StringLike": {"aws:ResourceTag/karpenter.sh/nodepool": "*"},
            },
        },
    ]  # fmt: skip


def iam_integration(s: ControllerScope) -> list[dict[str, Any]]:
    region_tag = "topology.kubernetes.io/region"
    node_class = "karpenter.k8s.aws/ec2nodeclass"
    return [
        {
            "Sid": "AllowPassingInstanceRole",
            "Effect": "Allow",
            "Resource": s.node_role_arn,
            "Action": "iam:PassRole",
            "Condition": {"StringEquals": {"iam:PassedToService": ["ec2.amazonaws.com", "ec2.amazonaws.com.cn"]}},
        },
        {
            "Sid": "AllowScopedInstanceProfileCreationActions",
            "Effect": "Allow",
            "Resource": s.instance_profile,
            "Action": ["iam:CreateInstanceProfile"],
            "Condition": {
                "StringEquals": {**s.requested, f"aws:RequestTag/{region_tag}": s.region},
                "StringLike": {f"aws:RequestTag/{node_class}": "*"},
            },
        },
        {
            "Sid": "AllowScopedInstanceProfileTagActions",
            "Effect": "Allow",
            "Resource": s.instance_profile,
            "Action": ["iam:TagInstanceProfile"],
            "Condition": {
                "StringEquals": {
                    **s.owned,
                    f"aws:ResourceTag/{region_tag}": s.region,
                    **s.requested,
                    f"aws:RequestTag/{region_tag}": s.region,
                },
                "StringLike": {f"aws:ResourceTag/{node_class}": "*", f"aws:RequestTag/{node_class}": "*"},
            },
        },
        {
            "Sid": "AllowScopedInstanceProfileActions",
            "Effect": "Allow",
            "Resource": s.instance_profile,
            "Action": ["iam:AddRoleToInstanceProfile", "iam:RemoveRoleFromInstanceProfile", "iam:DeleteInstanceProfile"],
            "Condition": {
                "StringEquals": {**s.owned, f"aws:ResourceTag/{region_tag}": s.region},
                "StringLike": {f"aws:ResourceTag/{node_class}": "*"},
            },
        },
    ]  # fmt: skip


def eks_integration(s: ControllerScope) -> list[dict[str, Any]]:
    return [
        {
            "Sid": "AllowAPIServerEndpointDiscovery",
            "Effect": "Allow",
            "Resource": f"arn:{s.partition}:eks:{s.region}:{s.account_id}:cluster/{s.cluster_name}",
            "Action": "eks:DescribeCluster",
        }
    ]


def interruption(s: ControllerScope) -> list[dict[str, Any]]:
    return [
        {
            "Sid": "AllowInterruptionQueueActions",
            "Effect": "Allow",
            "Resource": s.queue_arn,
            "Action": list(INTERRUPTION_QUEUE_ACTIONS),
        }
    ]


def resource_discovery(s: ControllerScope) -> list[dict[str, Any]]:
    return [
        {
            "Sid": "AllowRegionalReadActions",
            "Effect": "Allow",
            "Resource": "*",
            "Action": list(REGIONAL_READ_ACTIONS),
            "Condition": {"StringEquals": {"aws:RequestedRegion": s.region}},
        },
        {
            "Sid": "AllowSSMReadActions",
            "Effect": "Allow",
            "Resource": f"arn:{s.partition}:ssm:{s.region}::parameter/aws/service/*",
            "Action": "ssm:GetParameter",
        },
        {
            "Sid": "AllowPricingReadActions",
            "Effect": "Allow",
            "Resource": "*",
            "Action": "pricing:GetProducts",
        },
        {
            "Sid": "AllowUnscopedInstanceProfileListAction",
            "Effect": "Allow",
            "Resource": "*",
            "Action": "iam:ListInstanceProfiles",
        },
        {
            "Sid": "AllowInstanceProfileReadActions",
            "Effect": "Allow",
            "Resource": s.instance_profile,
            "Action": "iam:GetInstanceProfile",
        },
    ]


_BUILDERS = {
    "NodeLifecycle": node_lifecycle,
    "IAMIntegration": iam_integration,
    "EKSIntegration": eks_integration,
    "Interruption": interruption,
    "ResourceDiscovery": resource_discovery,
}


def controller_policies(scope: ControllerScope) -> dict[str, dict[str, Any]]:
    """Policy name -> document. Kept as separate managed policies like the upstream template: together they
    exceed the 10,240 characters IAM allows for a role's inline policies."""
    return {name: {"Version": "2012-10-17", "Statement": _BUILDERS[name](scope)} for name in POLICY_NAMES}


def controller_policy_json(scope: ControllerScope, name: str) -> str:
    return json.dumps(controller_policies(scope)[name], sort_keys=True)


def pod_identity_trust(scope: ControllerScope) -> str:
    """EKS Pod Identity: the agent assumes the role for the associated service account (and tags the session);
    source account and cluster conditions keep another cluster's agent from assuming it (EKS User Guide, "Create
    an IAM role for EKS Pod Identity", confused-deputy conditions)."""
    cluster_arn = f"arn:{scope.partition}:eks:{scope.region}:{scope.account_id}:cluster/{scope.cluster_name}"
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "pods.eks.amazonaws.com"},
                    "Action": ["sts:AssumeRole", "sts:TagSession"],
                    "Condition": {
                        "StringEquals": {"aws:SourceAccount": scope.account_id},
                        "ArnEquals": {"aws:SourceArn": cluster_arn},
                    },
                }
            ],
        },
        sort_keys=True,
    )
