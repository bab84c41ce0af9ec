"""The cluster's VPC: public and private subnets per zone, NAT, an S3 gateway endpoint and flow logs."""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field
from typing import Literal

import pulumi
import pulumi_aws as aws

MAX_ZONES = 3


def plan_subnets(cidr: str, zone_count: int) -> tuple[list[str], list[str]]:
    """Private and public subnet CIDRs, one each per zone.

    The VPC is cut into quarters: one large private subnet per zone (pods take VPC IPs with the VPC CNI,
    so private subnets need room), and the last quarter split into eighths for the public subnets, which
    only hold load balancers and NAT gateways. A /16 gives /18 private and /21 public subnets.
    """
    if not 1 <= zone_count <= MAX_ZONES:
        raise ValueError(f"a VPC here spans 1 to {MAX_ZONES} zones, got {zone_count}")
    net = ipaddress.IPv4Network(cidr)
    quarters = list(net.subnets(new_prefix=net.prefixlen + 2))
    private = [str(q) for q in quarters[:zone_count]]
    public = [str(s) for s in list(quarters[3].subnets(new_prefix=net.prefixlen + 5))[:zone_count]]
    return private, public


@dataclass(frozen=True)
class NetworkArgs:
    cluster_name: str
    region: str
    zones: tuple[str, ...]
    cidr: str = "10.0.0.0/16"
    nat_gateways: Literal["single", "per-zone"] = "single"
    flow_logs: bool = False
    flow_log_retention_days: int = 90
    tags: dict[str, str] = field(default_factory=dict)


class Network(pulumi.ComponentResource):
    """A VPC laid out the way EKS and the AWS Load Balancer Controller expect.

    Subnets carry the `kubernetes.io/role/elb` (public) and `kubernetes.io/role/internal-elb` (private)
    tags that load balancers are placed by, and `kubernetes.io/cluster/<name>: shared`. Nodes live in
    private subnets only; public subnets never assign public IPs on launch. The default security group
    is emptied so nothing falls back to its allow-all-inside rule.
    """

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlops:aws:Network", name, None, opts)
        tags = dict(args.tags)
        cluster_tag = {f"kubernetes.io/cluster/{args.cluster_name}": "shared"}
        private_cidrs, public_cidrs = plan_subnets(args.cidr, len(args.zones))
        child = pulumi.ResourceOptions(parent=self)

        self.vpc = aws.ec2.Vpc(
            name,
            cidr_block=args.cidr,
            enable_dns_hostnames=True,
            enable_dns_support=True,
            tags={**tags, "Name": name},
            opts=child,
        )
        aws.ec2.DefaultSecurityGroup(
            f"{name}-default-sg",
            vpc_id=self.vpc.id,
            ingress=[],
            egress=[],
            tags={**tags, "Name": f"{name}-default-unused"},
            opts=child,
        )
        igw = aws.ec2.InternetGateway(
            f"{name}-igw", vpc_id=self.vpc.id, tags={**tags, "Name": f"{name}-igw"}, opts=child
        )
        public_rt = aws.ec2.RouteTable(
            f"{name}-public", vpc_id=self.vpc.id, tags={**tags, "Name": f"{name}-public"}, opts=child
        )
        aws.ec2.Route(
            f"{name}-public-default",
            route_table_id=public_rt.id,
            destination_cidr_block="0.0.0.0/0",
            gateway_id=igw.id,
            opts=child,
        )

        self.public_subnets: list[aws.ec2.Subnet] = []
        self.private_subnets: list[aws.ec2.Subnet] = []
        self.private_route_tables: list[aws.ec2.RouteTable] = []
        self.nat_gateways: list[aws.ec2.NatGateway] = []
        for zone, cidr in zip(args.zones, public_cidrs, strict=True):
            subnet = aws.ec2.Subnet(
                f"{name}-public-{zone}",
                vpc_id=self.vpc.id,
                cidr_block=cidr,
                availability_zone=zone,
                map_public_ip_on_launch=False,
                tags={**tags, **cluster_tag, "Name": f"{name}-public-{zone}", "kubernetes.io/role/elb": "1"},
                opts=child,
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-public-{zone}", subnet_id=subnet.id, route_table_id=public_rt.id, opts=child
            )
            self.public_subnets.append(subnet)

        nat_count = len(args.zones) if args.nat_gateways == "per-zone" else 1
        for i in range(nat_count):
            zone = args.zones[i]
            eip = aws.ec2.Eip(
                f"{name}-nat-{zone}", domain="vpc", tags={**tags, "Name": f"{name}-nat-{zone}"}, opts=child
            )
            self.nat_gateways.append(
                aws.ec2.NatGateway(
                    f"{name}-nat-{zone}",
                    allocation_id=eip.id,
                    subnet_id=self.public_subnets[i].id,
                    tags={**tags, "Name": f"{name}-nat-{zone}"},
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[igw]),
                )
            )

        for i, (zone, cidr) in enumerate(zip(args.zones, private_cidrs, strict=True)):
            subnet = aws.ec2.Subnet(
                f"{name}-private-{zone}",
                vpc_id=self.vpc.id,
                cidr_block=cidr,
                availability_zone=zone,
                tags={
                    **tags,
                    **cluster_tag,
                    "Name": f"{name}-private-{zone}",
                    "kubernetes.io/role/internal-elb": "1",
                },
                opts=child,
            )
            rt = aws.ec2.RouteTable(
                f"{name}-private-{zone}",
                vpc_id=self.vpc.id,
                tags={**tags, "Name": f"{name}-private-{zone}"},
                opts=child,
            )
            # One NAT per zone keeps a zone's egress alive when another zone fails; dev/test share one.
            nat = self.nat_gateways[i if nat_count > 1 else 0]
            aws.ec2.Route(
                f"{name}-private-{zone}-default",
                route_table_id=rt.id,
                destination_cidr_block="0.0.0.0/0",
                nat_gateway_id=nat.id,
                opts=child,
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-private-{zone}", subnet_id=subnet.id, route_table_id=rt.id, opts=child
            )
            self.private_subnets.append(subnet)
            self.private_route_tables.append(rt)

        # Image layers, model artifacts and MLflow artifacts come from S3: keep that traffic off the NAT bill.
        self.s3_endpoint = aws.ec2.VpcEndpoint(
            f"{name}-s3",
            vpc_id=self.vpc.id,
            service_name=f"com.amazonaws.{args.region}.s3",
            vpc_endpoint_type="Gateway",
            route_table_ids=[rt.id for rt in self.private_route_tables],
            tags={**tags, "Name": f"{name}-s3"},
            opts=child,
        )

        self.flow_log_group: aws.cloudwatch.LogGroup | None = None
        if args.flow_logs:
            self._flow_logs(name, args, tags)

        self.vpc_id = self.vpc.id
        self.private_subnet_ids = [s.id for s in self.private_subnets]
        self.public_subnet_ids = [s.id for s in self.public_subnets]
        self.register_outputs(
            {
                "vpcId": self.vpc_id,
                "privateSubnetIds": self.private_subnet_ids,
                "publicSubnetIds": self.public_subnet_ids,
            }
        )

    def _flow_logs(self, name: str, args: NetworkArgs, tags: dict[str, str]) -> None:
        """All traffic (accepted and rejected) to CloudWatch Logs, kept for a bounded time."""
        child = pulumi.ResourceOptions(parent=self)
        group = aws.cloudwatch.LogGroup(
            f"{name}-flow-logs",
            name=f"/aws/vpc/{args.cluster_name}/flow-logs",
            retention_in_days=args.flow_log_retention_days,
            tags=tags,
            opts=child,
        )
        role = aws.iam.Role(
            f"{name}-flow-logs",
            name=f"{args.cluster_name}-vpc-flow-logs"[:64],
            assume_role_policy=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "vpc-flow-logs.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                        }
                    ],
                }
            ),
            tags=tags,
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-flow-logs",
            role=role.name,
            policy=group.arn.apply(
                lambda arn: json.dumps(
                    {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Action": [
                                    "logs:CreateLogStream",
                                    "logs:PutLogEvents",
                                    "logs:DescribeLogGroups",
                                    "logs:DescribeLogStreams",
                                ],
                                "Resource": [arn, f"{arn}:*"],
                            }
                        ],
                    }
                )
            ),
            opts=child,
        )
        aws.ec2.FlowLog(
            f"{name}-flow-logs",
            vpc_id=self.vpc.id,
            traffic_type="ALL",
            log_destination_type="cloud-watch-logs",
            log_destination=group.arn,
            iam_role_arn=role.arn,
            max_aggregation_interval=60,
            tags=tags,
            opts=child,
        )
        self.flow_log_group = group
