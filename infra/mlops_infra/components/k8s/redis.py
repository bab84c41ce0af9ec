"""Redis inside the cluster (local/dev/test) and the connection objects every Redis client namespace gets.

Workloads see one interface whether Redis is ElastiCache or this StatefulSet: a ConfigMap `redis-connection`
(REDIS_HOST, REDIS_PORT, REDIS_TLS) and a Secret `redis-auth` (key `password`) in their own namespace.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from mlops_infra.components.k8s.cluster import ClusterHandle
from mlops_infra.components.k8s.security import restricted_container_security, restricted_pod_security

# Official image, Alpine variant: runs as uid 999 / gid 1000 ("redis"), no shell needed for our command.
REDIS_IMAGE = "redis:7.4.5-alpine"
REDIS_PORT = 6379
AUTH_SECRET = "redis-auth"
AUTH_SECRET_KEY = "password"
CONNECTION_CONFIGMAP = "redis-connection"
_UID, _GID = 999, 1000


def redis_conf(max_memory_mb: int) -> str:
    """Server config: AOF persistence on the volume, LRU eviction (a cache), password from a mounted file."""
    return "\n".join(
        [
            "bind * -::*",
            f"port {REDIS_PORT}",
            "dir /data",
            "appendonly yes",
            "appendfsync everysec",
            'save ""',
            f"maxmemory {max_memory_mb}mb",
            "maxmemory-policy allkeys-lru",
            # The password never appears in the ConfigMap, the pod spec or the process arguments.
            "include /etc/redis/auth/auth.conf",
            "",
        ]
    )


def memory_limit_mb(max_memory_mb: int) -> int:
    """Container limit: maxmemory plus room for the AOF-rewrite fork's copy-on-write pages and overhead."""
    return int(max_memory_mb * 1.5) + 64


@dataclass(frozen=True)
class RedisArgs:
    cluster: ClusterHandle
    namespace: str = "redis"
    image: str = REDIS_IMAGE
    max_memory_mb: int = 512
    storage_gb: int = 2
    storage_class: str | None = None
    password: pulumi.Input[str] | None = None  # None: generate one
    client_namespaces: tuple[str, ...] = ("serving", "retraining")
    labels: dict[str, str] = field(default_factory=dict)
    depends_on: tuple[pulumi.Resource, ...] = ()


class InClusterRedis(pulumi.ComponentResource):
    """A single-node Redis StatefulSet with AUTH, AOF on a PVC, a restricted pod and a NetworkPolicy."""

    def __init__(self, name: str, args: RedisArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlops:k8s:Redis", name, None, opts)
        ns = args.namespace
        labels = {"app.kubernetes.io/name": "redis", "app.kubernetes.io/component": "cache", **args.labels}
        if args.password is None:
            generated = random.RandomPassword(
                f"{name}-password", length=32, special=False, opts=pulumi.ResourceOptions(parent=self)
            )
            password: pulumi.Input[str] = generated.result
        else:
            password = args.password
        self.password: pulumi.Output[str] = pulumi.Output.secret(password)
        k8s_opts = args.cluster.opts(self, depends_on=list(args.depends_on))

        auth_conf: pulumi.Output[str] = pulumi.Output.secret(
            self.password.apply(lambda pw: f"requirepass {pw}\n")
        )
        secret = k8s.core.v1.Secret(
            f"{name}-auth",
            metadata={"name": AUTH_SECRET, "namespace": ns, "labels": labels},
            type="Opaque",
            string_data={
                AUTH_SECRET_KEY: self.password,
                "auth.conf": auth_conf,
            },
            opts=k8s_opts,
        )
        config = k8s.core.v1.ConfigMap(
            f"{name}-config",
            metadata={"name": "redis-config", "namespace": ns, "labels": labels},
            data={"redis.conf": redis_conf(args.max_memory_mb)},
            opts=k8s_opts,
        )
        self.service = k8s.core.v1.Service(
            f"{name}-service",
            metadata={"name": "redis", "namespace": ns, "labels": labels},
            spec={
                "type": "ClusterIP",
                "selector": {"app.kubernetes.io/name": "redis"},
                "ports": [{"name": "redis", "port": REDIS_PORT, "targetPort": "redis"}],
            },
            opts=k8s_opts,
        )
        limit = memory_limit_mb(args.max_memory_mb)
        pvc_spec: dict[str, Any] = {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": f"{args.storage_gb}Gi"}},
        }
        if args.storage_class:
            pvc_spec["storageClassName"] = args.storage_class
        self.statefulset = k8s.apps.v1.StatefulSet(
            f"{name}-statefulset",
            metadata={"name": "redis", "namespace": ns, "labels": labels},
            spec={
                "serviceName": "redis",
                "replicas": 1,
                "selector": {"matchLabels": {"app.kubernetes.io/name": "redis"}},
                "template": {
                    "metadata": {
                        "labels": labels,
                        # Restart on config change; the checksum is of non-secret text only.
                        "annotations": {"mlops.dev/config-hash": _digest(redis_conf(args.max_memory_mb))},
                    },
                    "spec": {
                        "automountServiceAccountToken": False,
                        "enableServiceLinks": False,
                        "securityContext": restricted_pod_security(_UID, _GID),
                        "containers": [
                            {
                                "name": "redis",
                                "image": args.image,
                                "command": ["redis-server", "/etc/redis/redis.conf"],
                                "ports": [{"name": "redis", "containerPort": REDIS_PORT}],
                                "env": [
                                    {
                                        "name": "REDISCLI_AUTH",
                                        "valueFrom": {
                                            "secretKeyRef": {"name": AUTH_SECRET, "key": AUTH_SECRET_KEY}
                                        },
                                    }
                                ],
                                "resources": {
                                    "requests": {"cpu": "100m", "memory": f"{limit}Mi"},
                                    "limits": {"cpu": "1", "memory": f"{limit}Mi"},
                                },
                                "readinessProbe": {
                                    # redis-cli exits 0 on error replies (LOADING, NOAUTH): match the PONG.
                                    "exec": {
                                        "command": [
                                            "sh",
                                            "-c",
                                            f"redis-cli -p {REDIS_PORT} ping | grep -q PONG",
                                        ]
                                    },
                                    "periodSeconds": 5,
                                    "timeoutSeconds": 2,
                                },
                                "livenessProbe": {
                                    "tcpSocket": {"port": "redis"},
                                    "initialDelaySeconds": 10,
                                    "periodSeconds": 10,
                                    "failureThreshold": 6,
                                },
                                "securityContext": restricted_container_security(),
                                "volumeMounts": [
                                    {"name": "data", "mountPath": "/data"},
                                    {
                                        "name": "config",
                                        "mountPath": "/etc/redis/redis.conf",
                                        "subPath": "redis.conf",
                                    },
                                    {"name": "auth", "mountPath": "/etc/redis/auth", "readOnly": True},
                                ],
                            }
                        ],
                        "volumes": [
                            {"name": "config", "configMap": {"name": "redis-config"}},
                            {
                                "name": "auth",
                                "secret": {
                                    "secretName": AUTH_SECRET,
                                    "items": [{"key": "auth.conf", "path": "auth.conf"}],
                                    "defaultMode": 0o440,
                                },
                            },
                        ],
                    },
                },
                "volumeClaimTemplates": [{"metadata": {"name": "data", "labels": labels}, "spec": pvc_spec}],
            },
            opts=args.cluster.opts(self, depends_on=[*args.depends_on, secret, config]),
        )
        k8s.networking.v1.NetworkPolicy(
            f"{name}-network-policy",
            metadata={"name": "redis", "namespace": ns, "labels": labels},
            spec={
                "podSelector": {"matchLabels": {"app.kubernetes.io/name": "redis"}},
                "policyTypes": ["Ingress"],
                "ingress": [
                    {
                        "from": [
                            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": client}}}
                            for client in (ns, *args.client_namespaces)
                        ],
                        "ports": [{"protocol": "TCP", "port": REDIS_PORT}],
                    }
                ],
            },
            opts=k8s_opts,
        )
        self.host = f"redis.{ns}.svc.cluster.local"
        self.port = REDIS_PORT
        self.register_outputs({"host": self.host, "port": self.port})


@dataclass(frozen=True)
class RedisClientArgs:
    cluster: ClusterHandle
    host: pulumi.Input[str]
    port: pulumi.Input[int]
    tls: bool
    password: pulumi.Input[str]
    namespaces: tuple[str, ...] = ("serving", "retraining")
    depends_on: tuple[pulumi.Resource, ...] = ()


class RedisClientConfig(pulumi.ComponentResource):
    """The connection ConfigMap and password Secret in each namespace whose workloads use Redis."""

    def __init__(self, name: str, args: RedisClientArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlops:k8s:RedisClientConfig", name, None, opts)
        k8s_opts = args.cluster.opts(self, depends_on=list(args.depends_on))
        labels = {"app.kubernetes.io/component": "redis-client"}
        for ns in args.namespaces:
            k8s.core.v1.Secret(
                f"{name}-{ns}-auth",
                metadata={"name": AUTH_SECRET, "namespace": ns, "labels": labels},
                type="Opaque",
                string_data={AUTH_SECRET_KEY: pulumi.Output.secret(args.password)},
                opts=k8s_opts,
            )
            k8s.core.v1.ConfigMap(
                f"{name}-{ns}-connection",
                metadata={"name": CONNECTION_CONFIGMAP, "namespace": ns, "labels": labels},
                data={
                    "REDIS_HOST": args.host,
                    "REDIS_PORT": pulumi.Output.from_input(args.port).apply(str),
                    "REDIS_TLS": "true" if args.tls else "false",
                },
                opts=k8s_opts,
            )
        self.register_outputs({})


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]
