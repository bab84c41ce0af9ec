"""Composes the reference workloads onto a platform: images, Argo Rollouts, the model server, retraining."""

from __future__ import annotations

from typing import Any

import pulumi

from mlops_infra.components.images import Registry, WorkloadImage, WorkloadImageArgs
from mlops_infra.components.k8s.argo_rollouts import ArgoRollouts, ArgoRolloutsArgs
from mlops_infra.components.k8s.cluster import ClusterHandle
from mlops_infra.components.k8s.retraining import Retraining, RetrainingArgs
from mlops_infra.components.k8s.serving import ModelServing, ModelServingArgs, RedisRef
from mlops_infra.platform.config import StackConfig
from mlops_infra.platform.services import ServiceEndpoints


def _registry(
    config: StackConfig, cluster: ClusterHandle, workload: str, parent: pulumi.Resource
) -> Registry:
    """Where one workload's image goes: a registry the stack names, else one the stack declares (ECR on AWS, the
    cluster's Artifact Registry repository on GCP), else the local cluster's registry."""
    if config.workloads.registry is None and config.cloud == "aws":
        from mlops_infra.components.aws.ecr import EcrRepository, EcrRepositoryArgs

        repo = EcrRepository(
            f"{workload}-images",
            EcrRepositoryArgs(
                name=f"mlops-{config.environment}/{workload}", tags=config.all_tags, protect=False
            ),
            opts=pulumi.ResourceOptions(parent=parent),
        )
        return repo.registry
    if config.workloads.registry is None and cluster.image_registry is not None:
        return cluster.image_registry.for_workload(workload)
    registry = config.image_registry or "localhost:5001/mlops"
    return Registry(server=registry.split("/", 1)[0], repository=f"{registry}/{workload}")


def _image(
    config: StackConfig, cluster: ClusterHandle, workload: str, pinned: str | None, parent: pulumi.Resource
) -> pulumi.Input[str]:
    """A configured image reference wins (must be pinned); otherwise build this repo's Dockerfile and push it."""
    if pinned:
        return pinned
    image = WorkloadImage(
        f"{workload}-image",
        WorkloadImageArgs(workload=workload, registry=_registry(config, cluster, workload, parent)),
        opts=pulumi.ResourceOptions(parent=parent),
    )
    return image.ref


def _redis_ref(endpoints: ServiceEndpoints) -> RedisRef | None:
    if endpoints.redis_host is None:
        return None
    return RedisRef(
        host=endpoints.redis_host,
        port=endpoints.redis_port,
        tls=endpoints.redis_tls,
        password_secret=endpoints.redis_secret_name,
        password_key=endpoints.redis_secret_key,
    )


def platform_workloads(
    config: StackConfig,
    cluster: ClusterHandle,
    endpoints: ServiceEndpoints,
    depends_on: list[pulumi.Resource],
    parent: pulumi.Resource,
) -> dict[str, pulumi.Input[Any]]:
    """The serving and retraining workloads the stack's config asks for, wired to the platform services."""
    outputs: dict[str, pulumi.Input[Any]] = {}
    serving = config.workloads.serving
    if (
        serving is not None or config.workloads.retraining is not None
    ) and endpoints.mlflow_tracking_uri is None:
        raise ValueError("the workloads need MLflow: enable services.mlflow")
    tracking_uri = endpoints.mlflow_tracking_uri or ""
    if serving is not None:
        rollouts = ArgoRollouts(
            "argo-rollouts",
            ArgoRolloutsArgs(cluster=cluster, controller_replicas=config.defaults.controller_replicas),
            opts=pulumi.ResourceOptions(parent=parent, depends_on=depends_on),
        )
        replicas = config.serving_replicas
        server = ModelServing(
            f"{serving.model}-serving",
            ModelServingArgs(
                cluster=cluster,
                model=serving.model,
                alias=serving.alias,
                image=_image(config, cluster, "serving", serving.image, parent),
                tracking_uri=tracking_uri,
                replicas=replicas,
                max_replicas=serving.max_replicas or max(replicas * 4, 4),
                canary_weights=tuple(serving.canary_weights) if serving.canary_weights else None,
                cpu=serving.cpu,
                memory=serving.memory,
                gpus=serving.gpus_per_replica if serving.gpu else 0,
                gpu_sharing=config.serving_gpu_sharing,
                latency_slo_ms=serving.latency_slo_ms,
                cache_ttl_seconds=serving.cache_ttl_seconds,
                shadow_sample_rate=serving.shadow_sample_rate,
                redis=_redis_ref(endpoints),
                prometheus_url=endpoints.prometheus_url or ModelServingArgs.prometheus_url,
                monitoring=endpoints.prometheus_url is not None,
            ),
            opts=pulumi.ResourceOptions(parent=parent, depends_on=[rollouts, *depends_on]),
        )
        outputs["servingUrl"] = server.service_url
    retraining = config.workloads.retraining
    if retraining is not None:
        model = serving.model if serving is not None else "model"
        job = Retraining(
            f"{model}-retraining",
            RetrainingArgs(
                cluster=cluster,
                model=model,
                image=_image(config, cluster, "retraining", None, parent),
                tracking_uri=tracking_uri,
                pushgateway_url=endpoints.pushgateway_url or "",
                schedule=retraining.schedule,
                drift_check_schedule=retraining.drift_check_schedule,
                drift_threshold=retraining.drift_threshold,
                min_new_labelled_rows=retraining.min_new_labelled_rows,
                gpu=retraining.gpu,
                webhook_replicas=config.defaults.controller_replicas,
                data_claim_size=f"{retraining.data_volume_gb}Gi" if retraining.data_volume_gb else None,
                protect_data=config.protect_stateful,
                webhook_token=endpoints.retrain_webhook_token,
                alertmanager_namespace=None,  # the monitoring stack already holds the token Secret
            ),
            opts=pulumi.ResourceOptions(parent=parent, depends_on=depends_on),
        )
        outputs["retrainingWebhookUrl"] = job.webhook_url
    return outputs
