"""Accelerator software: device plugins (so pods can request GPUs / Neuron devices) and their exporters.

Each piece tolerates only its own accelerator's taint and is pinned to its accelerator's nodes, so a
DaemonSet never lands on a node it cannot serve. Deployed only when the cluster has such node groups.

Two components, because they have different dependencies:
- `AcceleratorDevicePlugins` needs only the cluster; the cloud platform deploys it with the node groups.
- `AcceleratorMonitoring` (DCGM exporter, neuron-monitor, their ServiceMonitors) needs the Prometheus
  Operator CRDs, so it must be created after the monitoring stack (`depends_on=[monitoring]`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import yaml

from mlops_infra.components.accelerators import Accelerator, accelerator
from mlops_infra.components.k8s.cluster import ClusterHandle
from mlops_infra.components.node_group import NodeGroupSpec

NVIDIA_DEVICE_PLUGIN_CHART = "nvidia-device-plugin"
NVIDIA_DEVICE_PLUGIN_REPO = "https://nvidia.github.io/k8s-device-plugin"
NVIDIA_DEVICE_PLUGIN_VERSION = "0.17.4"  # upstream chart 0.17.4 = device plugin v0.17.4

DCGM_EXPORTER_CHART = "dcgm-exporter"
DCGM_EXPORTER_REPO = "https://nvidia.github.io/dcgm-exporter/helm-charts"
DCGM_EXPORTER_VERSION = "4.1.3"  # upstream chart 4.1.3 = dcgm-exporter 4.2.3-4.1.3 (DCGM 4.2.3)

NEURON_CHART = "oci://public.ecr.aws/neuron/neuron-helm-chart"
NEURON_CHART_VERSION = "1.1.2"  # aws-neuron/neuron-helm-charts 1.1.2: Neuron device plugin (+ scheduler, npd)
NEURON_MONITOR_IMAGE = "public.ecr.aws/neuron/neuron-monitor:1.3.0"
NEURON_MONITOR_PORT = 9010

# Device plugins and exporters run only where the platform installs them: EKS (GKE manages its own).
GPU: Accelerator = accelerator("gpu", "aws")
NEURON: Accelerator = accelerator("neuron", "aws")


DEFAULT_PLUGIN_CONFIG = "default"


def nvidia_device_plugin_values(groups: Sequence[NodeGroupSpec] = ()) -> dict[str, Any]:
    """Chart values; groups that share GPUs get a config each in `config.map` (chart 0.17.4 values.yaml `config`),
    which the plugin's config-manager applies to the nodes labelled `nvidia.com/device-plugin.config=<group>`;
    every other node gets `default` (whole GPUs)."""
    values: dict[str, Any] = {
        "tolerations": [GPU.toleration()],
        "affinity": GPU.node_affinity(),
        "priorityClassName": "system-node-critical",
        "gfd": {"enabled": False},
        "nfd": {"enabled": False},  # nodes are labelled by their node group; no discovery daemons needed
    }
    shared = {g.name: g.sharing for g in groups if g.sharing is not None}
    if shared:
        configs = {DEFAULT_PLUGIN_CONFIG: {"version": "v1", "flags": {"migStrategy": "none"}}}
        configs |= {name: sharing.device_plugin_config() for name, sharing in sorted(shared.items())}
        values["config"] = {
            "map": {name: yaml.safe_dump(doc, sort_keys=False) for name, doc in configs.items()},
            "default": DEFAULT_PLUGIN_CONFIG,
        }
    return values


def neuron_device_plugin_values() -> dict[str, Any]:
    return {
        "devicePlugin": {
            "tolerations": [NEURON.toleration()],
            "nodeSelector": NEURON.node_selector(),
        },
        "scheduler": {"enabled": False},  # the default scheduler is enough for whole-device requests
        "npd": {"enabled": False},  # its DaemonSet tolerates every taint; not wanted on all nodes
    }


def dcgm_exporter_values(service_monitor_labels: dict[str, str]) -> dict[str, Any]:
    """The chart runs the exporter in Kubernetes mode (`DCGM_EXPORTER_KUBERNETES=true`): each GPU series
    carries the `pod`, `namespace` and `container` of the workload holding that GPU. `honorLabels` keeps
    them; without it Prometheus renames them `exported_*` and sets `pod`/`namespace` to the exporter's own
    pod (chart 4.1.3 defaults `serviceMonitor.honorLabels` to false)."""
    return {
        "tolerations": [GPU.toleration()],
        "affinity": GPU.node_affinity(),
        "serviceMonitor": {
            "enabled": True,
            "interval": "15s",
            "honorLabels": True,
            "additionalLabels": dict(service_monitor_labels),
        },
        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}},
    }


@dataclass(frozen=True)
class AcceleratorDevicePluginsArgs:
    cluster: ClusterHandle
    namespace: str = "kube-system"


def _roles(cluster: ClusterHandle) -> set[str]:
    return {g.role for g in cluster.node_groups}


class AcceleratorDevicePlugins(pulumi.ComponentResource):
    """NVIDIA device plugin for GPU groups, Neuron device plugin for Neuron groups; nothing otherwise."""

    def __init__(
        self, name: str, args: AcceleratorDevicePluginsArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("mlops:k8s:AcceleratorDevicePlugins", name, None, opts)
        roles = _roles(args.cluster)
        self.releases: dict[str, k8s.helm.v3.Release] = {}
        if "gpu" in roles:
            self.releases["nvidia"] = k8s.helm.v3.Release(
                "nvidia-device-plugin",
                k8s.helm.v3.ReleaseArgs(
                    name="nvidia-device-plugin",
                    chart=NVIDIA_DEVICE_PLUGIN_CHART,
                    version=NVIDIA_DEVICE_PLUGIN_VERSION,
                    repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=NVIDIA_DEVICE_PLUGIN_REPO),
                    namespace=args.namespace,
                    values=nvidia_device_plugin_values(args.cluster.node_groups),
                ),
                opts=args.cluster.opts(self),
            )
        if "neuron" in roles:
            self.releases["neuron"] = k8s.helm.v3.Release(
                "neuron-device-plugin",
                k8s.helm.v3.ReleaseArgs(
                    name="neuron-device-plugin",
                    chart=NEURON_CHART,
                    version=NEURON_CHART_VERSION,
                    namespace=args.namespace,
                    values=neuron_device_plugin_values(),
                ),
                opts=args.cluster.opts(self),
            )
        self.register_outputs({"releases": sorted(self.releases)})


@dataclass(frozen=True)
class AcceleratorMonitoringArgs:
    cluster: ClusterHandle
    namespace: str = "kube-system"
    # Labels the Prometheus Operator selects ServiceMonitors by (kube-prometheus-stack: its release label).
    service_monitor_labels: dict[str, str] = field(default_factory=dict)


class AcceleratorMonitoring(pulumi.ComponentResource):
    """DCGM exporter (GPU groups) and neuron-monitor (Neuron groups), each with a ServiceMonitor.

    Create it after the monitoring stack: ServiceMonitor is a Prometheus Operator CRD.
    """

    def __init__(
        self, name: str, args: AcceleratorMonitoringArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("mlops:k8s:AcceleratorMonitoring", name, None, opts)
        roles = _roles(args.cluster)
        self.resources: list[pulumi.Resource] = []
        if "gpu" in roles:
            self.resources.append(
                k8s.helm.v3.Release(
                    "dcgm-exporter",
                    k8s.helm.v3.ReleaseArgs(
                        name="dcgm-exporter",
                        chart=DCGM_EXPORTER_CHART,
                        version=DCGM_EXPORTER_VERSION,
                        repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=DCGM_EXPORTER_REPO),
                        namespace=args.namespace,
                        values=dcgm_exporter_values(args.service_monitor_labels),
                    ),
                    opts=args.cluster.opts(self),
                )
            )
        if "neuron" in roles:
            self._neuron_monitor(args)
        self.register_outputs({})

    def _neuron_monitor(self, args: AcceleratorMonitoringArgs) -> None:
        """neuron-monitor piped into its Prometheus adapter, as the Neuron docs deploy it.

        It reads /dev/neuron* and sysfs counters, which needs a privileged container; kube-system is not
        under the restricted Pod Security level.
        """
        labels = {"app.kubernetes.io/name": "neuron-monitor", "app.kubernetes.io/part-of": "mlops-platform"}
        meta = k8s.meta.v1.ObjectMetaArgs(name="neuron-monitor", namespace=args.namespace, labels=labels)
        opts = args.cluster.opts(self)
        daemonset = k8s.apps.v1.DaemonSet(
            "neuron-monitor",
            metadata=meta,
            spec=k8s.apps.v1.DaemonSetSpecArgs(
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=labels),
                template=k8s.core.v1.PodTemplateSpecArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(labels=labels),
                    spec=k8s.core.v1.PodSpecArgs(
                        priority_class_name="system-node-critical",
                        tolerations=[NEURON.toleration()],
                        affinity=NEURON.node_affinity(),
                        automount_service_account_token=False,
                        containers=[
                            k8s.core.v1.ContainerArgs(
                                name="neuron-monitor",
                                image=NEURON_MONITOR_IMAGE,
                                command=["/bin/sh", "-c"],
                                args=[
                                    f"neuron-monitor | neuron-monitor-prometheus.py --port {NEURON_MONITOR_PORT}"
                                ],
                                ports=[
                                    k8s.core.v1.ContainerPortArgs(
                                        name="metrics", container_port=NEURON_MONITOR_PORT, protocol="TCP"
                                    )
                                ],
                                resources=k8s.core.v1.ResourceRequirementsArgs(
                                    requests={"cpu": "100m", "memory": "100Mi"}, limits={"memory": "256Mi"}
                                ),
                                readiness_probe=k8s.core.v1.ProbeArgs(
                                    http_get=k8s.core.v1.HTTPGetActionArgs(path="/", port="metrics"),
                                    period_seconds=15,
                                ),
                                liveness_probe=k8s.core.v1.ProbeArgs(
                                    tcp_socket=k8s.core.v1.TCPSocketActionArgs(port="metrics"),
                                    period_seconds=30,
                                    failure_threshold=4,
                                ),
                                security_context=k8s.core.v1.SecurityContextArgs(privileged=True),
                                volume_mounts=[k8s.core.v1.VolumeMountArgs(name="dev", mount_path="/dev")],
                            )
                        ],
                        volumes=[
                            k8s.core.v1.VolumeArgs(
                                name="dev", host_path=k8s.core.v1.HostPathVolumeSourceArgs(path="/dev")
                            )
                        ],
                    ),
                ),
            ),
            opts=opts,
        )
        service = k8s.core.v1.Service(
            "neuron-monitor",
            metadata=meta,
            spec=k8s.core.v1.ServiceSpecArgs(
                selector=labels,
                ports=[
                    k8s.core.v1.ServicePortArgs(
                        name="metrics", port=NEURON_MONITOR_PORT, target_port="metrics"
                    )
                ],
            ),
            opts=opts,
        )
        monitor = k8s.apiextensions.CustomResource(
            "neuron-monitor-servicemonitor",
            api_version="monitoring.coreos.com/v1",
            kind="ServiceMonitor",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name="neuron-monitor",
                namespace=args.namespace,
                labels={**labels, **args.service_monitor_labels},
            ),
            spec={
                "selector": {"matchLabels": labels},
                "namespaceSelector": {"matchNames": [args.namespace]},
                "endpoints": [{"port": "metrics", "path": "/metrics", "interval": "30s"}],
            },
            opts=opts,
        )
        self.resources.extend([daemonset, service, monitor])
