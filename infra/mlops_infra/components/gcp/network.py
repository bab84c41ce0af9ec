"""A VPC for a private GKE cluster: one regional subnet with secondary ranges for pods and services, and
Cloud NAT so that nodes without public IPs can still pull images and reach Google APIs outside the VPC.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

import pulumi
import pulumi_gcp as gcp

from mlops_infra.components.gcp.apis import COMPUTE, ProjectApis, after

PODS_RANGE = "pods"
SERVICES_RANGE = "services"


@dataclass(frozen=True)
class SubnetRanges:
    """How one network CIDR is split: nodes, services, pods (pods take half: GKE gives every node a /24)."""

    nodes: str
    services: str
    pods: str

    @property
    def node_capacity(self) -> int:
        """Nodes the pod range can hold at 110 pods per node (one /24 each)."""
        return int(ipaddress.ip_network(self.pods).num_addresses // 256)


def split_cidr(cidr: str) -> SubnetRanges:
    """10.0.0.0/16 -> nodes 10.0.0.0/18, services 10.0.64.0/20, pods 10.0.128.0/17 (non-overlapping)."""
    net = ipaddress.ip_network(cidr, strict=True)
    low, pods = net.subnets(prefixlen_diff=1)
    nodes, rest = low.subnets(prefixlen_diff=1)
    services = next(rest.subnets(prefixlen_diff=2))
    return SubnetRanges(nodes=str(nodes), services=str(services), pods=str(pods))


@dataclass(frozen=True)
class GkeNetworkArgs:
    project: str
    region: str
    cidr: str = "10.0.0.0/16"
    flow_logs: bool = False
    # NAT logs of errors only: enough to debug egress failures without paying for every connection.
    nat_log_filter: str = "ERRORS_ONLY"
    labels: dict[str, str] = field(default_factory=dict)
    apis: ProjectApis | None = None  # the stack's enabled APIs; every resource here waits for Compute Engine


class GkeNetwork(pulumi.ComponentResource):
    """Custom-mode VPC (no auto subnets), a private-access subnet, a Cloud Router and Cloud NAT."""

    def __init__(self, name: str, args: GkeNetworkArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlops:gcp:Network", name, None, opts)
        child = pulumi.ResourceOptions(parent=self, depends_on=after(args.apis, COMPUTE))
        self.ranges = split_cidr(args.cidr)
        self.network = gcp.compute.Network(
            f"{name}-vpc",
            name=f"{name}-vpc",
            project=args.project,
            auto_create_subnetworks=False,
            routing_mode="REGIONAL",
            description="mlops platform VPC (custom mode)",
            opts=child,
        )
        log_config = (
            gcp.compute.SubnetworkLogConfigArgs(
                aggregation_interval="INTERVAL_5_SEC", flow_sampling=0.5, metadata="INCLUDE_ALL_METADATA"
            )
            if args.flow_logs
            else None
        )
        self.subnet = gcp.compute.Subnetwork(
            f"{name}-nodes",
            name=f"{name}-nodes",
            project=args.project,
            region=args.region,
            network=self.network.id,
            ip_cidr_range=self.ranges.nodes,
            # Nodes have no public IPs: reach Google APIs (Artifact Registry, GCS, logging) privately.
            private_ip_google_access=True,
            secondary_ip_ranges=[
                gcp.compute.SubnetworkSecondaryIpRangeArgs(
                    range_name=PODS_RANGE, ip_cidr_range=self.ranges.pods
                ),
                gcp.compute.SubnetworkSecondaryIpRangeArgs(
                    range_name=SERVICES_RANGE, ip_cidr_range=self.ranges.services
                ),
            ],
            log_config=log_config,
            opts=child,
        )
        self.router = gcp.compute.Router(
            f"{name}-router",
            name=f"{name}-router",
            project=args.project,
            region=args.region,
            network=self.network.id,
            opts=child,
        )
        self.nat = gcp.compute.RouterNat(
            f"{name}-nat",
            name=f"{name}-nat",
            project=args.project,
            region=args.region,
            router=self.router.name,
            nat_ip_allocate_option="AUTO_ONLY",
            source_subnetwork_ip_ranges_to_nat="ALL_SUBNETWORKS_ALL_IP_RANGES",
            log_config=gcp.compute.RouterNatLogConfigArgs(enable=True, filter=args.nat_log_filter),
            opts=child,
        )
        self.register_outputs(
            {"networkId": self.network.id, "subnetId": self.subnet.id, "podsRange": self.ranges.pods}
        )
