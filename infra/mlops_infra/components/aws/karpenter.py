"""Karpenter on EKS: the controller from its upstream chart, its IAM, its nodes' identity and its interruption queue.

Pinned: chart `oci://public.ecr.aws/karpenter/karpenter` 1.14.1 (aws/karpenter-provider-aws, charts/karpenter at the
release commit of v1.14.1; Kubernetes 1.26-1.36 per hack/docs/compatibilitymatrix_gen/compatibility.yaml) and its
CRDs from `karpenter-crd` at the same version; NodePools are declared after the controller. What this component creates, following the v1.14 getting-started guide:

- the node role (worker, ECR pull and SSM policies, like the managed groups') with an EKS access entry of type
  EC2_LINUX, so the nodes Karpenter launches can join a cluster that authenticates through access entries only;
- the controller role with the least-privilege policies of `karpenter_iam`, bound to the controller's service
  account by IRSA, or by EKS Pod Identity when the cluster runs the pod identity agent;
- the interruption queue (`interruption_queue`) named in `settings.interruptionQueue`;
- the EC2 Spot service-linked role when a pool may launch spot (getting-started step06: without it the first
  spot launch of a fresh account fails);
- the CRDs from the karpenter-crd chart (so `pulumi up` with a new pin upgrades them), then the controller's Helm
  release without its `crds/`: on the system nodes only (the chart's default affinity already keeps it off nodes it
  launches: `karpenter.sh/nodepool DoesNotExist`), one replica per environment default, CPU and memory requests.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from typing import Literal

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from mlops_infra.components.accelerators import ROLE_LABEL
from mlops_infra.components.aws import karpenter_iam
from mlops_infra.components.aws.interruption_queue import InterruptionQueue, InterruptionQueueArgs
from mlops_infra.components.aws.irsa import ROLE_ARN_ANNOTATION, trust_policy
from mlops_infra.components.aws.node_groups import NODE_POLICIES, SYSTEM_TAINT
from mlops_infra.components.aws.service_linked_roles import SPOT, service_linked_role
from mlops_infra.components.k8s.cluster import ClusterHandle

CHART = "oci://public.ecr.aws/karpenter/karpenter"
CHART_VERSION = "1.14.1"
RELEASE = "karpenter"
# The CRDs as their own chart (the same version): Helm installs a chart's `crds/` once and never upgrades them, so
# Karpenter's upgrade guide (v1.14 upgrading/upgrade-guide.md, "CRD Upgrades") recommends the karpenter-crd chart.
CRD_CHART = "oci://public.ecr.aws/karpenter/karpenter-crd"
CRD_RELEASE = "karpenter-crd"
NAMESPACE = "kube-system"
SERVICE_ACCOUNT = "karpenter"
EC2_TRUST = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    },
    sort_keys=True,
)


def _policy_json(scope: karpenter_iam.ControllerScope, name: str) -> str:
    return karpenter_iam.controller_policy_json(scope, name)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


@dataclass(frozen=True)
class KarpenterArgs:
    cluster: ClusterHandle
    cluster_name: str
    cluster_endpoint: pulumi.Input[str]
    region: str
    oidc_provider_arn: pulumi.Input[str]
    oidc_issuer: pulumi.Input[str]
    identity: Literal["irsa", "pod-identity"] = "irsa"
    replicas: int = 1
    spot: bool = False
    """Some pool may launch spot: declare the EC2 Spot service-linked role."""
    node_overlays: bool = False
    """Some pool declares NodeOverlays (shared GPUs): switch on the alpha feature gate that reads them."""
    log_level: Literal["debug", "info", "error"] = "info"
    tags: dict[str, str] = field(default_factory=dict)


def karpenter_values(
    args: KarpenterArgs, queue_name: str, role_arn: pulumi.Input[str] | None
) -> dict[str, object]:
    """Helm values (keys checked against the chart's key set by `helm-values-known`)."""
    annotations = {ROLE_ARN_ANNOTATION: role_arn} if role_arn is not None else {}
    return {
        "settings": {
            "clusterName": args.cluster_name,
            "clusterEndpoint": args.cluster_endpoint,
            "interruptionQueue": queue_name,
            **({"featureGates": {"nodeOverlay": True}} if args.node_overlays else {}),
        },
        "serviceAccount": {"create": True, "name": SERVICE_ACCOUNT, "annotations": annotations},
        "replicas": args.replicas,
        # Helm merges maps: the chart's `kubernetes.io/os: linux` stays, ours pins the controller to system nodes.
        "nodeSelector": {ROLE_LABEL: "system"},
        "tolerations": [{"key": SYSTEM_TAINT.key, "operator": "Exists", "effect": SYSTEM_TAINT.effect}],
        "controller": {
            "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "1Gi"}},
        },
        "logLevel": args.log_level,
        # The ServiceMonitor CRD arrives with the monitoring stack, after the cluster's controllers.
        "serviceMonitor": {"enabled": False},
    }


class Karpenter(pulumi.ComponentResource):
    """The Karpenter controller and what it needs in AWS; `node_role` is what every EC2NodeClass names."""

    def __init__(self, name: str, args: KarpenterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlops:aws:Karpenter", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = dict(args.tags)
        cluster = args.cluster_name

        self.node_role = aws.iam.Role(
            f"{name}-node",
            name=f"{cluster}-karpenter-node"[:64],
            description=f"Nodes Karpenter launches for {cluster}",
            assume_role_policy=EC2_TRUST,
            tags=tags,
            opts=child,
        )
        node_policies = [
            aws.iam.RolePolicyAttachment(
                f"{name}-node-{_slug(policy)}",
                role=self.node_role.name,
                policy_arn=f"arn:aws:iam::aws:policy/{policy}",
                opts=pulumi.ResourceOptions(parent=self.node_role),
            )
            for policy in NODE_POLICIES
        ]
        self.node_access = aws.eks.AccessEntry(
            f"{name}-node-access",
            cluster_name=cluster,
            principal_arn=self.node_role.arn,
            type="EC2_LINUX",
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=node_policies),
        )
        self.queue = InterruptionQueue(
            f"{name}-interruption", InterruptionQueueArgs(queue_name=cluster, tags=tags), opts=child
        )
        # The controller runs on the system group: wait for the cluster's nodes (a copy: the platform later adds
        # the NodePools, which wait for this release, to the handle's list).
        depends: list[pulumi.Resource] = [*args.cluster.depends_on, self.node_access, self.queue]
        if args.spot:
            depends.append(service_linked_role(f"{name}-spot-slr", SPOT, self))

        identity = aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=self))
        partition = aws.get_partition_output(opts=pulumi.InvokeOutputOptions(parent=self))
        scope = pulumi.Output.all(
            identity.account_id, partition.partition, self.node_role.arn, self.queue.queue.arn
        ).apply(
            lambda a: karpenter_iam.ControllerScope(
                cluster_name=cluster,
                region=args.region,
                account_id=a[0],
                partition=a[1],
                node_role_arn=a[2],
                queue_arn=a[3],
            )
        )  # fmt: skip
        if args.identity == "pod-identity":
            trust = scope.apply(karpenter_iam.pod_identity_trust)
        else:
            trust = pulumi.Output.all(args.oidc_provider_arn, args.oidc_issuer).apply(
                lambda a: trust_policy(a[0], a[1], NAMESPACE, SERVICE_ACCOUNT)
            )
        self.controller_role = aws.iam.Role(
            f"{name}-controller",
            name=f"{cluster}-karpenter"[:64],
            description=f"Karpenter controller of {cluster} ({NAMESPACE}/{SERVICE_ACCOUNT})",
            assume_role_policy=trust,
            tags=tags,
            opts=child,
        )
        for policy_name in karpenter_iam.POLICY_NAMES:
            policy = aws.iam.Policy(
                f"{name}-{_slug(policy_name)}",
                name=f"KarpenterController{policy_name}Policy-{cluster}"[:128],
                description=f"Karpenter controller of {cluster}: {policy_name}",
                policy=scope.apply(functools.partial(_policy_json, name=policy_name)),
                tags=tags,
                opts=pulumi.ResourceOptions(parent=self.controller_role),
            )
            depends.append(
                aws.iam.RolePolicyAttachment(
                    f"{name}-{_slug(policy_name)}",
                    role=self.controller_role.name,
                    policy_arn=policy.arn,
                    opts=pulumi.ResourceOptions(parent=self.controller_role),
                )
            )
        role_arn: pulumi.Input[str] | None = self.controller_role.arn
        if args.identity == "pod-identity":
            depends.append(
                aws.eks.PodIdentityAssociation(
                    f"{name}-pod-identity",
                    cluster_name=cluster,
                    namespace=NAMESPACE,
                    service_account=SERVICE_ACCOUNT,
                    role_arn=self.controller_role.arn,
                    tags=tags,
                    opts=pulumi.ResourceOptions(parent=self.controller_role),
                )
            )
            role_arn = None
        self.values = karpenter_values(args, self.queue.queue_name, role_arn)
        self.crds = k8s.helm.v3.Release(
            CRD_RELEASE,
            k8s.helm.v3.ReleaseArgs(
                name=CRD_RELEASE, chart=CRD_CHART, version=CHART_VERSION, namespace=NAMESPACE, atomic=True
            ),
            opts=args.cluster.opts(self, depends_on=list(args.cluster.depends_on)),
        )
        depends.append(self.crds)
        self.release = k8s.helm.v3.Release(
            RELEASE,
            k8s.helm.v3.ReleaseArgs(
                name=RELEASE,
                chart=CHART,
                version=CHART_VERSION,
                namespace=NAMESPACE,
                values=self.values,
                skip_crds=True,  # owned by the karpenter-crd release
                atomic=True,
                cleanup_on_fail=True,
            ),
            opts=args.cluster.opts(self, depends_on=depends),
        )
        self.register_outputs(
            {
                "nodeRoleName": self.node_role.name,
                "controllerRoleArn": self.controller_role.arn,
                "interruptionQueue": self.queue.queue_name,
            }
        )
