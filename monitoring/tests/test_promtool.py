"""Run Prometheus' own checker and unit-test runner on the rules, so PromQL is validated by promtool.

CI installs Debian's `prometheus` package (promtool 2.42); the tests skip only when promtool is absent.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

MONITORING = Path(__file__).resolve().parents[1]
# The rule and dashboard files ship inside the package.
FILES = Path(__file__).resolve().parents[2] / "infra/mlops_infra/components/k8s/monitoring_files"
RULE_FILES = sorted((FILES / "rules").glob("*.yaml"))
TEST_FILES = sorted((MONITORING / "tests").glob("*.test.yaml"))
DASHBOARDS = sorted((FILES / "dashboards").glob("*.json"))

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool not installed (Debian package `prometheus`; .ci/run installs it)",
)


def run_promtool(*args: str | Path, cwd: Path = MONITORING) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )


def test_there_are_rules_and_tests() -> None:
    assert RULE_FILES, "no monitoring/rules/*.yaml"
    assert TEST_FILES, "no monitoring/tests/*.test.yaml"


@needs_promtool
def test_promtool_check_rules() -> None:
    res = run_promtool("check", "rules", "--lint=all", "--lint-fatal", *RULE_FILES)
    assert res.returncode == 0, res.stdout + res.stderr


@needs_promtool
def test_promtool_unit_tests() -> None:
    res = run_promtool("test", "rules", *TEST_FILES)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.count("SUCCESS") == len(TEST_FILES), res.stdout


def test_every_rule_file_has_unit_tests() -> None:
    tested: set[Path] = set()
    for test_file in TEST_FILES:
        doc = yaml.safe_load(test_file.read_text())
        tested.update((test_file.parent / f).resolve() for f in doc["rule_files"])
    assert {p.resolve() for p in RULE_FILES} <= tested


def test_every_alert_has_a_firing_unit_test() -> None:
    """Each alert is asserted to fire at least once (and tests also assert quiet cases)."""
    alerts = {
        r["alert"]
        for f in RULE_FILES
        for g in yaml.safe_load(f.read_text())["groups"]
        for r in g["rules"]
        if "alert" in r
    }
    fired: set[str] = set()
    quiet: set[str] = set()
    for test_file in TEST_FILES:
        for case in yaml.safe_load(test_file.read_text())["tests"]:
            for a in case.get("alert_rule_test", []):
                (fired if a.get("exp_alerts") else quiet).add(a["alertname"])
    assert alerts - fired == set(), "alerts never asserted to fire"
    assert alerts - quiet == set(), "alerts never asserted to stay quiet (e.g. pending within for:)"


NAIVE_SLO_EXPR = """\
histogram_quantile(0.99, sum by (namespace, model, le) (rate(model_request_duration_seconds_bucket[5m])))
  > on (namespace, model) group_left () min by (namespace, model) (model_latency_slo_seconds)
or
histogram_quantile(0.99, sum by (namespace, model, le) (rate(model_request_duration_seconds_bucket[5m])))
  > 0.05
"""


@needs_promtool
def test_latency_unit_test_rejects_the_naive_default(tmp_path: Path) -> None:
    """The `... or p99 > 0.05` form fires for models whose own SLO is looser; the tests must catch it."""
    (tmp_path / "rules").mkdir()
    (tmp_path / "tests").mkdir()
    doc = yaml.safe_load((FILES / "rules" / "serving.yaml").read_text())
    for group in doc["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == "ModelLatencyP99AboveSLO":
                rule["expr"] = NAIVE_SLO_EXPR
    (tmp_path / "rules" / "serving.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    test_file = (MONITORING / "tests" / "serving.test.yaml").read_text()
    (tmp_path / "tests" / "serving.test.yaml").write_text(re.sub(r"- \S*/rules/", "- ../rules/", test_file))
    res = run_promtool("test", "rules", "tests/serving.test.yaml", cwd=tmp_path)
    assert res.returncode != 0
    assert "ModelLatencyP99AboveSLO" in res.stdout + res.stderr
    # The fraud model in prod (SLO 0.2 s, p99 99.5 ms) is the one the naive form gets wrong.
    assert 'namespace="prod"' in res.stdout + res.stderr


# Grafana variables replaced by something PromQL parses, so dashboard queries can be checked too.
GRAFANA_VARS = {
    "$__rate_interval": "5m",
    "$__interval": "1m",
    "$__range": "1h",
}


def dashboard_exprs() -> list[tuple[str, str, str]]:
    """(dashboard file, panel title, expr) for every Prometheus target of every dashboard."""
    out = []

    def walk(panels: list[dict], name: str) -> None:
        for p in panels:
            for t in p.get("targets", []):
                out.append((name, p.get("title", ""), t.get("expr", "")))
            walk(p.get("panels", []), name)

    for path in DASHBOARDS:
        walk(json.loads(path.read_text())["panels"], path.name)
    return out


def substitute_grafana_vars(expr: str) -> str:
    for var, value in GRAFANA_VARS.items():
        expr = expr.replace(var, value)
    return re.sub(r"\$\{?\w+\}?", ".*", expr)  # template variables only appear inside =~ regexes


@needs_promtool
def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    exprs = dashboard_exprs()
    assert exprs
    rules = [
        {"record": f"dashboard:query_{i}:check", "expr": substitute_grafana_vars(e)}
        for i, (_, _, e) in enumerate(exprs)
    ]
    path = tmp_path / "dashboard-queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard-queries", "rules": rules}]}))
    res = run_promtool("check", "rules", path)
    assert res.returncode == 0, res.stdout + res.stderr
