"""The VPC: subnets and their load-balancer tags, NAT per environment, S3 endpoint, flow logs."""

from __future__ import annotations

import ipaddress

import pytest

from mlops_infra.components.aws.network import plan_subnets


@pytest.mark.parametrize(("stack", "zones", "nats"), [("dev", 2, 1), ("test", 2, 1), ("prod", 3, 3)])
def test_zones_and_nat_gateways_per_environment(stack_plan, stack, zones, nats):
    plan = stack_plan(stack)
    subnets = plan.of_type("aws:ec2/subnet:Subnet")
    assert len(subnets) == 2 * zones
    assert len({s.inputs["availabilityZone"] for s in subnets}) == zones
    assert len(plan.of_type("aws:ec2/natGateway:NatGateway")) == nats
    # Every private route table sends its default route through a NAT gateway.
    private_routes = [
        r for r in plan.of_type("aws:ec2/route:Route") if "-private-" in r.name and "natGatewayId" in r.inputs
    ]
    assert len(private_routes) == zones


def test_per_zone_nat_can_be_chosen_in_dev(mutated_plan):
    plan = mutated_plan(
        "dev", lambda cfg: cfg["mlops-platform:network"].update(natGateways="per-zone"), name="dev-nat"
    )
    assert len(plan.of_type("aws:ec2/natGateway:NatGateway")) == 2


def test_subnets_carry_load_balancer_and_cluster_tags(stack_plan):
    plan = stack_plan("prod")
    for subnet in plan.of_type("aws:ec2/subnet:Subnet"):
        tags = subnet.inputs["tags"]
        assert tags["kubernetes.io/cluster/mlops-prod"] == "shared"
        assert tags["environment"] == "prod" and tags["team"] == "ml-platform"
        if "-public-" in subnet.name:
            assert tags["kubernetes.io/role/elb"] == "1" and "kubernetes.io/role/internal-elb" not in tags
            assert subnet.inputs["mapPublicIpOnLaunch"] is False
        else:
            assert tags["kubernetes.io/role/internal-elb"] == "1" and "kubernetes.io/role/elb" not in tags


def test_s3_gateway_endpoint_on_every_private_route_table(stack_plan):
    plan = stack_plan("prod")
    (endpoint,) = plan.of_type("aws:ec2/vpcEndpoint:VpcEndpoint")
    assert endpoint.inputs["vpcEndpointType"] == "Gateway"
    assert endpoint.inputs["serviceName"] == "com.amazonaws.us-east-1.s3"
    private_tables = [r for r in plan.of_type("aws:ec2/routeTable:RouteTable") if "-private-" in r.name]
    assert len(endpoint.inputs["routeTableIds"]) == len(private_tables) == 3


@pytest.mark.parametrize(("stack", "expected"), [("dev", 0), ("test", 0), ("prod", 1)])
def test_flow_logs_only_in_prod(stack_plan, stack, expected):
    plan = stack_plan(stack)
    logs = plan.of_type("aws:ec2/flowLog:FlowLog")
    assert len(logs) == expected
    if expected:
        assert logs[0].inputs["trafficType"] == "ALL"
        assert logs[0].inputs["logDestinationType"] == "cloud-watch-logs"
        group = next(r for r in plan.of_type("aws:cloudwatch/logGroup:LogGroup") if "flow-logs" in r.name)
        assert group.inputs["retentionInDays"] > 0


def test_default_security_group_is_emptied(stack_plan):
    (sg,) = stack_plan("dev").of_type("aws:ec2/defaultSecurityGroup:DefaultSecurityGroup")
    assert sg.inputs.get("ingress", []) == [] and sg.inputs.get("egress", []) == []


@pytest.mark.parametrize("cidr", ["10.0.0.0/16", "10.30.0.0/18", "172.16.0.0/20"])
@pytest.mark.parametrize("zones", [1, 2, 3])
def test_subnet_plan_fits_the_vpc_without_overlaps(cidr, zones):
    private, public = plan_subnets(cidr, zones)
    vpc = ipaddress.ip_network(cidr)
    nets = [ipaddress.ip_network(c) for c in private + public]
    assert len(private) == len(public) == zones
    assert all(n.subnet_of(vpc) for n in nets)
    assert all(not a.overlaps(b) for i, a in enumerate(nets) for b in nets[i + 1 :])
    # Pods take VPC addresses: private subnets are the big ones.
    assert all(
        ipaddress.ip_network(p).num_addresses > ipaddress.ip_network(q).num_addresses
        for p, q in zip(private, public, strict=True)
    )


def test_subnet_plan_rejects_four_zones():
    with pytest.raises(ValueError, match="1 to 3 zones"):
        plan_subnets("10.0.0.0/16", 4)
