"""EKS managed node groups, one component per kind, sharing one base.

Every group gets its own IAM role, a launch template (IMDSv2 only with hop limit 1 so pods cannot
borrow the node role, an encrypted gp3 root volume, tags on instances and volumes) and the Auto
Scaling group tags that let cluster-autoscaler scale it up from zero nodes (see
`autoscaler_node_template_tags`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pulumi
import pulumi_aws as aws

from mlops_infra.components import accelerators, catalog
from mlops_infra.components.accelerators import NodeTaint as Taint
from mlops_infra.components.node_group import NodeGroupSpec

ROOT_DEVICE = "/dev/xvda"  # AL2023 AMIs boot from xvda
NODE_POLICIES = (
    "AmazonEKSWorkerNodePolicy",
    "AmazonEC2ContainerRegistryReadOnly",
    "AmazonSSMManagedInstanceCore",  # Session Manager instead of SSH keys and open port 22
)
# The VPC CNI gets AmazonEKS_CNI_Policy through its own IRSA role (see addons.py), not via the node role.

TAINT_EFFECTS = {
    "NoSchedule": "NO_SCHEDULE",
    "NoExecute": "NO_EXECUTE",
    "PreferNoSchedule": "PREFER_NO_SCHEDULE",
}
CA_PREFIX = "k8s.io/cluster-autoscaler"
CLUSTER_STAND_IN = "<cluster-name>"  # in per-cluster tag keys until the cluster name (an Output) is known
TEMPLATE = f"{CA_PREFIX}/node-template"
EPHEMERAL_STORAGE_FRACTION = (
    0.9  # OS, images and kubelet eviction thresholds take the rest of the root volume
)


@dataclass(frozen=True)
class NodeGroupArgs:
    cluster_name: pulumi.Input[str]
    cluster_version: str
    group: NodeGroupSpec
    subnet_ids: list[pulumi.Input[str]]
    ebs_kms_key_arn: pulumi.Input[str] | None = None
    tags: dict[str, str] = field(default_factory=dict)
    node_repair: bool = True


def instance_types(group: NodeGroupSpec) -> list[catalog.InstanceType]:
    return [catalog.instance(t) for t in group.instance_types]


def _dedupe_taints(taints: list[Taint]) -> list[Taint]:
    seen: dict[tuple[str, str], Taint] = {}
    for taint in taints:
        seen.setdefault((taint.key, taint.effect), taint)
    return list(seen.values())


def autoscaler_node_template_tags(
    cluster_name: str, group: NodeGroupSpec, labels: dict[str, str], taints: list[Taint]
) -> dict[str, str]:
    """ASG tags describing a node of this group before one exists (scale from zero).

    EKS does not copy node-group labels, taints or tags to the Auto Scaling group
    (aws/containers-roadmap#608). cluster-autoscaler reads labels and taints through
    eks:DescribeNodegroup, but extended resources (GPUs on some instance types, Neuron devices and cores,
    ephemeral storage) only from these tags, and tags also cover older autoscalers. ASG tags win over
    DescribeNodegroup values.

    Device counts are the minimum over the group's instance types: the autoscaler builds one template node
    for the whole group, and a template promising the largest type's GPUs would let a 4-GPU pod trigger a
    1-GPU node that cannot run it. A group that should serve 4-GPU pods lists only 4-GPU types.
    """
    tags: dict[str, str] = {
        f"{CA_PREFIX}/enabled": "true",
        f"{CA_PREFIX}/{cluster_name}": "owned",
        f"kubernetes.io/cluster/{cluster_name}": "owned",
        f"{TEMPLATE}/label/eks.amazonaws.com/nodegroup": group.name,
        f"{TEMPLATE}/label/eks.amazonaws.com/capacityType": "SPOT"
        if group.capacity == "spot"
        else "ON_DEMAND",
    }
    for key, value in labels.items():
        tags[f"{TEMPLATE}/label/{key}"] = value
    for taint in taints:
        tags[f"{TEMPLATE}/taint/{taint.key}"] = f"{taint.value}:{taint.effect}"
    if group.sharing is not None:  # the shared slices replace whole GPUs (accelerators.GpuSharing)
        per_type = [group.sharing.devices_per_node(t, "aws") for t in group.instance_types]
        for resource in per_type[0]:
            tags[f"{TEMPLATE}/resources/{resource}"] = str(min(d.get(resource, 0) for d in per_type))
    elif group.role in accelerators.KINDS:
        for resource in accelerators.accelerator(group.role, "aws").advertised:
            count = min(accelerators.devices_per_node(t, resource) for t in group.instance_types)
            tags[f"{TEMPLATE}/resources/{resource}"] = str(count)
    storage = int(group.disk_size_gb * EPHEMERAL_STORAGE_FRACTION)
    tags[f"{TEMPLATE}/resources/ephemeral-storage"] = f"{storage}Gi"
    return tags


SYSTEM_TAINT = Taint("CriticalAddonsOnly", "true", "NoSchedule")


def platform_labels(group: NodeGroupSpec) -> dict[str, str]:
    """The labels the platform puts on a group's nodes, whoever launches them (managed group or Karpenter):
    group and role, the accelerator's selector label, and for one GPU model the autoscaler's model label."""
    labels = accelerators.group_labels(group.name, group.role)
    if group.role in accelerators.KINDS:
        labels |= accelerators.accelerator(group.role, "aws").platform_node_labels()
    if group.role == "gpu":
        models = [accelerators.cloud_node_labels("aws", t) for t in group.instance_types]
        if all(m == models[0] for m in models):  # one GPU model: the model label is true on every node
            labels |= models[0]
    if group.sharing is not None:  # selects the device plugin's config for this group, and what GFD would say
        labels |= group.sharing.node_labels("aws", group.name)
    return labels


def platform_taints(group: NodeGroupSpec) -> list[Taint]:
    """The taints the platform puts on a group's nodes: system nodes take add-ons only, accelerator nodes
    take pods that tolerate their accelerator."""
    if group.role == "system":
        return [SYSTEM_TAINT]
    if group.role not in accelerators.KINDS:
        return []
    return [accelerators.accelerator(group.role, "aws").taint]


def node_labels(group: NodeGroupSpec) -> dict[str, str]:
    """Every label of the group's nodes: the platform's, then the group's own."""
    return platform_labels(group) | dict(group.labels)


def node_taints(group: NodeGroupSpec) -> list[Taint]:
    """Every taint of the group's nodes: the platform's, then the group's own (one per key and effect)."""
    return _dedupe_taints(platform_taints(group) + list(group.taints))


def _with_cluster(key: str, stand_in: str, cluster: pulumi.Output[str]) -> pulumi.Output[str]:
    return cluster.apply(lambda name: key.replace(stand_in, name))


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _asg_name(resources: Any) -> str:
    """`resources[0].autoscalingGroups[0].name`, whether the SDK hands back dicts or output types."""
    first = resources[0]
    groups = first["autoscaling_groups"] if isinstance(first, dict) else first.autoscaling_groups
    group = groups[0]
    return str(group["name"] if isinstance(group, dict) else group.name)


class ManagedNodeGroup(pulumi.ComponentResource):
    """Base of the node-group kinds; subclasses set the type token, AMI type, labels and taints."""

    TYPE: ClassVar[str] = "mlops:aws:ManagedNodeGroup"
    ROLE: ClassVar[str] = ""

    def __init__(self, name: str, args: NodeGroupArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(self.TYPE, name, None, opts)
        group = args.group
        if self.ROLE and group.role != self.ROLE:
            raise ValueError(f"{type(self).__name__} takes role {self.ROLE!r}, got {group.role!r}")
        self.config = group
        self.labels = self.default_labels(group) | dict(group.labels)
        self.taints = _dedupe_taints(self.default_taints(group) + list(group.taints))
        tags = {**args.tags, "node-group": group.name}

        self.role = self._node_role(name, tags)
        self.launch_template = self._launch_template(name, args, tags)
        self.node_group = aws.eks.NodeGroup(
            name,
            cluster_name=args.cluster_name,
            node_group_name=group.name,
            version=args.cluster_version,
            node_role_arn=self.role.arn,
            subnet_ids=args.subnet_ids,
            ami_type=self.ami_type(group),
            capacity_type="SPOT" if group.capacity == "spot" else "ON_DEMAND",
            instance_types=list(group.instance_types),
            scaling_config=aws.eks.NodeGroupScalingConfigArgs(
                min_size=group.min_size, max_size=group.max_size, desired_size=group.desired
            ),
            update_config=self.update_config(group),
            launch_template=aws.eks.NodeGroupLaunchTemplateArgs(
                id=self.launch_template.id,
                version=self.launch_template.latest_version.apply(str),
            ),
            labels=self.labels,
            taints=[
                aws.eks.NodeGroupTaintArgs(key=t.key, value=t.value or None, effect=TAINT_EFFECTS[t.effect])
                for t in self.taints
            ],
            node_repair_config=aws.eks.NodeGroupNodeRepairConfigArgs(enabled=args.node_repair),
            tags=tags,
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=self._policy_attachments,
                # cluster-autoscaler owns the node count once the group exists.
                ignore_changes=["scalingConfig.desiredSize"],
            ),
        )
        self.asg_name = self.node_group.resources.apply(_asg_name)
        self.asg_tags = self._asg_tags(name, args)
        self.register_outputs(
            {
                "nodeGroupName": self.node_group.node_group_name,
                "roleArn": self.role.arn,
                "asgName": self.asg_name,
            }
        )

    # ---- what differs per kind

    def default_labels(self, group: NodeGroupSpec) -> dict[str, str]:
        return platform_labels(group)

    def default_taints(self, group: NodeGroupSpec) -> list[Taint]:
        return platform_taints(group)

    def ami_type(self, group: NodeGroupSpec) -> str:
        arch = instance_types(group)[0].arch
        if group.role in accelerators.KINDS:
            amis = accelerators.accelerator(group.role, "aws").ami_types
            if arch not in amis:
                raise ValueError(f"node group {group.name!r}: no EKS {group.role} AMI for {arch}")
            return amis[arch]
        return "AL2023_ARM_64_STANDARD" if arch == "arm64" else "AL2023_x86_64_STANDARD"

    def update_config(self, group: NodeGroupSpec) -> aws.eks.NodeGroupUpdateConfigArgs:
        return aws.eks.NodeGroupUpdateConfigArgs(max_unavailable_percentage=33)

    # ---- shared parts

    def _node_role(self, name: str, tags: dict[str, str]) -> aws.iam.Role:
        role = aws.iam.Role(
            f"{name}-node",
            description=f"EKS node role of group {self.config.name}",
            assume_role_policy=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "ec2.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                        }
                    ],
                }
            ),
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self._policy_attachments: list[pulumi.Resource] = [
            aws.iam.RolePolicyAttachment(
                f"{name}-{_slug(policy)}",
                role=role.name,
                policy_arn=f"arn:aws:iam::aws:policy/{policy}",
                opts=pulumi.ResourceOptions(parent=role),
            )
            for policy in NODE_POLICIES
        ]
        return role

    def _launch_template(
        self, name: str, args: NodeGroupArgs, tags: dict[str, str]
    ) -> aws.ec2.LaunchTemplate:
        group = self.config
        instance_tags = {**tags, "Name": f"{name}"}
        return aws.ec2.LaunchTemplate(
            name,
            description=f"Nodes of group {group.name}: IMDSv2 only, encrypted gp3 root volume",
            update_default_version=True,
            metadata_options=aws.ec2.LaunchTemplateMetadataOptionsArgs(
                http_endpoint="enabled",
                http_tokens="required",
                http_put_response_hop_limit=1,
                instance_metadata_tags="disabled",
            ),
            block_device_mappings=[
                aws.ec2.LaunchTemplateBlockDeviceMappingArgs(
                    device_name=ROOT_DEVICE,
                    ebs=aws.ec2.LaunchTemplateBlockDeviceMappingEbsArgs(
                        volume_size=group.disk_size_gb,
                        volume_type="gp3",
                        iops=3000,
                        throughput=125,
                        encrypted="true",
                        kms_key_id=args.ebs_kms_key_arn,
                        delete_on_termination="true",
                    ),
                )
            ],
            tag_specifications=[
                aws.ec2.LaunchTemplateTagSpecificationArgs(resource_type=kind, tags=instance_tags)
                for kind in ("instance", "volume", "network-interface")
            ],
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _asg_tags(self, name: str, args: NodeGroupArgs) -> list[aws.autoscaling.Tag]:
        """One `aws.autoscaling.Tag` per template tag. The cluster name may be an Output (a cluster created in
        the same program): tag keys that contain it resolve with it, resource names use a stand-in."""
        known = args.cluster_name if isinstance(args.cluster_name, str) else None
        stand_in = known or CLUSTER_STAND_IN
        cluster = pulumi.Output.from_input(args.cluster_name)
        tags = []
        for key, value in autoscaler_node_template_tags(
            stand_in, self.config, self.labels, self.taints
        ).items():
            real_key: pulumi.Input[str] = (
                key if known or stand_in not in key else _with_cluster(key, stand_in, cluster)
            )
            tags.append(
                aws.autoscaling.Tag(
                    f"{name}-asg-{_slug(key.removeprefix(CA_PREFIX + '/'))}",
                    autoscaling_group_name=self.asg_name,
                    tag=aws.autoscaling.TagTagArgs(key=real_key, value=value, propagate_at_launch=False),
                    opts=pulumi.ResourceOptions(parent=self),
                )
            )
        return tags


class SystemNodeGroup(ManagedNodeGroup):
    """On-demand nodes for cluster add-ons only (CoreDNS, autoscaler, controllers): tainted CriticalAddonsOnly."""

    TYPE = "mlops:aws:SystemNodeGroup"
    ROLE = "system"

    def update_config(self, group: NodeGroupSpec) -> aws.eks.NodeGroupUpdateConfigArgs:
        return aws.eks.NodeGroupUpdateConfigArgs(max_unavailable=1)  # one add-on node at a time


class CpuNodeGroup(ManagedNodeGroup):
    """General workers (serving, MLflow, Redis, monitoring); spot allowed with several instance types."""

    TYPE = "mlops:aws:CpuNodeGroup"
    ROLE = "cpu"


class GpuNodeGroup(ManagedNodeGroup):
    """NVIDIA nodes on the EKS NVIDIA AMI (driver and container toolkit preinstalled), tainted nvidia.com/gpu."""

    TYPE = "mlops:aws:GpuNodeGroup"
    ROLE = "gpu"

    def update_config(self, group: NodeGroupSpec) -> aws.eks.NodeGroupUpdateConfigArgs:
        return aws.eks.NodeGroupUpdateConfigArgs(max_unavailable=1)  # GPUs are scarce: replace one at a time


class NeuronNodeGroup(ManagedNodeGroup):
    """Inferentia/Trainium nodes on the EKS Neuron AMI (driver preinstalled), tainted aws.amazon.com/neuron."""

    TYPE = "mlops:aws:NeuronNodeGroup"
    ROLE = "neuron"

    def update_config(self, group: NodeGroupSpec) -> aws.eks.NodeGroupUpdateConfigArgs:
        return aws.eks.NodeGroupUpdateConfigArgs(max_unavailable=1)


NODE_GROUP_KINDS: dict[str, type[ManagedNodeGroup]] = {
    "system": SystemNodeGroup,
    "cpu": CpuNodeGroup,
    "gpu": GpuNodeGroup,
    "neuron": NeuronNodeGroup,
}


def node_group_for(
    name: str, args: NodeGroupArgs, opts: pulumi.ResourceOptions | None = None
) -> ManagedNodeGroup:
    """The component of the group's kind; TPU groups are GCP-only and rejected by config validation."""
    kind = NODE_GROUP_KINDS.get(args.group.role)
    if kind is None:
        raise ValueError(f"node group {args.group.name!r}: role {args.group.role!r} is not available on EKS")
    return kind(name, args, opts)
