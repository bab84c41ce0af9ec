"""IAM for cluster-autoscaler: read everything, change only this cluster's Auto Scaling groups."""

from __future__ import annotations

import json
from typing import Any

READ_ACTIONS: tuple[str, ...] = (
    "autoscaling:DescribeAutoScalingGroups",
    "autoscaling:DescribeAutoScalingInstances",
    "autoscaling:DescribeLaunchConfigurations",
    "autoscaling:DescribeScalingActivities",
    "autoscaling:DescribeTags",
    "ec2:DescribeImages",
    "ec2:DescribeInstanceTypes",
    "ec2:DescribeLaunchTemplateVersions",
    "ec2:GetInstanceTypesFromInstanceRequirements",
    "eks:DescribeNodegroup",
)
WRITE_ACTIONS: tuple[str, ...] = (
    "autoscaling:SetDesiredCapacity",
    "autoscaling:TerminateInstanceInAutoScalingGroup",
    "autoscaling:UpdateAutoScalingGroup",
)
NAMESPACE = "kube-system"
SERVICE_ACCOUNT = "cluster-autoscaler"


def cluster_autoscaler_policy(cluster_name: str) -> dict[str, Any]:
    """The policy document. Describe calls take no resource-level conditions, so they get `*`; scaling
    and terminating are limited to groups tagged `kubernetes.io/cluster/<name>: owned`, which EKS sets on
    its managed groups' ASGs (and node_groups.py sets again), so one cluster's autoscaler can never
    resize another cluster's nodes in the same account."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "Describe", "Effect": "Allow", "Action": list(READ_ACTIONS), "Resource": "*"},
            {
                "Sid": "ScaleOwnGroups",
                "Effect": "Allow",
                "Action": list(WRITE_ACTIONS),
                "Resource": "*",
                "Condition": {
                    "StringEquals": {f"autoscaling:ResourceTag/kubernetes.io/cluster/{cluster_name}": "owned"}
                },
            },
        ],
    }


def cluster_autoscaler_policy_json(cluster_name: str) -> str:
    return json.dumps(cluster_autoscaler_policy(cluster_name), sort_keys=True)
