"""Deploys the reference model server: an Argo Rollouts canary whose weights are the traffic shares its replica
count really produces, gated by Prometheus p99 latency and error ratio, with HPA, PDB, probes, a restricted pod
and a ServiceMonitor that scrapes every pod once."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from mlops_infra.components.accelerators import GpuSharing, accelerator
from mlops_infra.components.k8s import canary_traffic
from mlops_infra.components.k8s.cluster import ClusterHandle
from mlops_infra.components.k8s.security import restricted_container_security, restricted_pod_security

PORT = 8080
READY_PATH, LIVE_PATH = "/v2/health/ready", "/v2/health/live"
RUN_AS_USER = 10001
FIRST_PAUSE, PAUSE = "2m", "5m"
SCRAPE_LABEL = {"mlops/scrape": "model-server"}
ROLLOUT_API = "argoproj.io/v1alpha1"


@dataclass(frozen=True)
class RedisRef:
    """How the server reaches the prediction cache; the password stays in a Secret of the namespace."""

    host: pulumi.Input[str]
    port: pulumi.Input[int] = 6379
    tls: bool = False
    password_secret: str = "redis-auth"
    password_key: str = "password"


@dataclass(frozen=True)
class ModelServingArgs:
    cluster: ClusterHandle
    model: str
    image: pulumi.Input[str]
    tracking_uri: pulumi.Input[str]
    namespace: pulumi.Input[str] = "serving"
    alias: str = "champion"
    replicas: int = 2  # also the HPA's minimum: the canary weights are realised at this count
    max_replicas: int = 10
    # setWeight steps before 100; None derives them from `replicas` (canary_traffic.default_weights). Every
    # weight must be a share the replica count produces: there is no traffic router.
    canary_weights: tuple[int, ...] | None = None
    cpu: str = "1"
    memory: str = "1Gi"
    gpus: int = 0  # > 0: placed on the cloud's GPU nodes with that many GPUs (accelerators registry)
    # One slice of a shared GPU instead (time-slicing or MIG of a sharing GPU group); takes precedence over gpus.
    gpu_sharing: GpuSharing | None = None
    latency_slo_ms: int = 50
    max_error_ratio: float = 0.01
    cache_ttl_seconds: int = 300
    shadow_sample_rate: float = 0.0
    redis: RedisRef | None = None
    prometheus_url: str = "http://kube-prometheus-stack-prometheus.monitoring.svc:9090"
    # Without a Prometheus (monitoring switched off) there is no ServiceMonitor CRD and nothing to analyse:
    # the canary still steps through its weights, but nothing rolls it back automatically.
    monitoring: bool = True
    labels: dict[str, str] = field(default_factory=dict)


def _redis_url(redis: RedisRef) -> pulumi.Output[str]:
    scheme = "rediss" if redis.tls else "redis"
    return pulumi.Output.concat(
        scheme, "://", redis.host, ":", pulumi.Output.from_input(redis.port).apply(str), "/0"
    )


def server_env(args: ModelServingArgs) -> list[dict[str, Any]]:
    """Environment of the model server (workloads/serving reads and validates these at start-up)."""
    env: list[dict[str, Any]] = [
        {"name": "MLFLOW_TRACKING_URI", "value": args.tracking_uri},
        {"name": "MODEL_NAME", "value": args.model},
        {"name": "MODEL_ALIAS", "value": args.alias},
        {"name": "MODEL_DIR", "value": "/tmp/models"},
        {"name": "PORT", "value": str(PORT)},
        {"name": "LATENCY_SLO_SECONDS", "value": str(args.latency_slo_ms / 1000)},
        {"name": "CACHE_TTL_SECONDS", "value": str(max(args.cache_ttl_seconds, 1))},
        {"name": "CACHE_ENABLED", "value": "true" if args.redis and args.cache_ttl_seconds > 0 else "false"},
    ]
    if args.redis is not None:
        env += [
            {"name": "REDIS_URL", "value": _redis_url(args.redis)},
            {
                "name": "REDIS_PASSWORD",
                "valueFrom": {
                    "secretKeyRef": {"name": args.redis.password_secret, "key": args.redis.password_key}
                },
            },
        ]
    if args.shadow_sample_rate > 0:
        env += [
            {"name": "SHADOW_ALIAS", "value": "challenger"},
            {"name": "SHADOW_SAMPLE_RATE", "value": str(args.shadow_sample_rate)},
        ]
    return env


def pod_template(args: ModelServingArgs, labels: dict[str, str]) -> dict[str, Any]:
    resources: dict[str, Any] = {
        "requests": {"cpu": args.cpu, "memory": args.memory},
        "limits": {"memory": args.memory},
    }
    spec: dict[str, Any] = {
        "serviceAccountName": f"{args.model}-server",
        "automountServiceAccountToken": False,
        "securityContext": restricted_pod_security(RUN_AS_USER),
        "terminationGracePeriodSeconds": 30,
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": "topology.kubernetes.io/zone",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": labels},
            }
        ],
        "containers": [
            {
                "name": "server",
                "image": args.image,
                "ports": [{"name": "http", "containerPort": PORT, "protocol": "TCP"}],
                "env": server_env(args),
                "resources": resources,
                # The Open Inference Protocol's health endpoints, which the server answers like /readyz and /healthz
                # (ready: 200 once a model is loaded, else 503; live: 200 while the process serves requests).
                "startupProbe": {
                    "httpGet": {"path": READY_PATH, "port": "http"},
                    "periodSeconds": 5,
                    "failureThreshold": 60,
                },
                "readinessProbe": {"httpGet": {"path": READY_PATH, "port": "http"}, "periodSeconds": 5},
                "livenessProbe": {
                    "httpGet": {"path": LIVE_PATH, "port": "http"},
                    "periodSeconds": 10,
                    "failureThreshold": 3,
                },
                "lifecycle": {"preStop": {"sleep": {"seconds": 5}}},
                "securityContext": restricted_container_security(),
                "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
            }
        ],
        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "2Gi"}}],
    }
    if args.gpu_sharing is not None:
        args.gpu_sharing.place(spec, resources, args.cluster.cloud)
    elif args.gpus:
        accelerator("gpu", args.cluster.cloud).place(spec, resources, args.gpus)
    return {"metadata": {"labels": labels}, "spec": spec}


def canary_weights(args: ModelServingArgs) -> tuple[int, ...]:
    """The setWeight steps before 100, each one the share of pods (and so of traffic) the controller produces
    at `replicas`; a weight it cannot produce is refused rather than deployed as a promise it breaks."""
    weights = args.canary_weights or canary_traffic.default_weights(args.replicas)
    wrong = [w for w in weights if not canary_traffic.realised(args.replicas, w)]
    if wrong or list(weights) != sorted(set(weights)):
        raise ValueError(
            f"canary weights {list(weights)} with {args.replicas} replicas: use increasing weights from "
            f"{canary_traffic.realisable_weights(args.replicas)} (without a traffic router the weight is the share "
            "of pods)"
        )
    return tuple(weights)


def canary_strategy(name: str, analysis_template: str | None, weights: tuple[int, ...]) -> dict[str, Any]:
    """Each weight, paused, then 100 %; analysed in the background from the first step; a failed analysis aborts
    the rollout and Argo Rollouts sends all traffic back to the stable ReplicaSet. maxSurge 1 / maxUnavailable 0:
    the canary pods come on top of the stable ones, so capacity never drops below the replica count."""
    steps: list[dict[str, Any]] = []
    for i, weight in enumerate(weights):
        steps += [{"setWeight": weight}, {"pause": {"duration": FIRST_PAUSE if i == 0 else PAUSE}}]
    steps.append({"setWeight": 100})
    canary: dict[str, Any] = {
        "stableService": f"{name}-stable",
        "canaryService": f"{name}-canary",
        "maxSurge": canary_traffic.MAX_SURGE,
        "maxUnavailable": canary_traffic.MAX_UNAVAILABLE,
        "abortScaleDownDelaySeconds": 30,
        "steps": steps,
    }
    if analysis_template is not None:
        canary["analysis"] = {
            "templates": [{"templateName": analysis_template}],
            "startingStep": 1,
            "args": [{"name": "canary-hash", "valueFrom": {"podTemplateHashValue": "Latest"}}],
        }
    return {"canary": canary}


def analysis_metrics(args: ModelServingArgs) -> list[dict[str, Any]]:
    """PromQL over the recording rules of monitoring/rules/canary.yaml, per canary ReplicaSet.

    No samples (no traffic yet) is inconclusive, not a pass: the rollout pauses for a person to look.
    """
    selector = f'namespace="{{{{args.namespace}}}}",model="{args.model}",pod_template_hash="{{{{args.canary-hash}}}}"'
    slo_seconds = args.latency_slo_ms / 1000

    def metric(name: str, record: str, limit: float) -> dict[str, Any]:
        return {
            "name": name,
            "interval": "1m",
            "failureLimit": 1,
            "inconclusiveLimit": 3,
            "successCondition": f"len(result) > 0 && result[0] <= {limit}",
            "failureCondition": f"len(result) > 0 && result[0] > {limit}",
            "provider": {"prometheus": {"address": args.prometheus_url, "query": f"{record}{{{selector}}}"}},
        }

    return [
        metric("p99-latency", "model:request_duration_seconds:p99_2m", slo_seconds),
        metric("error-ratio", "model:requests:error_ratio_2m", args.max_error_ratio),
    ]


class ModelServing(pulumi.ComponentResource):
    """Everything one model needs to serve safely; `self.service_url` is the in-cluster endpoint."""

    def __init__(self, name: str, args: ModelServingArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlops:k8s:ModelServing", name, None, opts)
        app = f"{args.model}-server"
        labels = {
            "app.kubernetes.io/name": "model-server",
            "app.kubernetes.io/instance": app,
            "mlops/model": args.model,
        }
        meta_labels = {**labels, "app.kubernetes.io/part-of": "mlops-platform", **args.labels}
        child = args.cluster.opts(self)
        weights = canary_weights(args)

        def meta(obj_name: str, extra: dict[str, str] | None = None) -> dict[str, Any]:
            return {"name": obj_name, "namespace": args.namespace, "labels": {**meta_labels, **(extra or {})}}

        self.service_account = k8s.core.v1.ServiceAccount(
            f"{name}-sa", metadata=meta(app), automount_service_account_token=False, opts=child
        )
        # Argo Rollouts adds `rollouts-pod-template-hash` to the stable and canary Services' selectors and, once a
        # rollout is promoted, points both at the stable pods: scraping through them counts every pod twice. The
        # main Service is never touched and selects every pod of both ReplicaSets: it alone is scraped.
        self.services = [
            k8s.core.v1.Service(
                f"{name}-{role}",
                metadata=meta(svc, SCRAPE_LABEL if role == "main" else None),
                spec={
                    "type": "ClusterIP",
                    "selector": labels,
                    "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
                },
                opts=child,
            )
            for role, svc in (("main", app), ("stable", f"{app}-stable"), ("canary", f"{app}-canary"))
        ]
        template: str | None = None
        waits: list[pulumi.Resource] = [*self.services, self.service_account]
        if args.monitoring:
            template = f"{app}-slo"
            analysis = k8s.apiextensions.CustomResource(
                f"{name}-analysis",
                api_version=ROLLOUT_API,
                kind="AnalysisTemplate",
                metadata=meta(template),
                spec={
                    "args": [{"name": "canary-hash"}, {"name": "namespace", "value": args.namespace}],
                    "metrics": analysis_metrics(args),
                },
                opts=child,
            )
            waits.append(analysis)
        self.rollout = k8s.apiextensions.CustomResource(
            f"{name}-rollout",
            api_version=ROLLOUT_API,
            kind="Rollout",
            metadata=meta(app),
            spec={
                "replicas": args.replicas,
                "revisionHistoryLimit": 3,
                "selector": {"matchLabels": labels},
                "template": pod_template(args, labels),
                "strategy": canary_strategy(app, template, weights),
            },
            opts=pulumi.ResourceOptions.merge(
                child,
                pulumi.ResourceOptions(
                    depends_on=waits,
                    ignore_changes=["spec.replicas"],  # the HPA owns the replica count
                ),
            ),
        )
        self.hpa = k8s.autoscaling.v2.HorizontalPodAutoscaler(
            f"{name}-hpa",
            metadata=meta(app),
            spec={
                "scaleTargetRef": {"apiVersion": ROLLOUT_API, "kind": "Rollout", "name": app},
                "minReplicas": args.replicas,
                "maxReplicas": max(args.max_replicas, args.replicas),
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {
                            "name": "cpu",
                            "target": {"type": "Utilization", "averageUtilization": 60},
                        },
                    }
                ],
                "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300}},
            },
            opts=child,
        )
        self.pdb = k8s.policy.v1.PodDisruptionBudget(
            f"{name}-pdb",
            metadata=meta(app),
            spec={"maxUnavailable": 1, "selector": {"matchLabels": labels}},
            opts=child,
        )
        if args.monitoring:
            k8s.apiextensions.CustomResource(
                f"{name}-servicemonitor",
                api_version="monitoring.coreos.com/v1",
                kind="ServiceMonitor",
                metadata=meta(app),
                spec={
                    "selector": {"matchLabels": {**labels, **SCRAPE_LABEL}},
                    "endpoints": [
                        {
                            "port": "http",
                            "path": "/metrics",
                            "interval": "15s",
                            "relabelings": [
                                {
                                    "sourceLabels": [
                                        "__meta_kubernetes_pod_label_rollouts_pod_template_hash"
                                    ],
                                    "targetLabel": "pod_template_hash",
                                }
                            ],
                        }
                    ],
                },
                opts=child,
            )
        self.service_url = pulumi.Output.concat("http://", app, ".", args.namespace, ".svc")
        self.register_outputs({"serviceUrl": self.service_url})
