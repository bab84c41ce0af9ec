"""Generate the Grafana dashboards (mlops_infra/components/k8s/monitoring_files/dashboards/*.json).

The JSON files are committed (the Pulumi component loads them as they are); this script is the
source they come from, so panels stay consistent (datasource variable, ids, grid layout).
`python monitoring/build_dashboards.py` rewrites them; a test fails when they are out of date.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from mlops_infra.components.accelerators import kube_state_metrics_resource_regex

# The dashboards ship inside the package, next to the component that deploys them.
DASHBOARD_DIR = (
    Path(__file__).resolve().parents[1] / "infra/mlops_infra/components/k8s/monitoring_files/dashboards"
)
DS = {"type": "prometheus", "uid": "${datasource}"}
ACCEL_RESOURCES = kube_state_metrics_resource_regex()


def datasource_var() -> dict[str, Any]:
    return {
        "name": "datasource",
        "label": "Data source",
        "type": "datasource",
        "query": "prometheus",
        "current": {},
        "hide": 0,
        "refresh": 1,
        "regex": "",
        "includeAll": False,
        "multi": False,
        "options": [],
    }


def query_var(name: str, label: str, query: str, *, multi: bool = True) -> dict[str, Any]:
    """A label_values() variable; multi-valued with "All" = `.*` so `=~"$var"` always works."""
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DS,
        "definition": query,
        "query": {"query": query, "refId": f"{name}-var"},
        "refresh": 2,
        "sort": 1,
        "includeAll": multi,
        "allValue": ".*" if multi else None,
        "multi": multi,
        "current": {},
        "hide": 0,
        "options": [],
        "regex": "",
    }


def target(expr: str, legend: str = "", ref: str = "A", **extra: Any) -> dict[str, Any]:
    return {"datasource": DS, "expr": expr, "legendFormat": legend, "refId": ref, "range": True, **extra}


class Layout:
    """Hands out panel ids and grid positions (24 columns wide, rows of `h`)."""

    def __init__(self) -> None:
        self.next_id = 1
        self.x = 0
        self.y = 0
        self.row_h = 0

    def place(self, w: int, h: int) -> dict[str, int]:
        if self.x + w > 24:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        pos = {"x": self.x, "y": self.y, "w": w, "h": h}
        self.x += w
        self.row_h = max(self.row_h, h)
        return pos

    def new_id(self) -> int:
        pid = self.next_id
        self.next_id += 1
        return pid

    def row(self, title: str) -> dict[str, Any]:
        if self.x:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        panel = {
            "id": self.new_id(),
            "type": "row",
            "title": title,
            "collapsed": False,
            "gridPos": {"x": 0, "y": self.y, "w": 24, "h": 1},
            "panels": [],
        }
        self.y += 1
        return panel

    def panel(
        self,
        kind: str,
        title: str,
        targets: list[dict[str, Any]],
        *,
        unit: str = "short",
        w: int = 12,
        h: int = 8,
        description: str = "",
        thresholds: list[tuple[float | None, str]] | None = None,
        options: dict[str, Any] | None = None,
        custom: dict[str, Any] | None = None,
        minmax: tuple[float | None, float | None] = (None, None),
    ) -> dict[str, Any]:
        steps = [{"color": c, "value": v} for v, c in (thresholds or [(None, "green")])]
        defaults: dict[str, Any] = {
            "unit": unit,
            "thresholds": {"mode": "absolute", "steps": steps},
            "color": {"mode": "thresholds" if kind in ("stat", "bargauge", "gauge") else "palette-classic"},
        }
        if custom:
            defaults["custom"] = custom
        if minmax[0] is not None:
            defaults["min"] = minmax[0]
        if minmax[1] is not None:
            defaults["max"] = minmax[1]
        refs = "ABCDEFGH"
        for i, t in enumerate(targets):
            t["refId"] = refs[i]
        return {
            "id": self.new_id(),
            "type": kind,
            "title": title,
            "description": description,
            "datasource": DS,
            "gridPos": self.place(w, h),
            "targets": targets,
            "fieldConfig": {"defaults": defaults, "overrides": []},
            "options": options or {},
        }


def dashboard(uid: str, title: str, description: str, variables: list[dict[str, Any]], panels: list[Any]):
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["mlops-infra"],
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "1m",
        "time": {"from": "now-6h", "to": "now"},
        "timezone": "browser",
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "weekStart": "",
        "links": [],
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "templating": {"list": [datasource_var(), *variables]},
        "panels": panels,
    }


def serving() -> dict[str, Any]:
    lay = Layout()
    sel = 'namespace=~"$namespace", model=~"$model"'
    ri = "$__rate_interval"
    legend = "{{namespace}}/{{model}}"
    panels = [
        lay.row("Traffic and errors"),
        lay.panel(
            "stat",
            "Requests per second",
            [target(f"sum(rate(model_requests_total{{{sel}}}[{ri}]))")],
            unit="reqps",
            w=6,
            h=4,
        ),
        lay.panel(
            "stat",
            "5xx ratio",
            [
                target(
                    f'(sum(rate(model_requests_total{{{sel}, code=~"5.."}}[{ri}])) or vector(0))'
                    f" / sum(rate(model_requests_total{{{sel}}}[{ri}]))"
                )
            ],
            unit="percentunit",
            w=6,
            h=4,
            description="Share of 5xx over the sum of requests; ModelServerErrorRatioHigh fires above 5%.",
            thresholds=[(None, "green"), (0.01, "orange"), (0.05, "red")],
        ),
        lay.panel(
            "stat",
            "Worst p99 vs. SLO",
            [
                target(
                    f"max(model:request_duration_seconds:p99_5m{{{sel}}}"
                    f" / on (namespace, model) model:latency_slo_seconds:effective{{{sel}}})"
                )
            ],
            unit="percentunit",
            w=6,
            h=4,
            description="Highest p99 (5m) as a share of its model's SLO "
            "(model_latency_slo_seconds, 50 ms default).",
            thresholds=[(None, "green"), (0.8, "orange"), (1, "red")],
        ),
        lay.panel(
            "stat",
            "Cache hit ratio",
            [
                target(
                    f'sum(rate(model_cache_requests_total{{{sel}, result="hit"}}[{ri}]))'
                    f" / sum(rate(model_cache_requests_total{{{sel}}}[{ri}]))"
                )
            ],
            unit="percentunit",
            w=6,
            h=4,
        ),
        lay.panel(
            "timeseries",
            "Requests per second by model",
            [target(f"sum by (namespace, model) (rate(model_requests_total{{{sel}}}[{ri}]))", legend)],
            unit="reqps",
        ),
        lay.panel(
            "timeseries",
            "Responses by status code",
            [target(f"sum by (code) (rate(model_requests_total{{{sel}}}[{ri}]))", "{{code}}")],
            unit="reqps",
        ),
        lay.panel(
            "timeseries",
            "Requests per second by route and status code",
            [
                target(
                    f"sum by (route, code) (rate(model_requests_total{{{sel}}}[{ri}]))", "{{route}} {{code}}"
                )
            ],
            unit="reqps",
            description="/predict (the server's own API), /invocations (MLflow's scoring protocol), "
            "/v2/models/{name}/infer (the Open Inference Protocol).",
        ),
        lay.panel(
            "timeseries",
            "5xx ratio by model",
            [
                target(
                    f'sum by (namespace, model) (rate(model_requests_total{{{sel}, code=~"5.."}}[{ri}]))'
                    f" / sum by (namespace, model) (rate(model_requests_total{{{sel}}}[{ri}]))",
                    legend,
                )
            ],
            unit="percentunit",
            thresholds=[(None, "green"), (0.01, "orange"), (0.05, "red")],
            custom={"thresholdsStyle": {"mode": "line"}},
        ),
        lay.row("Latency"),
        lay.panel(
            "timeseries",
            "p50 / p99 latency by model, with SLO",
            [
                target(
                    "histogram_quantile(0.50, sum by (namespace, model, le) "
                    f"(rate(model_request_duration_seconds_bucket{{{sel}}}[{ri}])))",
                    "p50 " + legend,
                ),
                target(
                    "histogram_quantile(0.99, sum by (namespace, model, le) "
                    f"(rate(model_request_duration_seconds_bucket{{{sel}}}[{ri}])))",
                    "p99 " + legend,
                ),
                target(f"model:latency_slo_seconds:effective{{{sel}}}", "SLO " + legend),
            ],
            unit="s",
            w=24,
            h=9,
            description="SLO = model_latency_slo_seconds, or 50 ms where the model does not export it.",
        ),
        lay.panel(
            "timeseries",
            "p99 latency by route",
            [
                target(
                    "histogram_quantile(0.99, sum by (route, le) "
                    f"(rate(model_request_duration_seconds_bucket{{{sel}}}[{ri}])))",
                    "p99 {{route}}",
                )
            ],
            unit="s",
            w=24,
            h=8,
        ),
        lay.panel(
            "timeseries",
            "Canary vs. stable p99 (by pod template hash, 2m)",
            [target(f"model:request_duration_seconds:p99_2m{{{sel}}}", "{{model}} {{pod_template_hash}}")],
            unit="s",
            description="The series the Argo Rollouts AnalysisTemplate queries (see docs/monitoring.md).",
        ),
        lay.panel(
            "timeseries",
            "Canary vs. stable 5xx ratio (by pod template hash, 2m)",
            [target(f"model:requests:error_ratio_2m{{{sel}}}", "{{model}} {{pod_template_hash}}")],
            unit="percentunit",
        ),
        lay.row("Cache, batching, shadow"),
        lay.panel(
            "timeseries",
            "Cache look-ups by result",
            [
                target(
                    f"sum by (model, result) (rate(model_cache_requests_total{{{sel}}}[{ri}]))",
                    "{{model}} {{result}}",
                )
            ],
            unit="ops",
        ),
        lay.panel(
            "timeseries",
            "Cache hit ratio by model",
            [
                target(
                    "sum by (namespace, model) "
                    f'(rate(model_cache_requests_total{{{sel}, result="hit"}}[{ri}]))'
                    f" / sum by (namespace, model) (rate(model_cache_requests_total{{{sel}}}[{ri}]))",
                    legend,
                )
            ],
            unit="percentunit",
            minmax=(0, 1),
        ),
        lay.panel(
            "timeseries",
            "Micro-batch size p50 / p95",
            [
                target(
                    "histogram_quantile(0.50, sum by (model, le) "
                    f"(rate(model_batch_size_bucket{{{sel}}}[{ri}])))",
                    "p50 {{model}}",
                ),
                target(
                    "histogram_quantile(0.95, sum by (model, le) "
                    f"(rate(model_batch_size_bucket{{{sel}}}[{ri}])))",
                    "p95 {{model}}",
                ),
            ],
            unit="short",
        ),
        lay.panel(
            "timeseries",
            "Shadow (challenger) agreement ratio",
            [
                target(
                    f'sum by (model) (rate(model_shadow_predictions_total{{{sel}, agreement="agree"}}[{ri}]))'
                    f" / sum by (model) (rate(model_shadow_predictions_total{{{sel}}}[{ri}]))",
                    "{{model}}",
                )
            ],
            unit="percentunit",
            minmax=(0, 1),
        ),
        lay.panel(
            "table",
            "Loaded models",
            [
                target(
                    f"max by (namespace, model, model_version, alias, runtime) (model_info{{{sel}}})",
                    format="table",
                    instant=True,
                )
            ],
            w=24,
            h=6,
            options={"showHeader": True},
        ),
    ]
    variables = [
        query_var("namespace", "Namespace", "label_values(model_requests_total, namespace)"),
        query_var("model", "Model", 'label_values(model_requests_total{namespace=~"$namespace"}, model)'),
    ]
    return dashboard(
        "mlops-model-serving",
        "MLOps / Model serving",
        "Real-time model server: traffic, latency vs. SLO, 5xx, Redis cache, canary comparison.",
        variables,
        panels,
    )


def drift() -> dict[str, Any]:
    lay = Layout()
    m = 'model=~"$model"'
    ri = "$__rate_interval"
    psi_thresholds = [(None, "green"), (0.1, "yellow"), (0.25, "red")]
    panels = [
        lay.row("Drift (PSI, pushed by the retraining job)"),
        lay.panel(
            "timeseries",
            "Overall PSI vs. threshold",
            [
                target(f"max by (model) (model_drift_psi{{{m}}})", "PSI {{model}}"),
                target(f"model:drift_threshold:effective{{{m}}}", "threshold {{model}}"),
            ],
            description="Mean PSI over features; threshold = model_drift_threshold or 0.25.",
        ),
        lay.panel(
            "bargauge",
            "Current PSI per feature",
            [
                target(
                    f'sort_desc(max by (feature) (model_feature_psi{{{m}, feature=~"$feature"}}))',
                    "{{feature}}",
                    instant=True,
                )
            ],
            thresholds=psi_thresholds,
            options={"orientation": "horizontal", "displayMode": "gradient", "showUnfilled": True},
            description="< 0.1 stable, 0.1-0.25 moderate, > 0.25 major shift.",
        ),
        lay.panel(
            "timeseries",
            "PSI per feature over time",
            [target(f'max by (feature) (model_feature_psi{{{m}, feature=~"$feature"}})', "{{feature}}")],
            w=24,
            thresholds=psi_thresholds,
            custom={"thresholdsStyle": {"mode": "line"}},
        ),
        lay.row("Live distributions (from the model server)"),
        lay.panel(
            "heatmap",
            "Input distribution of $feature",
            [
                target(
                    f'sum by (le) (rate(model_feature_value_bucket{{{m}, feature=~"$feature"}}[{ri}]))',
                    "{{le}}",
                    format="heatmap",
                )
            ],
            options={"calculate": False, "yAxis": {"unit": "short"}, "cellGap": 1},
        ),
        lay.panel(
            "heatmap",
            "Predicted score distribution",
            [
                target(
                    f"sum by (le) (rate(model_prediction_value_bucket{{{m}}}[{ri}]))",
                    "{{le}}",
                    format="heatmap",
                )
            ],
            options={"calculate": False, "yAxis": {"unit": "short"}, "cellGap": 1},
        ),
        lay.row("Quality and retraining"),
        lay.panel(
            "timeseries",
            "AUC (live / holdout) vs. business minimum",
            [
                target(f"max by (model, dataset) (model_quality_auc{{{m}}})", "{{model}} {{dataset}}"),
                target(f"max by (model) (model_quality_threshold_auc{{{m}}})", "minimum {{model}}"),
            ],
            unit="short",
            minmax=(0.5, 1),
        ),
        lay.panel(
            "timeseries",
            "Retraining runs by result (per day)",
            [
                target(
                    f"sum by (model, result) (increase(retraining_runs_total{{{m}}}[1d]))",
                    "{{model}} {{result}}",
                )
            ],
            custom={"drawStyle": "bars"},
        ),
        lay.panel(
            "stat",
            "Since last successful retraining",
            [
                target(
                    f"time() - max by (model) (retraining_last_success_timestamp_seconds{{{m}}})",
                    "{{model}}",
                    instant=True,
                )
            ],
            unit="s",
            w=8,
            h=5,
            thresholds=[(None, "green"), (604800, "orange"), (691200, "red")],
        ),
        lay.panel(
            "stat",
            "Last candidate passed the gate",
            [target(f"max by (model) (retraining_gate_passed{{{m}}})", "{{model}}", instant=True)],
            w=8,
            h=5,
            thresholds=[(None, "red"), (1, "green")],
        ),
        lay.panel(
            "stat",
            "New labelled rows since last training",
            [target(f"max by (model) (retraining_new_labelled_rows{{{m}}})", "{{model}}", instant=True)],
            w=8,
            h=5,
        ),
    ]
    variables = [
        query_var("model", "Model", "label_values(model_feature_psi, model)"),
        query_var("feature", "Feature", 'label_values(model_feature_psi{model=~"$model"}, feature)'),
    ]
    return dashboard(
        "mlops-model-drift",
        "MLOps / Drift and model quality",
        "Per-feature PSI vs. threshold, live input/score distributions, AUC and retraining health.",
        variables,
        panels,
    )


def accelerators() -> dict[str, Any]:
    """Scheduling of accelerator pods (kube-state-metrics): on every stack, TPUs included."""
    lay = Layout()
    pending = (
        "(sum by (namespace, pod, resource) "
        f'(kube_pod_container_resource_requests{{resource=~"{ACCEL_RESOURCES}"}})'
        " > 0) and on (namespace, pod) (max by (namespace, pod) "
        '(kube_pod_status_phase{phase="Pending"}) == 1)'
    )
    panels = [
        lay.row("Scheduling (kube-state-metrics)"),
        lay.panel(
            "timeseries",
            "Accelerators requested by running pods, per namespace",
            [
                target(
                    "sum by (namespace, resource) ("
                    f'kube_pod_container_resource_requests{{resource=~"{ACCEL_RESOURCES}"}}'
                    " * on (namespace, pod) group_left () (max by (namespace, pod) "
                    '(kube_pod_status_phase{phase="Running"}) == 1))',
                    "{{namespace}} {{resource}}",
                )
            ],
        ),
        lay.panel(
            "table",
            "Pending accelerator pods",
            [target(pending, format="table", instant=True)],
            description="Pods requesting a GPU/Neuron/TPU that are Pending; "
            "AcceleratorPodPending fires after 15m.",
        ),
    ]
    return dashboard(
        "mlops-accelerators",
        "MLOps / Accelerators",
        "Accelerators (GPU, Neuron, TPU) requested by running pods and accelerator pods waiting for a node.",
        [],
        panels,
    )


def gpus() -> dict[str, Any]:
    """NVIDIA GPUs from the DCGM exporter: deployed only where the stack runs it."""
    lay = Layout()
    node = 'Hostname=~"$node"'
    panels = [
        lay.row("NVIDIA GPUs (DCGM exporter)"),
        lay.panel(
            "timeseries",
            "GPU utilisation per node / GPU",
            [target(f"avg by (Hostname, gpu) (DCGM_FI_DEV_GPU_UTIL{{{node}}})", "{{Hostname}} gpu{{gpu}}")],
            unit="percent",
            minmax=(0, 100),
        ),
        lay.panel(
            "timeseries",
            "GPU framebuffer used",
            [target(f"max by (Hostname, gpu) (DCGM_FI_DEV_FB_USED{{{node}}})", "{{Hostname}} gpu{{gpu}}")],
            unit="decmbytes",
        ),
        lay.panel(
            "timeseries",
            "GPU utilisation by workload",
            [
                target(
                    f'avg by (namespace, pod) (DCGM_FI_DEV_GPU_UTIL{{{node}, pod!=""}})',
                    "{{namespace}}/{{pod}}",
                )
            ],
            unit="percent",
            minmax=(0, 100),
        ),
        lay.panel(
            "table",
            "Idle GPUs (3h average < 5%) - right-size candidates",
            [
                target(
                    f"avg by (Hostname, gpu) (avg_over_time(DCGM_FI_DEV_GPU_UTIL{{{node}}}[3h])) < 5",
                    format="table",
                    instant=True,
                )
            ],
            unit="percent",
        ),
    ]
    variables = [query_var("node", "GPU node", "label_values(DCGM_FI_DEV_GPU_UTIL, Hostname)")]
    return dashboard(
        "mlops-gpu",
        "MLOps / NVIDIA GPUs",
        "GPU utilisation and memory per node and per workload, idle GPUs (DCGM exporter).",
        variables,
        panels,
    )


def neuron() -> dict[str, Any]:
    """AWS Inferentia/Trainium from neuron-monitor: deployed only where the stack runs it."""
    lay = Layout()
    panels = [
        lay.row("AWS Neuron (neuron-monitor)"),
        lay.panel(
            "timeseries",
            "NeuronCore utilisation per instance (mean / busiest core)",
            [
                target("avg by (instance_id) (neuroncore_utilization_ratio)", "mean {{instance_id}}"),
                target("max by (instance_id) (neuroncore_utilization_ratio)", "busiest {{instance_id}}"),
            ],
            unit="percentunit",
            minmax=(0, 1),
            w=24,
        ),
    ]
    return dashboard(
        "mlops-neuron",
        "MLOps / AWS Neuron",
        "NeuronCore utilisation per Inferentia/Trainium instance (neuron-monitor).",
        [],
        panels,
    )


def cost() -> dict[str, Any]:
    lay = Layout()
    ns = 'namespace=~"$namespace"'
    panels = [
        lay.panel(
            "text",
            "About",
            [],
            w=24,
            h=3,
            options={
                "mode": "markdown",
                "content": "Needs **OpenCost** (scraped with `honorLabels: true`) and the `mlops-cost.rules` "
                "recording rules. Allocation-based: a workload is charged max(request, usage) at the node's "
                "hourly price. Monthly = hourly x 730.",
            },
        ),
        lay.panel(
            "stat",
            "Cluster cost per hour",
            [target("sum(node_total_hourly_cost)", instant=True)],
            unit="currencyUSD",
            w=8,
            h=4,
        ),
        lay.panel(
            "stat",
            "Cluster cost per month (projected)",
            [target("sum(node_total_hourly_cost) * 730", instant=True)],
            unit="currencyUSD",
            w=8,
            h=4,
        ),
        lay.panel(
            "stat",
            "Selected namespaces per month (projected)",
            [target(f"sum(namespace:cost_usd_per_hour:sum{{{ns}}}) * 730", instant=True)],
            unit="currencyUSD",
            w=8,
            h=4,
        ),
        lay.panel(
            "timeseries",
            "Cost per hour by namespace",
            [target(f"namespace:cost_usd_per_hour:sum{{{ns}}}", "{{namespace}}")],
            unit="currencyUSD",
            w=24,
            custom={"stacking": {"mode": "normal"}, "fillOpacity": 40},
        ),
        lay.panel(
            "table",
            "Hourly cost by namespace and resource",
            [
                target(f"namespace:cpu_cost_usd_per_hour:sum{{{ns}}}", format="table", instant=True),
                target(f"namespace:memory_cost_usd_per_hour:sum{{{ns}}}", format="table", instant=True),
                target(f"namespace:gpu_cost_usd_per_hour:sum{{{ns}}}", format="table", instant=True),
            ],
            unit="currencyUSD",
            options={"showHeader": True},
        ),
        lay.panel(
            "bargauge",
            "Projected monthly cost by namespace",
            [
                target(
                    f"sort_desc(namespace:cost_usd_per_hour:sum{{{ns}}} * 730)", "{{namespace}}", instant=True
                )
            ],
            unit="currencyUSD",
            options={"orientation": "horizontal", "displayMode": "gradient"},
        ),
        lay.panel(
            "timeseries",
            "CPU cost per hour by namespace (raw OpenCost join)",
            [
                target(
                    f"sum by (namespace) (container_cpu_allocation{{{ns}}}"
                    " * on (node) group_left () max by (node) (node_cpu_hourly_cost))",
                    "{{namespace}}",
                )
            ],
            unit="currencyUSD",
        ),
        lay.panel(
            "timeseries",
            "Node cost per hour by instance type",
            [target("sum by (instance_type) (node_total_hourly_cost)", "{{instance_type}}")],
            unit="currencyUSD",
        ),
    ]
    variables = [query_var("namespace", "Namespace", "label_values(container_cpu_allocation, namespace)")]
    return dashboard(
        "mlops-cost",
        "MLOps / Cost per namespace",
        "Hourly and projected monthly cost per namespace from OpenCost allocation metrics.",
        variables,
        panels,
    )


DASHBOARDS = {
    "model-serving.json": serving,
    "model-drift.json": drift,
    "accelerators.json": accelerators,
    "gpu.json": gpus,
    "neuron.json": neuron,
    "cost.json": cost,
}


def render() -> dict[str, str]:
    """File name -> JSON text, exactly as committed."""
    return {name: json.dumps(build(), indent=2, sort_keys=False) + "\n" for name, build in DASHBOARDS.items()}


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for name, text in render().items():
        path = DASHBOARD_DIR / name
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
    if stale:
        print(f"out of date: {', '.join(stale)}; run python monitoring/build_dashboards.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
