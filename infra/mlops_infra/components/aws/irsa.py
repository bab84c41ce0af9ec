"""IAM Roles for Service Accounts: a role only one Kubernetes service account of one cluster can assume."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping

import pulumi
import pulumi_aws as aws

ROLE_ARN_ANNOTATION = "eks.amazonaws.com/role-arn"


def trust_policy(oidc_provider_arn: str, oidc_issuer: str, namespace: str, service_account: str) -> str:
    """Web-identity trust pinned to one service account (`sub`) and to STS as audience (`aud`)."""
    issuer = oidc_issuer.removeprefix("https://")
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Federated": oidc_provider_arn},
                    "Action": "sts:AssumeRoleWithWebIdentity",
                    "Condition": {
                        "StringEquals": {
                            f"{issuer}:sub": f"system:serviceaccount:{namespace}:{service_account}",
                            f"{issuer}:aud": "sts.amazonaws.com",
                        }
                    },
                }
            ],
        },
        sort_keys=True,
    )


def irsa_role(
    name: str,
    oidc_provider_arn: pulumi.Input[str],
    oidc_issuer: pulumi.Input[str],
    namespace: str,
    service_account: str,
    policy_json: pulumi.Input[str] | None,
    parent: pulumi.Resource,
    managed_policy_arns: list[str] | None = None,
    tags: Mapping[str, str] | None = None,
) -> aws.iam.Role:
    """A role for `<namespace>/<service_account>` with an inline policy and/or AWS-managed policies."""
    assume = pulumi.Output.all(oidc_provider_arn, oidc_issuer).apply(
        lambda a: trust_policy(a[0], a[1], namespace, service_account)
    )
    role = aws.iam.Role(
        name,
        name=name[:64],
        description=f"IRSA role of {namespace}/{service_account}",
        assume_role_policy=assume,
        tags=dict(tags or {}),
        opts=pulumi.ResourceOptions(parent=parent),
    )
    if policy_json is not None:
        aws.iam.RolePolicy(
            f"{name}-policy",
            role=role.name,
            name=name[:64],
            policy=policy_json,
            opts=pulumi.ResourceOptions(parent=role),
        )
    for i, arn in enumerate(managed_policy_arns or []):
        aws.iam.RolePolicyAttachment(
            f"{name}-managed-{i}", role=role.name, policy_arn=arn, opts=pulumi.ResourceOptions(parent=role)
        )
    return role


def irsa_binder(
    cluster_name: str,
    oidc_provider_arn: pulumi.Input[str],
    oidc_issuer: pulumi.Input[str],
    parent: pulumi.Resource,
    tags: Mapping[str, str] | None = None,
) -> Callable[[str, str, str, pulumi.Input[str]], Mapping[str, pulumi.Input[str]]]:
    """The ClusterHandle's `bind_workload_identity`: makes a role, returns the ServiceAccount annotations."""

    def bind(
        component: str, namespace: str, service_account: str, policy_json: pulumi.Input[str]
    ) -> Mapping[str, pulumi.Input[str]]:
        role = irsa_role(
            f"{cluster_name}-{component}",
            oidc_provider_arn,
            oidc_issuer,
            namespace,
            service_account,
            policy_json,
            parent,
            tags=tags,
        )
        return {ROLE_ARN_ANNOTATION: role.arn}

    return bind
