"""Typed stack configuration: pydantic models, environment defaults and readable validation errors.

A stack's config is validated completely before any resource is declared, so a typo never leaves a
half-declared stack behind. Every problem becomes one line naming the file, the key path, the bad
value and what is allowed.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import ipaddress
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator
from pydantic.alias_generators import to_camel

from mlops_infra.components import catalog
from mlops_infra.components.accelerators import (
    AWS_GPU_MODEL_LABEL,
    MAX_TIME_SLICES,
    GpuSharing,
    NodeTaint,
    SharingMode,
)
from mlops_infra.components.k8s import canary_traffic
from mlops_infra.components.node_group import NodeGroupSpec
from mlops_infra.platform.cron import CronError, min_interval_minutes

PROJECT = "mlops-platform"

Environment = Literal["dev", "test", "prod"]
Cloud = Literal["aws", "gcp", "local"]
Role = Literal["system", "cpu", "gpu", "neuron", "tpu"]
Capacity = Literal["on-demand", "spot"]
TaintEffect = Literal["NoSchedule", "PreferNoSchedule", "NoExecute"]
LogType = Literal["api", "audit", "authenticator", "controllerManager", "scheduler"]
DEFAULT_CONTROL_PLANE_LOGS: tuple[LogType, ...] = ("api", "audit", "authenticator")
ACCELERATOR_ROLES: frozenset[str] = frozenset({"gpu", "neuron", "tpu"})


@dataclass(frozen=True)
class EnvironmentDefaults:
    """Everything that differs between dev, test and prod, in one place."""

    zone_count: int
    nat_gateways: Literal["single", "per-zone"]
    endpoint_private: bool
    accelerator_capacity: Capacity
    accelerator_min_size: int
    protect_stateful: bool
    flow_logs: bool
    managed_services: bool
    monitoring_retention_days: int
    monitoring_storage_gb: int
    scale_down_unneeded_time: str
    serving_replicas: int
    # Databases and control planes span zones (RDS multi-AZ, Cloud SQL regional, GKE regional cluster).
    high_availability: bool
    controller_replicas: int  # cluster-autoscaler, Argo Rollouts, the retraining webhook
    prometheus_memory: str
    log_retention_days: int  # control-plane and VPC flow logs
    cache_snapshot_retention_days: int
    gke_autoscaling_profile: Literal["BALANCED", "OPTIMIZE_UTILIZATION"]


ENVIRONMENT_DEFAULTS: dict[str, EnvironmentDefaults] = {
    "dev": EnvironmentDefaults(
        zone_count=2,
        nat_gateways="single",
        endpoint_private=False,
        accelerator_capacity="spot",
        accelerator_min_size=0,
        protect_stateful=False,
        flow_logs=False,
        managed_services=False,
        monitoring_retention_days=3,
        monitoring_storage_gb=20,
        scale_down_unneeded_time="5m",
        serving_replicas=1,
        high_availability=False,
        controller_replicas=1,
        prometheus_memory="1Gi",
        log_retention_days=30,
        cache_snapshot_retention_days=1,
        gke_autoscaling_profile="OPTIMIZE_UTILIZATION",
    ),
    "test": EnvironmentDefaults(
        zone_count=2,
        nat_gateways="single",
        endpoint_private=False,
        accelerator_capacity="spot",
        accelerator_min_size=0,
        protect_stateful=False,
        flow_logs=False,
        managed_services=False,
        monitoring_retention_days=7,
        monitoring_storage_gb=50,
        scale_down_unneeded_time="10m",
        serving_replicas=2,
        high_availability=False,
        controller_replicas=1,
        prometheus_memory="1Gi",
        log_retention_days=30,
        cache_snapshot_retention_days=1,
        gke_autoscaling_profile="OPTIMIZE_UTILIZATION",
    ),
    "prod": EnvironmentDefaults(
        zone_count=3,
        nat_gateways="per-zone",
        endpoint_private=True,
        accelerator_capacity="on-demand",
        accelerator_min_size=0,
        protect_stateful=True,
        flow_logs=True,
        managed_services=True,
        monitoring_retention_days=30,
        monitoring_storage_gb=200,
        scale_down_unneeded_time="15m",
        serving_replicas=3,
        high_availability=True,
        controller_replicas=2,
        prometheus_memory="4Gi",
        log_retention_days=365,
        cache_snapshot_retention_days=7,
        gke_autoscaling_profile="BALANCED",
    ),
}

# Which clouds implement each managed service (aws: ElastiCache, RDS; gcp: Cloud SQL). Where the environment
# wants managed services (ENVIRONMENT_DEFAULTS) and the cloud has one, it is the default.
MANAGED_SERVICE_CLOUDS: dict[str, frozenset[str]] = {
    "services.redis.mode": frozenset({"aws"}),
    "services.mlflow.database": frozenset({"aws", "gcp"}),
}

_VERSION_RE = re.compile(r"^1\.(2[89]|3[0-9])$")
_LABEL_KEY_RE = re.compile(
    r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
_NAME_RE = re.compile(r"^[a-z]([-a-z0-9]{0,30}[a-z0-9])?$")
_DURATION_RE = re.compile(r"^[0-9]+(s|m|h)$")
_CRON_RE = re.compile(r"^(@(hourly|daily|weekly|monthly)|(\S+\s+){4}\S+)$")


class Model(BaseModel):
    """Base of every config model: camelCase keys as Pulumi writes them, unknown keys rejected."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True, validate_default=True
    )


class NetworkConfig(Model):
    cidr: str = "10.0.0.0/16"
    nat_gateways: Literal["single", "per-zone"] | None = None
    flow_logs: bool | None = None

    @field_validator("cidr")
    @classmethod
    def _cidr(cls, v: str) -> str:
        net = ipaddress.ip_network(v, strict=True)
        if net.version != 4 or not 16 <= net.prefixlen <= 20:
            raise ValueError("must be an IPv4 CIDR with a prefix between /16 and /20")
        return v


class EndpointConfig(Model):
    private: bool | None = None
    public_cidrs: list[str] = Field(default_factory=list)

    @field_validator("public_cidrs")
    @classmethod
    def _cidrs(cls, v: list[str]) -> list[str]:
        for cidr in v:
            ipaddress.ip_network(cidr, strict=True)
            if cidr.endswith("/0"):
                raise ValueError(f"{cidr} opens the API to the internet; list the office/VPN CIDRs instead")
        return v


class ClusterConfig(Model):
    name: str | None = None
    version: str = "1.33"
    endpoint: EndpointConfig = EndpointConfig()
    logging: list[LogType] = Field(default_factory=lambda: list(DEFAULT_CONTROL_PLANE_LOGS))
    admin_role_arns: list[str] = Field(default_factory=list)
    kube_context: str | None = None
    release_channel: Literal["RAPID", "REGULAR", "STABLE"] = "REGULAR"
    pod_identity_agent: bool = False  # EKS: also install the eks-pod-identity-agent add-on (IRSA is used)

    @field_validator("version", mode="before")
    @classmethod
    def _version(cls, v: Any) -> Any:
        if isinstance(v, float | int):
            raise ValueError(f'YAML read {v} as a number; quote the version, e.g. "{v}"')
        if not isinstance(v, str) or not _VERSION_RE.match(v):
            raise ValueError('must be a Kubernetes minor version between 1.28 and 1.39, quoted, e.g. "1.33"')
        return v

    @field_validator("admin_role_arns")
    @classmethod
    def _arns(cls, v: list[str]) -> list[str]:
        for arn in v:
            if not re.match(r"^arn:aws:iam::\d{12}:(role|user)/[\w+=,.@/-]+$", arn):
                raise ValueError(f"{arn!r} is not an IAM role or user ARN")
        return v


class Taint(Model):
    key: str
    value: str = ""
    effect: TaintEffect = "NoSchedule"

    @field_validator("key")
    @classmethod
    def _key(cls, v: str) -> str:
        if not _LABEL_KEY_RE.match(v):
            raise ValueError("must be a Kubernetes label key such as example.com/dedicated")
        return v


class ScaleDownSchedule(Model):
    """A group that runs above its minimum only part of the week (e.g. a dev GPU pool on workdays): the cost
    estimate's `expected` counts `activeNodes` (default: the desired size) in those hours, minSize otherwise."""

    hours_per_day_active: float = Field(gt=0, le=24)
    days_per_week: float = Field(gt=0, le=7)
    active_nodes: int | None = Field(default=None, ge=0, le=1000)


class GpuSharingConfig(Model):
    """`{mode: time-slicing, replicas: 4}`: four pods per GPU taking turns; `{mode: mig, profile: 1g.5gb}`: each
    GPU split into isolated MIG instances of that profile (A100/H100; profiles per model in the catalog)."""

    mode: SharingMode
    replicas: int | None = Field(default=None, ge=2, le=MAX_TIME_SLICES)
    profile: str | None = Field(default=None, pattern=r"^[1-7]g\.[0-9]+gb$")

    def sharing(self) -> GpuSharing:
        return GpuSharing(self.mode, self.replicas or 1, self.profile)


class NodeGroupConfig(Model):
    name: str
    role: Role
    instance_types: list[str] = Field(min_length=1, max_length=20)
    capacity: Capacity = "on-demand"
    min_size: int = Field(default=0, ge=0, le=1000)
    desired_size: int | None = Field(default=None, ge=0, le=1000)
    max_size: int = Field(ge=1, le=1000)
    disk_size_gb: int = Field(default=100, ge=20, le=16384)
    labels: dict[str, str] = Field(default_factory=dict)
    taints: list[Taint] = Field(default_factory=list)
    tpu_topology: str | None = None
    zones: list[str] | None = None
    # Hours the group runs above minSize (e.g. a workday schedule); the cost estimate's `expected` uses it.
    scale_down_schedule: ScaleDownSchedule | None = None
    # GCP only: consume a specific Compute Engine reservation (by name) instead of any matching capacity.
    reservation: str | None = Field(default=None, pattern=r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
    # GCP only: how GKE installs the NVIDIA driver on GPU pools (DEFAULT = the version GKE pins per release).
    gpu_driver_version: Literal["DEFAULT", "LATEST", "INSTALLATION_DISABLED"] = "DEFAULT"
    # GPU groups: share each GPU between pods (time-slicing or MIG).
    sharing: GpuSharingConfig | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME_RE.match(v):
            raise ValueError(
                "must be lowercase letters, digits and '-', starting with a letter, at most 32 chars"
            )
        return v

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: dict[str, str]) -> dict[str, str]:
        for key in v:
            if not _LABEL_KEY_RE.match(key):
                raise ValueError(f"label key {key!r} is not a valid Kubernetes label key")
        return v

    @property
    def accelerated(self) -> bool:
        return self.role in ACCELERATOR_ROLES

    def spec(self) -> NodeGroupSpec:
        """The group as the cloud components take it (plain values, no stack config)."""
        return NodeGroupSpec(
            name=self.name,
            role=self.role,
            instance_types=tuple(self.instance_types),
            max_size=self.max_size,
            min_size=self.min_size,
            desired_size=self.desired_size,
            capacity=self.capacity,
            disk_size_gb=self.disk_size_gb,
            labels=dict(self.labels),
            taints=tuple(NodeTaint(t.key, t.value, t.effect) for t in self.taints),
            tpu_topology=self.tpu_topology,
            zones=tuple(self.zones) if self.zones else None,
            reservation=self.reservation,
            gpu_driver_version=self.gpu_driver_version,
            sharing=self.sharing.sharing() if self.sharing else None,
        )

    @property
    def desired(self) -> int:
        """Desired size at creation; the autoscaler owns it afterwards."""
        return self.min_size if self.desired_size is None else self.desired_size


AutoscalerEngine = Literal["cluster-autoscaler", "karpenter"]
# AutoscalerConfig fields only cluster-autoscaler reads (Karpenter has no expander, utilisation thresholds or
# node-group balancing; it picks instance types itself) and the ones only Karpenter reads.
CLUSTER_AUTOSCALER_ONLY = (
    "expander",
    "scale_down_delay_after_add",
    "scale_down_utilization_threshold",
    "gpu_scale_down_utilization_threshold",
    "balance_similar_node_groups",
    "max_node_provision_time",
)
KARPENTER_ONLY = ("ami_version",)


class AutoscalerConfig(Model):
    enabled: bool = True
    # cluster-autoscaler scales the node groups' Auto Scaling groups; karpenter launches the nodes of every
    # non-system group itself (NodePool + EC2NodeClass per group) and runs on the system group.
    engine: AutoscalerEngine = "cluster-autoscaler"
    # Karpenter: the EKS AL2023 AMI release to pin (`al2023@<version>`, a tag of awslabs/amazon-eks-ami such as
    # v20260724); unset means `latest`, which replaces every node on each AMI release (drift).
    ami_version: str | None = Field(default=None, pattern=r"^v[0-9]{8}$")
    expander: str = "priority,least-waste"
    scale_down_unneeded_time: str | None = None
    scale_down_delay_after_add: str = "10m"
    scale_down_utilization_threshold: float = Field(default=0.5, gt=0, le=1)
    gpu_scale_down_utilization_threshold: float = Field(default=0.5, gt=0, le=1)
    balance_similar_node_groups: bool = True
    max_node_provision_time: str = "15m"

    @field_validator("expander")
    @classmethod
    def _expander(cls, v: str) -> str:
        allowed = {"random", "most-pods", "least-waste", "priority", "price", "least-nodes"}
        for part in v.split(","):
            if part not in allowed:
                raise ValueError(f"expander {part!r} is unknown; allowed: {', '.join(sorted(allowed))}")
        return v

    @field_validator("scale_down_unneeded_time", "scale_down_delay_after_add", "max_node_provision_time")
    @classmethod
    def _duration(cls, v: str | None) -> str | None:
        if v is not None and not _DURATION_RE.match(v):
            raise ValueError("must be a duration such as 30s, 10m or 1h")
        return v


class RedisConfig(Model):
    enabled: bool = True
    mode: Literal["managed", "in-cluster"] | None = None
    node_type: str = "cache.t4g.small"
    replicas: int = Field(default=1, ge=0, le=5)
    memory_mb: int = Field(default=512, ge=64, le=65536)


class GatewayRouteConfig(Model):
    """Expose a service through an existing Gateway API Gateway (ingress-nginx is retired)."""

    hostname: str = Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+$")
    gateway_name: str = Field(pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
    gateway_namespace: str = Field(default="gateway", pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
    section_name: str | None = None


class MlflowConfig(Model):
    enabled: bool = True
    database: Literal["managed", "in-cluster"] | None = None
    database_instance_class: str = "db.t4g.medium"  # aws: the RDS instance class
    database_tier: str = "db-custom-2-7680"  # gcp: the Cloud SQL custom machine type (2 vCPU, 7.5 GB)
    database_storage_gb: int = Field(default=20, ge=20, le=16384)
    backup_retention_days: int = Field(default=7, ge=1, le=35)
    artifacts: Literal["object-store", "in-cluster"] | None = None
    replicas: int = Field(default=1, ge=1, le=10)
    route: GatewayRouteConfig | None = None


class MonitoringConfig(Model):
    enabled: bool = True
    retention_days: int | None = Field(default=None, ge=1, le=365)
    storage_gb: int | None = Field(default=None, ge=5, le=16384)
    grafana: bool = True


class ServicesConfig(Model):
    redis: RedisConfig = RedisConfig()
    mlflow: MlflowConfig = MlflowConfig()
    monitoring: MonitoringConfig = MonitoringConfig()


class ServingConfig(Model):
    model: str = Field(pattern=r"^[a-z][-a-z0-9]{0,40}$")
    alias: str = "champion"
    replicas: int | None = Field(default=None, ge=1, le=200)
    max_replicas: int | None = Field(default=None, ge=1, le=500)
    # Canary setWeight steps before 100 %. Unset: derived from `replicas` so each weight is the share of traffic
    # the canary really gets (there is no traffic router: the share is canary pods / all pods).
    canary_weights: list[Annotated[int, Field(ge=1, le=99)]] | None = Field(
        default=None, min_length=1, max_length=10
    )
    gpu: bool = False
    gpus_per_replica: int = Field(default=1, ge=1, le=8)
    # One slice of a GPU group that shares its GPUs (nodeGroups[].sharing) per replica, instead of whole GPUs.
    shared_gpu: bool = False
    cpu: str = "1"
    memory: str = "1Gi"
    latency_slo_ms: int = Field(default=50, ge=1, le=10000)
    cache_ttl_seconds: int = Field(default=300, ge=0, le=86400)
    shadow_sample_rate: float = Field(default=0.0, ge=0, le=1)
    image: str | None = None


class RetrainingConfig(Model):
    schedule: str = "0 3 * * 1"
    # PSI: 0.1 moderate, 0.25 major drift; above 1 the distributions barely overlap and real drift never gets there.
    drift_threshold: float = Field(default=0.25, gt=0, le=1)
    drift_check_schedule: str = "*/30 * * * *"
    min_new_labelled_rows: int = Field(default=50000, ge=1)
    gpu: bool = False
    # Size of the volume the retraining pods read data from (training set, serving inputs, labels); 0: an
    # existing claim named `retraining-data` is used.
    data_volume_gb: int = Field(default=20, ge=0, le=16384)

    @field_validator("schedule", "drift_check_schedule")
    @classmethod
    def _cron(cls, v: str, info: ValidationInfo) -> str:
        if not _CRON_RE.match(v.strip()):
            raise ValueError('must be a cron expression with five fields, e.g. "0 3 * * 1"')
        try:
            every = min_interval_minutes(v)
        except CronError as exc:
            raise ValueError(str(exc)) from None
        floor = 60 if info.field_name == "schedule" else 5
        if every < floor:
            raise ValueError(f'runs every {every} min; at most every {floor} min (e.g. "0 3 * * 1")')
        return v


class WorkloadsConfig(Model):
    serving: ServingConfig | None = None
    retraining: RetrainingConfig | None = None
    # Where workload images are pushed: ECR is created on aws; elsewhere a registry the cluster can pull from
    # (a kind/k3d local registry by default on local stacks, Artifact Registry on gcp).
    registry: str | None = Field(default=None, pattern=r"^[a-z0-9.-]+(:[0-9]+)?(/[a-z0-9._-]+)*$")


class BudgetConfig(Model):
    monthly_usd: float = Field(gt=0)
    basis: Literal["expected", "max"] = "expected"


class StackConfig(Model):
    """One stack's validated config; `defaults` holds the environment's defaults for everything unset."""

    environment: Environment
    cloud: Cloud
    region: str | None = None
    zones: list[str] | None = None
    gcp_project: str | None = None
    network: NetworkConfig = NetworkConfig()
    cluster: ClusterConfig = ClusterConfig()
    node_groups: list[NodeGroupConfig] = Field(default_factory=list)
    autoscaler: AutoscalerConfig = AutoscalerConfig()
    services: ServicesConfig = ServicesConfig()
    workloads: WorkloadsConfig = WorkloadsConfig()
    budget: BudgetConfig | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    # A team's own machine types (facts and optional prices), path relative to the stack file's directory.
    instance_catalog: str | None = None

    @property
    def defaults(self) -> EnvironmentDefaults:
        return ENVIRONMENT_DEFAULTS[self.environment]

    @property
    def is_prod(self) -> bool:
        return self.environment == "prod"

    @property
    def protect_stateful(self) -> bool:
        return self.defaults.protect_stateful

    def _managed_default(self, service: str) -> str:
        """`managed` where the environment wants managed services and this cloud implements `service`."""
        managed = self.defaults.managed_services and self.cloud in MANAGED_SERVICE_CLOUDS[service]
        return "managed" if managed else "in-cluster"

    @property
    def endpoint_private(self) -> bool:
        private = self.cluster.endpoint.private
        return self.defaults.endpoint_private if private is None else private

    @property
    def nat_gateways(self) -> str:
        return self.network.nat_gateways or self.defaults.nat_gateways

    @property
    def flow_logs(self) -> bool:
        return self.defaults.flow_logs if self.network.flow_logs is None else self.network.flow_logs

    @property
    def redis_mode(self) -> str:
        return self.services.redis.mode or self._managed_default("services.redis.mode")

    @property
    def mlflow_database(self) -> str:
        return self.services.mlflow.database or self._managed_default("services.mlflow.database")

    @property
    def mlflow_artifacts(self) -> str:
        default = "in-cluster" if self.cloud == "local" else "object-store"
        return self.services.mlflow.artifacts or default

    @property
    def monitoring_retention_days(self) -> int:
        days = self.services.monitoring.retention_days
        return self.defaults.monitoring_retention_days if days is None else days

    @property
    def monitoring_storage_gb(self) -> int:
        size = self.services.monitoring.storage_gb
        return self.defaults.monitoring_storage_gb if size is None else size

    @property
    def serving_replicas(self) -> int:
        serving = self.workloads.serving
        replicas = serving.replicas if serving is not None else None
        return self.defaults.serving_replicas if replicas is None else replicas

    @property
    def serving_gpu_sharing(self) -> GpuSharing | None:
        """The sharing of the GPU group a `sharedGpu` model server takes one slice of (the first such group)."""
        serving = self.workloads.serving
        if serving is None or not serving.shared_gpu:
            return None
        return next((g.sharing.sharing() for g in self.node_groups if g.sharing is not None), None)

    @property
    def image_registry(self) -> str | None:
        """Registry for workload images when no ECR is created (None on aws: the ECR repository is used)."""
        if self.workloads.registry:
            return self.workloads.registry
        if self.cloud == "local":
            return "localhost:5001/mlops"
        if self.cloud == "gcp":
            return f"{self.region}-docker.pkg.dev/{self.gcp_project}/mlops"
        return None

    @property
    def cluster_name(self) -> str:
        return self.cluster.name or f"mlops-{self.environment}"

    @property
    def all_tags(self) -> dict[str, str]:
        """Tags on every cloud resource: the stack's own plus the ones cost reports group by."""
        return {"environment": self.environment, "managed-by": "pulumi", "project": PROJECT, **self.tags}


# ---------------------------------------------------------------------------------------------------------
# Loading and error reporting


@dataclass(frozen=True)
class Problem:
    """One config problem: where it is, what was found, what is allowed."""

    file: str
    path: str
    value: Any
    message: str

    def __str__(self) -> str:
        return _printable(f"{self.file}: {self.path}: got {_show(self.value)}: {self.message}")


def _printable(text: str) -> str:
    """One line, whatever a key holds: control characters are shown escaped, never printed raw."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


class ConfigError(Exception):
    """Raised with every problem of a stack's config at once."""

    def __init__(self, problems: list[Problem]):
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


def _show(value: Any) -> str:
    if isinstance(value, Mapping) and "secure" in value:
        return "[secret]"
    text = json.dumps(value, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


_TOP_KEYS = {f.alias or name: name for name, f in StackConfig.model_fields.items()}
_FOREIGN_KEYS = {"aws:region": "region", "gcp:region": "region", "gcp:project": "gcpProject"}
_IGNORED_FOREIGN_PREFIXES = ("aws:", "gcp:", "kubernetes:", "pulumi:", "docker:", "random:")


def raw_from_stack_file(path: Path) -> tuple[dict[str, Any], list[Problem]]:
    """Read a `Pulumi.<stack>.yaml` file into the project's config dict (keys without the namespace)."""
    name = str(path)
    try:
        text = path.read_text()
    except OSError as exc:
        return {}, [Problem(name, "(file)", str(path), f"cannot be read: {exc.strerror}")]
    try:
        doc = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(file)"
        return {}, [Problem(name, where, "", f"is not valid YAML: {getattr(exc, 'problem', exc)}")]
    if not isinstance(doc, dict) or not isinstance(doc.get("config", {}), dict):
        return {}, [Problem(name, "config", doc, "a stack file is a mapping with a `config:` mapping")]
    return raw_from_pulumi_config(doc.get("config") or {}, name)


def raw_from_pulumi_config(config: Mapping[str, Any], file: str) -> tuple[dict[str, Any], list[Problem]]:
    """Split `<namespace>:<key>` entries into our config dict, rejecting unknown keys of our namespace."""
    raw: dict[str, Any] = {}
    problems: list[Problem] = []
    for key, value in config.items():
        if key in _FOREIGN_KEYS:
            raw.setdefault(_FOREIGN_KEYS[key], value)
        elif key.startswith(PROJECT + ":"):
            short = key[len(PROJECT) + 1 :]
            if short not in _TOP_KEYS:
                problems.append(Problem(file, key, value, _unknown_key_message(short, list(_TOP_KEYS))))
            else:
                raw[short] = value
        elif not key.startswith(_IGNORED_FOREIGN_PREFIXES):
            problems.append(
                Problem(file, key, value, f"unknown namespace; this project's keys start with {PROJECT}:")
            )
    return raw, problems


def _unknown_key_message(key: str, allowed: list[str]) -> str:
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"unknown key; {hint}allowed: {', '.join(sorted(allowed))}"


def _model_at(loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The config model that owns the last element of a pydantic error location."""
    model: type[BaseModel] = StackConfig
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = next((f for n, f in model.model_fields.items() if part in (n, f.alias)), None)
        if field is None:
            return None
        inner = _first_model(field.annotation)
        if inner is None:
            return None
        model = inner
    return model


def _first_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _first_model(arg)
        if found is not None:
            return found
    return None


def _key_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for i, part in enumerate(loc):
        if isinstance(part, int):
            path += f"[{part}]"
        elif i == 0:
            path = f"{PROJECT}:{part}"
        else:
            path += f".{part}"
    return path


def _pydantic_problems(exc: ValidationError, file: str) -> list[Problem]:
    problems = []
    for err in exc.errors():
        loc = tuple(
            p for p in err["loc"] if not (isinstance(p, str) and p.startswith(("function-", "literal[")))
        )
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            owner = _model_at(loc)
            allowed = [f.alias or n for n, f in owner.model_fields.items()] if owner else []
            message = _unknown_key_message(str(loc[-1]), allowed)
        elif err["type"] == "literal_error":
            message = f"allowed: {err.get('ctx', {}).get('expected', message)}"
        elif err["type"] == "missing":
            message = "is required"
        problems.append(Problem(file, _key_path(loc), err.get("input"), message))
    return problems


def parse_stack_config(raw: Mapping[str, Any], file: str, stack: str | None = None) -> StackConfig:
    """Validate a raw config dict completely, raising ConfigError with every problem found in one pass:
    schema problems, and the cross-field rules over everything the schema problems leave checkable."""
    raw = dict(raw)
    problems: list[Problem] = []
    for key, value in list(raw.items()):
        if isinstance(value, Mapping) and "secure" in value:
            problems.append(
                Problem(file, f"{PROJECT}:{key}", value, "this key holds no secrets; remove `secure`")
            )
            del raw[key]
    problems += _stack_name_problems(raw, file, stack)
    problems += _register_instance_catalog(raw, file)
    _apply_environment_defaults(raw)
    try:
        config: StackConfig | None = StackConfig.model_validate(raw)
        kept: list[int] | None = None
    except ValidationError as exc:
        schema = _pydantic_problems(exc, file)
        problems += schema
        config, kept, checked = _checkable_part(raw, exc)
        raw = checked
    if config is not None:
        reported = [p.path for p in problems]
        for problem in cross_field_problems(config, raw, file):
            problem = _original_group_index(problem, kept)
            if not any(problem.path.startswith(path) or path.startswith(problem.path) for path in reported):
                problems.append(problem)
    if problems:
        raise ConfigError(problems)
    assert config is not None
    return config


def instance_catalog_path(value: str, file: str) -> Path:
    """Where `instanceCatalog` points: relative paths are taken from the stack file's directory."""
    path = Path(value)
    return path if path.is_absolute() else Path(file).parent / path


def _register_instance_catalog(raw: Mapping[str, Any], file: str) -> list[Problem]:
    """Register the stack's team catalog before the instance types are checked, so they can name its types."""
    value = raw.get("instanceCatalog")
    if not isinstance(value, str) or not value:
        return []
    try:
        catalog.register_instance_file(instance_catalog_path(value, file))
    except catalog.CatalogDataError as exc:
        return [Problem(file, f"{PROJECT}:instanceCatalog", value, str(exc))]
    return []


def _stack_name_problems(raw: Mapping[str, Any], file: str, stack: str | None) -> list[Problem]:
    """A stack named after an environment (`prod`, `prod-gcp`) must declare that environment: a `prod` stack
    that says `environment: dev` would switch every prod guardrail off."""
    if not stack:
        return []
    named = stack.split("-", 1)[0]
    declared = raw.get("environment")
    if named in ENVIRONMENT_DEFAULTS and isinstance(declared, str) and declared != named:
        return [
            Problem(
                file,
                f"{PROJECT}:environment",
                declared,
                f"the stack is named {stack!r}, so it must declare environment: {named} (its guardrails follow the "
                "environment); rename the stack or fix the environment",
            )
        ]
    return []


def _checkable_part(
    raw: Mapping[str, Any], error: ValidationError
) -> tuple[StackConfig | None, list[int] | None, dict[str, Any]]:
    """The config with every invalid part taken out, so the cross-field rules can still check the rest.

    A node group with any problem is dropped whole (`kept` maps the remaining groups to their original
    indices); any other invalid key is removed so its default applies. Without a valid environment or cloud
    nothing else can be checked."""
    trimmed: dict[str, Any] = copy.deepcopy(dict(raw))
    groups = trimmed.get("nodeGroups")
    kept: list[int] | None = list(range(len(groups))) if isinstance(groups, list) else None
    for _ in range(10):
        dropped: set[int] = set()
        for err in error.errors():
            loc = [
                p for p in err["loc"] if not (isinstance(p, str) and p.startswith(("function-", "literal[")))
            ]
            if not loc or loc[0] in ("environment", "cloud"):
                return None, None, trimmed
            if loc[0] == "nodeGroups" and len(loc) > 1 and isinstance(loc[1], int) and kept is not None:
                dropped.add(loc[1])
                continue
            _remove(trimmed, loc[:-1] if err["type"] == "missing" else loc)
        if dropped and isinstance(trimmed.get("nodeGroups"), list) and kept is not None:
            trimmed["nodeGroups"] = [g for i, g in enumerate(trimmed["nodeGroups"]) if i not in dropped]
            kept = [k for i, k in enumerate(kept) if i not in dropped]
        try:
            return StackConfig.model_validate(trimmed), kept, trimmed
        except ValidationError as exc:
            error = exc
    return None, None, trimmed


def _remove(doc: dict[str, Any], loc: list[Any]) -> None:
    """Delete the key at `loc`, or the key holding the list `loc` walks into."""
    target: Any = doc
    for i, part in enumerate(loc):
        if isinstance(part, int) or not isinstance(target, dict) or part not in target:
            if i > 0:
                _remove(doc, loc[:i])
            return
        if i == len(loc) - 1:
            del target[part]
            return
        target = target[part]


def _original_group_index(problem: Problem, kept: list[int] | None) -> Problem:
    """Cross-field problems of the trimmed config name node groups by their index in the stack file."""
    prefix = f"{PROJECT}:nodeGroups["
    if kept is None or not problem.path.startswith(prefix):
        return problem
    index, _, rest = problem.path[len(prefix) :].partition("]")
    if not index.isdigit() or int(index) >= len(kept):
        return problem
    return dataclasses.replace(problem, path=f"{prefix}{kept[int(index)]}]{rest}")


def _apply_environment_defaults(raw: dict[str, Any]) -> None:
    """Fill node-group capacity per environment and role before validation (explicit values win)."""
    env = raw.get("environment")
    if (
        not isinstance(env, str)
        or env not in ENVIRONMENT_DEFAULTS
        or not isinstance(raw.get("nodeGroups"), list)
    ):
        return
    defaults = ENVIRONMENT_DEFAULTS[env]
    groups = []
    for group in raw["nodeGroups"]:
        if (
            isinstance(group, dict)
            and isinstance(group.get("role"), str)
            and group["role"] in ACCELERATOR_ROLES
        ):
            group = {"capacity": defaults.accelerator_capacity, **group}
        groups.append(group)
    raw["nodeGroups"] = groups


_GPU_CLOUDS = {"aws", "gcp"}


def cross_field_problems(config: StackConfig, raw: Mapping[str, Any], file: str) -> list[Problem]:
    """Rules that span several keys: sizes, zones vs region, instance types vs role and cloud."""
    problems: list[Problem] = []

    def add(path: str, value: Any, message: str) -> None:
        problems.append(Problem(file, f"{PROJECT}:{path}", value, message))

    if config.autoscaler.engine == "karpenter" and config.cloud != "aws":
        add(
            "autoscaler.engine",
            "karpenter",
            "Karpenter is implemented for aws (EKS) stacks only; GKE and local clusters scale with their own autoscaler",
        )
    if config.cloud in _GPU_CLOUDS and not config.region:
        add("region", None, f"set {config.cloud}:region (e.g. us-east-1 / us-central1)")
    if config.cloud == "gcp" and not config.gcp_project:
        add("gcpProject", None, "set gcp:project for a GCP stack")
    if config.region and config.zones:
        for i, zone in enumerate(config.zones):
            if not zone.startswith(config.region):
                add(f"zones[{i}]", zone, f"zones must lie in region {config.region} (e.g. {config.region}a)")
    if config.zones is not None and config.is_prod and len(config.zones) < 2:
        add("zones", config.zones, "prod needs at least 2 zones (multi-AZ)")

    names: set[str] = set()
    for i, group in enumerate(config.node_groups):
        path = f"nodeGroups[{i}]"
        if group.name in names:
            add(f"{path}.name", group.name, "node group names must be unique")
        names.add(group.name)
        if group.min_size > group.max_size:
            add(f"{path}.minSize", group.min_size, f"must be <= maxSize ({group.max_size})")
        if group.desired_size is not None and not group.min_size <= group.desired_size <= group.max_size:
            add(
                f"{path}.desiredSize",
                group.desired_size,
                f"must lie between minSize ({group.min_size}) and maxSize ({group.max_size})",
            )
        active = group.scale_down_schedule.active_nodes if group.scale_down_schedule else None
        if active is not None and not group.min_size <= active <= group.max_size:
            add(
                f"{path}.scaleDownSchedule.activeNodes",
                active,
                f"must lie between minSize ({group.min_size}) and maxSize ({group.max_size})",
            )
        if group.role == "system" and group.capacity == "spot":
            add(f"{path}.capacity", "spot", "system nodes run critical add-ons; use on-demand")
        if group.role == "system" and group.min_size < 1:
            add(f"{path}.minSize", group.min_size, "a system group needs at least 1 node")
        if config.cloud == "local":
            add(
                path,
                group.name,
                "a local stack uses the nodes of the current kube context; remove nodeGroups",
            )
            continue
        problems.extend(_instance_type_problems(config, group, i, file))
        problems.extend(_sharing_problems(config, group, i, file))
        if group.role == "tpu":
            problems.extend(_tpu_problems(group, i, file))
        elif group.tpu_topology is not None:
            add(f"{path}.tpuTopology", group.tpu_topology, "only TPU groups take a topology")
        if group.role == "tpu" and config.cloud != "gcp":
            add(f"{path}.role", "tpu", "TPU node groups need cloud: gcp")
        if group.role == "neuron" and config.cloud != "aws":
            add(f"{path}.role", "neuron", "Neuron (Inferentia/Trainium) node groups need cloud: aws")
        if group.zones and config.region:
            for j, zone in enumerate(group.zones):
                if not zone.startswith(config.region):
                    add(f"{path}.zones[{j}]", zone, f"zones must lie in region {config.region}")
    if config.cloud != "local" and not any(g.role == "system" for g in config.node_groups):
        add("nodeGroups", [g.name for g in config.node_groups], "a cluster needs one group with role: system")

    serving = config.workloads.serving
    if serving is not None and (serving.max_replicas or 0) < (serving.replicas or 0) and serving.max_replicas:
        add("workloads.serving.maxReplicas", serving.max_replicas, "must be >= replicas")
    if serving is not None:
        for path, weight, message in _canary_weight_problems(serving.canary_weights, config.serving_replicas):
            add(f"workloads.serving.canaryWeights{path}", weight, message)
    if serving is not None and serving.shared_gpu:
        if config.serving_gpu_sharing is None:
            add("workloads.serving.sharedGpu", True, "needs a GPU group with sharing (time-slicing or mig)")
        if serving.gpu:
            add(
                "workloads.serving.gpu",
                True,
                "sharedGpu already puts each replica on one GPU slice; drop gpu",
            )
        if "gpus_per_replica" in serving.model_fields_set:
            add("workloads.serving.gpusPerReplica", serving.gpus_per_replica,
                "a replica takes one slice of a shared GPU (the device plugin refuses more); drop gpusPerReplica")  # fmt: skip
    has_gpu_group = any(g.role == "gpu" for g in config.node_groups) or config.cloud == "local"
    for key, workload in (("serving", serving), ("retraining", config.workloads.retraining)):
        if workload is not None and workload.gpu and not has_gpu_group:
            add(f"workloads.{key}.gpu", True, "needs a node group with role: gpu")
    if config.cloud == "local":
        for key, mode in (
            ("services.redis.mode", config.services.redis.mode),
            ("services.mlflow.database", config.services.mlflow.database),
        ):
            if mode == "managed":
                add(key, mode, "a local stack has no cloud; allowed: in-cluster")
        if config.services.mlflow.artifacts == "object-store":
            add(
                "services.mlflow.artifacts",
                "object-store",
                "a local stack has no object store; allowed: in-cluster",
            )
    problems.extend(_gcp_problems(config, file))
    problems.extend(_services_problems(config, file))
    problems.extend(_aws_problems(config, file))
    return problems


def _canary_weight_problems(weights: list[int] | None, replicas: int) -> list[tuple[str, Any, str]]:
    """Each weight must be a share the Rollout's replica count produces (canary pods / all pods), or the
    "5 % canary" is a promise the controller breaks; the message lists the shares that replica count allows."""
    if weights is None:
        return []
    if weights != sorted(set(weights)):
        return [("", weights, "weights must increase from step to step, e.g. [25, 50]")]
    problems = []
    for i, weight in enumerate(weights):
        if canary_traffic.realised(replicas, weight):
            continue
        actual = canary_traffic.effective_share(replicas, weight)
        allowed = ", ".join(str(w) for w in canary_traffic.realisable_weights(replicas))
        problems.append(
            (
                f"[{i}]",
                weight,
                f"with {replicas} replica(s) and no traffic router this step gets {actual:.1f} % of the traffic "
                f"(its share of the pods); realisable with {replicas} replica(s): {allowed}; more replicas allow a "
                "smaller canary",
            )
        )
    return problems


def _services_problems(config: StackConfig, file: str) -> list[Problem]:
    """Rules for Redis / MLflow that span keys: managed services need a cloud that implements them (and a
    tier it accepts), failover needs a replica."""
    problems: list[Problem] = []

    def add(path: str, value: Any, message: str) -> None:
        problems.append(Problem(file, f"{PROJECT}:{path}", value, message))

    redis, mlflow = config.services.redis, config.services.mlflow
    if config.cloud != "local":
        for key, mode in (("services.redis.mode", redis.mode), ("services.mlflow.database", mlflow.database)):
            clouds = MANAGED_SERVICE_CLOUDS[key]
            if mode == "managed" and config.cloud not in clouds:
                add(
                    key,
                    mode,
                    f"managed is implemented for {', '.join(sorted(clouds))} only; allowed on {config.cloud}: in-cluster",
                )
    if config.cloud == "gcp" and config.mlflow_database == "managed":
        try:
            catalog.cloud_sql_tier(mlflow.database_tier)
        except ValueError as exc:
            add("services.mlflow.databaseTier", mlflow.database_tier, str(exc))
    if redis.enabled and config.redis_mode == "managed" and redis.replicas < 1:
        add(
            "services.redis.replicas",
            redis.replicas,
            "managed Redis needs at least 1 replica for automatic failover",
        )
    if mlflow.enabled and config.mlflow_artifacts == "in-cluster" and mlflow.replicas > 1:
        add(
            "services.mlflow.replicas",
            mlflow.replicas,
            "in-cluster artifacts live on one ReadWriteOnce volume: use 1 replica or artifacts: object-store",
        )
    if (
        mlflow.enabled
        and config.is_prod
        and config.mlflow_database == "managed"
        and mlflow.backup_retention_days < 7
    ):
        add(
            "services.mlflow.backupRetentionDays",
            mlflow.backup_retention_days,
            "prod keeps at least 7 days of backups",
        )
    return problems


def _instance_type_problems(
    config: StackConfig, group: NodeGroupConfig, index: int, file: str
) -> list[Problem]:
    problems = []
    for j, name in enumerate(group.instance_types):
        path = f"{PROJECT}:nodeGroups[{index}].instanceTypes[{j}]"
        try:
            itype = catalog.instance(name)
        except KeyError as exc:
            problems.append(Problem(file, path, name, f"{exc.args[0]}"))
            continue
        if itype.cloud != config.cloud:
            problems.append(
                Problem(
                    file, path, name, f"is a {itype.cloud} machine type; this stack runs on {config.cloud}"
                )
            )
            continue
        wanted = group.role if group.role in ACCELERATOR_ROLES else None
        if itype.accelerator_kind != wanted:
            options = ", ".join(sorted(t.name for t in catalog.instances(config.cloud, wanted))[:8])  # type: ignore[arg-type]
            kind = itype.accelerator_kind or "no accelerator"
            problems.append(
                Problem(file, path, name, f"has {kind} but the group's role is {group.role}; e.g. {options}")
            )
    return problems


def _sharing_problems(config: StackConfig, group: NodeGroupConfig, index: int, file: str) -> list[Problem]:
    """GPU sharing: a GPU group only, the fields of its mode, a MIG profile every listed GPU has, and MIG only
    where the platform partitions GPUs (GKE does it itself; EKS would need the NVIDIA MIG manager)."""
    sharing = group.sharing
    if sharing is None:
        return []
    path = f"{PROJECT}:nodeGroups[{index}].sharing"
    if group.role != "gpu":
        return [
            Problem(
                file, path, sharing.mode, f"only GPU groups share GPUs; this group's role is {group.role}"
            )
        ]
    if sharing.mode == "time-slicing" and (sharing.replicas is None or sharing.profile is not None):
        return [Problem(file, f"{path}.replicas", sharing.replicas,
                        f"time-slicing needs replicas (pods per GPU, 2-{MAX_TIME_SLICES}) and no profile")]  # fmt: skip
    if sharing.mode == "mig" and (sharing.profile is None or sharing.replicas is not None):
        return [Problem(file, f"{path}.profile", sharing.profile,
                        "mig needs a profile such as 1g.5gb (A100 40GB) or 1g.10gb (H100 80GB) and no replicas")]  # fmt: skip
    known = tuple(
        t for t in group.instance_types if (i := catalog.find_instance(t)) and i.accelerator_kind == "gpu"
    )
    problems = [
        Problem(file, f"{path}.profile", sharing.profile, message)
        for message in sharing.sharing().problems(known)
    ]
    if sharing.mode == "mig" and config.cloud == "aws" and not problems:
        problems.append(
            Problem(
                file,
                f"{path}.mode",
                "mig",
                "MIG on EKS needs the NVIDIA MIG manager to partition the GPUs, which this platform does not "
                "deploy; use time-slicing here, or MIG on a gcp stack (GKE partitions GPUs itself)",
            )
        )
    return problems


def _tpu_problems(group: NodeGroupConfig, index: int, file: str) -> list[Problem]:
    """A TPU group's sizes count nodes (hosts); a multi-host slice is provisioned atomically, all hosts or none."""
    path = f"{PROJECT}:nodeGroups[{index}]"
    if len(group.instance_types) != 1:
        return [
            Problem(
                file,
                f"{path}.instanceTypes",
                group.instance_types,
                "a TPU group takes exactly one machine type",
            )
        ]
    if group.tpu_topology is None:
        return [Problem(file, f"{path}.tpuTopology", None, "TPU groups need a topology such as 2x2 or 4x4")]
    machine = group.instance_types[0]
    try:
        hosts = catalog.tpu_hosts(machine, group.tpu_topology)
    except (ValueError, KeyError) as exc:
        return [Problem(file, f"{path}.tpuTopology", group.tpu_topology, str(exc))]
    problems = []
    chips = catalog.topology_chips(group.tpu_topology)
    sizes = [("minSize", group.min_size), ("maxSize", group.max_size)]
    if group.desired_size is not None:
        sizes.append(("desiredSize", group.desired_size))
    for key, size in sizes:
        if size % hosts:
            problems.append(
                Problem(
                    file,
                    f"{path}.{key}",
                    size,
                    f"a {group.tpu_topology} slice of {machine} spans {hosts} hosts ({chips} chips, "
                    f"{chips // hosts} per host) and is provisioned atomically (0 or {hosts} nodes); "
                    f"use a multiple of {hosts} (one multiple per slice)",
                )
            )
    if group.zones is not None and len(group.zones) != 1:
        problems.append(
            Problem(
                file, f"{path}.zones", group.zones, "a TPU slice lives in one zone; list exactly one zone"
            )
        )
    return problems


def _gcp_problems(config: StackConfig, file: str) -> list[Problem]:
    """GKE-specific rules: zones, one machine type per pool, reservations, driver settings, pod IP capacity."""
    problems: list[Problem] = []

    def add(path: str, value: Any, message: str) -> None:
        problems.append(Problem(file, f"{PROJECT}:{path}", value, message))

    for i, group in enumerate(config.node_groups):
        path = f"nodeGroups[{i}]"
        if config.cloud != "gcp":
            if group.reservation is not None:
                add(
                    f"{path}.reservation",
                    group.reservation,
                    "reservations are implemented for gcp stacks only",
                )
            continue
        if len(group.instance_types) != 1:
            add(f"{path}.instanceTypes", group.instance_types, "a GKE node pool has exactly one machine type")
        if group.reservation is not None and group.capacity == "spot":
            add(
                f"{path}.reservation",
                group.reservation,
                "Spot VMs cannot consume reservations; use capacity: on-demand",
            )
        if "gpu_driver_version" in group.model_fields_set and group.role != "gpu":
            add(
                f"{path}.gpuDriverVersion",
                group.gpu_driver_version,
                "only GPU groups install an NVIDIA driver",
            )
    if config.cloud != "gcp":
        return problems
    if not config.zones:
        add(
            "zones",
            config.zones,
            "a gcp stack lists its zones, e.g. [us-central1-a, us-central1-b, us-central1-c]",
        )
    # Pods get the upper half of network.cidr and GKE gives each node a /24 (110 pods per node).
    net = ipaddress.ip_network(config.network.cidr)
    node_capacity = 2 ** (32 - net.prefixlen - 1) // 256
    max_nodes = sum(g.max_size for g in config.node_groups)
    if max_nodes > node_capacity:
        add(
            "network.cidr",
            config.network.cidr,
            f"pods use the upper half of this range, room for {node_capacity} nodes (a /24 each), but the node "
            f"groups can reach {max_nodes}; use a larger range such as 10.0.0.0/16",
        )
    return problems


def load_stack(path: Path) -> StackConfig:
    """Read and validate one stack file, raising ConfigError with every problem."""
    raw, problems = raw_from_stack_file(path)
    if problems and not raw:
        raise ConfigError(problems)
    try:
        config = parse_stack_config(raw, str(path), stack_name(path))
    except ConfigError as exc:
        problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
    return config


# Keys a cloud ignores: (cloud that uses them, key path, model holding the field, field name).
_CLOUD_ONLY_KEYS: tuple[tuple[str, str, str, str], ...] = (
    ("aws", "cluster.adminRoleArns", "cluster", "admin_role_arns"),
    ("aws", "cluster.podIdentityAgent", "cluster", "pod_identity_agent"),
    ("aws", "network.natGateways", "network", "nat_gateways"),
    ("gcp", "cluster.releaseChannel", "cluster", "release_channel"),
    ("local", "cluster.kubeContext", "cluster", "kube_context"),
    ("aws", "services.mlflow.databaseInstanceClass", "mlflow", "database_instance_class"),
    ("gcp", "services.mlflow.databaseTier", "mlflow", "database_tier"),
)


def override_warnings(config: StackConfig, file: str) -> list[Problem]:
    """Settings the stack sets that the platform does not honour as written: a warning names each key, so a
    silent override never passes for what the user asked."""
    found: list[Problem] = []

    def warn(path: str, value: Any, message: str) -> None:
        found.append(Problem(file, f"{PROJECT}:{path}", value, message))

    endpoint = config.cluster.endpoint
    if endpoint.private is False and not endpoint.public_cidrs and config.cloud != "local":
        warn("cluster.endpoint.private", False, "no publicCidrs are listed, so the API endpoint stays private; "
             "list the office/VPN CIDRs to open it")  # fmt: skip
    sections = {"cluster": config.cluster, "network": config.network, "mlflow": config.services.mlflow}
    for cloud, path, section, field_name in _CLOUD_ONLY_KEYS:
        if config.cloud != cloud and field_name in sections[section].model_fields_set:
            warn(
                path,
                getattr(sections[section], field_name),
                f"only used on {cloud} stacks; ignored on {config.cloud}",
            )
    if config.cloud == "aws":
        found.extend(_engine_warnings(config, file))
    if config.cloud != "aws":
        for name in sorted(config.autoscaler.model_fields_set):
            alias = to_camel(name)
            warn(f"autoscaler.{alias}", getattr(config.autoscaler, name),
                 "configures the cluster-autoscaler the platform installs on EKS; "
                 + ("GKE's own autoscaler ignores it" if config.cloud == "gcp" else "a local cluster has none"))  # fmt: skip
    if config.cloud == "local" and config.network.model_fields_set:
        warn(
            "network",
            config.network.model_dump(by_alias=True, exclude_unset=True),
            "a local cluster has no VPC; ignored",
        )
    return found


def _engine_warnings(config: StackConfig, file: str) -> list[Problem]:
    """Settings the chosen autoscaler engine does not read, and sizes Karpenter does not keep."""
    found: list[Problem] = []
    autoscaler = config.autoscaler
    karpenter = autoscaler.engine == "karpenter"
    unread = CLUSTER_AUTOSCALER_ONLY if karpenter else KARPENTER_ONLY
    for name in sorted(set(unread) & autoscaler.model_fields_set):
        other = "cluster-autoscaler" if karpenter else "karpenter"
        found.append(
            Problem(
                file,
                f"{PROJECT}:autoscaler.{to_camel(name)}",
                getattr(autoscaler, name),
                f"only {other} reads it; ignored with engine: {autoscaler.engine}",
            )
        )
    if karpenter:
        for i, group in enumerate(config.node_groups):
            if group.role != "system" and group.min_size > 0:
                found.append(
                    Problem(
                        file,
                        f"{PROJECT}:nodeGroups[{i}].minSize",
                        group.min_size,
                        "Karpenter keeps no idle minimum (nodes follow pending pods); the size only sets the "
                        "expected cost: use minSize: 0 with desiredSize for that",
                    )
                )
    return found


def stack_name(path: Path) -> str:
    """`stacks/Pulumi.dev.yaml` -> `dev`."""
    return path.name.removeprefix("Pulumi.").removesuffix(".yaml").removesuffix(".yml")


def _aws_problems(config: StackConfig, file: str) -> list[Problem]:
    """EKS rules: pinned versions exist, API access is explicit, one accelerator model per node group."""
    from mlops_infra.components.aws.versions import SUPPORTED_EKS_VERSIONS

    if config.cloud != "aws":
        return []
    problems: list[Problem] = []

    def add(path: str, value: Any, message: str) -> None:
        problems.append(Problem(file, f"{PROJECT}:{path}", value, message))

    if config.cluster.version not in SUPPORTED_EKS_VERSIONS:
        add(
            "cluster.version",
            config.cluster.version,
            f"no pinned EKS add-on/autoscaler versions for it; allowed: {', '.join(SUPPORTED_EKS_VERSIONS)}",
        )
    if config.zones is not None and len(config.zones) > 3:
        add("zones", config.zones, "an EKS VPC here spans at most 3 zones")
    if config.endpoint_private and config.cluster.endpoint.public_cidrs:
        add(
            "cluster.endpoint.publicCidrs",
            config.cluster.endpoint.public_cidrs,
            "the API endpoint is private (set or the environment default), so public access stays off; "
            "remove publicCidrs or set cluster.endpoint.private: false",
        )
    problems.extend(_karpenter_problems(config, file))
    if not config.cluster.admin_role_arns:
        add(
            "cluster.adminRoleArns",
            [],
            "EKS access entries grant nobody access by default; list the IAM role that runs `pulumi up` "
            "(CI) and your administrators",
        )
    for i, group in enumerate(config.node_groups):
        types = [catalog.find_instance(t) for t in group.instance_types]
        known = [t for t in types if t is not None and t.cloud == "aws"]
        arches = sorted({t.arch for t in known})
        if len(arches) > 1:
            add(
                f"nodeGroups[{i}].instanceTypes",
                group.instance_types,
                f"mixes architectures ({', '.join(arches)}); a group has one AMI: split it into one group per arch",
            )
        models = sorted({t.accelerator for t in known if t.accelerator})
        if len(models) > 1:
            add(
                f"nodeGroups[{i}].instanceTypes",
                group.instance_types,
                f"mixes accelerators ({', '.join(models)}); the {AWS_GPU_MODEL_LABEL} label would be "
                "wrong on some nodes: use one group per accelerator model",
            )
    return problems


def _karpenter_problems(config: StackConfig, file: str) -> list[Problem]:
    """Karpenter launches every non-system group's nodes: it must run, and prod pins the AMI it boots."""
    autoscaler = config.autoscaler
    if autoscaler.engine != "karpenter":
        return []
    problems: list[Problem] = []
    if not autoscaler.enabled:
        problems.append(
            Problem(
                file,
                f"{PROJECT}:autoscaler.enabled",
                False,
                "with engine: karpenter the non-system groups are NodePools that only Karpenter launches; "
                "keep it enabled or use engine: cluster-autoscaler",
            )
        )
    if config.is_prod and autoscaler.ami_version is None:
        problems.append(
            Problem(
                file,
                f"{PROJECT}:autoscaler.amiVersion",
                None,
                "prod pins the AMI Karpenter boots (al2023@latest replaces every node on each AMI release); set an "
                "awslabs/amazon-eks-ami release such as v20260724",
            )
        )
    return problems
