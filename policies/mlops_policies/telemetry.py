"""Telemetry reference integrity: what dashboards, alert rules, canary analyses and Alertmanager routes refer
to must exist in the same stack.

- `queries-use-exported-metrics`: every PromQL query (PrometheusRule, Grafana dashboard ConfigMap, Argo
  Rollouts AnalysisTemplate) reads only metrics a recording rule of the stack records or an exporter the stack
  runs exports, with labels those series carry. A query over a metric nobody exports is a panel with no data
  or an alert that can never fire.
- `alert-routes-match-rules`: every Alertmanager route of the kube-prometheus-stack release can be reached by
  some alert rule of the stack, and alerts sent to the retraining webhook carry the label it needs.
- `exporter-monitors-honor-labels`: an exporter that writes the `pod`/`namespace` of the workload it
  describes is scraped with `honorLabels: true`, or Prometheus renames them `exported_*`.

Facts about exporters (metric names and labels per pinned version, with sources) and the chart's default
rules are in `telemetry_facts.yaml`.
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mlops_policies import promql
from mlops_policies.model import (
    HELM_RELEASE,
    Resource,
    Rule,
    as_list,
    containers,
    dig,
    display,
    k8s_kind,
    namespace_of,
    pod_spec,
    pod_template_labels,
)

StackFindings = Iterator[tuple[str | None, str]]
DASHBOARD_LABEL = "grafana_dashboard"  # kube-prometheus-stack's Grafana sidecar default
# prometheus-operator adds these external labels to every alert a Prometheus sends.
EXTERNAL_LABELS = frozenset({"prometheus", "prometheus_replica"})
# Receivers that act on alert labels (workloads/retraining/retrain_job/webhook.py ignores alerts without
# `model`): URL fragment -> labels every alert routed there must carry.
RECEIVER_NEEDS = {"retraining-webhook.": ("model",)}


@functools.cache
def facts() -> dict[str, Any]:
    # libyaml's parser when PyYAML has it: the same document (tested) in a tenth of the pure-Python parser's
    # half second, paid by every `plan` and `check`.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    text = (Path(__file__).parent / "telemetry_facts.yaml").read_text()
    loaded: dict[str, Any] = yaml.load(text, Loader=loader)
    return loaded


def chart_name(release: Resource) -> str:
    return str(release.get("chart", default="")).rstrip("/").rsplit("/", 1)[-1]


# ---------------------------------------------------------------------------------------------------------
# What the stack runs


@dataclass
class Scrape:
    """An exporter the stack runs and how it is scraped."""

    exporter: str
    urn: (
        str | None
    )  # the resource that declares the scrape (ServiceMonitor, or the Helm release rendering it)
    where: str
    honor_labels: bool
    extra_labels: frozenset[str] = frozenset()  # target labels its relabelings add


@dataclass
class AlertRule:
    name: str
    labels: Mapping[str, str]
    expr: str
    urn: str | None
    where: str


@dataclass
class Query:
    urn: str | None
    where: str
    text: str


@dataclass
class Inventory:
    scrapes: list[Scrape] = field(default_factory=list)
    records: dict[str, tuple[str | None, str]] = field(default_factory=dict)  # name -> (urn, expr or "")
    alerts: list[AlertRule] = field(default_factory=list)
    queries: list[Query] = field(default_factory=list)
    kps: Resource | None = None

    @property
    def exporters(self) -> set[str]:
        return {s.exporter for s in self.scrapes}


def _flag(values: Any, *path: str, default: bool) -> bool:
    found = dig(values, *path)
    return default if found is None else bool(found)


def _chart_scrapes(release: Resource) -> list[Scrape]:
    """Exporters a Helm release runs and scrapes, from its values and the chart defaults (noted per key)."""
    values = release.get("values", default={})
    chart, where = chart_name(release), display(release)

    def scrape(exporter: str, honor: bool) -> Scrape:
        return Scrape(exporter, release.urn, f"{where} ({exporter})", honor)

    out: list[Scrape] = []
    if chart == "kube-prometheus-stack":
        out.append(scrape("prometheus", True))
        if _flag(values, "kubeStateMetrics", "enabled", default=True):
            # kube-prometheus-stack 86.2.0 values: kube-state-metrics.prometheus.monitor.{http,metrics}.honorLabels
            out.append(scrape("kube-state-metrics", _flag(values, "kube-state-metrics", "prometheus", "monitor",
                                                          "http", "honorLabels", default=True)))  # fmt: skip
        if _flag(values, "nodeExporter", "enabled", default=True):
            out.append(scrape("node-exporter", True))
        if _flag(values, "kubelet", "enabled", default=True) and _flag(
            values, "kubelet", "serviceMonitor", "cAdvisor", default=True
        ):
            out.append(
                scrape("cadvisor", _flag(values, "kubelet", "serviceMonitor", "honorLabels", default=True))
            )
    elif chart == "prometheus-pushgateway" and _flag(values, "serviceMonitor", "enabled", default=False):
        out.append(scrape("pushgateway", _flag(values, "serviceMonitor", "honorLabels", default=True)))
    elif chart == "dcgm-exporter" and _flag(values, "serviceMonitor", "enabled", default=True):
        out.append(scrape("dcgm-exporter", _flag(values, "serviceMonitor", "honorLabels", default=False)))
    elif chart == "opencost" and _flag(
        values, "opencost", "metrics", "serviceMonitor", "enabled", default=False
    ):
        honor = _flag(values, "opencost", "metrics", "serviceMonitor", "honorLabels", default=True)
        out.append(scrape("opencost", honor))
    return out


# Workloads recognised by their pod label app.kubernetes.io/name.
WORKLOAD_EXPORTERS = {"model-server": "model-server", "neuron-monitor": "neuron-monitor"}
PUSHING_WORKLOADS = {"retraining": "retraining-job", "retraining-trigger": "retraining-job"}


def _matches(selector: Any, labels: Mapping[str, Any]) -> bool:
    wanted = dig(selector, "matchLabels", default={})
    return isinstance(wanted, Mapping) and bool(wanted) and all(labels.get(k) == v for k, v in wanted.items())


def _monitor_scrapes(resources: Sequence[Resource]) -> list[Scrape]:
    """ServiceMonitors / PodMonitors of the plan, followed to the workloads they select."""
    workloads = [r for r in resources if pod_spec(r) is not None]
    services = [r for r in resources if k8s_kind(r) == "Service"]
    out: list[Scrape] = []
    for mon in resources:
        kind = k8s_kind(mon)
        if kind not in ("ServiceMonitor", "PodMonitor"):
            continue
        ns = namespace_of(mon)
        names = dig(mon.props, "spec", "namespaceSelector", "matchNames", default=None)
        namespaces = set(as_list(names)) if names else {ns}
        selector = dig(mon.props, "spec", "selector", default={})
        if kind == "ServiceMonitor":
            pod_selectors = [
                dig(s.props, "spec", "selector", default={})
                for s in services
                if namespace_of(s) in namespaces
                and _matches(selector, dig(s.props, "metadata", "labels", default={}))
            ]
        else:
            pod_selectors = [dig(selector, "matchLabels", default={})]
        endpoints = as_list(
            dig(mon.props, "spec", "endpoints" if kind == "ServiceMonitor" else "podMetricsEndpoints")
        )
        honor = bool(endpoints) and all(bool(dig(e, "honorLabels", default=False)) for e in endpoints)
        extra = frozenset(str(rl.get("targetLabel")) for e in endpoints for rl in as_list(dig(e, "relabelings"))
                          if isinstance(rl, Mapping) and rl.get("targetLabel"))  # fmt: skip
        for w in workloads:
            labels = pod_template_labels(w)
            if namespace_of(w) not in namespaces:
                continue
            if any(sel and all(labels.get(k) == v for k, v in sel.items()) for sel in pod_selectors):
                exporter = WORKLOAD_EXPORTERS.get(str(labels.get("app.kubernetes.io/name")))
                if exporter:
                    out.append(Scrape(exporter, mon.urn, display(mon), honor, extra))
    return out


def _pushers(resources: Sequence[Resource], scrapes: list[Scrape]) -> list[Scrape]:
    """Batch jobs that push to a scraped Pushgateway: their series arrive through its scrape."""
    gateway = next((s for s in scrapes if s.exporter == "pushgateway"), None)
    if gateway is None:
        return []
    for r in resources:
        name = str(pod_template_labels(r).get("app.kubernetes.io/name"))
        spec = pod_spec(r)
        if name in PUSHING_WORKLOADS and spec is not None:
            for _, c in containers(spec):
                if any(
                    isinstance(e, Mapping) and e.get("name") == "PUSHGATEWAY_URL"
                    for e in as_list(c.get("env"))
                ):
                    return [Scrape(PUSHING_WORKLOADS[name], gateway.urn, gateway.where, gateway.honor_labels)]
    return []


def _default_rules(kps: Resource, inv: Inventory) -> None:
    """The chart's own rule groups that these values render (kube-prometheus-stack templates' conditions)."""
    values = kps.get("values", default={})
    if not _flag(values, "defaultRules", "create", default=True):
        return
    defaults = {"windowsMonitoring.enabled": False}
    disabled = dig(values, "defaultRules", "disabled", default={}) or {}
    for group in facts()["kube_prometheus_stack_rules"]["files"]:
        if not all(
            _flag(values, *cond.split("."), default=defaults.get(cond, True)) for cond in group["enabledBy"]
        ):
            continue
        for record in group["records"]:
            inv.records.setdefault(record, (kps.urn, ""))
        for alert, severity in group["alerts"].items():
            if not disabled.get(alert):
                labels = {"severity": severity} if severity else {}
                inv.alerts.append(
                    AlertRule(alert, labels, "", kps.urn, f"{display(kps)} default rule {alert}")
                )


def inventory(resources: Sequence[Resource]) -> Inventory:
    inv = Inventory()
    for r in resources:
        if r.type == HELM_RELEASE:
            inv.scrapes.extend(_chart_scrapes(r))
            if chart_name(r) == "kube-prometheus-stack":
                inv.kps = r
                _default_rules(r, inv)
    inv.scrapes.extend(_monitor_scrapes(resources))
    inv.scrapes.extend(_pushers(resources, inv.scrapes))
    for r in resources:
        kind = k8s_kind(r)
        if kind == "PrometheusRule":
            for group in as_list(dig(r.props, "spec", "groups")):
                for rule in as_list(dig(group, "rules")):
                    expr = str(dig(rule, "expr", default=""))
                    if dig(rule, "record"):
                        inv.records[str(rule["record"])] = (r.urn, expr)
                        inv.queries.append(Query(r.urn, f"{display(r)} record {rule['record']}", expr))
                    elif dig(rule, "alert"):
                        where = f"{display(r)} alert {rule['alert']}"
                        labels = {str(k): str(v) for k, v in (dig(rule, "labels", default={}) or {}).items()}
                        inv.alerts.append(AlertRule(str(rule["alert"]), labels, expr, r.urn, where))
                        inv.queries.append(Query(r.urn, where, expr))
        elif kind == "AnalysisTemplate":
            for metric in as_list(dig(r.props, "spec", "metrics")):
                query = dig(metric, "provider", "prometheus", "query")
                if query:
                    inv.queries.append(Query(r.urn, f"{display(r)} metric {dig(metric, 'name')}", str(query)))
        elif kind == "ConfigMap" and dig(r.props, "metadata", "labels", DASHBOARD_LABEL) is not None:
            for key, text in (dig(r.props, "data", default={}) or {}).items():
                inv.queries.extend(_dashboard_queries(r, str(key), str(text)))
    return inv


def _dashboard_queries(cm: Resource, key: str, text: str) -> Iterator[Query]:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        return
    title = doc.get("title", key) if isinstance(doc, dict) else key

    def panels(items: Any) -> Iterator[Mapping[str, Any]]:
        for p in as_list(items):
            if isinstance(p, Mapping):
                yield p
                yield from panels(p.get("panels"))

    for panel in panels(doc.get("panels") if isinstance(doc, dict) else None):
        for t in as_list(panel.get("targets")):
            if isinstance(t, Mapping) and t.get("expr"):
                yield Query(cm.urn, f"dashboard {title!r} panel {panel.get('title')!r}", str(t["expr"]))
    for var in as_list(dig(doc, "templating", "list")):
        if isinstance(var, Mapping) and var.get("type") == "query":
            q = var.get("definition") or dig(var, "query", "query")
            if q:
                yield Query(cm.urn, f"dashboard {title!r} variable ${var.get('name')}", str(q))


# ---------------------------------------------------------------------------------------------------------
# queries-use-exported-metrics


def exporter_of(metric: str) -> list[str]:
    return [name for name, ex in facts()["exporters"].items() if metric in ex["metrics"]]


def _metric_labels(metric: str, inv: Inventory, scrape: Scrape | None) -> frozenset[str] | None:
    """Labels a stored series of `metric` can have: the exporter's, plus target labels when not honoured."""
    for name in exporter_of(metric) if scrape is None else [scrape.exporter]:
        labels = facts()["exporters"][name]["metrics"].get(metric)
        if labels is None:
            return None
        base = facts()["exporters"][name].get("base_labels", [])
        targets = set(facts()["target_labels"]) | (scrape.extra_labels if scrape else set())
        return frozenset(labels) | frozenset(base) | frozenset(targets)
    return None


def _recorded_labels(inv: Inventory) -> dict[str, promql.LabelSet]:
    """Output labels of the stack's own recording rules (chart defaults: unknown)."""
    scrapes = {s.exporter: s for s in inv.scrapes}
    out: dict[str, promql.LabelSet] = {}

    def resolve(metric: str) -> promql.LabelSet | None:
        if metric in out:
            return out[metric]
        if metric in inv.records:
            _urn, expr = inv.records[metric]
            out[metric] = promql.LabelSet(open=True)  # guards against cycles
            with contextlib.suppress(promql.PromQLError):
                out[metric] = (
                    promql.output_labels(promql.parse(expr), resolve) if expr else promql.LabelSet(open=True)
                )
            return out[metric]
        for name in exporter_of(metric):
            if name in scrapes:
                labels = _metric_labels(metric, inv, scrapes[name])
                return promql.LabelSet(labels) if labels is not None else None
        return None

    for name in inv.records:
        resolve(name)
    return out


def queries_use_exported_metrics(resources: Sequence[Resource], config: Mapping[str, Any]) -> StackFindings:
    inv = inventory(resources)
    if not inv.queries:
        return
    scrapes = {s.exporter: s for s in inv.scrapes}
    running = sorted(scrapes)
    known = set(inv.records)
    for name in scrapes:
        known |= set(facts()["exporters"].get(name, {}).get("metrics", {}))
    recorded = _recorded_labels(inv)
    for q in inv.queries:
        try:
            expr = promql.parse(q.text)
        except promql.PromQLError as exc:
            yield q.urn, f"{q.where}: not valid PromQL ({exc})"
            continue
        for sel in promql.selectors(expr):
            for pattern in sel.name_patterns:
                if not any(re.fullmatch(pattern, n) for n in known):
                    yield (
                        q.urn,
                        f"{q.where}: {{__name__=~{pattern!r}}} matches no metric this stack records or exports",
                    )
            if sel.name is None:
                continue
            if sel.name not in known:
                elsewhere = [e for e in exporter_of(sel.name) if e not in scrapes]
                hint = (f"it comes from {', '.join(elsewhere)}, which this stack does not run or scrape"
                        if elsewhere else "no exporter in the fact table exports it (a typo, or a renamed metric?)")  # fmt: skip
                yield (
                    q.urn,
                    f"{q.where}: metric {sel.name} is neither recorded by a rule of this stack nor exported by an "
                    f"exporter it runs ({', '.join(running) or 'none'}): {hint}",
                )
                continue
            yield from _label_findings(q, sel, inv, scrapes, recorded)


def _label_findings(
    q: Query,
    sel: promql.Selector,
    inv: Inventory,
    scrapes: Mapping[str, Scrape],
    recorded: Mapping[str, promql.LabelSet],
) -> Iterator[tuple[str | None, str]]:
    assert sel.name is not None
    if sel.name in inv.records:
        have = recorded.get(sel.name)
        if have is not None and not have.open:
            missing = sorted(sel.labels_used - have.known)
            if missing:
                yield q.urn, (f"{q.where}: uses label(s) {', '.join(missing)} of {sel.name}, but that recording rule "
                              f"only keeps {', '.join(sorted(have.known)) or 'no labels'}")  # fmt: skip
        return
    exporter = next(e for e in exporter_of(sel.name) if e in scrapes)
    scrape = scrapes[exporter]
    workload = sel.labels_used & promql.WORKLOAD_LABELS
    if facts()["exporters"][exporter].get("sets_workload_labels") and workload and not scrape.honor_labels:
        yield q.urn, (f"{q.where}: groups or filters {sel.name} by {', '.join(sorted(workload))}, which "
                      f"{exporter} sets itself, but {scrape.where} scrapes it without honorLabels: the values are "
                      f"the exporter's own pod/namespace (the workload's are in exported_*)")  # fmt: skip
    labels = _metric_labels(sel.name, inv, scrape)
    if labels is not None:
        missing = sorted(sel.labels_used - labels - EXTERNAL_LABELS)
        if missing:
            yield q.urn, (f"{q.where}: uses label(s) {', '.join(missing)} that {sel.name} ({exporter}) does not "
                          f"have; it has {', '.join(sorted(labels))}")  # fmt: skip


# ---------------------------------------------------------------------------------------------------------
# alert-routes-match-rules

_MATCHER = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$")


@dataclass(frozen=True)
class Matcher:
    name: str
    op: str
    value: str

    def test(self, value: str) -> bool:
        if self.op in ("=", "!="):
            return (value == self.value) == (self.op == "=")
        return bool(re.fullmatch(self.value, value)) == (self.op == "=~")

    def __str__(self) -> str:
        return f'{self.name}{self.op}"{self.value}"'


def parse_matchers(route: Mapping[str, Any]) -> list[Matcher]:
    """A route's matchers (`matchers:` strings, and the deprecated `match:` / `match_re:` maps)."""
    out: list[Matcher] = []
    for text in as_list(route.get("matchers")):
        for part in _split_matchers(str(text)):
            m = _MATCHER.match(part)
            if not m:
                raise ValueError(f"matcher {part!r} is not `label op value`")
            value = m.group(3)
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = json.loads(value)
            out.append(Matcher(m.group(1), m.group(2), value))
    out += [Matcher(str(k), "=", str(v)) for k, v in (route.get("match") or {}).items()]
    out += [Matcher(str(k), "=~", str(v)) for k, v in (route.get("match_re") or {}).items()]
    return out


def _split_matchers(text: str) -> list[str]:
    text = text.strip()
    if text.startswith("{") and text.endswith("}"):
        return [p for p in re.split(r',(?=(?:[^"]*"[^"]*")*[^"]*$)', text[1:-1]) if p.strip()]
    return [text]


@dataclass
class AlertShape:
    """What Alertmanager may receive from one alert rule: fixed labels, and labels that may come from the
    series (value unknown)."""

    rule: AlertRule
    fixed: Mapping[str, str]
    maybe: promql.LabelSet

    def check(self, m: Matcher) -> bool | None:
        """True/False when decided, None when the value comes from the series."""
        if m.name in self.fixed:
            return m.test(self.fixed[m.name])
        if m.name in EXTERNAL_LABELS or (self.maybe.may_have(m.name) and m.name in _universe()):
            return None
        return m.test("")


@functools.cache
def _universe() -> frozenset[str]:
    """Every label name a series in this platform can carry (fact tables + target labels): a label outside
    it is absent from every alert unless the rule sets it."""
    names = set(facts()["target_labels"]) | EXTERNAL_LABELS | {"le", "pod_template_hash"}
    for ex in facts()["exporters"].values():
        names |= set(ex.get("base_labels", []))
        for labels in ex["metrics"].values():
            names |= set(labels or [])
    return frozenset(names)


def _shapes(inv: Inventory) -> list[AlertShape]:
    recorded = _recorded_labels(inv)
    scrapes = {s.exporter: s for s in inv.scrapes}

    def resolve(metric: str) -> promql.LabelSet | None:
        if metric in recorded:
            return recorded[metric]
        for name in exporter_of(metric):
            if name in scrapes:
                labels = _metric_labels(metric, inv, scrapes[name])
                return promql.LabelSet(labels) if labels is not None else None
        return None

    out = []
    for a in inv.alerts:
        maybe = promql.LabelSet(open=True)
        if a.expr:
            with contextlib.suppress(promql.PromQLError):
                maybe = promql.output_labels(promql.parse(a.expr), resolve)
        out.append(AlertShape(a, {**a.labels, "alertname": a.name}, maybe))
    return out


def _and(results: Sequence[bool | None]) -> bool | None:
    if any(r is False for r in results):
        return False
    return None if any(r is None for r in results) else True


def alertmanager_config(kps: Resource) -> Mapping[str, Any]:
    """The config the chart renders: our `alertmanager.config` merged over the chart default (maps merge,
    lists replace, as Helm merges values)."""
    default = facts()["kube_prometheus_stack_alertmanager_config"]
    ours = kps.get("values", "alertmanager", "config", default={}) or {}
    merged: Mapping[str, Any] = _merge(default, ours)
    return merged


def _merge(base: Any, over: Any) -> Any:
    if isinstance(base, Mapping) and isinstance(over, Mapping):
        return {k: _merge(base.get(k), over[k]) if k in over else base[k] for k in {*base, *over}}
    return over


def alert_routes_match_rules(resources: Sequence[Resource], config: Mapping[str, Any]) -> StackFindings:
    inv = inventory(resources)
    kps = inv.kps
    if kps is None or not _flag(kps.get("values", default={}), "alertmanager", "enabled", default=True):
        return
    cfg = alertmanager_config(kps)
    root = cfg.get("route") or {}
    shapes = _shapes(inv)
    receivers = {str(r.get("name")): r for r in as_list(cfg.get("receivers")) if isinstance(r, Mapping)}
    try:
        routes = list(_walk(root, "route", [], root.get("receiver")))
    except ValueError as exc:
        yield kps.urn, f"Alertmanager config of {display(kps)}: {exc}"
        return
    for path, chain, receiver in routes:
        reach = [s for s in shapes if _reaches(s, chain) is not False]
        if not reach:
            last = chain[-1][0]
            yield kps.urn, (f"Alertmanager {path} ({', '.join(map(str, last)) or 'no matchers'}) -> receiver "
                            f"{receiver!r} matches no alert rule of this stack: no alert sets those labels, so "
                            f"that receiver never hears of them")  # fmt: skip
        needs = _receiver_needs(receivers.get(str(receiver), {}))
        for shape in reach:
            lacking = [n for n in needs if n not in shape.fixed and not shape.maybe.may_have(n)]
            if lacking:
                yield shape.rule.urn, (f"{shape.rule.where} can be routed to {receiver!r} ({path}) without the "
                                       f"label(s) {', '.join(lacking)} that receiver acts on: it would ignore it")  # fmt: skip


Chain = list[
    tuple[list[Matcher], list[list[Matcher]]]
]  # per level: (own matchers, earlier non-continue siblings)


def _walk(
    route: Mapping[str, Any], path: str, chain: Chain, receiver: Any
) -> Iterator[tuple[str, Chain, Any]]:
    earlier: list[list[Matcher]] = []
    for i, child in enumerate(as_list(route.get("routes"))):
        if not isinstance(child, Mapping):
            continue
        own = parse_matchers(child)
        here = [*chain, (own, list(earlier))]
        child_receiver = child.get("receiver", receiver)
        yield f"{path}.routes[{i}]", here, child_receiver
        yield from _walk(child, f"{path}.routes[{i}]", here, child_receiver)
        if not child.get("continue", False):
            earlier.append(own)


def _reaches(shape: AlertShape, chain: Chain) -> bool | None:
    """Can this alert end up at the route at the end of `chain` (False: certainly not)?"""
    results: list[bool | None] = []
    for own, earlier in chain:
        results.append(_and([shape.check(m) for m in own]))
        for sibling in earlier:
            if _and([shape.check(m) for m in sibling]) is True:
                return False  # an earlier sibling always takes it
    return _and(results)


def _receiver_needs(receiver: Mapping[str, Any]) -> list[str]:
    needs: list[str] = []
    for hook in as_list(receiver.get("webhook_configs")):
        url = str(dig(hook, "url", default=""))
        for fragment, labels in RECEIVER_NEEDS.items():
            if fragment in url:
                needs.extend(labels)
    return needs


# ---------------------------------------------------------------------------------------------------------
# exporter-monitors-honor-labels


def exporter_monitors_honor_labels(resources: Sequence[Resource], config: Mapping[str, Any]) -> StackFindings:
    for s in inventory(resources).scrapes:
        if facts()["exporters"].get(s.exporter, {}).get("sets_workload_labels") and not s.honor_labels:
            yield s.urn, (f"{s.where} scrapes {s.exporter}, which labels its series with the pod/namespace of the "
                          "workload they describe; set honorLabels: true, or Prometheus renames them "
                          "exported_pod/exported_namespace and `by (pod)` shows the exporter's own pod")  # fmt: skip


RULES = [
    Rule(
        "queries-use-exported-metrics",
        "reliability",
        "PromQL in alert/recording rules, Grafana dashboards and canary analyses reads only metrics the stack "
        "records or exports, with labels those series have",
        stack_check=queries_use_exported_metrics,
    ),
    Rule(
        "alert-routes-match-rules",
        "reliability",
        "every Alertmanager route can be reached by an alert rule of the stack, with the labels its receiver needs",
        stack_check=alert_routes_match_rules,
    ),
    Rule(
        "exporter-monitors-honor-labels",
        "reliability",
        "exporters that label series with a workload's pod/namespace are scraped with honorLabels",
        stack_check=exporter_monitors_honor_labels,
    ),
]
