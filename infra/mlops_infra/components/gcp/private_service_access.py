"""Private Service Access on the cluster's VPC: the peering through which Google-managed services (Cloud SQL)
get private IPs that the VPC, and so GKE's VPC-native pods, reach without a public address.

Google's model ("Private IP" in the Cloud SQL docs, "Configure private services access" in the VPC docs): a
global internal address range with purpose VPC_PEERING is reserved in the VPC, and a Service Networking
connection peers the VPC with Google's service producer network over that range; each producer carves a /24
per region out of it. The range must not overlap the VPC's subnets: with no `address`, Google picks a free
block. One connection per VPC and producer service: a VPC that already has one passes it in instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_gcp as gcp

SERVICE = "servicenetworking.googleapis.com"
# /24 is Google's minimum (one region of one producer); /20 leaves room for 16 such blocks (more regions,
# Memorystore, ...) without claiming the /16 Google recommends out of a private address plan.
DEFAULT_PREFIX_LENGTH = 20


@dataclass(frozen=True)
class PrivateServiceAccessArgs:
    project: str
    network_id: pulumi.Input[str]  # projects/<project>/global/networks/<name>
    prefix_length: int = DEFAULT_PREFIX_LENGTH
    address: str | None = None  # start of the range; None: Google picks a block free in the VPC
    labels: dict[str, str] = field(default_factory=dict)
    # What the range and connection wait for: the project's enabled APIs (Compute Engine, Service Networking).
    depends_on: list[pulumi.Resource] = field(default_factory=list)


class PrivateServiceAccess(pulumi.ComponentResource):
    """The reserved range and the Service Networking connection; `range_name` is what an instance names as
    its allocated range, `connection` what it must wait for (an instance created before it has no route)."""

    def __init__(self, name: str, args: PrivateServiceAccessArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlops:gcp:PrivateServiceAccess", name, None, opts)
        if not 8 <= args.prefix_length <= 24:
            raise ValueError(
                f"{name}: a peering range is a /8 to /24 (Google's minimum), got /{args.prefix_length}"
            )
        child = pulumi.ResourceOptions(parent=self, depends_on=args.depends_on)
        self.range = gcp.compute.GlobalAddress(
            f"{name}-range",
            name=f"{name}-range",
            project=args.project,
            purpose="VPC_PEERING",
            address_type="INTERNAL",
            address=args.address,
            prefix_length=args.prefix_length,
            network=args.network_id,
            description="Private Service Access range for Google-managed services (Cloud SQL)",
            labels=args.labels,
            opts=child,
        )
        self.range_name: pulumi.Output[str] = self.range.name
        self.connection = gcp.servicenetworking.Connection(
            f"{name}-connection",
            network=args.network_id,
            service=SERVICE,
            reserved_peering_ranges=[self.range.name],
            opts=child,
        )
        self.register_outputs({"range": self.range.name, "peering": self.connection.peering})
