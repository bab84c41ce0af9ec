"""Composes the components a stack's config asks for: a cluster on its cloud, then the in-cluster platform."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Protocol

import pulumi

from mlops_infra.components.k8s.cluster import ClusterHandle
from mlops_infra.components.k8s.namespaces import Namespaces, NamespacesArgs
from mlops_infra.platform.config import (
    PROJECT,
    ConfigError,
    StackConfig,
    override_warnings,
    parse_stack_config,
    raw_from_pulumi_config,
)


class Platform(pulumi.ComponentResource):
    """The whole platform of one stack. Each part is its own component and can be used without this one."""

    def __init__(self, name: str, config: StackConfig, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlops:platform:Platform", name, None, opts)
        self.config = config
        self.outputs: dict[str, pulumi.Input[Any]] = {
            "environment": config.environment,
            "cloud": config.cloud,
        }
        backend = self._backend(config)
        self.outputs.update(backend.outputs)
        self.cluster = backend.handle
        self.namespaces = Namespaces(
            "namespaces",
            NamespacesArgs(cluster=self.cluster, labels={"app.kubernetes.io/part-of": PROJECT}),
            opts=pulumi.ResourceOptions(parent=self, depends_on=self.cluster.depends_on),
        )
        from mlops_infra.platform.services import platform_services

        self.services = platform_services(config, self.cluster, self.namespaces, self)
        self.outputs.update(self.services.outputs())
        backend.after_services(self.services.depends_on)
        from mlops_infra.platform.workloads import platform_workloads

        workload_deps = [*self.namespaces.resources.values(), *self.services.depends_on]
        self.outputs.update(platform_workloads(config, self.cluster, self.services, workload_deps, self))
        self.outputs["clusterName"] = self.cluster.name
        self.register_outputs(self.outputs)

    def _backend(self, config: StackConfig) -> CloudBackend:
        """The cloud-specific part: each cloud module is imported only when a stack runs on it."""
        if config.cloud == "aws":
            from mlops_infra.platform.aws import AwsPlatform

            return AwsPlatform(config.cluster_name, config, opts=pulumi.ResourceOptions(parent=self))
        if config.cloud == "gcp":
            from mlops_infra.platform.gcp import GkePlatform

            return GkePlatform(config.cluster_name, config, opts=pulumi.ResourceOptions(parent=self))
        return LocalBackend(config, self)


class CloudBackend(Protocol):
    """What the platform needs of a cloud: a cluster handle, stack outputs, and a hook for cloud-specific
    parts that need the platform services first (e.g. exporters that need the Prometheus Operator CRDs)."""

    handle: ClusterHandle
    outputs: dict[str, pulumi.Input[Any]]

    def after_services(self, depends_on: list[pulumi.Resource]) -> None: ...


class LocalBackend:
    """An existing cluster of the current kube context: nothing to create around it."""

    def __init__(self, config: StackConfig, parent: pulumi.Resource):
        from mlops_infra.components.local.cluster import LocalCluster, LocalClusterArgs

        local = LocalCluster(
            config.cluster_name,
            LocalClusterArgs(version=config.cluster.version, context=config.cluster.kube_context),
            opts=pulumi.ResourceOptions(parent=parent),
        )
        self.handle = local.handle
        self.outputs: dict[str, pulumi.Input[Any]] = {}

    def after_services(self, depends_on: list[pulumi.Resource]) -> None:
        """Nothing to add on a local cluster."""


def config_from_pulumi() -> StackConfig:
    """Read this stack's config the way the engine hands it over, and validate it before declaring anything."""
    stack = pulumi.get_stack()
    file = f"stacks/Pulumi.{stack}.yaml"
    keys = [f.alias or n for n, f in StackConfig.model_fields.items()]
    namespace = pulumi.Config(PROJECT)
    entries: dict[str, Any] = {}
    for key in keys:
        value = namespace.get(key)
        if value is not None:
            entries[f"{PROJECT}:{key}"] = _json_or_text(value)
    for foreign, key in (("aws", "region"), ("gcp", "region"), ("gcp", "project")):
        value = pulumi.Config(foreign).get(key)
        if value is not None:
            entries[f"{foreign}:{key}"] = value
    raw, problems = raw_from_pulumi_config(entries, file)
    if problems:
        raise ConfigError(problems)
    return parse_stack_config(raw, file, stack)


def _json_or_text(value: str) -> Any:
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def program() -> Mapping[str, pulumi.Input[Any]]:
    """The Pulumi program: validate this stack's config, declare its platform, export its outputs."""
    try:
        config = config_from_pulumi()
    except ConfigError as exc:
        for problem in exc.problems:
            pulumi.log.error(str(problem))
        raise pulumi.RunError("invalid stack config; nothing was declared") from None
    for warning in override_warnings(config, f"stacks/Pulumi.{pulumi.get_stack()}.yaml"):
        pulumi.log.warn(str(warning))
    platform = Platform(PROJECT, config)
    for key, value in platform.outputs.items():
        pulumi.export(key, value)
    return platform.outputs
