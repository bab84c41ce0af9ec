"""EKS managed add-ons at versions pinned per cluster minor (versions.py), with IRSA where they call AWS."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from mlops_infra.components.aws.irsa import irsa_role
from mlops_infra.components.aws.versions import addon_pins

# Add-ons nodes need to become Ready: installed before any node group exists.
BEFORE_COMPUTE = ("vpc-cni", "kube-proxy", "eks-pod-identity-agent")
# Add-ons that run as Deployments: installed once nodes exist, or they would wait for a node forever.
AFTER_COMPUTE = ("coredns", "aws-ebs-csi-driver")

# The addon's service account and the AWS-managed policy its IRSA role gets.
ADDON_IDENTITIES: dict[str, tuple[str, str, str]] = {
    "vpc-cni": ("kube-system", "aws-node", "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy"),
    "aws-ebs-csi-driver": (
        "kube-system",
        "ebs-csi-controller-sa",
        "arn:aws:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy",
    ),
}


# Add-on configuration (the add-on's own JSON schema, `aws eks describe-addon-configuration`). vpc-cni >= 1.14
# enforces NetworkPolicies only when its network policy agent is switched on; without it the policies the
# platform declares for MLflow, Redis and retraining are accepted by the API server and do nothing.
ADDON_CONFIGURATION: dict[str, dict[str, str]] = {"vpc-cni": {"enableNetworkPolicy": "true"}}


def ebs_kms_policy(key_arn: str) -> str:
    """Lets the EBS CSI driver create volumes under the customer key (the AWS-managed policy does not)."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": ["kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant"],
                    "Resource": key_arn,
                    "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}},
                },
                {
                    "Effect": "Allow",
                    "Action": [
                        "kms:Encrypt",
                        "kms:Decrypt",
                        "kms:ReEncrypt*",
                        "kms:GenerateDataKey*",
                        "kms:DescribeKey",
                    ],
                    "Resource": key_arn,
                },
            ],
        },
        sort_keys=True,
    )


@dataclass(frozen=True)
class EksAddonsArgs:
    cluster_name: pulumi.Input[str]
    version: str
    addons: tuple[str, ...]
    oidc_provider_arn: pulumi.Input[str]
    oidc_issuer: pulumi.Input[str]
    role_prefix: str
    ebs_kms_key_arn: pulumi.Input[str] | None = None
    tags: dict[str, str] = field(default_factory=dict)


class EksAddons(pulumi.ComponentResource):
    """A set of managed add-ons. Conflicts are resolved by overwriting: the add-on's config is the truth."""

    def __init__(self, name: str, args: EksAddonsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlops:aws:EksAddons", name, None, opts)
        pins = addon_pins(args.version).by_name()
        self.addons: dict[str, aws.eks.Addon] = {}
        for addon in args.addons:
            if addon not in pins:
                raise ValueError(f"unknown EKS add-on {addon!r}; known: {', '.join(sorted(pins))}")
            role_arn: pulumi.Input[str] | None = None
            if addon in ADDON_IDENTITIES:
                namespace, service_account, managed = ADDON_IDENTITIES[addon]
                inline = (
                    pulumi.Output.from_input(args.ebs_kms_key_arn).apply(ebs_kms_policy)
                    if addon == "aws-ebs-csi-driver" and args.ebs_kms_key_arn is not None
                    else None
                )
                role = irsa_role(
                    f"{args.role_prefix}-{addon}",
                    args.oidc_provider_arn,
                    args.oidc_issuer,
                    namespace,
                    service_account,
                    inline,
                    self,
                    managed_policy_arns=[managed],
                    tags=args.tags,
                )
                role_arn = role.arn
            self.addons[addon] = aws.eks.Addon(
                f"{name}-{addon}",
                cluster_name=args.cluster_name,
                addon_name=addon,
                addon_version=pins[addon],
                configuration_values=json.dumps(ADDON_CONFIGURATION[addon])
                if addon in ADDON_CONFIGURATION
                else None,
                service_account_role_arn=role_arn,
                resolve_conflicts_on_create="OVERWRITE",
                resolve_conflicts_on_update="OVERWRITE",
                tags=args.tags,
                opts=pulumi.ResourceOptions(parent=self),
            )
        self.register_outputs({"addons": {k: v.addon_version for k, v in self.addons.items()}})
