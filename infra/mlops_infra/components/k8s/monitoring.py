"""The monitoring stack: kube-prometheus-stack (Prometheus, Alertmanager, Grafana, node-exporter,
kube-state-metrics) and a Prometheus Pushgateway for batch jobs, from upstream charts at pinned versions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from mlops_infra.components import accelerators
from mlops_infra.components.k8s.cluster import ClusterHandle
from mlops_infra.components.k8s.rules import DASHBOARD_LABEL

PROMETHEUS_COMMUNITY_REPO = "https://prometheus-community.github.io/helm-charts"
# kube-prometheus-stack 86.2.0 (prometheus-operator v0.91.0).
KUBE_PROMETHEUS_STACK_VERSION = "86.2.0"
# prometheus-pushgateway chart 3.8.0 (Pushgateway 1.11.x).
PUSHGATEWAY_VERSION = "3.8.0"

KPS_FULLNAME = "kps"  # fullnameOverride: services become kps-prometheus, kps-alertmanager
PUSHGATEWAY_FULLNAME = "pushgateway"
GRAFANA_ADMIN_SECRET = "grafana-admin"
PUSHGATEWAY_DATA_DIR = "/data"
RETRAIN_WEBHOOK_URL = "http://retraining-webhook.retraining.svc:8080/alerts"

# Node labels kube-state-metrics copies onto kube_node_labels, so dashboards can split cost and
# utilisation by node group, capacity type and accelerator.
NODE_LABELS = (
    "node.kubernetes.io/instance-type",
    "topology.kubernetes.io/zone",
    "eks.amazonaws.com/nodegroup",
    "eks.amazonaws.com/capacityType",
    "karpenter.sh/capacity-type",
    "cloud.google.com/gke-nodepool",
    "cloud.google.com/gke-spot",
    accelerators.GKE_GPU_LABEL,
    accelerators.GKE_TPU_LABEL,
    accelerators.GKE_TPU_TOPOLOGY_LABEL,
    accelerators.AWS_GPU_MODEL_LABEL,
)
POD_LABELS = ("app.kubernetes.io/name", "app.kubernetes.io/part-of", "app.kubernetes.io/component")


@dataclass(frozen=True)
class MonitoringSettings:
    """What differs per environment; the defaults are dev-sized."""

    namespace: str = "monitoring"
    retention_days: int = 3
    storage_gb: int = 20
    storage_class: str | None = None
    grafana: bool = True
    retrain_webhook_url: str = RETRAIN_WEBHOOK_URL
    scrape_interval: str = "30s"  # canary rules use 2m windows: 30s gives 4 samples
    prometheus_memory: str = "2Gi"
    host_root_fs: bool = True  # node-exporter mounts / ; off on Docker-based local clusters
    # The retraining webhook wants a bearer token: generated here, before Alertmanager starts, mounted from
    # the Secret RETRAIN_WEBHOOK_TOKEN_SECRET and handed to the retraining deployer.
    retrain_webhook_auth: bool = False


RETRAIN_WEBHOOK_TOKEN_SECRET = "retraining-webhook-token"
RETRAIN_WEBHOOK_TOKEN_FILE = f"/etc/alertmanager/secrets/{RETRAIN_WEBHOOK_TOKEN_SECRET}/token"


def alertmanager_config(webhook_url: str, token_file: str | None = None) -> dict[str, Any]:
    """Alerts labelled `action: retrain` go to the retraining webhook; the rest to a null receiver until
    a team adds its own (Slack, PagerDuty) routes."""
    return {
        "global": {"resolve_timeout": "5m"},
        "route": {
            "receiver": "null",
            "group_by": ["alertname", "namespace", "model"],
            "group_wait": "30s",
            "group_interval": "5m",
            "repeat_interval": "12h",
            "routes": [
                {"receiver": "null", "matchers": ['alertname = "Watchdog"']},
                {
                    "receiver": "retraining-webhook",
                    "matchers": ['action = "retrain"'],
                    "group_by": ["alertname", "model"],
                    "group_wait": "1m",
                    "repeat_interval": "6h",
                },
            ],
        },
        "receivers": [
            {"name": "null"},
            {
                "name": "retraining-webhook",
                "webhook_configs": [
                    {
                        "url": webhook_url,
                        "send_resolved": False,
                        "max_alerts": 20,
                        **(
                            {
                                "http_config": {
                                    "authorization": {"type": "Bearer", "credentials_file": token_file}
                                }
                            }
                            if token_file
                            else {}
                        ),
                    }
                ],
            },
        ],
    }


def kube_prometheus_stack_values(s: MonitoringSettings) -> dict[str, Any]:
    """Values for kube-prometheus-stack. No secret goes in here: Grafana reads its admin password from a
    Secret (`existingSecret`)."""
    storage_spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": f"{s.storage_gb}Gi"}},
    }
    if s.storage_class:
        storage_spec["storageClassName"] = s.storage_class
    return {
        "fullnameOverride": KPS_FULLNAME,
        "crds": {"enabled": True},
        # Managed control planes (EKS, GKE) and kind do not expose these to scraping: no false TargetDown.
        "kubeControllerManager": {"enabled": False},
        "kubeScheduler": {"enabled": False},
        "kubeEtcd": {"enabled": False},
        "defaultRules": {
            "create": True,
            "rules": {
                "etcd": False,
                "kubeControllerManager": False,
                "kubeSchedulerAlerting": False,
                "kubeSchedulerRecording": False,
            },
        },
        "prometheus": {
            "prometheusSpec": {
                "retention": f"{s.retention_days}d",
                # Leave headroom on the volume: Prometheus stops writing when the disk is full.
                "retentionSize": f"{max(1, int(s.storage_gb * 0.85))}GB",
                "scrapeInterval": s.scrape_interval,
                "evaluationInterval": s.scrape_interval,
                # Pick up every ServiceMonitor / PodMonitor / PrometheusRule in the cluster, not only the
                # ones labelled with this release.
                "serviceMonitorSelectorNilUsesHelmValues": False,
                "podMonitorSelectorNilUsesHelmValues": False,
                "ruleSelectorNilUsesHelmValues": False,
                "probeSelectorNilUsesHelmValues": False,
                "scrapeConfigSelectorNilUsesHelmValues": False,
                "storageSpec": {"volumeClaimTemplate": {"spec": storage_spec}},
                "resources": {
                    "requests": {"cpu": "250m", "memory": s.prometheus_memory},
                    "limits": {"memory": s.prometheus_memory},
                },
            }
        },
        "alertmanager": {
            "config": alertmanager_config(
                s.retrain_webhook_url, RETRAIN_WEBHOOK_TOKEN_FILE if s.retrain_webhook_auth else None
            ),
            "alertmanagerSpec": {
                "secrets": [RETRAIN_WEBHOOK_TOKEN_SECRET] if s.retrain_webhook_auth else [],
                "retention": "120h",
                "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
            },
        },
        "grafana": {
            "enabled": s.grafana,
            "fullnameOverride": "grafana",
            "admin": {
                "existingSecret": GRAFANA_ADMIN_SECRET,
                "userKey": "admin-user",
                "passwordKey": "admin-password",
            },
            "persistence": {"enabled": False},  # dashboards are provisioned from ConfigMaps
            "grafana.ini": {"analytics": {"reporting_enabled": False, "check_for_updates": False}},
            "sidecar": {
                "dashboards": {
                    "enabled": True,
                    "label": DASHBOARD_LABEL,
                    "labelValue": "1",
                    "searchNamespace": "ALL",
                    "folderAnnotation": "grafana_folder",
                    "provider": {"foldersFromFilesStructure": True},
                },
                "datasources": {"enabled": True},
            },
        },
        "kube-state-metrics": {
            # Extended resources (the accelerators registry's device resources) are exported by
            # kube_pod_container_resource_requests with `.`/`/` turned into `_`; the accelerator rules rely
            # on it. These allowlists add the node-group / accelerator labels to kube_*_labels.
            "metricLabelsAllowlist": [
                f"nodes=[{','.join(NODE_LABELS)}]",
                f"pods=[{','.join(POD_LABELS)}]",
            ],
        },
        "prometheus-node-exporter": {"hostRootFsMount": {"enabled": s.host_root_fs}},
    }


def pushgateway_values(s: MonitoringSettings) -> dict[str, Any]:
    """The retraining job pushes its metrics here; honorLabels keeps the pushed `job`/`model` labels."""
    return {
        "fullnameOverride": PUSHGATEWAY_FULLNAME,
        "serviceMonitor": {"enabled": True, "namespace": s.namespace, "honorLabels": True, "interval": "30s"},
        # Pushed values survive a restart (the drift/quality alerts compare them over hours): the chart only
        # mounts the volume; the Pushgateway writes to it only when told to with --persistence.file.
        "persistentVolume": {
            "enabled": True,
            "size": "2Gi",
            "mountPath": PUSHGATEWAY_DATA_DIR,
            **({"storageClass": s.storage_class} if s.storage_class else {}),
        },
        "extraArgs": [
            f"--persistence.file={PUSHGATEWAY_DATA_DIR}/pushgateway.data",
            "--persistence.interval=1m",
        ],
        "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}},
        "containerSecurityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }


@dataclass(frozen=True)
class MonitoringArgs:
    cluster: ClusterHandle
    settings: MonitoringSettings = MonitoringSettings()
    depends_on: tuple[pulumi.Resource, ...] = ()


class Monitoring(pulumi.ComponentResource):
    """Installs both charts and the Grafana admin Secret; exposes the in-cluster URLs workloads need."""

    def __init__(self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlops:k8s:Monitoring", name, None, opts)
        s = args.settings
        ns = s.namespace
        k8s_opts = args.cluster.opts(self, depends_on=list(args.depends_on))
        waits: list[pulumi.Resource] = list(args.depends_on)
        if s.grafana:
            admin = random.RandomPassword(
                f"{name}-grafana-admin", length=32, special=False, opts=pulumi.ResourceOptions(parent=self)
            )
            self.grafana_admin_password: pulumi.Output[str] | None = pulumi.Output.secret(admin.result)
            waits.append(
                k8s.core.v1.Secret(
                    f"{name}-grafana-admin",
                    metadata={"name": GRAFANA_ADMIN_SECRET, "namespace": ns},
                    type="Opaque",
                    string_data={"admin-user": "admin", "admin-password": self.grafana_admin_password},
                    opts=k8s_opts,
                )
            )
        else:
            self.grafana_admin_password = None
        self.retrain_webhook_token: pulumi.Output[str] | None = None
        if s.retrain_webhook_auth:
            token = random.RandomPassword(
                f"{name}-retrain-webhook-token",
                length=32,
                special=False,
                opts=pulumi.ResourceOptions(parent=self),
            )
            self.retrain_webhook_token = pulumi.Output.secret(token.result)
            waits.append(
                k8s.core.v1.Secret(
                    f"{name}-retrain-webhook-token",
                    metadata={"name": RETRAIN_WEBHOOK_TOKEN_SECRET, "namespace": ns},
                    type="Opaque",
                    string_data={"token": self.retrain_webhook_token},
                    opts=k8s_opts,
                )
            )
        self.stack = k8s.helm.v3.Release(
            f"{name}-kube-prometheus-stack",
            name=KPS_FULLNAME,
            chart="kube-prometheus-stack",
            version=KUBE_PROMETHEUS_STACK_VERSION,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=PROMETHEUS_COMMUNITY_REPO),
            namespace=ns,
            values=kube_prometheus_stack_values(s),
            timeout=900,
            opts=args.cluster.opts(self, depends_on=waits),
        )
        self.pushgateway = k8s.helm.v3.Release(
            f"{name}-pushgateway",
            name=PUSHGATEWAY_FULLNAME,
            chart="prometheus-pushgateway",
            version=PUSHGATEWAY_VERSION,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=PROMETHEUS_COMMUNITY_REPO),
            namespace=ns,
            values=pushgateway_values(s),
            opts=args.cluster.opts(self, depends_on=[self.stack]),  # needs the ServiceMonitor CRD
        )
        svc = f"{ns}.svc.cluster.local"
        self.prometheus_url = f"http://{KPS_FULLNAME}-prometheus.{svc}:9090"
        self.alertmanager_url = f"http://{KPS_FULLNAME}-alertmanager.{svc}:9093"
        self.pushgateway_url = f"http://{PUSHGATEWAY_FULLNAME}.{svc}:9091"
        self.grafana_url = f"http://grafana.{svc}:80" if s.grafana else None
        self.register_outputs(
            {"prometheus_url": self.prometheus_url, "pushgateway_url": self.pushgateway_url,
             "alertmanager_url": self.alertmanager_url}
        )  # fmt: skip
