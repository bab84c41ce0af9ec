"""Every pod template a plan declares: Kubernetes workloads, Job templates embedded in ConfigMaps (the
retraining triggers create Jobs from one), and the pods of the Helm charts we install, built from our values
over the chart's own defaults for placement and size.

The chart table records, per pinned chart, where each pod takes `nodeSelector`, `tolerations`, `affinity`
and `resources` from, and the chart's defaults for those keys when we set none (read from each chart's
values.yaml and pod templates at the version we pin). Helm merges maps key by key and replaces lists.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from mlops_infra.components import accelerators
from mlops_policies.model import (
    HELM_RELEASE,
    K8S_WORKLOAD_KINDS,
    Resource,
    dig,
    k8s_kind,
    namespace_of,
    pod_spec,
    pod_template_labels,
)

PLACEMENT_KEYS = ("nodeSelector", "tolerations", "affinity", "resources")
INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"


@dataclass(frozen=True)
class ChartPod:
    """One pod template of a chart: where its values live and the chart's defaults for them."""

    name: str
    kind: str
    root: tuple[str, ...] = ()
    enabled: tuple[str, ...] | None = None  # values path of the flag that switches it on (default: on)
    defaults: Mapping[str, Any] = field(default_factory=dict)
    resources_path: tuple[str, ...] = ("resources",)
    advertises: tuple[str, ...] = ()  # extended resources a device plugin registers on its nodes


_LINUX = {"kubernetes.io/os": "linux"}
# neuron-helm-chart 1.1.2 templates/device-plugin-daemonset.yaml: the affinity is fixed in the template,
# `node.kubernetes.io/instance-type In .Values.neuronInstances`; this is its default list.
NEURON_INSTANCES = (
    "trn1.2xlarge", "trn1.32xlarge", "trn1n.32xlarge", "trn2.48xlarge", "trn2u.48xlarge", "inf1.xlarge",
    "inf1.2xlarge", "inf1.6xlarge", "inf1.24xlarge", "inf2.xlarge", "inf2.8xlarge", "inf2.24xlarge",
    "inf2.48xlarge",
)  # fmt: skip

# chart name (last segment of the chart reference) -> its pods. Defaults from values.yaml at the pinned
# versions: kube-prometheus-stack 86.2.0 (subcharts grafana, kube-state-metrics 7.4.0, prometheus-node-exporter
# 4.55.0), prometheus-pushgateway 3.8.0, argo-rollouts 2.40.1, cluster-autoscaler 9.59.0,
# nvidia-device-plugin 0.17.4, dcgm-exporter 4.1.3, neuron-helm-chart 1.1.2, karpenter 1.14.1.
CHART_PODS: dict[str, tuple[ChartPod, ...]] = {
    "kube-prometheus-stack": (
        ChartPod(
            "prometheus-operator", "Deployment", ("prometheusOperator",), ("prometheusOperator", "enabled")
        ),
        ChartPod("prometheus", "StatefulSet", ("prometheus", "prometheusSpec"), ("prometheus", "enabled")),
        ChartPod(
            "alertmanager", "StatefulSet", ("alertmanager", "alertmanagerSpec"), ("alertmanager", "enabled")
        ),
        ChartPod("grafana", "Deployment", ("grafana",), ("grafana", "enabled")),
        ChartPod(
            "kube-state-metrics", "Deployment", ("kube-state-metrics",), ("kubeStateMetrics", "enabled")
        ),
        ChartPod(
            "node-exporter",
            "DaemonSet",
            ("prometheus-node-exporter",),
            ("nodeExporter", "enabled"),
            defaults={
                "nodeSelector": _LINUX,
                "tolerations": [{"effect": "NoSchedule", "operator": "Exists"}],
            },
        ),
    ),
    "prometheus-pushgateway": (ChartPod("pushgateway", "Deployment"),),
    "argo-rollouts": (ChartPod("argo-rollouts", "Deployment", ("controller",)),),
    "cluster-autoscaler": (ChartPod("cluster-autoscaler", "Deployment"),),
    # karpenter 1.14.1 values.yaml: never on a node it launched, Linux only, tolerates CriticalAddonsOnly.
    "karpenter": (
        ChartPod(
            "karpenter",
            "Deployment",
            defaults={
                "nodeSelector": _LINUX,
                "tolerations": [{"key": "CriticalAddonsOnly", "operator": "Exists"}],
                "affinity": {
                    "nodeAffinity": {
                        "requiredDuringSchedulingIgnoredDuringExecution": {
                            "nodeSelectorTerms": [
                                {
                                    "matchExpressions": [
                                        {"key": "karpenter.sh/nodepool", "operator": "DoesNotExist"}
                                    ]
                                }
                            ]
                        }
                    }
                },
            },
            resources_path=("controller", "resources"),
        ),
    ),
    "nvidia-device-plugin": (
        ChartPod(
            "nvidia-device-plugin",
            "DaemonSet",
            defaults={
                "tolerations": [
                    {"key": "CriticalAddonsOnly", "operator": "Exists"},
                    {"key": accelerators.NVIDIA_GPU, "operator": "Exists", "effect": "NoSchedule"},
                ],
                "affinity": {
                    "nodeAffinity": {
                        "requiredDuringSchedulingIgnoredDuringExecution": {
                            "nodeSelectorTerms": [
                                {"matchExpressions": [{"key": k, "operator": "In", "values": [v]}]}
                                for k, v in (
                                    ("feature.node.kubernetes.io/pci-10de.present", "true"),
                                    ("feature.node.kubernetes.io/cpu-model.vendor_id", "NVIDIA"),
                                    accelerators.accelerator("gpu", "aws").selector,  # nvidia.com/gpu.present
                                )
                            ]
                        }
                    }
                },
            },
            advertises=accelerators.accelerator("gpu", "aws").advertised,
        ),
    ),
    "dcgm-exporter": (ChartPod("dcgm-exporter", "DaemonSet"),),
    "neuron-helm-chart": (
        ChartPod(
            "neuron-device-plugin",
            "DaemonSet",
            ("devicePlugin",),
            defaults={
                "tolerations": [
                    {"key": "CriticalAddonsOnly", "operator": "Exists"},
                    {"key": accelerators.NEURON_DEVICE, "operator": "Exists", "effect": "NoSchedule"},
                ]
            },
            advertises=accelerators.accelerator("neuron", "aws").advertised,
        ),
    ),
}


@dataclass(frozen=True)
class PodTemplate:
    """A pod template the cluster will try to schedule, and the plan resource it comes from."""

    owner: Resource
    kind: str
    namespace: str
    name: str
    labels: Mapping[str, Any]
    spec: Mapping[str, Any]
    advertises: tuple[str, ...] = ()

    @property
    def display(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


def chart_name(release: Resource) -> str:
    return str(release.get("chart", default="")).rstrip("/").rsplit("/", 1)[-1]


def _merge(default: Any, ours: Any) -> Any:
    """Helm's value merge: maps key by key, anything else (lists included) replaced."""
    if isinstance(default, Mapping) and isinstance(ours, Mapping):
        out = dict(copy.deepcopy(default))
        for key, value in ours.items():
            out[key] = _merge(out.get(key), value)
        return out
    return copy.deepcopy(ours) if ours is not None else copy.deepcopy(default)


def _chart_pod_spec(pod: ChartPod, chart: str, values: Mapping[str, Any]) -> dict[str, Any]:
    at = dig(values, *pod.root, default={})
    at = at if isinstance(at, Mapping) else {}
    spec: dict[str, Any] = {}
    for key in ("nodeSelector", "tolerations", "affinity"):
        merged = _merge(pod.defaults.get(key), at.get(key))
        if merged:
            spec[key] = merged
    if chart == "neuron-helm-chart":
        instances = values.get("neuronInstances") or list(NEURON_INSTANCES)
        spec["affinity"] = {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {"key": INSTANCE_TYPE_LABEL, "operator": "In", "values": instances}
                            ]
                        }
                    ]
                }
            }
        }
    resources = dig(at, *pod.resources_path, default={})
    spec["containers"] = [
        {"name": pod.name, "resources": resources if isinstance(resources, Mapping) else {}}
    ]
    return spec


def chart_pods(release: Resource) -> Iterator[PodTemplate]:
    """The pods a Helm release will run (only charts in CHART_PODS; others are not modelled)."""
    chart = chart_name(release)
    values = release.get("values", default={})
    values = values if isinstance(values, Mapping) else {}
    namespace = str(release.get("namespace", default="default"))
    for pod in CHART_PODS.get(chart, ()):
        if pod.enabled is not None and dig(values, *pod.enabled, default=True) is False:
            continue
        yield PodTemplate(
            owner=release,
            kind=pod.kind,
            namespace=namespace,
            name=f"{release.get('name', default=release.name)}/{pod.name}",
            labels={},
            spec=_chart_pod_spec(pod, chart, values),
            advertises=pod.advertises,
        )


@functools.lru_cache(maxsize=256)
def _parsed_manifest(text: str) -> Any:
    """The same manifests recur in every stack `check` evaluates: parse each text once per process."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return None


def _manifest(text: str) -> Any:
    """A private copy of the parsed manifest (None: not YAML), so no caller can change the cached one."""
    return copy.deepcopy(_parsed_manifest(text))


def _embedded_workloads(configmap: Resource) -> Iterator[PodTemplate]:
    """Workload manifests stored in a ConfigMap (a Job template a controller or trigger instantiates)."""
    namespace = namespace_of(configmap) or "default"
    data = configmap.get("data", default={})
    for key, text in data.items() if isinstance(data, Mapping) else []:
        if not isinstance(text, str) or "kind:" not in text:
            continue
        doc = _manifest(text)
        if not isinstance(doc, Mapping) or doc.get("kind") not in K8S_WORKLOAD_KINDS:
            continue
        kind = str(doc["kind"])
        spec = dig(doc, *K8S_WORKLOAD_KINDS[kind])
        if isinstance(spec, Mapping):
            labels = dig(doc, *K8S_WORKLOAD_KINDS[kind][:-1], "metadata", "labels", default={})
            name = f"{dig(configmap.props, 'metadata', 'name', default=configmap.name)}[{key}]"
            yield PodTemplate(configmap, kind, namespace, name, labels, spec)


def pod_templates(resources: Sequence[Resource]) -> list[PodTemplate]:
    """Every pod template in the plan."""
    found: list[PodTemplate] = []
    for r in resources:
        kind = k8s_kind(r)
        if r.type == HELM_RELEASE:
            found.extend(chart_pods(r))
        elif kind == "ConfigMap":
            found.extend(_embedded_workloads(r))
        elif kind is not None and (spec := pod_spec(r)) is not None:
            name = str(r.get("metadata", "name", default=r.name))
            found.append(
                PodTemplate(r, kind, namespace_of(r) or "default", name, pod_template_labels(r), spec)
            )
    return found
