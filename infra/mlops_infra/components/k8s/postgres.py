"""PostgreSQL inside the cluster for MLflow's backend store where no managed database is wanted (local/dev)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from mlops_infra.components.k8s.cluster import ClusterHandle
from mlops_infra.components.k8s.security import restricted_container_security, restricted_pod_security

# Official image, Alpine variant: the "postgres" user is uid/gid 70. 17.x keeps the classic PGDATA layout.
POSTGRES_IMAGE = "postgres:17.6-alpine"
POSTGRES_PORT = 5432


@dataclass(frozen=True)
class PostgresArgs:
    cluster: ClusterHandle
    password_secret: str  # an existing Secret in `namespace` ...
    password_key: str = "password"  # ... and its key
    namespace: str = "mlflow"
    name: str = "postgres"
    database: str = "mlflow"
    user: str = "mlflow"
    image: str = POSTGRES_IMAGE
    storage_gb: int = 10
    storage_class: str | None = None
    client_labels: dict[str, str] = field(default_factory=lambda: {"app.kubernetes.io/name": "mlflow"})
    depends_on: tuple[pulumi.Resource, ...] = ()


class InClusterPostgres(pulumi.ComponentResource):
    """A single-instance Postgres StatefulSet: non-root, PVC, password from a Secret, reachable only by clients."""

    def __init__(self, name: str, args: PostgresArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlops:k8s:Postgres", name, None, opts)
        ns, app = args.namespace, args.name
        labels = {"app.kubernetes.io/name": app, "app.kubernetes.io/component": "database"}
        k8s_opts = args.cluster.opts(self, depends_on=list(args.depends_on))
        self.service = k8s.core.v1.Service(
            f"{name}-service",
            metadata={"name": app, "namespace": ns, "labels": labels},
            spec={
                "type": "ClusterIP",
                "selector": {"app.kubernetes.io/name": app},
                "ports": [{"name": "postgres", "port": POSTGRES_PORT, "targetPort": "postgres"}],
            },
            opts=k8s_opts,
        )
        pvc_spec: dict[str, Any] = {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": f"{args.storage_gb}Gi"}},
        }
        if args.storage_class:
            pvc_spec["storageClassName"] = args.storage_class
        ready = ["pg_isready", "-h", "127.0.0.1", "-U", args.user, "-d", args.database]
        self.statefulset = k8s.apps.v1.StatefulSet(
            f"{name}-statefulset",
            metadata={"name": app, "namespace": ns, "labels": labels},
            spec={
                "serviceName": app,
                "replicas": 1,
                "selector": {"matchLabels": {"app.kubernetes.io/name": app}},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "automountServiceAccountToken": False,
                        "enableServiceLinks": False,
                        "securityContext": restricted_pod_security(70, 70),
                        "containers": [
                            {
                                "name": "postgres",
                                "image": args.image,
                                "ports": [{"name": "postgres", "containerPort": POSTGRES_PORT}],
                                "env": [
                                    {"name": "POSTGRES_USER", "value": args.user},
                                    {"name": "POSTGRES_DB", "value": args.database},
                                    {
                                        "name": "POSTGRES_PASSWORD",
                                        "valueFrom": {
                                            "secretKeyRef": {
                                                "name": args.password_secret,
                                                "key": args.password_key,
                                            }
                                        },
                                    },
                                    # A subdirectory: the volume's root may hold lost+found.
                                    {"name": "PGDATA", "value": "/var/lib/postgresql/data/pgdata"},
                                ],
                                "resources": {
                                    "requests": {"cpu": "100m", "memory": "256Mi"},
                                    "limits": {"cpu": "1", "memory": "1Gi"},
                                },
                                "readinessProbe": {"exec": {"command": ready}, "periodSeconds": 5},
                                "livenessProbe": {
                                    "exec": {"command": ready},
                                    "initialDelaySeconds": 30,
                                    "periodSeconds": 10,
                                    "failureThreshold": 6,
                                },
                                "securityContext": restricted_container_security(),
                                "volumeMounts": [
                                    {"name": "data", "mountPath": "/var/lib/postgresql/data"},
                                    {"name": "run", "mountPath": "/var/run/postgresql"},
                                    {"name": "tmp", "mountPath": "/tmp"},
                                ],
                            }
                        ],
                        "volumes": [{"name": "run", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}],
                    },
                },
                "volumeClaimTemplates": [{"metadata": {"name": "data", "labels": labels}, "spec": pvc_spec}],
            },
            opts=k8s_opts,
        )
        k8s.networking.v1.NetworkPolicy(
            f"{name}-network-policy",
            metadata={"name": app, "namespace": ns, "labels": labels},
            spec={
                "podSelector": {"matchLabels": {"app.kubernetes.io/name": app}},
                "policyTypes": ["Ingress"],
                "ingress": [
                    {
                        "from": [{"podSelector": {"matchLabels": args.client_labels}}],
                        "ports": [{"protocol": "TCP", "port": POSTGRES_PORT}],
                    }
                ],
            },
            opts=k8s_opts,
        )
        self.host = f"{app}.{ns}.svc.cluster.local"
        self.port = POSTGRES_PORT
        self.register_outputs({"host": self.host, "port": self.port})
