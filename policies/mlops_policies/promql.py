"""PromQL analysis for the telemetry rules: which metrics a query reads, which labels it relies on, and which
labels its result can carry. Parsed with `promql-parser` (the Rust parser Greptime ships as a Python wheel),
so functions, durations, strings and label matchers are told apart by the grammar, not by regexes.

Queries from Grafana and Argo Rollouts carry template syntax; `normalise` turns it into plain PromQL first.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import promql_parser as pp

# Grafana's built-in interval variables stand where a duration goes ([$__rate_interval]).
_GRAFANA_INTERVAL = re.compile(r"\$\{?__(?:rate_interval|interval|range)(?:_ms|_s)?\}?")
_GRAFANA_VAR = re.compile(r"\$\{?[A-Za-z_]\w*(?::\w+)?\}?")
_LABEL_VALUES = re.compile(r"^\s*label_values\((.*),\s*[A-Za-z_]\w*\s*\)\s*$", re.S)

# Functions whose result keeps no label of their input (scalar or constant results).
_NO_LABELS = {"vector", "time", "scalar", "pi", "minute", "hour", "day_of_week", "day_of_month", "days_in_month",
              "month", "year", "day_of_year"}  # fmt: skip
_KEEP_INPUT_AGGS = {"topk", "bottomk", "limitk", "limit_ratio"}
WORKLOAD_LABELS = frozenset({"namespace", "pod", "container"})


class PromQLError(ValueError):
    """A query that does not parse; the message is the parser's."""


def normalise(query: str) -> str:
    """Plain PromQL from a Grafana target or variable query (`label_values(sel, label)` -> `sel`).

    Interval variables become `5m`; other `$variables` only make sense inside label-matcher strings, where
    they stay as text. Argo Rollouts' `{{args.x}}` placeholders sit inside strings too.
    """
    match = _LABEL_VALUES.match(query)
    if match:
        query = match.group(1)
    query = _GRAFANA_INTERVAL.sub("5m", query)
    return _outside_strings(query, lambda text: _GRAFANA_VAR.sub("0", text))


def _outside_strings(text: str, change: Callable[[str], str]) -> str:
    parts = re.split(r'("(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`)', text)
    return "".join(p if i % 2 else change(p) for i, p in enumerate(parts))


def parse(query: str) -> pp.Expr:
    try:
        return pp.parse(normalise(query))
    except Exception as exc:  # the binding raises its own exception types
        raise PromQLError(str(exc).splitlines()[0]) from None


@dataclass(frozen=True)
class Selector:
    """One vector selector: the metric name (None for `{__name__=~...}`), name regexes, and the labels the
    query relies on for this series (its own matchers plus enclosing by/on/group labels)."""

    name: str | None
    name_patterns: tuple[str, ...]
    labels_used: frozenset[str]


def selectors(expr: pp.Expr) -> list[Selector]:
    found: list[Selector] = []
    _collect(expr, frozenset(), found)
    return found


def _names(modifier: object) -> frozenset[str]:
    labels = getattr(modifier, "labels", None) or []
    return frozenset(str(label) for label in labels)


def _collect(node: pp.Expr, context: frozenset[str], out: list[Selector]) -> None:
    """Walk the tree, carrying the labels enclosing aggregations and joins rely on into each selector."""
    if isinstance(node, pp.VectorSelector):
        name = node.name or None
        patterns: list[str] = []
        used = set(context)
        for m in node.matchers.matchers:
            if m.name == "__name__":
                if m.op in (pp.MatchOp.Equal,):
                    name = m.value
                elif m.op == pp.MatchOp.Re:
                    patterns.append(m.value)
            else:
                used.add(m.name)
        out.append(Selector(name, tuple(patterns), frozenset(used)))
    elif isinstance(node, pp.MatrixSelector):
        _collect(node.vector_selector, context, out)
    elif isinstance(node, pp.AggregateExpr):
        agg = node.modifier
        inner: frozenset[str]
        if agg is None:
            inner = frozenset()
        elif agg.type == pp.AggModifierType.By:
            inner = _names(agg)
        else:
            inner = context | _names(agg)
        if str(node.op) in _KEEP_INPUT_AGGS:
            inner = inner | context
        _collect(node.expr, inner, out)
        if node.param is not None:
            _collect(node.param, frozenset(), out)
    elif isinstance(node, pp.BinaryExpr):
        binmod = node.modifier
        matching = (
            _names(binmod.matching) if binmod is not None and binmod.matching is not None else frozenset()
        )
        include = (
            frozenset(getattr(binmod, "group_labels", None) or []) if binmod is not None else frozenset()
        )
        card = getattr(binmod, "card", None)
        # The result keeps the labels of the "many" side (or of the left side, one-to-one): enclosing
        # by/on labels reach that side; the other side only needs the matching and included labels.
        if card == pp.VectorMatchCardinality.OneToMany:
            lhs_ctx, rhs_ctx = matching | include, context | matching
        elif card == pp.VectorMatchCardinality.ManyToOne:
            lhs_ctx, rhs_ctx = context | matching, matching | include
        else:
            lhs_ctx = rhs_ctx = context | matching
        _collect(node.lhs, lhs_ctx, out)
        _collect(node.rhs, rhs_ctx, out)
    elif isinstance(node, pp.Call):
        fname = node.func.name
        for arg in node.args:
            if isinstance(arg, pp.StringLiteral):
                continue
            ctx = context
            if fname in ("label_replace", "label_join") and len(node.args) >= 3:
                dst = _string(node.args[1])
                sources = (
                    {_string(a) for a in node.args[3:]} if fname == "label_join" else {_string(node.args[3])}
                )
                ctx = (context - {dst}) | {s for s in sources if s}
            _collect(arg, ctx, out)
    elif isinstance(node, (pp.ParenExpr | pp.UnaryExpr, pp.SubqueryExpr)):
        _collect(node.expr, context, out)


def _string(node: pp.Expr) -> str:
    return str(node.val) if isinstance(node, pp.StringLiteral) else ""


@dataclass(frozen=True)
class LabelSet:
    """Labels a query's result can carry: `known` for certain-or-possible names; `open` when more names may
    come from series whose labels are not known."""

    known: frozenset[str] = field(default_factory=frozenset)
    open: bool = False

    def union(self, other: LabelSet) -> LabelSet:
        return LabelSet(self.known | other.known, self.open or other.open)

    def may_have(self, label: str) -> bool:
        return self.open or label in self.known


Resolve = Callable[[str], "LabelSet | None"]


def output_labels(expr: pp.Expr, resolve: Resolve) -> LabelSet:
    """The label names a result series can have, following Prometheus' evaluation rules
    (one-to-one `on(...)` keeps only the matching labels, `group_left` keeps the left side plus the
    included labels, `by` keeps exactly its labels, ...). `resolve(metric)` gives a metric's labels."""
    node = expr
    if isinstance(node, pp.VectorSelector):
        name = node.name or next((m.value for m in node.matchers.matchers if m.name == "__name__"
                                  and m.op == pp.MatchOp.Equal), None)  # fmt: skip
        found = resolve(name) if name else None
        return found if found is not None else LabelSet(open=True)
    if isinstance(node, pp.MatrixSelector):
        return output_labels(node.vector_selector, resolve)
    if isinstance(node, pp.ParenExpr | pp.UnaryExpr | pp.SubqueryExpr):
        return output_labels(node.expr, resolve)
    if isinstance(node, pp.NumberLiteral | pp.StringLiteral):
        return LabelSet()
    if isinstance(node, pp.AggregateExpr):
        inner = output_labels(node.expr, resolve)
        op, mod = str(node.op), node.modifier
        if op in _KEEP_INPUT_AGGS:
            return inner
        extra = (
            frozenset({_string(node.param)})
            if op == "count_values" and node.param is not None
            else frozenset()
        )
        if mod is None:
            return LabelSet(extra)
        if mod.type == pp.AggModifierType.By:
            return LabelSet(_names(mod) | extra)
        return LabelSet((inner.known - _names(mod)) | extra, inner.open)
    if isinstance(node, pp.Call):
        fname = node.func.name
        vectors = [a for a in node.args if not isinstance(a, pp.StringLiteral | pp.NumberLiteral)]
        if fname in _NO_LABELS or not vectors:
            return LabelSet()
        if fname in ("absent", "absent_over_time"):
            sel = vectors[0].vector_selector if isinstance(vectors[0], pp.MatrixSelector) else vectors[0]
            if isinstance(sel, pp.VectorSelector):
                return LabelSet(frozenset(m.name for m in sel.matchers.matchers
                                          if m.op == pp.MatchOp.Equal and m.name != "__name__"))  # fmt: skip
            return LabelSet()
        inner = output_labels(vectors[-1] if fname == "histogram_quantile" else vectors[0], resolve)
        if fname == "histogram_quantile":
            return LabelSet(inner.known - {"le"}, inner.open)
        if fname in ("label_replace", "label_join"):
            return LabelSet(inner.known | {_string(node.args[1])}, inner.open)
        return inner
    if isinstance(node, pp.BinaryExpr):
        lhs, rhs = output_labels(node.lhs, resolve), output_labels(node.rhs, resolve)
        op = str(node.op).lower()
        if _is_scalar(node.lhs):
            return rhs
        if _is_scalar(node.rhs):
            return lhs
        if op == "or":
            return lhs.union(rhs)
        if op in ("and", "unless"):
            return lhs
        binmod = node.modifier
        card = getattr(binmod, "card", None)
        include = (
            frozenset(getattr(binmod, "group_labels", None) or []) if binmod is not None else frozenset()
        )
        if card == pp.VectorMatchCardinality.ManyToOne:
            return LabelSet(lhs.known | include, lhs.open)
        if card == pp.VectorMatchCardinality.OneToMany:
            return LabelSet(rhs.known | include, rhs.open)
        matching = binmod.matching if binmod is not None else None
        if matching is not None and matching.type == pp.LabelModifierType.Include:
            return LabelSet(_names(matching))
        if matching is not None:
            return LabelSet(lhs.known - _names(matching), lhs.open)
        return lhs
    return LabelSet(open=True)


def _is_scalar(node: pp.Expr) -> bool:
    if isinstance(node, pp.NumberLiteral):
        return True
    if isinstance(node, pp.ParenExpr | pp.UnaryExpr):
        return _is_scalar(node.expr)
    if isinstance(node, pp.Call):
        return "scalar" in str(node.func.return_type).lower()
    if isinstance(node, pp.BinaryExpr):
        return _is_scalar(node.lhs) and _is_scalar(node.rhs)
    return False


def metric_names(expr: pp.Expr) -> Iterator[str]:
    for s in selectors(expr):
        if s.name:
            yield s.name
