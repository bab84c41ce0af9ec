"""What every managed data service in the VPC needs besides its key (aws/kms.py): a security group open to the
nodes only."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from mlops_infra.components.k8s.cluster import NetworkFacts


def node_only_security_group(
    name: str,
    network: NetworkFacts,
    port: int,
    description: str,
    tags: dict[str, str],
    parent: pulumi.Resource,
) -> aws.ec2.SecurityGroup:
    """A security group whose only ingress is `port` from the cluster nodes' security group; no egress."""
    if network.node_security_group_id is None:
        raise ValueError(
            f"{name}: the cluster reports no node security group; managed services cannot be reached"
        )
    group = aws.ec2.SecurityGroup(
        f"{name}-sg",
        name=f"{name}-sg",
        description=description,
        vpc_id=network.network_id,
        tags={**tags, "Name": f"{name}-sg"},
        opts=pulumi.ResourceOptions(parent=parent),
    )
    aws.vpc.SecurityGroupIngressRule(
        f"{name}-from-nodes",
        security_group_id=group.id,
        referenced_security_group_id=network.node_security_group_id,
        ip_protocol="tcp",
        from_port=port,
        to_port=port,
        description=f"{port}/tcp from the cluster nodes only",
        tags=tags,
        opts=pulumi.ResourceOptions(parent=group),
    )
    return group
