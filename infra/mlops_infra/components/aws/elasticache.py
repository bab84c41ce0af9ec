"""ElastiCache Redis for prod: a replication group across zones with failover, encryption and AUTH."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from mlops_infra.components.aws.kms import kms_key
from mlops_infra.components.aws.service_network import node_only_security_group
from mlops_infra.components.k8s.cluster import NetworkFacts

REDIS_ENGINE_VERSION = "7.1"  # ElastiCache for Redis OSS 7.1 (parameter family redis7)
REDIS_PORT = 6379


@dataclass(frozen=True)
class ManagedRedisArgs:
    network: NetworkFacts
    auth_token: pulumi.Input[str]  # 16-128 printable characters without @ " /; pass a Pulumi secret
    node_type: str = "cache.t4g.small"
    replicas: int = 1  # read replicas besides the primary; >= 1 for automatic failover
    engine_version: str = REDIS_ENGINE_VERSION
    snapshot_retention_days: int = 7
    kms_key_arn: pulumi.Input[str] | None = None  # None: a key of its own
    protect: bool = True
    tags: dict[str, str] = field(default_factory=dict)


class ManagedRedis(pulumi.ComponentResource):
    """Multi-AZ replication group: at-rest (KMS) and in-transit (TLS required) encryption, AUTH token,
    private subnets, reachable from the cluster nodes only, daily snapshots and a final snapshot."""

    def __init__(self, name: str, args: ManagedRedisArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlops:aws:ManagedRedis", name, None, opts)
        if args.replicas < 1:
            raise ValueError(f"{name}: automatic failover needs at least 1 replica, got {args.replicas}")
        if not re.match(r"^[a-z][a-z0-9-]{0,39}$", name) or name.endswith("-") or "--" in name:
            raise ValueError(
                f"{name}: a replication group id is 1-40 lowercase letters, digits and single hyphens"
            )
        tags = {**args.tags, "Name": name}
        key_arn = args.kms_key_arn
        if key_arn is None:
            key_arn = kms_key(
                f"{name}-key",
                f"ElastiCache {name} at-rest encryption",
                {**tags, "Name": name},
                self,
                protect=args.protect,
            ).arn
        subnets = aws.elasticache.SubnetGroup(
            f"{name}-subnets",
            name=f"{name}-subnets",
            description=f"Private subnets of {name}",
            subnet_ids=args.network.private_subnet_ids,
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self),
        )
        group = node_only_security_group(
            name, args.network, REDIS_PORT, f"Redis {name}: nodes only", tags, self
        )
        zones = list(args.network.zones)
        self.replication_group = aws.elasticache.ReplicationGroup(
            f"{name}-redis",
            replication_group_id=name,
            description=f"Redis for {name}",
            engine="redis",
            engine_version=args.engine_version,
            parameter_group_name="default.redis7",
            node_type=args.node_type,
            num_cache_clusters=1 + args.replicas,
            preferred_cache_cluster_azs=[zones[i % len(zones)] for i in range(1 + args.replicas)]
            if zones
            else None,
            port=REDIS_PORT,
            automatic_failover_enabled=True,
            multi_az_enabled=True,
            at_rest_encryption_enabled=True,
            kms_key_id=key_arn,
            transit_encryption_enabled=True,
            transit_encryption_mode="required",
            auth_token=pulumi.Output.secret(args.auth_token),
            auth_token_update_strategy="ROTATE",
            subnet_group_name=subnets.name,
            security_group_ids=[group.id],
            snapshot_retention_limit=args.snapshot_retention_days,
            snapshot_window="03:00-04:00",
            maintenance_window="sun:05:00-sun:06:00",
            final_snapshot_identifier=f"{name}-final",
            auto_minor_version_upgrade=True,
            apply_immediately=False,
            tags=tags,
            opts=pulumi.ResourceOptions(
                parent=self, protect=args.protect, additional_secret_outputs=["authToken"]
            ),
        )
        self.host = self.replication_group.primary_endpoint_address
        self.port = REDIS_PORT
        self.register_outputs({"host": self.host, "port": self.port})
