"""The telemetry reference-integrity rules: pass on every reference stack, and catch each planted defect of
their class on a real offline plan (a query over a metric nobody exports, a label a series does not have, a
route no alert reaches, a webhook receiver fed alerts without the label it acts on, an exporter scraped
without honorLabels). Also: the fact tables of our own exporters match their code."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from policy.plan_edits import edit_plan, findings

from mlops_infra.tooling.plan import Plan, RecordedResource
from mlops_policies import promql, telemetry
from mlops_policies.runner import ALL_RULES

from plan_support import MONITORING_FILES, REFERENCE_STACKS, ROOT, reference_plan

QUERIES = "queries-use-exported-metrics"
ROUTES = "alert-routes-match-rules"
HONOR = "exporter-monitors-honor-labels"
TELEMETRY_RULES = (QUERIES, ROUTES, HONOR)


def kind(k: str, name: str | None = None) -> Callable[[RecordedResource], bool]:
    return lambda r: r.inputs.get("kind") == k and (name is None or r.inputs["metadata"]["name"] == name)


def release(name: str) -> Callable[[RecordedResource], bool]:
    return lambda r: r.type == "kubernetes:helm.sh/v3:Release" and r.inputs.get("name") == name


def rules_of(inputs: dict[str, Any], alert_or_record: str) -> dict[str, Any]:
    for group in inputs["spec"]["groups"]:
        for rule in group["rules"]:
            if alert_or_record in (rule.get("alert"), rule.get("record")):
                found: dict[str, Any] = rule
                return found
    raise AssertionError(f"{alert_or_record} not in {inputs['metadata']['name']}")


def test_rules_are_registered() -> None:
    assert set(TELEMETRY_RULES) <= {r.name for r in ALL_RULES}


@pytest.mark.parametrize("stack", REFERENCE_STACKS)
def test_every_reference_stack_passes(stack: str) -> None:
    plan = reference_plan(stack)
    for rule in TELEMETRY_RULES:
        assert findings(plan, rule) == [], rule


# ------------------------------------------------------------------------------------------- queries


def test_a_renamed_metric_in_an_alert_rule_is_caught() -> None:
    def typo(inputs: dict[str, Any]) -> None:
        rule = rules_of(inputs, "ModelServerErrorRatioHigh")
        rule["expr"] = rule["expr"].replace("model_requests_total", "model_request_total")

    plan = edit_plan(reference_plan("prod"), kind("PrometheusRule", "mlops-serving"), typo)
    found = findings(plan, QUERIES)
    assert found and all("model_request_total" in v.message for v in found)
    assert "ModelServerErrorRatioHigh" in found[0].message
    assert "no exporter in the fact table exports it" in found[0].message


def test_a_dashboard_over_an_exporter_the_stack_does_not_run_is_caught() -> None:
    """local runs no DCGM exporter: a GPU panel there shows no data."""

    def add_panel(inputs: dict[str, Any]) -> None:
        key = next(iter(inputs["data"]))
        doc = json.loads(inputs["data"][key])
        doc["panels"].append({"title": "GPU", "targets": [{"expr": "avg(DCGM_FI_DEV_GPU_UTIL)"}]})
        inputs["data"][key] = json.dumps(doc)

    plan = edit_plan(reference_plan("local"), kind("ConfigMap", "dashboard-accelerators"), add_panel)
    (found,) = findings(plan, QUERIES)
    assert "DCGM_FI_DEV_GPU_UTIL" in found.message and "comes from dcgm-exporter" in found.message
    assert "panel 'GPU'" in found.message


def test_an_analysis_template_reading_an_unrecorded_series_is_caught() -> None:
    def wrong(inputs: dict[str, Any]) -> None:
        prom = inputs["spec"]["metrics"][0]["provider"]["prometheus"]
        prom["query"] = prom["query"].replace("p99_2m", "p95_2m")

    plan = edit_plan(reference_plan("prod"), kind("AnalysisTemplate"), wrong)
    (found,) = findings(plan, QUERIES)
    assert "model:request_duration_seconds:p95_2m" in found.message and "AnalysisTemplate" in found.message


def test_a_label_the_series_does_not_have_is_caught() -> None:
    def by_hostname(inputs: dict[str, Any]) -> None:
        rule = rules_of(inputs, "NeuronIdle")
        rule["expr"] = rule["expr"].replace("max by (instance_id)", "max by (Hostname)")

    plan = edit_plan(reference_plan("dev"), kind("PrometheusRule", "mlops-neuron"), by_hostname)
    (found,) = findings(plan, QUERIES)
    assert "label(s) Hostname" in found.message and "neuroncore_utilization_ratio" in found.message


def test_a_label_a_recording_rule_aggregates_away_is_caught() -> None:
    """model:requests:rate5m keeps (namespace, model): selecting a ReplicaSet on it returns nothing."""

    def per_hash(inputs: dict[str, Any]) -> None:
        prom = inputs["spec"]["metrics"][1]["provider"]["prometheus"]
        prom["query"] = prom["query"].replace(
            "model:requests:error_ratio_2m", "model:requests:error_ratio_5m"
        )

    plan = edit_plan(reference_plan("prod"), kind("AnalysisTemplate"), per_hash)
    (found,) = findings(plan, QUERIES)
    assert "pod_template_hash" in found.message and "only keeps model, namespace" in found.message


def test_by_pod_over_dcgm_without_honor_labels_is_caught() -> None:
    """Finding 7 at the query level: `avg by (namespace, pod) (DCGM_FI_DEV_GPU_UTIL)` shows the exporter."""

    def no_honor(inputs: dict[str, Any]) -> None:
        inputs["values"]["serviceMonitor"]["honorLabels"] = False

    plan = edit_plan(reference_plan("dev"), release("dcgm-exporter"), no_honor)
    found = findings(plan, QUERIES)
    assert [v for v in found if "GPU utilisation by workload" in v.message and "honorLabels" in v.message]
    assert all("Hostname, gpu" not in v.message for v in found)  # per-node panels do not rely on pod labels


def test_grafana_and_argo_placeholders_are_not_mistaken_for_promql() -> None:
    q = promql.normalise('sum(rate(x{a=~"$model", b="{{args.namespace}}"}[$__rate_interval])) by (${group})')
    assert '"$model"' in q and '"{{args.namespace}}"' in q and "[5m]" in q
    assert promql.normalise('label_values(m{a="b"}, c)') == 'm{a="b"}'
    with pytest.raises(promql.PromQLError):
        promql.parse("sum(rate(x[5m])")


# --------------------------------------------------------------------------------------------- routes


def test_the_retrain_route_without_a_rule_labelled_action_retrain_is_caught() -> None:
    """Finding 9: Alertmanager routes `action="retrain"` to the retraining webhook; without a rule that sets
    the label, that route never fires."""

    def drop_action(inputs: dict[str, Any]) -> None:
        for group in inputs["spec"]["groups"]:
            for rule in group["rules"]:
                rule.get("labels", {}).pop("action", None)

    plan = edit_plan(reference_plan("prod"), kind("PrometheusRule", "mlops-model-quality"), drop_action)
    (found,) = findings(plan, ROUTES)
    assert 'action="retrain"' in found.message and "'retraining-webhook'" in found.message


def test_which_alerts_reach_the_retraining_webhook() -> None:
    inv = telemetry.inventory(telemetry_resources(reference_plan("prod")))
    cfg = telemetry.alertmanager_config(inv.kps)  # type: ignore[arg-type]
    routes = list(telemetry._walk(cfg["route"], "route", [], cfg["route"]["receiver"]))
    (chain,) = [c for _, c, receiver in routes if receiver == "retraining-webhook"]
    reach = {s.rule.name for s in telemetry._shapes(inv) if telemetry._reaches(s, chain) is not False}
    assert reach == {"ModelDataDriftHigh", "ModelQualityBelowThreshold"}
    (watchdog,) = [c for _, c, receiver in routes if receiver == "null"]
    assert {s.rule.name for s in telemetry._shapes(inv) if telemetry._reaches(s, watchdog)} == {"Watchdog"}


def test_a_route_for_an_alert_name_nobody_defines_is_caught() -> None:
    def typo(inputs: dict[str, Any]) -> None:
        inputs["values"]["alertmanager"]["config"]["route"]["routes"][0]["matchers"] = [
            'alertname = "WatchDog"'
        ]

    plan = edit_plan(reference_plan("local"), release("kps"), typo)
    (found,) = findings(plan, ROUTES)
    assert 'alertname="WatchDog"' in found.message and "matches no alert rule" in found.message


def test_a_route_shadowed_by_an_earlier_catch_all_is_caught() -> None:
    def shadow(inputs: dict[str, Any]) -> None:
        routes = inputs["values"]["alertmanager"]["config"]["route"]["routes"]
        routes.insert(0, {"receiver": "null", "matchers": ['severity =~ ".*"']})

    found = findings(edit_plan(reference_plan("local"), release("kps"), shadow), ROUTES)
    assert len(found) == 2  # the Watchdog route and the retrain route both come after it


def test_alerts_without_a_model_label_sent_to_the_retraining_webhook_are_caught() -> None:
    def retrain_on_pending(inputs: dict[str, Any]) -> None:
        rules_of(inputs, "AcceleratorPodPending")["labels"]["action"] = "retrain"

    plan = edit_plan(reference_plan("prod"), kind("PrometheusRule", "mlops-accelerators"), retrain_on_pending)
    (found,) = findings(plan, ROUTES)
    assert "AcceleratorPodPending" in found.message and "label(s) model" in found.message


def test_disabling_the_chart_rule_a_route_names_is_caught() -> None:
    def disable(inputs: dict[str, Any]) -> None:
        inputs["values"]["defaultRules"].setdefault("disabled", {})["Watchdog"] = True

    (found,) = findings(edit_plan(reference_plan("local"), release("kps"), disable), ROUTES)
    assert 'alertname="Watchdog"' in found.message


def test_matchers_follow_alertmanager_syntax() -> None:
    (m,) = telemetry.parse_matchers({"matchers": ['severity =~ "warning|critical"']})
    assert (m.name, m.op, m.value) == ("severity", "=~", "warning|critical")
    assert m.test("critical") and not m.test("critical2")  # anchored like Alertmanager's regexes
    legacy = telemetry.parse_matchers({"match": {"team": "ml"}, "match_re": {"env": "prod|test"}})
    assert [str(x) for x in legacy] == ['team="ml"', 'env=~"prod|test"']
    with pytest.raises(ValueError):
        telemetry.parse_matchers({"matchers": ["severity"]})


# ------------------------------------------------------------------------------------------ honorLabels


def test_dcgm_exporter_scraped_without_honor_labels_is_caught() -> None:
    """Finding 7 at the monitor level."""

    def no_honor(inputs: dict[str, Any]) -> None:
        inputs["values"]["serviceMonitor"]["honorLabels"] = False

    plan = edit_plan(reference_plan("dev"), release("dcgm-exporter"), no_honor)
    (found,) = findings(plan, HONOR)
    assert "dcgm-exporter" in found.message and "honorLabels: true" in found.message


def test_opencost_scraped_without_honor_labels_is_caught() -> None:
    def no_honor(inputs: dict[str, Any]) -> None:
        inputs["values"]["opencost"]["metrics"]["serviceMonitor"]["honorLabels"] = False

    (found,) = findings(edit_plan(reference_plan("local"), release("opencost"), no_honor), HONOR)
    assert "opencost" in found.message


def test_neuron_monitor_needs_no_honor_labels() -> None:
    """neuron-monitor labels series by instance, not by workload (k8s info is a beta it does not run)."""
    plan = reference_plan("dev")
    (monitor,) = [r for r in plan.resources if kind("ServiceMonitor", "neuron-monitor")(r)]
    assert not any(e.get("honorLabels") for e in monitor.inputs["spec"]["endpoints"])
    scrapes = telemetry.inventory(telemetry_resources(plan)).scrapes
    assert "neuron-monitor" in {s.exporter for s in scrapes}
    assert findings(plan, HONOR) == []


# ----------------------------------------------------------------------------------------------- facts


def telemetry_resources(plan: Plan) -> list[Any]:
    from mlops_policies.runner import resources_from_plan

    return resources_from_plan(plan)


_EXPOSE = """
import json, re, sys
sys.path[:0] = ["workloads/serving", "workloads/retraining"]
from prometheus_client import generate_latest
which = sys.argv[1]
if which == "model-server":
    from model_server.metrics import Metrics
    m = Metrics("fraud", (0.0, 1.0))
    m.observe_request("/predict", 200, "1", 0.01); m.observe_inputs(("f",), [[0.5]], [0.5]); m.set_model("champion", "1", "onnx")
    m.slo.labels("fraud").set(0.05); m.batch_child.observe(1); m.shadow_agree.inc(); m.cache_hit.inc()
    m.invalid_scores.labels("fraud", "/predict").inc()
    text = m.render().decode()
else:
    from retrain_job.metrics import RunMetrics
    r = RunMetrics("fraud")
    r.feature_psi.labels("fraud", "f").set(0.1); r.drift_psi.labels("fraud").set(0.1)
    r.drift_threshold.labels("fraud").set(0.2); r.quality_auc.labels("fraud", "live").set(0.9)
    r.auc_threshold.labels("fraud").set(0.8); r.record_run("promoted", True); r.new_rows.labels("fraud").set(1)
    text = generate_latest(r.registry).decode()
out = {}
for line in text.splitlines():
    if line and not line.startswith("#"):
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\\{([^}]*)\\})?\\s", line)
        out.setdefault(m.group(1), set()).update(re.findall(r'([a-zA-Z_]\\w*)="', m.group(2) or ""))
print(json.dumps({k: sorted(v) for k, v in out.items()}))
"""


@pytest.mark.parametrize(
    ("exporter", "added"), [("model-server", set()), ("retraining-job", {"job", "instance"})]
)
def test_in_repo_exporter_facts_match_what_the_code_exposes(exporter: str, added: set[str]) -> None:
    """Each in its own process, as in production (the server disables *_created series process-wide)."""
    out = subprocess.run(
        [sys.executable, "-c", _EXPOSE, exporter], cwd=ROOT, capture_output=True, text=True, check=True
    )
    exposed = {
        k: sorted(set(v) | added) for k, v in json.loads(out.stdout).items() if not k.endswith("_created")
    }
    table = telemetry.facts()["exporters"][exporter]["metrics"]
    assert {k: sorted(v) for k, v in table.items()} == exposed


def test_every_exporter_fact_names_its_version_and_source() -> None:
    for name, ex in telemetry.facts()["exporters"].items():
        assert ex["version"] and ex["source"] and ex["metrics"], name
    assert telemetry.facts()["kube_prometheus_stack_rules"]["version"] == "86.2.0"


def test_the_cost_rules_and_dashboard_read_only_opencost_metrics_or_their_own_records() -> None:
    """Finding 12: every metric the cost rules and the cost dashboard use is one OpenCost exports."""
    opencost = set(telemetry.facts()["exporters"]["opencost"]["metrics"])
    rules = yaml.safe_load((MONITORING_FILES / "rules" / "cost.yaml").read_text())
    records = {r["record"] for g in rules["groups"] for r in g["rules"]}
    exprs = [r["expr"] for g in rules["groups"] for r in g["rules"]]
    dashboard = json.loads((MONITORING_FILES / "dashboards" / "cost.json").read_text())
    exprs += [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    exprs += [v["definition"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    used = {s.name for e in exprs for s in promql.selectors(promql.parse(e)) if s.name}
    assert used - records <= opencost
    assert used & opencost >= {"container_cpu_allocation", "node_total_hourly_cost"}


def test_facts_file_is_the_packaged_one() -> None:
    path = Path(telemetry.__file__).parent / "telemetry_facts.yaml"
    assert copy.deepcopy(telemetry.facts()) == yaml.safe_load(path.read_text())


@pytest.mark.parametrize(
    ("query", "labels"),
    [
        ("sum by (model) (x)", ({"model"}, False)),
        ("x", (set(), True)),  # unknown metric: any label
        ("a > on (model) b", ({"model"}, False)),  # one-to-one on(): only the matching labels survive
        (
            "sum by (model, pod) (a) > on (model) group_left (team) sum by (model, team) (b)",
            ({"model", "pod", "team"}, False),
        ),
        ("histogram_quantile(0.9, sum by (le, model) (rate(x_bucket[5m])))", ({"model"}, False)),
        ("sum by (a) (x) or sum by (b) (y)", ({"a", "b"}, False)),
        ("sum without (pod) (sum by (pod, model) (x))", ({"model"}, False)),
        ('label_replace(sum by (a) (x), "dst", "$1", "a", "(.*)")', ({"a", "dst"}, False)),
        ("time() - max by (model) (x) > 8 * 86400", ({"model"}, False)),
        ('absent(up{job="x"})', ({"job"}, False)),
    ],
)
def test_output_labels_follow_prometheus_evaluation(query: str, labels: tuple[set[str], bool]) -> None:
    got = promql.output_labels(promql.parse(query), lambda _: None)
    assert (set(got.known), got.open) == labels


def test_selectors_carry_the_labels_enclosing_aggregations_rely_on() -> None:
    expr = promql.parse(
        "sum by (namespace) (container_cpu_allocation * on (node) group_left () max by (node) (node_cpu_hourly_cost))"
    )
    used = {s.name: set(s.labels_used) for s in promql.selectors(expr)}
    assert used == {"container_cpu_allocation": {"namespace", "node"}, "node_cpu_hourly_cost": {"node"}}
