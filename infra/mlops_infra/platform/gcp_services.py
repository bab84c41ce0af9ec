"""How a GCP stack's config becomes its managed MLflow stores: the Cloud SQL database and the GCS artifact
bucket (the components take plain arguments; this is where the stack config decides them)."""

from __future__ import annotations

import json

import pulumi

from mlops_infra.components.gcp.cloud_sql import CloudSqlPostgres, CloudSqlPostgresArgs
from mlops_infra.components.gcp.labels import gcp_labels
from mlops_infra.components.gcp.storage import ArtifactBucket, ArtifactBucketArgs, bucket_name
from mlops_infra.components.k8s.cluster import ClusterHandle
from mlops_infra.platform.config import StackConfig


def mlflow_cloud_sql(
    config: StackConfig, cluster: ClusterHandle, password: pulumi.Input[str], parent: pulumi.Resource
) -> CloudSqlPostgres:
    """MLflow's managed database on a gcp stack: in the cluster's VPC, HA and protected in prod."""
    if config.gcp_project is None or config.region is None or cluster.network is None:
        raise ValueError("a Cloud SQL database needs gcp:project, gcp:region and the cluster's network")
    mlflow = config.services.mlflow
    return CloudSqlPostgres(
        f"{config.cluster_name}-mlflow",
        CloudSqlPostgresArgs(
            project=config.gcp_project,
            region=config.region,
            network_id=cluster.network.network_id,
            password=password,
            tier=mlflow.database_tier,
            storage_gb=mlflow.database_storage_gb,
            backup_retention_days=mlflow.backup_retention_days,
            high_availability=config.defaults.high_availability,
            deletion_protection=config.protect_stateful,
            protect=config.protect_stateful,
            labels=gcp_labels(config.all_tags),
            depends_on=list(cluster.prerequisites),
        ),
        opts=pulumi.ResourceOptions(parent=parent),
    )


def gcs_artifact_store(
    config: StackConfig,
    cluster: ClusterHandle,
    parent: pulumi.Resource,
    namespace: str = "mlflow",
    service_account: str = "mlflow",
) -> tuple[pulumi.Output[str], dict[str, pulumi.Input[str]]]:
    """MLflow's artifact store on a gcp stack: the bucket plus read/write access for the MLflow server's KSA
    through Workload Identity. Returns (gs:// destination, annotations for the MLflow ServiceAccount).
    """
    if config.gcp_project is None or config.region is None or cluster.bind_workload_identity is None:
        raise ValueError("a GCS artifact store needs gcp:project, gcp:region and a GKE cluster handle")
    name = bucket_name(config.gcp_project, config.cluster_name, "mlflow")
    bucket = ArtifactBucket(
        f"{config.cluster_name}-mlflow-artifacts",
        ArtifactBucketArgs(
            project=config.gcp_project,
            location=config.region,
            name=name,
            labels=gcp_labels(config.all_tags),
            protect=config.protect_stateful,
            depends_on=list(cluster.prerequisites),
        ),
        opts=pulumi.ResourceOptions(parent=parent),
    )
    policy = json.dumps({"bucket": name, "role": "roles/storage.objectUser"})
    annotations = dict(cluster.bind_workload_identity("mlflow-artifacts", namespace, service_account, policy))
    return bucket.url, annotations
