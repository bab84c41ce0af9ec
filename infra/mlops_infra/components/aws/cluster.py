"""The EKS control plane: IAM role, secrets encryption, logs, access entries, OIDC for IRSA, kubeconfig."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from mlops_infra.components.aws.kms import kms_key
from mlops_infra.components.aws.service_linked_roles import AUTOSCALING, service_linked_role

CLUSTER_ADMIN_POLICY = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"


@dataclass(frozen=True)
class EksClusterArgs:
    name: str
    version: str
    region: str
    subnet_ids: list[pulumi.Input[str]]
    endpoint_private: bool = True
    public_cidrs: tuple[str, ...] = ()
    log_types: tuple[str, ...] = ("api", "audit", "authenticator")
    log_retention_days: int = 90
    admin_role_arns: tuple[str, ...] = ()
    deletion_protection: bool = False
    tags: dict[str, str] = field(default_factory=dict)
    # Karpenter launches nodes through EC2 Fleet: the EBS key also serves this account's principals through EC2.
    ebs_key_for_ec2_fleet: bool = False


def endpoint_access(endpoint_private: bool, public_cidrs: tuple[str, ...]) -> tuple[bool, list[str]]:
    """(public access on?, allowed CIDRs). The private endpoint is always on (nodes use it).

    Public access needs an explicit CIDR list: EKS would otherwise default it to 0.0.0.0/0. A private
    cluster never opens it, whatever CIDRs are listed.
    """
    for cidr in public_cidrs:
        if cidr.endswith("/0"):
            raise ValueError(f"{cidr} would open the Kubernetes API to the internet")
    if endpoint_private or not public_cidrs:
        return False, []
    return True, list(public_cidrs)


def kubeconfig(name: str, endpoint: str, ca_data: str, region: str) -> str:
    """A kubeconfig that authenticates through `aws eks get-token` (no long-lived credentials in it)."""
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": name, "cluster": {"server": endpoint, "certificate-authority-data": ca_data}}
            ],
            "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
            "current-context": name,
            "preferences": {},
            "users": [
                {
                    "name": name,
                    "user": {
                        "exec": {
                            "apiVersion": "client.authentication.k8s.io/v1beta1",
                            "command": "aws",
                            "args": [
                                "eks",
                                "get-token",
                                "--cluster-name",
                                name,
                                "--region",
                                region,
                                "--output",
                                "json",
                            ],
                            "interactiveMode": "Never",
                        }
                    },
                }
            ],
        },
        sort_keys=True,
    )


class EksCluster(pulumi.ComponentResource):
    """An EKS control plane with the secure choices made: envelope-encrypted Secrets under a rotating
    KMS key, audit logs with a retention, access entries (no aws-auth ConfigMap, no implicit creator admin),
    and an IAM OIDC provider for IRSA."""

    def __init__(self, name: str, args: EksClusterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlops:aws:EksCluster", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = dict(args.tags)
        self.cluster_name = args.name
        self.region = args.region

        self.role = aws.iam.Role(
            f"{name}-cluster",
            name=f"{args.name}-cluster"[:64],
            assume_role_policy=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "eks.amazonaws.com"},
                            "Action": ["sts:AssumeRole", "sts:TagSession"],
                        }
                    ],
                }
            ),
            tags=tags,
            opts=child,
        )
        policy = aws.iam.RolePolicyAttachment(
            f"{name}-cluster-policy",
            role=self.role.name,
            policy_arn="arn:aws:iam::aws:policy/AmazonEKSClusterPolicy",
            opts=pulumi.ResourceOptions(parent=self.role),
        )
        self.secrets_key = kms_key(
            f"{args.name}-secrets", f"EKS {args.name}: envelope encryption of Secrets", tags, self
        )
        # Node root volumes and PersistentVolumes; Auto Scaling may use it to launch nodes. Its service-linked
        # role is declared first: a fresh account does not have it, and the key policy may only name it once
        # it exists.
        self.autoscaling_role = service_linked_role(f"{name}-autoscaling-slr", AUTOSCALING, self)
        self.ebs_key = kms_key(
            f"{args.name}-ebs",
            f"EKS {args.name}: node and volume encryption",
            tags,
            self,
            autoscaling_role_arn=self.autoscaling_role.arn,
            ec2_region=args.region if args.ebs_key_for_ec2_fleet else None,
        )
        kms_policy = aws.iam.RolePolicy(
            f"{name}-cluster-kms",
            role=self.role.name,
            policy=self.secrets_key.arn.apply(
                lambda arn: json.dumps(
                    {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ListGrants", "kms:DescribeKey"],
                                "Resource": arn,
                            }
                        ],
                    }
                )
            ),
            opts=pulumi.ResourceOptions(parent=self.role),
        )
        # Created before the cluster so EKS does not create it first with logs kept forever.
        self.log_group = aws.cloudwatch.LogGroup(
            f"{name}-control-plane",
            name=f"/aws/eks/{args.name}/cluster",
            retention_in_days=args.log_retention_days,
            tags=tags,
            opts=child,
        )
        public, cidrs = endpoint_access(args.endpoint_private, args.public_cidrs)
        self.cluster = aws.eks.Cluster(
            name,
            name=args.name,
            version=args.version,
            role_arn=self.role.arn,
            vpc_config=aws.eks.ClusterVpcConfigArgs(
                subnet_ids=args.subnet_ids,
                endpoint_private_access=True,
                endpoint_public_access=public,
                public_access_cidrs=cidrs or None,
            ),
            access_config=aws.eks.ClusterAccessConfigArgs(
                authentication_mode="API",
                bootstrap_cluster_creator_admin_permissions=False,
            ),
            encryption_config=aws.eks.ClusterEncryptionConfigArgs(
                provider=aws.eks.ClusterEncryptionConfigProviderArgs(key_arn=self.secrets_key.arn),
                resources=["secrets"],
            ),
            enabled_cluster_log_types=list(args.log_types),
            # vpc-cni, kube-proxy and CoreDNS come as pinned managed add-ons instead (addons.py).
            bootstrap_self_managed_addons=False,
            upgrade_policy=aws.eks.ClusterUpgradePolicyArgs(support_type="STANDARD"),
            deletion_protection=args.deletion_protection,
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[policy, kms_policy, self.log_group]),
        )
        self.endpoint = self.cluster.endpoint
        self.ca_data = self.cluster.certificate_authority.apply(
            lambda ca: str(ca["data"] if isinstance(ca, dict) else ca.data)
        )
        self.oidc_issuer: pulumi.Output[str] = self.cluster.identities.apply(_issuer)
        self.oidc_provider = aws.iam.OpenIdConnectProvider(
            f"{name}-oidc",
            url=self.oidc_issuer,
            client_id_lists=["sts.amazonaws.com"],
            tags=tags,
            opts=child,
        )
        self.oidc_provider_arn = self.oidc_provider.arn

        self.admin_access: list[pulumi.Resource] = []
        for i, arn in enumerate(args.admin_role_arns):
            entry = aws.eks.AccessEntry(
                f"{name}-admin-{i}",
                cluster_name=self.cluster.name,
                principal_arn=arn,
                type="STANDARD",
                tags=tags,
                opts=child,
            )
            self.admin_access.append(
                aws.eks.AccessPolicyAssociation(
                    f"{name}-admin-{i}",
                    cluster_name=self.cluster.name,
                    principal_arn=entry.principal_arn,
                    policy_arn=CLUSTER_ADMIN_POLICY,
                    access_scope=aws.eks.AccessPolicyAssociationAccessScopeArgs(type="cluster"),
                    opts=child,
                )
            )

        self.kubeconfig: pulumi.Output[str] = pulumi.Output.secret(
            pulumi.Output.all(self.cluster.name, self.endpoint, self.ca_data).apply(
                lambda a: kubeconfig(a[0], a[1], a[2], args.region)
            )
        )
        self.provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=self.kubeconfig,
            opts=pulumi.ResourceOptions(parent=self, depends_on=self.admin_access),
        )
        self.register_outputs(
            {
                "clusterName": self.cluster.name,
                "endpoint": self.endpoint,
                "oidcProviderArn": self.oidc_provider_arn,
                "kubeconfig": self.kubeconfig,
            }
        )


def _issuer(identities: object) -> str:
    first = identities[0]  # type: ignore[index]
    oidcs = first["oidcs"] if isinstance(first, dict) else first.oidcs
    oidc = oidcs[0]
    return str(oidc["issuer"] if isinstance(oidc, dict) else oidc.issuer)
