"""Composes the reference workloads onto a platform: images, Argo Rollouts, the model server, retraining."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi

from mlops_infra.config import StackConfig
from mlops_infra.images import Registry, WorkloadImage, WorkloadImageArgs
from mlops_infra.k8s.argo_rollouts import ArgoRollouts, ArgoRolloutsArgs
from mlops_infra.k8s.cluster import ClusterHandle
from mlops_infra.k8s.serving import ModelServing, ModelServingArgs, RedisRef


@dataclass(frozen=True)
class WorkloadEndpoints:
    """What the workloads need from the platform services."""

    tracking_uri: pulumi.Input[str]
    redis: RedisRef | None
    prometheus_url: str
    pushgateway_url: str


def _registry(config: StackConfig, workload: str, parent: pulumi.Resource) -> Registry:
    if config.cloud == "aws" and config.workloads.registry is None:
        from mlops_infra.aws.ecr import EcrRepository, EcrRepositoryArgs

        repo = EcrRepository(
            f"{workload}-images",
            EcrRepositoryArgs(
                name=f"mlops-{config.environment}/{workload}", tags=config.all_tags, protect=False
            ),
            opts=pulumi.ResourceOptions(parent=parent),
        )
        return repo.registry
    registry = config.image_registry or "localhost:5001/mlops"
    return Registry(server=registry.split("/", 1)[0], repository=f"{registry}/{workload}")


def _image(
    config: StackConfig, workload: str, pinned: str | None, parent: pulumi.Resource
) -> pulumi.Input[str]:
    """A configured image reference wins (must be pinned); otherwise build this repo's Dockerfile and push it."""
    if pinned:
        return pinned
    image = WorkloadImage(
        f"{workload}-image",
        WorkloadImageArgs(workload=workload, registry=_registry(config, workload, parent)),
        opts=pulumi.ResourceOptions(parent=parent),
    )
    return image.ref


def platform_workloads(
    config: StackConfig, cluster: ClusterHandle, endpoints: WorkloadEndpoints, parent: pulumi.Resource
) -> dict[str, pulumi.Input[Any]]:
    outputs: dict[str, pulumi.Input[Any]] = {}
    serving = config.workloads.serving
    if serving is not None:
        rollouts = ArgoRollouts(
            "argo-rollouts",
            ArgoRolloutsArgs(cluster=cluster, controller_replicas=2 if config.is_prod else 1),
            opts=pulumi.ResourceOptions(parent=parent),
        )
        replicas = config.serving_replicas
        server = ModelServing(
            f"{serving.model}-serving",
            ModelServingArgs(
                cluster=cluster,
                model=serving.model,
                alias=serving.alias,
                image=_image(config, "serving", serving.image, parent),
                tracking_uri=endpoints.tracking_uri,
                replicas=replicas,
                max_replicas=serving.max_replicas or max(replicas * 4, 4),
                cpu=serving.cpu,
                memory=serving.memory,
                gpus=serving.gpus_per_replica if serving.gpu else 0,
                latency_slo_ms=serving.latency_slo_ms,
                cache_ttl_seconds=serving.cache_ttl_seconds,
                shadow_sample_rate=serving.shadow_sample_rate,
                redis=endpoints.redis,
                prometheus_url=endpoints.prometheus_url,
            ),
            opts=pulumi.ResourceOptions(parent=parent, depends_on=[rollouts]),
        )
        outputs["servingUrl"] = server.service_url
    return outputs
