"""Platform services of a stack (Redis, MLflow, monitoring), managed in prod where the cloud offers them
(AWS: ElastiCache and RDS; GCP: Cloud SQL), in-cluster elsewhere.

Workloads never care which: they get the same `ServiceEndpoints` (and the same ConfigMap/Secret names in
their namespaces) whether Redis is ElastiCache or a StatefulSet, and MLflow's store RDS, Cloud SQL or a pod.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s
import pulumi_random as random

from mlops_infra.components.k8s import redis as k8s_redis
from mlops_infra.components.k8s.cluster import ClusterHandle, NetworkFacts
from mlops_infra.components.k8s.mlflow import (
    LOCAL_ARTIFACT_ROOT,
    GatewayRoute,
    Mlflow,
    MlflowArgs,
    MlflowDatabase,
)
from mlops_infra.components.k8s.monitoring import Monitoring, MonitoringArgs, MonitoringSettings
from mlops_infra.components.k8s.namespaces import Namespaces
from mlops_infra.components.k8s.opencost import PRICING_API_KEY, OpenCost, OpenCostArgs
from mlops_infra.components.k8s.postgres import InClusterPostgres, PostgresArgs
from mlops_infra.components.k8s.rules import MonitoringRules, MonitoringRulesArgs
from mlops_infra.platform.config import StackConfig

REDIS_CLIENT_NAMESPACES = ("serving", "retraining")
MLFLOW_DB_SECRET = "mlflow-db"


@dataclass(frozen=True)
class ServiceEndpoints:
    """How workloads reach the platform services. Values are in-cluster DNS names/URLs; the Redis password
    is never here, only the Secret that holds it (present in every namespace of `redis_namespaces`)."""

    redis_host: pulumi.Input[str] | None = None
    redis_port: int = 6379
    redis_tls: bool = False
    redis_secret_name: str = k8s_redis.AUTH_SECRET
    redis_secret_key: str = k8s_redis.AUTH_SECRET_KEY
    redis_config_map: str = k8s_redis.CONNECTION_CONFIGMAP
    redis_namespaces: tuple[str, ...] = REDIS_CLIENT_NAMESPACES
    mlflow_tracking_uri: str | None = None
    # `project:region:instance` of a Cloud SQL database, for operators (Cloud SQL Auth Proxy, gcloud sql connect).
    mlflow_cloud_sql_connection_name: pulumi.Input[str] | None = None
    pushgateway_url: str | None = None
    prometheus_url: str | None = None
    alertmanager_url: str | None = None
    retrain_webhook_token: pulumi.Input[str] | None = None  # secret; Alertmanager sends it to the webhook
    # Resources workloads should depend on (e.g. the monitoring release, whose CRDs their ServiceMonitors need).
    depends_on: list[pulumi.Resource] = field(default_factory=list)

    def redis_env(self) -> list[dict[str, Any]]:
        """Container env for a Redis client (manifest-shaped): host, port, TLS flag and the secret password."""
        if self.redis_host is None:
            return []
        return [
            {"name": "REDIS_HOST", "value": self.redis_host},
            {"name": "REDIS_PORT", "value": str(self.redis_port)},
            {"name": "REDIS_TLS", "value": "true" if self.redis_tls else "false"},
            {
                "name": "REDIS_PASSWORD",
                "valueFrom": {"secretKeyRef": {"name": self.redis_secret_name, "key": self.redis_secret_key}},
            },
        ]

    def outputs(self) -> dict[str, pulumi.Input[Any]]:
        """Stack outputs (no secrets)."""
        out: dict[str, pulumi.Input[Any]] = {}
        if self.redis_host is not None:
            out |= {"redisHost": self.redis_host, "redisPort": self.redis_port, "redisTls": self.redis_tls}
        for key, value in (
            ("mlflowTrackingUri", self.mlflow_tracking_uri),
            ("mlflowCloudSqlConnectionName", self.mlflow_cloud_sql_connection_name),
            ("pushgatewayUrl", self.pushgateway_url),
            ("prometheusUrl", self.prometheus_url),
            ("alertmanagerUrl", self.alertmanager_url),
        ):
            if value is not None:
                out[key] = value
        return out


class PlatformServices(pulumi.ComponentResource):
    """Groups the service components of one stack under one node of the resource tree."""

    def __init__(self, name: str, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlops:platform:Services", name, None, opts)


def platform_services(
    config: StackConfig, cluster: ClusterHandle, namespaces: Namespaces, parent: pulumi.Resource
) -> ServiceEndpoints:
    """Declare Redis, MLflow (with its database and artifact store) and monitoring as the config asks."""
    group = PlatformServices("services", opts=pulumi.ResourceOptions(parent=parent))
    ns_deps = tuple(namespaces.resources.values())
    services = config.services
    endpoints: dict[str, Any] = {}
    monitoring_deps: list[pulumi.Resource] = []

    if services.monitoring.enabled:
        monitoring = Monitoring(
            "monitoring",
            MonitoringArgs(
                cluster=cluster,
                settings=MonitoringSettings(
                    retention_days=config.monitoring_retention_days,
                    storage_gb=config.monitoring_storage_gb,
                    grafana=services.monitoring.grafana,
                    prometheus_memory=config.defaults.prometheus_memory,
                    host_root_fs=config.cloud != "local",
                    retrain_webhook_auth=config.workloads.retraining is not None,
                ),
                depends_on=ns_deps,
            ),
            opts=pulumi.ResourceOptions(parent=group),
        )
        monitoring_deps = [monitoring.stack]
        _opencost(config, cluster, monitoring.stack, group)
        MonitoringRules(
            "monitoring-rules",
            MonitoringRulesArgs(
                cluster=cluster,
                depends_on=(*ns_deps, monitoring.stack),
                exporters=accelerator_exporters(config),
            ),
            opts=pulumi.ResourceOptions(parent=group),
        )
        endpoints |= {
            "prometheus_url": monitoring.prometheus_url,
            "pushgateway_url": monitoring.pushgateway_url,
            "alertmanager_url": monitoring.alertmanager_url,
            "retrain_webhook_token": monitoring.retrain_webhook_token,
        }

    if services.redis.enabled:
        endpoints |= _redis(config, cluster, ns_deps, group)
    if services.mlflow.enabled:
        endpoints |= _mlflow(config, cluster, (*ns_deps, *monitoring_deps), group,
                             service_monitor=bool(monitoring_deps))  # fmt: skip
    return ServiceEndpoints(**endpoints, depends_on=monitoring_deps)


OPENCOST_PRICING_SECRET = "opencost-cloud-pricing"


def accelerator_exporters(config: StackConfig) -> frozenset[str]:
    """Device exporters the platform runs (`AcceleratorMonitoring`): DCGM for GPU groups and neuron-monitor for
    Neuron groups, on AWS with monitoring on. GKE reports accelerator metrics to Cloud Monitoring instead."""
    if config.cloud != "aws" or not config.services.monitoring.enabled:
        return frozenset()
    roles = {g.role for g in config.node_groups}
    return frozenset(
        exporter
        for role, exporter in (("gpu", "dcgm-exporter"), ("neuron", "neuron-monitor"))
        if role in roles
    )


def _opencost(
    config: StackConfig, cluster: ClusterHandle, prometheus: pulumi.Resource, group: pulumi.Resource
) -> OpenCost:
    """OpenCost next to the platform's Prometheus; on GKE with an API key for the Cloud Billing Catalog API."""
    namespace = "monitoring"
    waits: list[pulumi.Resource] = [prometheus]
    secret_name = None
    if config.cloud == "gcp":
        from mlops_infra.components.gcp.pricing import billing_catalog_api_key

        assert config.gcp_project, "validated by config for gcp stacks"
        key = billing_catalog_api_key(config.cluster_name, config.gcp_project, group)
        secret_name = OPENCOST_PRICING_SECRET
        waits.append(
            k8s.core.v1.Secret(
                "opencost-cloud-pricing",
                metadata={"name": secret_name, "namespace": namespace},
                type="Opaque",
                string_data={PRICING_API_KEY: key},
                opts=cluster.opts(group, depends_on=[prometheus]),
            )
        )
    return OpenCost(
        "opencost",
        OpenCostArgs(
            cluster=cluster,
            cluster_id=config.cluster_name,
            namespace=namespace,
            pricing_api_key_secret=secret_name,
            depends_on=tuple(waits),
        ),
        opts=pulumi.ResourceOptions(parent=group),
    )


def _network(config: StackConfig, cluster: ClusterHandle, what: str) -> NetworkFacts:
    if cluster.network is None:
        raise ValueError(
            f"{what} is managed on {config.cloud}, but the cluster handle reports no network facts"
        )
    return cluster.network


def _redis(
    config: StackConfig, cluster: ClusterHandle, deps: tuple[pulumi.Resource, ...], group: pulumi.Resource
) -> dict[str, Any]:
    redis = config.services.redis
    password = random.RandomPassword(
        "redis-password", length=32, special=False, opts=pulumi.ResourceOptions(parent=group)
    ).result
    host: pulumi.Input[str]
    if config.redis_mode == "managed":
        from mlops_infra.components.aws.elasticache import ManagedRedis, ManagedRedisArgs

        managed = ManagedRedis(
            f"{config.cluster_name}-redis",
            ManagedRedisArgs(
                network=_network(config, cluster, "Redis"),
                auth_token=pulumi.Output.secret(password),
                node_type=redis.node_type,
                replicas=redis.replicas,
                snapshot_retention_days=config.defaults.cache_snapshot_retention_days,
                protect=config.protect_stateful,
                tags=config.all_tags,
            ),
            opts=pulumi.ResourceOptions(parent=group),
        )
        host, port, tls = managed.host, managed.port, True
    else:
        in_cluster = k8s_redis.InClusterRedis(
            "redis",
            k8s_redis.RedisArgs(
                cluster=cluster,
                max_memory_mb=redis.memory_mb,
                password=pulumi.Output.secret(password),
                client_namespaces=REDIS_CLIENT_NAMESPACES,
                depends_on=deps,
            ),
            opts=pulumi.ResourceOptions(parent=group),
        )
        host, port, tls = in_cluster.host, in_cluster.port, False
    k8s_redis.RedisClientConfig(
        "redis-clients",
        k8s_redis.RedisClientArgs(
            cluster=cluster, host=host, port=port, tls=tls, password=pulumi.Output.secret(password),
            namespaces=REDIS_CLIENT_NAMESPACES, depends_on=deps,
        ),
        opts=pulumi.ResourceOptions(parent=group),
    )  # fmt: skip
    return {"redis_host": host, "redis_port": port, "redis_tls": tls}


def _mlflow(
    config: StackConfig,
    cluster: ClusterHandle,
    deps: tuple[pulumi.Resource, ...],
    group: pulumi.Resource,
    service_monitor: bool,
) -> dict[str, Any]:
    mlflow = config.services.mlflow
    endpoints: dict[str, Any] = {}
    password: pulumi.Output[str] = random.RandomPassword(
        "mlflow-db-password", length=32, special=False, opts=pulumi.ResourceOptions(parent=group)
    ).result
    secret_password: pulumi.Output[str] = pulumi.Output.secret(password)
    secret = k8s.core.v1.Secret(
        "mlflow-db",
        metadata={
            "name": MLFLOW_DB_SECRET,
            "namespace": "mlflow",
            "labels": {"app.kubernetes.io/name": "mlflow"},
        },
        type="Opaque",
        string_data={"password": secret_password},
        opts=cluster.opts(group, depends_on=list(deps)),
    )
    database_ready: list[pulumi.Resource] = []
    if config.mlflow_database == "managed" and config.cloud == "gcp":
        from mlops_infra.platform.gcp_services import mlflow_cloud_sql

        cloud_sql = mlflow_cloud_sql(config, cluster, secret_password, group)
        # Private IP over the VPC peering; the instance accepts TLS connections only (sslMode ENCRYPTED_ONLY).
        database = MlflowDatabase(host=cloud_sql.host, port=cloud_sql.port, sslmode="require")
        database_ready = cloud_sql.ready
        endpoints["mlflow_cloud_sql_connection_name"] = cloud_sql.connection_name
    elif config.mlflow_database == "managed":
        from mlops_infra.components.aws.rds import PostgresDatabase, PostgresDatabaseArgs

        db = PostgresDatabase(
            f"{config.cluster_name}-mlflow",
            PostgresDatabaseArgs(
                network=_network(config, cluster, "MLflow's database"),
                password=pulumi.Output.secret(password),
                instance_class=mlflow.database_instance_class,
                storage_gb=mlflow.database_storage_gb,
                backup_retention_days=mlflow.backup_retention_days,
                multi_az=config.defaults.high_availability,
                deletion_protection=config.protect_stateful,
                protect=config.protect_stateful,
                tags=config.all_tags,
            ),
            opts=pulumi.ResourceOptions(parent=group),
        )
        database = MlflowDatabase(host=db.host, port=db.port, sslmode="require")
    else:
        pg = InClusterPostgres(
            "mlflow-postgres",
            PostgresArgs(cluster=cluster, password_secret=MLFLOW_DB_SECRET, depends_on=(*deps, secret)),
            # A prod stack that keeps its database in-cluster (services.mlflow.database: in-cluster) protects it.
            opts=pulumi.ResourceOptions(parent=group, protect=config.protect_stateful),
        )
        database = MlflowDatabase(host=pg.host, port=pg.port, sslmode="disable")

    destination: pulumi.Input[str] = LOCAL_ARTIFACT_ROOT
    annotations: dict[str, pulumi.Input[str]] = {}
    extra_env: dict[str, str] = {}
    if config.mlflow_artifacts == "object-store" and config.cloud == "aws":
        from mlops_infra.components.aws.artifact_bucket import ArtifactBucket, ArtifactBucketArgs

        if cluster.bind_workload_identity is None:
            raise ValueError(
                "MLflow artifacts go to S3, but the cluster handle offers no workload identity binding"
            )
        account = aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=group)).account_id
        bucket = ArtifactBucket(
            f"{config.cluster_name}-mlflow-artifacts",
            ArtifactBucketArgs(
                bucket_name=pulumi.Output.concat(config.cluster_name, "-mlflow-artifacts-", account),
                protect=config.protect_stateful,
                force_destroy=not config.protect_stateful,
                tags=config.all_tags,
            ),
            opts=pulumi.ResourceOptions(parent=group),
        )
        destination = bucket.uri
        annotations = dict(cluster.bind_workload_identity("mlflow-artifacts", "mlflow", "mlflow",
                                                          bucket.access_policy_json))  # fmt: skip
        if config.region:
            extra_env = {"AWS_REGION": config.region, "AWS_DEFAULT_REGION": config.region}
    elif config.mlflow_artifacts == "object-store" and config.cloud == "gcp":
        from mlops_infra.platform.gcp_services import gcs_artifact_store

        destination, annotations = gcs_artifact_store(config, cluster, group)
    elif config.mlflow_artifacts == "object-store":
        pulumi.log.warn(
            f"MLflow artifacts: no object store is implemented for {config.cloud} yet; using an in-cluster volume",
            resource=group,
        )
    server = Mlflow(
        "mlflow",
        MlflowArgs(
            cluster=cluster,
            database=database,
            artifacts_destination=destination,
            service_account_annotations=annotations,
            replicas=mlflow.replicas,
            service_monitor=service_monitor,
            route=GatewayRoute(**mlflow.route.model_dump()) if mlflow.route else None,
            extra_env=extra_env,
            # The schema migration (init container) needs the database and its user to exist.
            depends_on=(*deps, secret, *database_ready),
        ),
        opts=pulumi.ResourceOptions(parent=group),
    )
    return endpoints | {"mlflow_tracking_uri": server.tracking_uri}
