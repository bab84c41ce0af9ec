"""OpenCost from its upstream chart: prices every node from the cloud's list prices and exports the cost and
allocation metrics (`node_*_hourly_cost`, `container_*_allocation*`) that the cost recording rules and the
"MLOps / Cost" dashboard read.

It queries the platform's own Prometheus (kube-state-metrics, cAdvisor and node-exporter series) and is
scraped back by it through the chart's ServiceMonitor with `honorLabels: true`, so its `namespace`/`pod`
labels (the workload being billed) are kept.

Pricing source per cloud (OpenCost detects the provider from the nodes' `providerID`):
- AWS: the public EC2 price list (`pricing.us-east-1.amazonaws.com/offers/...`), no credentials. Without a
  spot data feed (an S3 bucket + IAM access, not set up here) spot nodes are priced at the on-demand list
  price: an upper bound.
- GCP: the Cloud Billing Catalog API, which needs an API key (OpenCost refuses to start on GKE without
  one); pass `pricing_api_key_secret`, the Secret holding it (see `mlops_infra.components.gcp.pricing`).
- local clusters: OpenCost's built-in default prices (no cloud behind the nodes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from mlops_infra.components.k8s.cluster import ClusterHandle

OPENCOST_CHART = "opencost"
OPENCOST_REPO = "https://opencost.github.io/opencost-helm-chart"
OPENCOST_VERSION = "2.5.17"  # opencost/opencost-helm-chart opencost-2.5.17 = OpenCost 1.120.1
OPENCOST_FULLNAME = "opencost"
PRICING_API_KEY = "CLOUD_PROVIDER_API_KEY"  # OpenCost's env var and the key in the pricing Secret

_RESTRICTED_CONTAINER = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "runAsUser": 1001,  # the image's USER
    "runAsGroup": 1001,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}
# OpenCost writes its pricing config under /var/configs; the root filesystem stays read-only.
_SCRATCH = (("var-configs", "/var/configs"), ("tmp", "/tmp"))


@dataclass(frozen=True)
class OpenCostArgs:
    cluster: ClusterHandle
    cluster_id: str
    namespace: str = "monitoring"
    prometheus_service: str = "kps-prometheus"
    prometheus_namespace: str = "monitoring"
    prometheus_port: int = 9090
    # A Secret in `namespace` holding the GCP Cloud Billing API key under PRICING_API_KEY (GKE only).
    pricing_api_key_secret: str | None = None
    service_monitor_labels: dict[str, str] | None = None
    depends_on: tuple[pulumi.Resource, ...] = ()


def opencost_values(args: OpenCostArgs) -> dict[str, Any]:
    """Values for chart 2.5.17 (keys from its values.yaml). No secret goes in here: the GCP key is read from
    a Secret by reference."""
    env = []
    if args.pricing_api_key_secret:
        env.append(
            {
                "name": PRICING_API_KEY,
                "valueFrom": {"secretKeyRef": {"name": args.pricing_api_key_secret, "key": PRICING_API_KEY}},
            }
        )
    return {
        "fullnameOverride": OPENCOST_FULLNAME,
        "podSecurityContext": {
            "runAsNonRoot": True,
            "fsGroup": 1001,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "extraVolumes": [{"name": name, "emptyDir": {}} for name, _ in _SCRATCH],
        "opencost": {
            "exporter": {
                "defaultClusterId": args.cluster_id,
                "securityContext": dict(_RESTRICTED_CONTAINER),
                "resources": {"requests": {"cpu": "50m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
                "extraVolumeMounts": [{"name": name, "mountPath": path} for name, path in _SCRATCH],
                "env": env,
            },
            "prometheus": {
                "internal": {
                    "enabled": True,
                    "serviceName": args.prometheus_service,
                    "namespaceName": args.prometheus_namespace,
                    "port": args.prometheus_port,
                },
                "external": {"enabled": False},
            },
            "metrics": {
                "serviceMonitor": {
                    "enabled": True,
                    # OpenCost's series carry the billed workload's namespace/pod: keep them.
                    "honorLabels": True,
                    "scrapeInterval": "1m",
                    "additionalLabels": dict(args.service_monitor_labels or {}),
                }
            },
            "ui": {"enabled": False},  # costs are shown in Grafana ("MLOps / Cost")
            "mcp": {"enabled": False},
        },
    }


class OpenCost(pulumi.ComponentResource):
    """The OpenCost release; create it after the monitoring stack (ServiceMonitor CRD, Prometheus)."""

    def __init__(self, name: str, args: OpenCostArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlops:k8s:OpenCost", name, None, opts)
        self.release = k8s.helm.v3.Release(
            f"{name}-release",
            name=OPENCOST_FULLNAME,
            chart=OPENCOST_CHART,
            version=OPENCOST_VERSION,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=OPENCOST_REPO),
            namespace=args.namespace,
            values=opencost_values(args),
            opts=args.cluster.opts(self, depends_on=list(args.depends_on)),
        )
        self.api_url = f"http://{OPENCOST_FULLNAME}.{args.namespace}.svc.cluster.local:9003"
        self.register_outputs({"apiUrl": self.api_url})
