"""The MLflow tracking server: Postgres backend, proxied artifacts (S3 or a volume), metrics, optional route.

Image decision: the upstream `-full` variant (published since 3.9) ships psycopg2 and boto3, so no image of our
own needs building, scanning or hosting. The tag is pinned; override `MlflowArgs.image` to use a mirror.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from mlops_infra.components.k8s.cluster import ClusterHandle
from mlops_infra.components.k8s.security import restricted_container_security, restricted_pod_security

# Upstream image with database drivers and cloud SDKs (MLflow 3.16.1; the project's client is 3.17, and the
# REST API is compatible across 3.x minors).
MLFLOW_IMAGE = "ghcr.io/mlflow/mlflow:v3.16.1-full"
MLFLOW_PORT = 5000
_UID = 10001
LOCAL_ARTIFACT_ROOT = "/mlartifacts"
# Host headers the server accepts (MLflow >= 3.5 rejects others to stop DNS rebinding). Pod IPs are
# private: kubelet probes and Prometheus scrapes use them.
_PRIVATE_HOSTS = (
    "10.*",
    "172.1[6-9].*",
    "172.2[0-9].*",
    "172.3[0-1].*",
    "192.168.*",
    "localhost",
    "localhost:*",
    "127.0.0.1",
    "127.0.0.1:*",
)


@dataclass(frozen=True)
class MlflowDatabase:
    """Where the backend store lives; the password comes from a Secret in MLflow's namespace."""

    host: pulumi.Input[str]
    port: pulumi.Input[int] = 5432
    name: str = "mlflow"
    user: str = "mlflow"
    password_secret: str = "mlflow-db"
    password_key: str = "password"
    sslmode: str = "require"


@dataclass(frozen=True)
class GatewayRoute:
    """Expose MLflow through an existing Gateway API Gateway (an HTTPRoute attached to it)."""

    hostname: str
    gateway_name: str
    gateway_namespace: str = "gateway"
    section_name: str | None = None


@dataclass(frozen=True)
class MlflowArgs:
    cluster: ClusterHandle
    database: MlflowDatabase
    # `s3://bucket/` (object store, with workload identity annotations) or a path backed by a PVC.
    artifacts_destination: pulumi.Input[str] = LOCAL_ARTIFACT_ROOT
    artifact_volume_gb: int | None = 20  # only used when the destination is a local path
    storage_class: str | None = None
    service_account_annotations: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    namespace: str = "mlflow"
    image: str = MLFLOW_IMAGE
    replicas: int = 1
    workers: int = 2
    service_monitor: bool = True
    route: GatewayRoute | None = None
    client_namespaces: tuple[str, ...] = ("serving", "retraining", "monitoring")
    extra_env: Mapping[str, str] = field(default_factory=dict)
    depends_on: tuple[pulumi.Resource, ...] = ()


def allowed_hosts(namespace: str, route_hostname: str | None = None) -> list[str]:
    """The in-cluster DNS names of the Service (with and without port), private IPs and the route's host."""
    base = [
        "mlflow",
        f"mlflow.{namespace}",
        f"mlflow.{namespace}.svc",
        f"mlflow.{namespace}.svc.cluster.local",
    ]
    hosts = [h for name in base for h in (name, f"{name}:{MLFLOW_PORT}")]
    if route_hostname:
        hosts.append(route_hostname)
    return hosts + list(_PRIVATE_HOSTS)


def server_args(artifacts_destination: str, workers: int, hosts: list[str]) -> list[str]:
    """`mlflow server` arguments. The backend-store URI is NOT here: it comes from MLFLOW_BACKEND_STORE_URI,
    composed by Kubernetes from the secret env var, so the password is neither in the spec nor in argv."""
    return [
        "server",
        "--host", "0.0.0.0",
        "--port", str(MLFLOW_PORT),
        "--workers", str(workers),
        "--serve-artifacts",
        "--artifacts-destination", artifacts_destination,
        "--expose-prometheus", "/var/run/mlflow/metrics",
        "--allowed-hosts", ",".join(hosts),
    ]  # fmt: skip


def database_env(db: MlflowDatabase) -> list[dict[str, Any]]:
    """DB_PASSWORD from the Secret, then the URI that references it with Kubernetes' $(VAR) expansion."""
    return [
        {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": db.password_secret, "key": db.password_key}}},
        {
            "name": "MLFLOW_BACKEND_STORE_URI",
            "value": pulumi.Output.concat(
                "postgresql://", db.user, ":$(DB_PASSWORD)@", db.host, ":",
                pulumi.Output.from_input(db.port).apply(str), "/", db.name, "?sslmode=", db.sslmode,
            ),
        },
    ]  # fmt: skip


# `mlflow db upgrade` takes the URL only as an argument; calling the CLI from Python keeps it out of argv.
_DB_UPGRADE = (
    'import os; from mlflow.cli import cli; cli(["db", "upgrade", os.environ["MLFLOW_BACKEND_STORE_URI"]])'
)


class Mlflow(pulumi.ComponentResource):
    """MLflow tracking server with schema migrations on upgrade, probes, a restricted pod and a ServiceMonitor."""

    def __init__(self, name: str, args: MlflowArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlops:k8s:Mlflow", name, None, opts)
        ns = args.namespace
        labels = {"app.kubernetes.io/name": "mlflow", "app.kubernetes.io/component": "tracking-server"}
        k8s_opts = args.cluster.opts(self, depends_on=list(args.depends_on))
        local_artifacts = isinstance(
            args.artifacts_destination, str
        ) and args.artifacts_destination.startswith("/")

        self.service_account = k8s.core.v1.ServiceAccount(
            f"{name}-service-account",
            metadata={"name": "mlflow", "namespace": ns, "labels": labels,
                      "annotations": dict(args.service_account_annotations)},
            automount_service_account_token=False,
            opts=k8s_opts,
        )  # fmt: skip
        volumes: list[dict[str, Any]] = [
            {"name": "tmp", "emptyDir": {}},
            {"name": "metrics", "emptyDir": {}},
        ]
        mounts: list[dict[str, Any]] = [
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "metrics", "mountPath": "/var/run/mlflow"},
        ]
        if local_artifacts:
            pvc_spec: dict[str, Any] = {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": f"{args.artifact_volume_gb or 20}Gi"}},
            }
            if args.storage_class:
                pvc_spec["storageClassName"] = args.storage_class
            k8s.core.v1.PersistentVolumeClaim(
                f"{name}-artifacts",
                metadata={"name": "mlflow-artifacts", "namespace": ns, "labels": labels},
                spec=pvc_spec,
                opts=k8s_opts,
            )
            volumes.append({"name": "artifacts", "persistentVolumeClaim": {"claimName": "mlflow-artifacts"}})
            mounts.append({"name": "artifacts", "mountPath": str(args.artifacts_destination)})

        env = [
            *database_env(args.database),
            {"name": "HOME", "value": "/tmp"},
            *({"name": k, "value": v} for k, v in sorted(args.extra_env.items())),
        ]
        container_security = restricted_container_security()
        hosts = allowed_hosts(ns, args.route.hostname if args.route else None)
        self.deployment = k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata={"name": "mlflow", "namespace": ns, "labels": labels},
            spec={
                "replicas": args.replicas,
                "selector": {"matchLabels": {"app.kubernetes.io/name": "mlflow"}},
                # One ReadWriteOnce volume cannot be mounted by old and new pod on different nodes.
                "strategy": {"type": "Recreate"}
                if local_artifacts
                else {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "serviceAccountName": "mlflow",
                        "automountServiceAccountToken": False,
                        "enableServiceLinks": False,
                        "securityContext": restricted_pod_security(_UID, _UID),
                        "initContainers": [
                            {
                                "name": "db-upgrade",
                                "image": args.image,
                                "command": ["python", "-c", _DB_UPGRADE],
                                "env": env,
                                "resources": {
                                    "requests": {"cpu": "100m", "memory": "256Mi"},
                                    "limits": {"memory": "1Gi"},
                                },
                                "securityContext": container_security,
                                "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
                            }
                        ],
                        "containers": [
                            {
                                "name": "mlflow",
                                "image": args.image,
                                "command": ["mlflow"],
                                "args": pulumi.Output.from_input(args.artifacts_destination).apply(
                                    lambda dest: server_args(dest, args.workers, hosts)
                                ),
                                "ports": [{"name": "http", "containerPort": MLFLOW_PORT}],
                                "env": env,
                                "resources": {
                                    "requests": {"cpu": "250m", "memory": "512Mi"},
                                    "limits": {"memory": "2Gi"},
                                },
                                "startupProbe": {
                                    "httpGet": {"path": "/health", "port": "http"},
                                    "periodSeconds": 5,
                                    "failureThreshold": 36,
                                },
                                "readinessProbe": {
                                    "httpGet": {"path": "/health", "port": "http"},
                                    "periodSeconds": 10,
                                    "timeoutSeconds": 3,
                                },
                                "livenessProbe": {
                                    "httpGet": {"path": "/health", "port": "http"},
                                    "periodSeconds": 20,
                                    "timeoutSeconds": 5,
                                    "failureThreshold": 3,
                                },
                                "securityContext": container_security,
                                "volumeMounts": mounts,
                            }
                        ],
                        "volumes": volumes,
                    },
                },
            },
            opts=k8s_opts,
        )
        self.service = k8s.core.v1.Service(
            f"{name}-service",
            metadata={"name": "mlflow", "namespace": ns, "labels": labels},
            spec={
                "type": "ClusterIP",
                "selector": {"app.kubernetes.io/name": "mlflow"},
                "ports": [{"name": "http", "port": MLFLOW_PORT, "targetPort": "http"}],
            },
            opts=k8s_opts,
        )
        if args.replicas > 1:
            k8s.policy.v1.PodDisruptionBudget(
                f"{name}-pdb",
                metadata={"name": "mlflow", "namespace": ns, "labels": labels},
                spec={"minAvailable": 1, "selector": {"matchLabels": {"app.kubernetes.io/name": "mlflow"}}},
                opts=k8s_opts,
            )
        sources = [*args.client_namespaces, ns] + ([args.route.gateway_namespace] if args.route else [])
        k8s.networking.v1.NetworkPolicy(
            f"{name}-network-policy",
            metadata={"name": "mlflow", "namespace": ns, "labels": labels},
            spec={
                "podSelector": {"matchLabels": {"app.kubernetes.io/name": "mlflow"}},
                "policyTypes": ["Ingress"],
                "ingress": [
                    {
                        "from": [
                            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": src}}}
                            for src in dict.fromkeys(sources)
                        ],
                        "ports": [{"protocol": "TCP", "port": MLFLOW_PORT}],
                    }
                ],
            },
            opts=k8s_opts,
        )
        if args.service_monitor:
            k8s.apiextensions.CustomResource(
                f"{name}-service-monitor",
                api_version="monitoring.coreos.com/v1",
                kind="ServiceMonitor",
                metadata={"name": "mlflow", "namespace": ns, "labels": labels},
                spec={
                    "selector": {"matchLabels": {"app.kubernetes.io/name": "mlflow"}},
                    "namespaceSelector": {"matchNames": [ns]},
                    "endpoints": [{"port": "http", "path": "/metrics", "interval": "30s"}],
                },
                opts=k8s_opts,
            )
        if args.route is not None:
            parent: dict[str, Any] = {
                "name": args.route.gateway_name,
                "namespace": args.route.gateway_namespace,
            }
            if args.route.section_name:
                parent["sectionName"] = args.route.section_name
            k8s.apiextensions.CustomResource(
                f"{name}-route",
                api_version="gateway.networking.k8s.io/v1",
                kind="HTTPRoute",
                metadata={"name": "mlflow", "namespace": ns, "labels": labels},
                spec={
                    "parentRefs": [parent],
                    "hostnames": [args.route.hostname],
                    "rules": [
                        {
                            "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                            "backendRefs": [{"name": "mlflow", "port": MLFLOW_PORT}],
                        }
                    ],
                },
                opts=k8s_opts,
            )
        self.tracking_uri = f"http://mlflow.{ns}.svc.cluster.local:{MLFLOW_PORT}"
        self.register_outputs({"tracking_uri": self.tracking_uri})
