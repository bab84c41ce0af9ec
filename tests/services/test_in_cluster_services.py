"""local / dev: Redis, Postgres and (on local) artifacts run in the cluster, restricted and persistent."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from services.service_lookup import find_object

from mlops_infra.platform.config import ConfigError, parse_stack_config
from mlops_infra.tooling.plan import SECRET, Plan

from plan_support import reference_plan

MANAGED_TYPES = ("aws:rds/", "aws:elasticache/", "gcp:sql/")


@pytest.mark.parametrize("stack", ["local", "dev", "test"])
def test_no_managed_data_services_outside_prod(stack: str) -> None:
    plan = reference_plan(stack)
    assert not [r.type for r in plan.resources if r.type.startswith(MANAGED_TYPES)]
    for kind, name, ns in (("StatefulSet", "redis", "redis"), ("StatefulSet", "postgres", "mlflow")):
        find_object(plan, kind, ns, name)


def test_local_stack_needs_no_cloud_at_all() -> None:
    plan = reference_plan("local")
    assert not [r.type for r in plan.resources if r.type.startswith(("aws:", "gcp:"))]
    args = _mlflow_container(plan)["args"]
    assert args[args.index("--artifacts-destination") + 1] == "/mlartifacts"
    pvc = find_object(plan, "PersistentVolumeClaim", "mlflow", "mlflow-artifacts").inputs["spec"]
    assert pvc["accessModes"] == ["ReadWriteOnce"]
    spec = find_object(plan, "Deployment", "mlflow", "mlflow").inputs["spec"]
    assert spec["strategy"] == {"type": "Recreate"}, "a RWO volume cannot be shared by old and new pod"
    mounts = {m["mountPath"] for m in _mlflow_container(plan)["volumeMounts"]}
    assert "/mlartifacts" in mounts
    assert plan.outputs["mlflowTrackingUri"] == "http://mlflow.mlflow.svc.cluster.local:5000"
    assert plan.outputs["redisHost"] == "redis.redis.svc.cluster.local" and plan.outputs["redisTls"] is False


def _pod(plan: Plan, kind: str, ns: str, name: str) -> dict[str, Any]:
    return find_object(plan, kind, ns, name).inputs["spec"]["template"]["spec"]  # type: ignore[no-any-return]


def _mlflow_container(plan: Plan) -> dict[str, Any]:
    return _pod(plan, "Deployment", "mlflow", "mlflow")["containers"][0]  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("kind", "ns", "name", "uid"),
    [("StatefulSet", "redis", "redis", 999), ("StatefulSet", "mlflow", "postgres", 70),
     ("Deployment", "mlflow", "mlflow", 10001)],
)  # fmt: skip
def test_pods_are_restricted_pinned_and_bounded(kind: str, ns: str, name: str, uid: int) -> None:
    pod = _pod(reference_plan("local"), kind, ns, name)
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == uid
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    for container in pod["containers"] + pod.get("initContainers", []):
        sc = container["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"] == {"drop": ["ALL"]}
        image = container["image"]
        assert ":" in image and not image.endswith(":latest"), image
        assert container["resources"]["limits"]["memory"] and container["resources"]["requests"]["cpu"]
    main = pod["containers"][0]
    assert "readinessProbe" in main and "livenessProbe" in main


def test_redis_persists_with_aof_and_reads_its_password_from_the_secret() -> None:
    plan = reference_plan("local")
    sts = find_object(plan, "StatefulSet", "redis", "redis").inputs["spec"]
    assert sts["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    conf = find_object(plan, "ConfigMap", "redis", "redis-config").inputs["data"]["redis.conf"]
    assert "appendonly yes" in conf and "include /etc/redis/auth/auth.conf" in conf
    assert f"maxmemory {plan.config.services.redis.memory_mb}mb" in conf
    assert "requirepass" not in conf
    secret = find_object(plan, "Secret", "redis", "redis-auth").inputs
    assert secret["stringData"] == {"auth.conf": SECRET, "password": SECRET}
    container = sts["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    assert env["REDISCLI_AUTH"]["valueFrom"]["secretKeyRef"] == {"name": "redis-auth", "key": "password"}
    assert "redis-server" in container["command"] and not any("pass" in a for a in container["command"])
    policy = find_object(plan, "NetworkPolicy", "redis", "redis").inputs["spec"]
    allowed = {
        p["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        for p in policy["ingress"][0]["from"]
    }
    assert allowed == {"redis", "serving", "retraining"}


@pytest.mark.parametrize("stack", ["local", "prod"])
def test_redis_clients_get_one_interface_in_serving_and_retraining(stack: str) -> None:
    plan = reference_plan(stack)
    tls = "true" if plan.config.redis_mode == "managed" else "false"
    for ns in ("serving", "retraining"):
        data = find_object(plan, "ConfigMap", ns, "redis-connection").inputs["data"]
        assert set(data) == {"REDIS_HOST", "REDIS_PORT", "REDIS_TLS"} and data["REDIS_TLS"] == tls
        assert find_object(plan, "Secret", ns, "redis-auth").inputs["stringData"] == {"password": SECRET}


@pytest.mark.parametrize("stack", ["local", "prod"])
def test_mlflow_reads_the_database_password_from_a_secret_and_proxies_artifacts(stack: str) -> None:
    plan = reference_plan(stack)
    pod = _pod(plan, "Deployment", "mlflow", "mlflow")
    for container in (pod["containers"][0], pod["initContainers"][0]):
        env = {e["name"]: e for e in container["env"]}
        assert env["DB_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "mlflow-db", "key": "password"}
        assert "value" not in env["DB_PASSWORD"]
        assert "$(DB_PASSWORD)" in env["MLFLOW_BACKEND_STORE_URI"]["value"]
    main = pod["containers"][0]
    assert main["command"] == ["mlflow"] and main["args"][0] == "server"
    assert "--serve-artifacts" in main["args"] and "--expose-prometheus" in main["args"]
    assert not any("postgresql://" in a for a in main["args"]), "the backend URI stays out of argv"
    assert main["readinessProbe"]["httpGet"]["path"] == "/health"
    upgrade = pod["initContainers"][0]
    assert upgrade["name"] == "db-upgrade" and '"db", "upgrade"' in upgrade["command"][-1]
    hosts = main["args"][main["args"].index("--allowed-hosts") + 1].split(",")
    assert "mlflow.mlflow.svc.cluster.local:5000" in hosts and "*" not in hosts
    monitor = find_object(plan, "ServiceMonitor", "mlflow", "mlflow").inputs["spec"]
    assert monitor["endpoints"] == [{"interval": "30s", "path": "/metrics", "port": "http"}]
    assert find_object(plan, "Service", "mlflow", "mlflow").inputs["spec"]["type"] == "ClusterIP"
    assert not [r for r in plan.k8s_objects() if r.inputs.get("kind") == "HTTPRoute"], (
        "no route unless configured"
    )


def test_in_cluster_postgres_takes_the_same_secret() -> None:
    plan = reference_plan("dev")
    pod = _pod(plan, "StatefulSet", "mlflow", "postgres")
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert env["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "mlflow-db", "key": "password"}
    assert find_object(plan, "Secret", "mlflow", "mlflow-db").inputs["stringData"] == {"password": SECRET}
    uri = {e["name"]: e for e in _mlflow_container(plan)["env"]}["MLFLOW_BACKEND_STORE_URI"]["value"]
    assert "@postgres.mlflow.svc.cluster.local:5432/mlflow" in uri
    # dev on AWS still keeps artifacts in S3 (cheap, survives the cluster), with its own protections
    bucket = plan.of_type("aws:s3/bucket:Bucket")
    assert len(bucket) == 1 and bucket[0].protect is False


def test_route_is_declared_only_when_configured(mutated_plan: Callable[..., Plan]) -> None:
    def add_route(cfg: dict[str, Any]) -> None:
        cfg["mlops-platform:services"]["mlflow"]["route"] = {
            "hostname": "mlflow.example.com",
            "gatewayName": "edge",
        }

    plan = mutated_plan("local", add_route, name="local-route")
    route = find_object(plan, "HTTPRoute", "mlflow", "mlflow").inputs["spec"]
    assert route["hostnames"] == ["mlflow.example.com"]
    assert route["parentRefs"] == [{"name": "edge", "namespace": "gateway"}]
    assert route["rules"][0]["backendRefs"] == [{"name": "mlflow", "port": 5000}]
    args = _mlflow_container(plan)["args"]
    assert "mlflow.example.com" in args[args.index("--allowed-hosts") + 1].split(",")
    policy = find_object(plan, "NetworkPolicy", "mlflow", "mlflow").inputs["spec"]
    sources = {
        p["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        for p in policy["ingress"][0]["from"]
    }
    assert "gateway" in sources


@pytest.mark.parametrize(
    ("raw", "path", "words"),
    [
        ({"environment": "prod", "cloud": "aws", "region": "us-east-1",
          "nodeGroups": [{"name": "system", "role": "system", "instanceTypes": ["m6i.large"], "minSize": 2,
                          "maxSize": 3}],
          "services": {"redis": {"mode": "managed", "replicas": 0}}},
         "services.redis.replicas", "failover"),
        ({"environment": "dev", "cloud": "local", "services": {"mlflow": {"artifacts": "object-store"}}},
         "services.mlflow.artifacts", "no object store"),
        ({"environment": "dev", "cloud": "local", "services": {"mlflow": {"replicas": 2}}},
         "services.mlflow.replicas", "ReadWriteOnce"),
        ({"environment": "prod", "cloud": "aws", "region": "us-east-1",
          "nodeGroups": [{"name": "system", "role": "system", "instanceTypes": ["m6i.large"], "minSize": 2,
                          "maxSize": 3}],
          "services": {"mlflow": {"backupRetentionDays": 3}}},
         "services.mlflow.backupRetentionDays", "7 days"),
        ({"environment": "dev", "cloud": "local", "services": {"mlflow": {"route": {"hostname": "Not A Host",
                                                                                     "gatewayName": "edge"}}}},
         "services.mlflow.route.hostname", ""),
    ],
)  # fmt: skip
def test_service_config_mistakes_are_reported_with_their_key(
    raw: dict[str, Any], path: str, words: str
) -> None:
    with pytest.raises(ConfigError) as err:
        parse_stack_config(raw, "Pulumi.x.yaml")
    matching = [p for p in err.value.problems if p.path == f"mlops-platform:{path}"]
    assert matching, [str(p) for p in err.value.problems]
    assert words in matching[0].message


def test_in_cluster_database_is_protected_in_prod(mutated_plan: Callable[..., Plan]) -> None:
    """A prod stack that opts out of the managed database (prod-gcp uses Cloud SQL) still protects its data."""

    def in_cluster(cfg: dict[str, Any]) -> None:
        cfg["mlops-platform:services"]["mlflow"]["database"] = "in-cluster"

    plan = mutated_plan("prod-gcp", in_cluster)
    assert find_object(plan, "StatefulSet", "mlflow", "postgres").protect is True
    assert find_object(plan, "StatefulSet", "mlflow", "postgres").inputs["spec"]["volumeClaimTemplates"]
    assert find_object(plan, "StatefulSet", "redis", "redis").protect is False, "a cache is not protected"
    assert reference_plan("local").of_type("kubernetes:apps/v1:StatefulSet")[0].protect is False
