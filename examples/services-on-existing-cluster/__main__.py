"""Run MLflow (with its PostgreSQL), Redis and the monitoring stack on a Kubernetes cluster a team already has.

A team's own Pulumi program, importing only the installed `mlops_infra` package. Every object goes through an
explicit provider for the configured kube context; generated passwords stay Pulumi secrets.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from mlops_infra.components.k8s.mlflow import Mlflow, MlflowArgs, MlflowDatabase
from mlops_infra.components.k8s.monitoring import Monitoring, MonitoringArgs
from mlops_infra.components.k8s.namespaces import Namespaces, NamespacesArgs
from mlops_infra.components.k8s.postgres import InClusterPostgres, PostgresArgs
from mlops_infra.components.k8s.redis import InClusterRedis, RedisArgs
from mlops_infra.components.k8s.rules import MonitoringRules, MonitoringRulesArgs
from mlops_infra.components.local.cluster import LocalCluster, LocalClusterArgs


def main() -> dict[str, Any]:
    config = pulumi.Config("team")
    cluster = LocalCluster(
        "team-cluster", LocalClusterArgs(version="1.33", context=config.get("kubeContext"))
    )
    handle = cluster.handle
    namespaces = Namespaces("team-namespaces", NamespacesArgs(cluster=handle, labels={"team": "fraud"}))
    ready = tuple(namespaces.resources.values())

    monitoring = Monitoring("team-monitoring", MonitoringArgs(cluster=handle, depends_on=ready))
    MonitoringRules("team-rules", MonitoringRulesArgs(cluster=handle, depends_on=(*ready, monitoring.stack)))
    redis = InClusterRedis("team-redis", RedisArgs(cluster=handle, depends_on=ready))

    password = random.RandomPassword("mlflow-db-password", length=32, special=False).result
    secret = k8s.core.v1.Secret(
        "mlflow-db",
        metadata={"name": "mlflow-db", "namespace": "mlflow"},
        string_data={"password": pulumi.Output.secret(password)},
        opts=handle.opts(cluster, depends_on=list(ready)),
    )
    postgres = InClusterPostgres(
        "team-postgres",
        PostgresArgs(cluster=handle, password_secret="mlflow-db", depends_on=(*ready, secret)),
    )
    mlflow = Mlflow(
        "team-mlflow",
        MlflowArgs(
            cluster=handle,
            database=MlflowDatabase(host=postgres.host, port=postgres.port, sslmode="disable"),
            depends_on=(*ready, secret, monitoring.stack),
        ),
    )
    outputs = {"mlflow": mlflow.tracking_uri, "redis": redis.host, "prometheus": monitoring.prometheus_url}
    for key, value in outputs.items():
        pulumi.export(key, value)
    return outputs


if __name__ == "__main__":  # the Pulumi engine runs this file as __main__
    main()
