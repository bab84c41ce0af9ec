"""Reliability rules: prod spans zones, keeps its data through a mistaken destroy, and serves through
node drains; every long-running container says when it is ready and alive."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from mlops_policies.model import (
    LONG_RUNNING_KINDS,
    Resource,
    Rule,
    as_list,
    containers,
    display,
    environment_of,
    k8s_kind,
    namespace_of,
    pod_spec,
    pod_template_labels,
    truthy,
)
from mlops_policies.security import (
    CLOUD_SQL,
    EKS_NODE_GROUP,
    ELASTICACHE_RG,
    GCS_BUCKET,
    GKE_CLUSTER,
    RDS_CLUSTER,
    RDS_INSTANCE,
    S3_BUCKETS,
)

StackFindings = Iterator[tuple[str | None, str]]
_ZONE_RE = re.compile(r"^[a-z]+-[a-z]+[0-9]+-[a-z]$")  # us-central1-a (a zone, not a region)


def _is_prod(resources: Sequence[Resource], config: Mapping[str, Any]) -> bool:
    return environment_of(resources, config) == "prod"


def _min_nodes(r: Resource) -> int:
    if r.type == EKS_NODE_GROUP:
        return int(r.get("scalingConfig", "minSize", default=0))
    return int(r.get("autoscaling", "minNodeCount", default=r.get("initialNodeCount", default=0)))


def prod_multi_az(resources: Sequence[Resource], config: Mapping[str, Any]) -> StackFindings:
    if not _is_prod(resources, config):
        return
    zones = {r.get("availabilityZone") for r in resources if r.type == "aws:ec2/subnet:Subnet"} - {None}
    if zones and len(zones) < 2:
        yield None, f"all subnets are in {', '.join(sorted(zones))}; prod needs subnets in at least 2 zones"
    nats = [r for r in resources if r.type == "aws:ec2/natGateway:NatGateway"]
    if len(nats) == 1:
        yield (
            nats[0].urn,
            "one NAT gateway is a single-zone egress point; use one per zone (network.natGateways: per-zone)",
        )
    for r in resources:
        if r.type == EKS_NODE_GROUP and _min_nodes(r) >= 1 and len(as_list(r.get("subnetIds"))) < 2:
            yield (
                r.urn,
                f"always-on node group {r.name} sits in one subnet; give it subnets in at least 2 zones",
            )
        elif r.type == RDS_INSTANCE and not truthy(r.get("multiAz", default=False)):
            yield r.urn, f"{display(r)}: set multiAz=true so a zone outage fails over to the standby"
        elif r.type == ELASTICACHE_RG:
            nodes = int(r.get("numCacheClusters", default=1 + int(r.get("replicasPerNodeGroup", default=0))))
            if (
                nodes < 2
                or not truthy(r.get("automaticFailoverEnabled"))
                or not truthy(r.get("multiAzEnabled"))
            ):
                yield (
                    r.urn,
                    (
                        f"{display(r)}: use at least 2 nodes with automaticFailoverEnabled=true and multiAzEnabled=true "
                        "(services.redis.replicas >= 1)"
                    ),
                )
        elif r.type == CLOUD_SQL and r.get("settings", "availabilityType", default="ZONAL") != "REGIONAL":
            yield (
                r.urn,
                f"{display(r)}: a ZONAL instance has no standby; set settings.availabilityType=REGIONAL so a "
                "zone outage fails over",
            )
        elif r.type == GKE_CLUSTER:
            location = str(r.get("location", default=""))
            if _ZONE_RE.match(location) and len(as_list(r.get("nodeLocations"))) < 2:
                yield r.urn, f"GKE cluster {r.name} is zonal ({location}); use a region as location for prod"


_STATEFUL = (
    *S3_BUCKETS,
    GCS_BUCKET,
    RDS_INSTANCE,
    RDS_CLUSTER,
    ELASTICACHE_RG,
    CLOUD_SQL,
    "gcp:sql/database:Database",
    "gcp:redis/instance:Instance",
    "kubernetes:core/v1:PersistentVolumeClaim",
)


def prod_stateful_protected(resources: Sequence[Resource], config: Mapping[str, Any]) -> StackFindings:
    if not _is_prod(resources, config):
        return
    for r in resources:
        if r.type not in _STATEFUL:
            continue
        if not r.protect:
            yield r.urn, f"{display(r)}: holds data; declare it with protect=True (config.protect_stateful)"
        if r.type in (RDS_INSTANCE, RDS_CLUSTER):
            if not truthy(r.get("deletionProtection", default=False)):
                yield r.urn, f"{display(r)}: set deletionProtection=true"
            if truthy(r.get("skipFinalSnapshot", default=False)):
                yield (
                    r.urn,
                    f"{display(r)}: skipFinalSnapshot=true loses data on delete; set false with a finalSnapshotIdentifier",
                )
            retention = r.get("backupRetentionPeriod")
            if isinstance(retention, int | float) and retention < 1:
                yield r.urn, f"{display(r)}: backups are off; set backupRetentionPeriod >= 7"
        elif r.type == ELASTICACHE_RG and int(r.get("snapshotRetentionLimit", default=0)) < 1:
            yield r.urn, f"{display(r)}: set snapshotRetentionLimit >= 1 so the cache can be restored"
        elif r.type in (*S3_BUCKETS, GCS_BUCKET) and truthy(r.get("forceDestroy", default=False)):
            yield r.urn, f"{display(r)}: forceDestroy=true deletes every object with the bucket; set false"
        elif r.type == CLOUD_SQL:
            yield from ((r.urn, message) for message in _cloud_sql_protection(r))


def _cloud_sql_protection(r: Resource) -> Iterator[str]:
    """Cloud SQL keeps its data through a mistake only with both deletion guards and PITR-capable backups."""
    if not truthy(r.get("deletionProtection", default=True)):
        yield f"{display(r)}: set deletionProtection=true"
    if not truthy(r.get("settings", "deletionProtectionEnabled", default=False)):
        yield (
            f"{display(r)}: set settings.deletionProtectionEnabled=true (deletionProtection guards only "
            "against Pulumi; this guards against the API, gcloud and the console)"
        )
    backups = r.get("settings", "backupConfiguration", default={}) or {}
    if not truthy(backups.get("enabled", False)):
        yield f"{display(r)}: automated backups are off; set settings.backupConfiguration.enabled=true"
    elif not truthy(backups.get("pointInTimeRecoveryEnabled", False)):
        yield (
            f"{display(r)}: point-in-time recovery is off; set "
            "settings.backupConfiguration.pointInTimeRecoveryEnabled=true"
        )


_SCALERS = {
    "kubernetes:autoscaling/v2:HorizontalPodAutoscaler": ("spec", "scaleTargetRef", "name", "minReplicas"),
    "kubernetes:keda.sh/v1alpha1:ScaledObject": ("spec", "scaleTargetRef", "name", "minReplicaCount"),
}


def _selector_matches(pdb: Resource, labels: Mapping[str, Any]) -> bool:
    match = pdb.get("spec", "selector", "matchLabels", default={})
    return bool(match) and all(labels.get(k) == v for k, v in match.items())


def prod_serving_replicas_and_pdb(resources: Sequence[Resource], config: Mapping[str, Any]) -> StackFindings:
    if not _is_prod(resources, config):
        return
    namespaces = set(as_list(config.get("servingNamespaces")) or ["serving"])
    minimum = int(config.get("minReplicas", 2))
    pdbs = [r for r in resources if r.type == "kubernetes:policy/v1:PodDisruptionBudget"]
    scalers: dict[tuple[str | None, str], int] = {}
    for r in resources:
        if r.type in _SCALERS:
            *path, key = _SCALERS[r.type]
            target = r.get(*path)
            if isinstance(target, str):
                scalers[(namespace_of(r), target)] = int(r.get("spec", key, default=1))
    for r in resources:
        if k8s_kind(r) not in {"Deployment", "StatefulSet", "Rollout"} or namespace_of(r) not in namespaces:
            continue
        name = str(r.get("metadata", "name", default=r.name))
        replicas = scalers.get((namespace_of(r), name), r.get("spec", "replicas", default=1))
        if int(replicas) < minimum:
            yield (
                r.urn,
                (
                    f"{display(r)}: {replicas} replica(s) in prod; run at least {minimum} "
                    "(workloads.serving.replicas, and the autoscaler's minimum) so one node loss is not an outage"
                ),
            )
        labels = pod_template_labels(r)
        if not any(namespace_of(p) == namespace_of(r) and _selector_matches(p, labels) for p in pdbs):
            yield (
                r.urn,
                (
                    f"{display(r)}: no PodDisruptionBudget selects its pods; add one (minAvailable: 1 or "
                    "maxUnavailable: 1) so node drains keep it serving"
                ),
            )


def k8s_probes_set(r: Resource, config: Mapping[str, Any]) -> Iterator[str]:
    if k8s_kind(r) not in LONG_RUNNING_KINDS or namespace_of(r) in as_list(config.get("exemptNamespaces")):
        return
    spec = pod_spec(r)
    if spec is None:
        return
    for where, c in containers(spec, init=False):
        missing = [p for p in ("readinessProbe", "livenessProbe") if not c.get(p)]
        if missing:
            yield (
                f"{display(r)} {where}: set {' and '.join(missing)} so traffic and restarts follow the "
                "container's real state"
            )


RULES: list[Rule] = [
    Rule(
        "prod-multi-az",
        "reliability",
        "Prod spreads subnets, NAT, always-on nodes and data stores over zones.",
        stack_check=prod_multi_az,
        config_schema={"environment": {"type": "string"}},
    ),
    Rule(
        "prod-stateful-protected",
        "reliability",
        "Prod data stores are protected and keep backups/snapshots.",
        stack_check=prod_stateful_protected,
        config_schema={"environment": {"type": "string"}},
    ),
    Rule(
        "prod-serving-replicas-and-pdb",
        "reliability",
        "Prod serving runs >= 2 replicas behind a PodDisruptionBudget.",
        stack_check=prod_serving_replicas_and_pdb,
        config_schema={
            "environment": {"type": "string"},
            "minReplicas": {"type": "integer", "minimum": 1},
            "servingNamespaces": {"type": "array", "items": {"type": "string"}},
        },
    ),
    Rule(
        "k8s-probes-set",
        "reliability",
        "Long-running containers have readiness and liveness probes.",
        resource_check=k8s_probes_set,
        config_schema={"exemptNamespaces": {"type": "array", "items": {"type": "string"}}},
    ),
]
