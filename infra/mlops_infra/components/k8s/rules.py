"""PrometheusRule objects from monitoring/rules/*.yaml and Grafana dashboard ConfigMaps from
monitoring/dashboards/*.json, read at plan time so the cluster runs exactly the rules promtool tested.

The files live in the repository, not the package: the directory is found next to the package in a
checkout, or passed explicitly; an installed copy without the repository passes rule groups instead.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import yaml

from mlops_infra.components.k8s.cluster import ClusterHandle

DASHBOARD_LABEL = "grafana_dashboard"
# Rule and dashboard files (by stem) that read one exporter's metrics: deployed only where that exporter runs,
# so no stack carries an alert that cannot fire or a dashboard without data.
EXPORTER_FILES = {"gpu": "dcgm-exporter", "neuron": "neuron-monitor"}
_CONFIGMAP_LIMIT = 1_000_000  # bytes; the API server rejects ConfigMaps over 1 MiB
_NAME_RE = re.compile(r"[^a-z0-9-]+")


class MonitoringFilesError(ValueError):
    """A rule or dashboard file that cannot be turned into a Kubernetes object; the message names it."""


def packaged_files() -> Traversable:
    """The rule and dashboard files that ship with the package (`monitoring_files/{rules,dashboards}`)."""
    return resources.files(__package__ or "mlops_infra.components.k8s") / "monitoring_files"


def _files(directory: Traversable, *suffixes: str) -> list[Traversable]:
    if not directory.is_dir():
        return []
    return sorted(
        (f for f in directory.iterdir() if f.is_file() and f.name.endswith(suffixes)), key=lambda f: f.name
    )


def object_name(stem: str) -> str:
    name = _NAME_RE.sub("-", stem.lower()).strip("-")
    if not name:
        raise MonitoringFilesError(f"{stem!r} gives no usable Kubernetes name")
    return name[:63].rstrip("-")


def load_rule_files(rules_dir: Traversable) -> dict[str, dict[str, Any]]:
    """`{file stem: {"groups": [...]}}` for every *.yaml / *.yml file, checked for the shape Prometheus needs."""
    loaded: dict[str, dict[str, Any]] = {}
    for path in _files(rules_dir, ".yaml", ".yml"):
        try:
            doc = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise MonitoringFilesError(f"{path}: not valid YAML: {exc}") from None
        check_rule_groups(doc, str(path))
        loaded[path.name.rsplit(".", 1)[0]] = doc
    return loaded


def check_rule_groups(doc: Any, where: str) -> None:
    """The checks promtool would fail on that matter for the CRD: groups with names, rules with expr and
    exactly one of alert/record, unique group names."""
    if not isinstance(doc, Mapping) or not isinstance(doc.get("groups"), list) or not doc["groups"]:
        raise MonitoringFilesError(f"{where}: a rule file is a mapping with a non-empty `groups:` list")
    seen: set[str] = set()
    for i, group in enumerate(doc["groups"]):
        if not isinstance(group, Mapping) or not isinstance(group.get("name"), str):
            raise MonitoringFilesError(f"{where}: groups[{i}] needs a `name`")
        if group["name"] in seen:
            raise MonitoringFilesError(f"{where}: group name {group['name']!r} appears twice")
        seen.add(group["name"])
        rules = group.get("rules")
        if not isinstance(rules, list) or not rules:
            raise MonitoringFilesError(f"{where}: group {group['name']!r} has no `rules:` list")
        for j, rule in enumerate(rules):
            if not isinstance(rule, Mapping) or "expr" not in rule or ("alert" in rule) == ("record" in rule):
                raise MonitoringFilesError(
                    f"{where}: group {group['name']!r} rules[{j}] needs `expr` and exactly one of `alert`/`record`"
                )


def load_dashboards(dashboards_dir: Traversable) -> dict[str, str]:
    """`{file name: JSON text}` for every *.json file; each must parse and fit in one ConfigMap."""
    loaded: dict[str, str] = {}
    for path in _files(dashboards_dir, ".json"):
        text = path.read_text()
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise MonitoringFilesError(f"{path}: not valid JSON: {exc}") from None
        if not isinstance(doc, dict) or "panels" not in doc:
            raise MonitoringFilesError(f"{path}: a Grafana dashboard is an object with `panels`")
        if len(text.encode()) > _CONFIGMAP_LIMIT:
            raise MonitoringFilesError(
                f"{path}: {len(text.encode())} bytes does not fit in one ConfigMap (1 MiB)"
            )
        loaded[path.name] = text
    return loaded


def alert_names(rule_files: Mapping[str, Mapping[str, Any]]) -> set[str]:
    return {
        rule["alert"]
        for doc in rule_files.values()
        for group in doc["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }


@dataclass(frozen=True)
class MonitoringRulesArgs:
    cluster: ClusterHandle
    namespace: str = "monitoring"
    # Where rules/ and dashboards/ are; None: the files that ship with the package.
    monitoring_dir: Traversable | None = None
    # Rule files given directly ({name: {"groups": [...]}}); used instead of reading files when set.
    rule_groups: Mapping[str, Mapping[str, Any]] | None = None
    dashboards: Mapping[str, str] | None = None  # {file name: JSON}, instead of reading files when set
    labels: dict[str, str] = field(default_factory=dict)
    depends_on: tuple[pulumi.Resource, ...] = ()
    # Accelerator exporters the stack runs (EXPORTER_FILES values); None deploys every file.
    exporters: frozenset[str] | None = None

    def wanted(self, stem: str) -> bool:
        needs = EXPORTER_FILES.get(stem)
        return needs is None or self.exporters is None or needs in self.exporters


class MonitoringRules(pulumi.ComponentResource):
    """One PrometheusRule per rule file, one ConfigMap (labelled for Grafana's sidecar) per dashboard."""

    def __init__(self, name: str, args: MonitoringRulesArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlops:k8s:MonitoringRules", name, None, opts)
        base = args.monitoring_dir or packaged_files()
        if args.rule_groups is not None:
            for stem, doc in args.rule_groups.items():
                check_rule_groups(doc, f"rule_groups[{stem!r}]")
            rule_files: Mapping[str, Mapping[str, Any]] = args.rule_groups
        else:
            rule_files = load_rule_files(base / "rules")
        if not rule_files:
            raise MonitoringFilesError(
                f"{base / 'rules'}: no alert rule files (*.yaml); pass monitoring_dir or rule_groups"
            )
        dashboards = args.dashboards if args.dashboards is not None else load_dashboards(base / "dashboards")
        k8s_opts = args.cluster.opts(self, depends_on=list(args.depends_on))
        labels = {"app.kubernetes.io/part-of": "mlops-monitoring", **args.labels}
        self.rule_names: list[str] = []
        rule_files = {stem: doc for stem, doc in rule_files.items() if args.wanted(stem)}
        dashboards = {name: text for name, text in dashboards.items() if args.wanted(Path(name).stem)}
        for stem, doc in sorted(rule_files.items()):
            rule_name = f"mlops-{object_name(stem)}"
            k8s.apiextensions.CustomResource(
                f"{name}-{object_name(stem)}",
                api_version="monitoring.coreos.com/v1",
                kind="PrometheusRule",
                metadata={"name": rule_name, "namespace": args.namespace, "labels": labels},
                spec={"groups": list(doc["groups"])},
                opts=k8s_opts,
            )
            self.rule_names.append(rule_name)
        self.alerts = sorted(alert_names(rule_files))
        self.dashboard_names: list[str] = []
        for file_name, text in sorted(dashboards.items()):
            cm_name = f"dashboard-{object_name(Path(file_name).stem)}"
            k8s.core.v1.ConfigMap(
                f"{name}-{cm_name}",
                metadata={
                    "name": cm_name,
                    "namespace": args.namespace,
                    "labels": {**labels, DASHBOARD_LABEL: "1"},
                    "annotations": {"grafana_folder": "MLOps"},
                },
                data={file_name: text},
                opts=k8s_opts,
            )
            self.dashboard_names.append(cm_name)
        self.register_outputs({"rules": self.rule_names, "dashboards": self.dashboard_names})
