"""Rules and dashboards against the metric contract (docs/metrics.md) and the loader's needs.

Every metric name used must be in docs/metrics.md, be a recording rule defined here, or be on the
explicit third-party allow-list below. PromQL is tokenised with regexes (no PromQL parser dependency);
promtool (test_promtool.py) checks the syntax itself.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "monitoring"
# The rule and dashboard files ship inside the package.
FILES = Path(__file__).resolve().parents[2] / "infra/mlops_infra/components/k8s/monitoring_files"
RULE_FILES = sorted((FILES / "rules").glob("*.yaml"))
DASHBOARDS = sorted((FILES / "dashboards").glob("*.json"))
METRICS_DOC = ROOT / "docs" / "metrics.md"
MONITORING_DOC = ROOT / "docs" / "monitoring.md"
PROMETHEUSRULE_SCHEMA = (
    ROOT / "tests" / "schemas" / "crds" / "monitoring.coreos.com" / "prometheusrule_v1.json"
)
RUNBOOK_BASE = "https://github.com/your-org/mlops-infra/blob/main/docs/monitoring.md#"
SEVERITIES = {"critical", "warning", "info"}

# Metrics of third-party exporters that the rules and dashboards may use, by exporter.
THIRD_PARTY_METRICS = {
    "kube-state-metrics": {"kube_pod_status_phase", "kube_pod_container_resource_requests"},
    "dcgm-exporter": {"DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_FB_USED"},
    "neuron-monitor": {"neuroncore_utilization_ratio"},
    "node-exporter": set(),
    "opencost": {
        "container_cpu_allocation",
        "container_memory_allocation_bytes",
        "container_gpu_allocation",
        "node_cpu_hourly_cost",
        "node_ram_hourly_cost",
        "node_gpu_hourly_cost",
        "node_total_hourly_cost",
    },
}
# Labels Prometheus target discovery / our ServiceMonitor relabelling adds to the model-server series.
TARGET_LABELS = {
    "namespace",
    "pod",
    "container",
    "service",
    "endpoint",
    "job",
    "instance",
    "pod_template_hash",
}

PROMQL_WORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
    "bool", "offset", "inf", "nan", "atan2",
}  # fmt: skip
_IDENT = r"[a-zA-Z_:][a-zA-Z0-9_:]*"


def contract() -> dict[str, set[str]]:
    """Series names from docs/metrics.md -> allowed label names (histograms expand to _bucket/_sum/_count)."""
    series: dict[str, set[str]] = {}
    row = re.compile(r"^\|\s*`(" + _IDENT + r")`\s*\|\s*(\w+)[^|]*\|([^|]*)\|", re.M)  # type: "gauge (1)"
    for name, kind, labels in row.findall(METRICS_DOC.read_text()):
        names = set(re.findall(r"`(\w+)`", labels))
        if kind == "histogram":
            series[f"{name}_bucket"] = names | {"le"}
            series[f"{name}_sum"] = names
            series[f"{name}_count"] = names
        else:
            series[name] = names
    return series


def load_rules() -> list[tuple[Path, dict, dict]]:
    """(file, group, rule) for every rule."""
    out = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            out.extend((path, group, rule) for rule in group["rules"])
    return out


def recording_names() -> set[str]:
    return {r["record"] for _, _, r in load_rules() if "record" in r}


def dashboard_exprs() -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []

    def walk(panels: list[dict], name: str) -> None:
        for p in panels:
            out.extend((f"{name}: {p.get('title')}", t.get("expr", "")) for t in p.get("targets", []))
            walk(p.get("panels", []), name)

    for path in DASHBOARDS:
        doc = json.loads(path.read_text())
        walk(doc["panels"], path.name)
        for var in doc["templating"]["list"]:
            if var["type"] == "query":
                out.append((f"{path.name}: ${var['name']}", label_values_selector(var["definition"])))
    return out


def label_values_selector(definition: str) -> str:
    """`label_values(metric{...}, label)` -> `metric{...}` (the part that names a metric)."""
    m = re.fullmatch(r"label_values\((.*),\s*\w+\)", definition.strip())
    assert m, f"not a label_values() query: {definition}"
    return m.group(1)


def all_exprs() -> list[tuple[str, str]]:
    rules = [(f"{p.name}: {r.get('alert') or r.get('record')}", str(r["expr"])) for p, _, r in load_rules()]
    return rules + dashboard_exprs()


def tokenize(expr: str) -> tuple[set[str], list[tuple[str, set[str]]], list[str]]:
    """Return (metric names, [(metric, label keys in its matcher)], [__name__ regexes]) of a PromQL expr."""
    expr = re.sub(r"#[^\n]*", "", expr)
    expr = re.sub(r"\$\{?\w+\}?", " ", expr)  # Grafana variables ($model, ${datasource}, $__rate_interval)
    name_regexes = re.findall(r'__name__\s*=~?\s*"([^"]*)"', expr)
    selectors: list[tuple[str, set[str]]] = []
    for name, body in re.findall(r"(" + _IDENT + r")?\s*\{([^}]*)\}", expr):
        body = re.sub(r'"(?:[^"\\]|\\.)*"', '""', body)
        keys = set(re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", body))
        if name and name not in PROMQL_WORDS:
            selectors.append((name, keys))
    stripped = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)
    stripped = re.sub(r"\{[^}]*\}", " ", stripped)
    stripped = re.sub(r"\[[^\]]*\]", " ", stripped)
    stripped = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", stripped)
    names = set()
    for m in re.finditer(r"(?<![\w.])(" + _IDENT + r")(\s*\()?", stripped):
        word, call = m.group(1), m.group(2)
        if call or word.lower() in PROMQL_WORDS:
            continue
        names.add(word)
    return names, selectors, name_regexes


def test_tokenizer_finds_metrics_not_functions_labels_or_durations() -> None:
    names, selectors, regexes = tokenize(
        'histogram_quantile(0.99, sum by (namespace, le) (rate(a_bucket{code=~"5..", x="y{z}"}[5m])))'
        " > on (model) group_left () b:rec:x or 0.05 * group by (m) (c_count) unless d offset 1h"
        ' + sum({__name__=~"e|f"}) + 1e3 + $__rate_interval'
    )
    assert names == {"a_bucket", "b:rec:x", "c_count", "d"}
    assert selectors == [("a_bucket", {"code", "x"})]
    assert regexes == ["e|f"]


def test_contract_is_parsed() -> None:
    c = contract()
    assert c["model_request_duration_seconds_bucket"] == {"model", "route", "model_version", "le"}
    assert c["model_requests_total"] == {"model", "route", "code"}
    assert "model_request_duration_seconds" not in c  # a histogram is only its _bucket/_sum/_count
    assert c["model_info"] == {"model", "model_version", "alias", "runtime"}
    assert len(c) >= 20


def test_every_metric_is_in_the_contract_a_recording_rule_or_allow_listed() -> None:
    allowed = set(contract()) | recording_names() | set().union(*THIRD_PARTY_METRICS.values())
    unknown = {}
    for where, expr in all_exprs():
        names, _, regexes = tokenize(expr)
        if names - allowed:
            unknown[where] = sorted(names - allowed)
        for rx in regexes:
            assert any(re.fullmatch(rx, n) for n in allowed), f"{where}: __name__=~{rx!r} matches nothing"
    assert unknown == {}


def test_contract_metrics_are_used_with_contract_labels() -> None:
    c = contract()
    wrong = {}
    for where, expr in all_exprs():
        _, selectors, _ = tokenize(expr)
        for name, keys in selectors:
            if name in c and keys - c[name] - TARGET_LABELS:
                wrong[f"{where}: {name}"] = sorted(keys - c[name] - TARGET_LABELS)
    assert wrong == {}


def test_allow_list_has_no_unused_entries() -> None:
    used = set().union(*(tokenize(e)[0] for _, e in all_exprs()))
    assert set().union(*THIRD_PARTY_METRICS.values()) - used == set()


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_rule_file_is_a_plain_rules_file_and_a_valid_prometheusrule_spec(path: Path) -> None:
    doc = yaml.safe_load(path.read_text())
    assert list(doc) == ["groups"], "a rules file holds only `groups:` (it becomes PrometheusRule.spec)"
    # The CRD's Go regex `^(?i)(abort|warn)?$` is not valid in Python (inline flag not first).
    text = PROMETHEUSRULE_SCHEMA.read_text().replace("^(?i)(abort|warn)?$", "(?i)^(abort|warn)?$")
    spec_schema = json.loads(text)["properties"]["spec"]
    jsonschema.validate(doc, spec_schema)
    for group in doc["groups"]:
        assert group["rules"], group["name"]


def test_group_rule_and_alert_names_are_unique() -> None:
    groups = [g["name"] for p in RULE_FILES for g in yaml.safe_load(p.read_text())["groups"]]
    assert len(groups) == len(set(groups))
    records = [r["record"] for _, _, r in load_rules() if "record" in r]
    assert len(records) == len(set(records))
    alerts = [r["alert"] for _, _, r in load_rules() if "alert" in r]
    assert len(alerts) == len(set(alerts))


def test_recording_rule_names_follow_level_metric_operations() -> None:
    for name in recording_names():
        assert re.fullmatch(r"[a-z_]+:[a-z0-9_]+:[a-z0-9_]+", name), name


def heading_anchors(markdown: str) -> set[str]:
    """GitHub-style anchors of the markdown headings."""
    anchors = set()
    for heading in re.findall(r"^#+\s+(.+)$", markdown, re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        anchors.add(slug)
    return anchors


def test_alerts_have_for_severity_and_annotations_with_a_live_runbook() -> None:
    anchors = heading_anchors(MONITORING_DOC.read_text())
    alerts = [(p, r) for p, _, r in load_rules() if "alert" in r]
    assert len(alerts) >= 12
    for path, rule in alerts:
        where = f"{path.name}: {rule['alert']}"
        assert re.fullmatch(r"\d+[smh]", rule.get("for", "")), f"{where}: needs for:"
        assert rule["labels"]["severity"] in SEVERITIES, where
        ann = rule["annotations"]
        assert {"summary", "description", "runbook_url"} <= set(ann), where
        assert ann["runbook_url"].startswith(RUNBOOK_BASE), where
        anchor = ann["runbook_url"].removeprefix(RUNBOOK_BASE)
        assert anchor == rule["alert"].lower(), where
        assert anchor in anchors, f"{where}: docs/monitoring.md has no section '{rule['alert']}'"


def test_monitoring_doc_lists_every_recording_rule() -> None:
    doc = MONITORING_DOC.read_text()
    missing = [name for name in recording_names() if f"`{name}`" not in doc]
    assert missing == []
