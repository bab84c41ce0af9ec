"""scripts/chart_keys.py on small charts built here: which key paths it records as defined, which as open,
how subcharts are routed, what the fact file holds, and clear errors for bad input."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from mlops_infra.tooling import chart_keys

from plan_support import ROOT


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("chart_keys_script", ROOT / "scripts" / "chart_keys.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


script = _load_script()

VALUES = """\
image:
  repository: example/app
  tag: "1.0"
nodeSelector: {}
tolerations: []
storageClass: null
annotations:
  team: ml
feature:
  enabled: false
config:
  level: info
extraPorts: []
monitor:
  enabled: true
passed:
  a: 1
sub:
  replicas: 1
"""

TEMPLATE = """\
image: {{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
name: {{ .Release.Name }}
{{/* .Values.commentedOut is documentation, not a read */}}
{{- with .Values.podSecurity }}
runAsUser: {{ .runAsUser }}
group: {{ $.Values.deep.key }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector: {{ toYaml . | nindent 2 }}
{{- end }}
{{- range .Values.extraPorts }}
- name: {{ .name }}
{{- end }}
{{- range $k, $v := .Values.env }}
- {{ $k }}: {{ $v.value }}
{{- end }}
server: {{ index .Values "grafana.ini" "server" "domain" }}
annotations: {{ .Values.annotations | toYaml | nindent 2 }}
{{- if .Values.feature.enabled }}
on: true
{{- else }}
fallback: {{ .Values.feature.fallback }}
{{- end }}
{{- $cfg := .Values.config }}
level: {{ $cfg.level }} {{ $cfg.format | quote }}
extra: {{ tpl .Values.extraConfig . }}
{{ include "app.monitor" .Values.monitor }}
{{ include "app.other" (dict "values" .Values.passed "root" $) }}
{{- if hasKey .Values.probe "path" }}{{ end }}
"""

HELPERS = """\
{{- define "app.monitor" -}}
interval: {{ .interval | default "30s" }}
{{- if .enabled }}enabled{{ end }}
{{- end -}}
{{- define "app.other" -}}
{{ toYaml .values }}
{{- end -}}
"""

CHART = """\
apiVersion: v2
name: app
version: 1.2.3
appVersion: "4.5"
dependencies:
  - name: sub
    version: 0.1.0
    condition: sub.enabled
  - name: exporter
    alias: metrics
    version: 2.0.0
    repository: https://charts.example.invalid
    condition: metrics.enabled,exporters.enabled
    tags: [monitoring]
"""


def _write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


@pytest.fixture
def chart(tmp_path: Path) -> Path:
    return _write(
        tmp_path / "app",
        {
            "Chart.yaml": CHART,
            "values.yaml": VALUES,
            "templates/deployment.yaml": TEMPLATE,
            "templates/_helpers.tpl": HELPERS,
            "charts/sub/Chart.yaml": "apiVersion: v2\nname: sub\nversion: 0.1.0\n",
            "charts/sub/values.yaml": "replicas: 1\nglobal:\n  registry: ''\n",
            "charts/sub/templates/x.yaml": "{{ .Values.replicas }} {{ .Values.global.registry }}",
        },
    )


def _facts(chart: Path, tmp_path: Path) -> Any:
    return script.chart_facts(chart, tmp_path / "scratch")


def test_values_yaml_paths_and_free_form_defaults(chart: Path, tmp_path: Path) -> None:
    facts = _facts(chart, tmp_path)
    assert {("image",), ("image", "repository"), ("image", "tag"), ("annotations", "team")} <= facts.keys
    # {} / [] / null defaults leave their children to the user
    assert {("nodeSelector",), ("tolerations",), ("storageClass",), ("extraPorts",)} <= facts.open
    assert ("image",) not in facts.open and ("image", "tag") not in facts.open


def test_template_reads_count_as_defined(chart: Path, tmp_path: Path) -> None:
    facts = _facts(chart, tmp_path)
    expected = {
        ("podSecurity", "runAsUser"),  # `.runAsUser` inside `with .Values.podSecurity`
        ("deep", "key"),  # `$.Values` inside a `with`
        ("grafana.ini", "server", "domain"),  # index with literal keys (one holds a dot)
        ("feature", "fallback"),  # in an else branch
        ("config", "format"),  # through a variable bound to .Values.config
        ("monitor", "interval"),  # a named template called with .Values.monitor
        ("probe", "path"),  # hasKey
        ("extraConfig",),
    }
    assert expected <= facts.keys
    # not value paths: built-in objects, fields of range elements, comments
    assert not {p for p in facts.keys if p[0] in {"Release", "Chart", "name", "commentedOut", "value"}}


def test_wholesale_uses_are_open_and_plain_reads_are_not(chart: Path, tmp_path: Path) -> None:
    facts = _facts(chart, tmp_path)
    assert {
        ("annotations",),
        ("extraConfig",),
        ("env",),
        ("passed",),
    } <= facts.open  # toYaml, tpl, range, dict
    assert ("nodeSelector",) in facts.open  # `toYaml .` inside `with`
    assert not {("monitor",), ("config",), ("feature",), ("image",), ("podSecurity",)} & facts.open


def test_subcharts_are_routed_by_alias_and_conditions_are_keys(chart: Path, tmp_path: Path) -> None:
    facts = _facts(chart, tmp_path)
    assert facts.subcharts == [
        {
            "key": "metrics",
            "chart": "exporter",
            "version": "2.0.0",
            "condition": "metrics.enabled,exporters.enabled",
        },
        {"key": "sub", "chart": "app/sub", "version": "0.1.0", "condition": "sub.enabled"},
    ]
    assert {
        ("sub", "enabled"),
        ("metrics", "enabled"),
        ("exporters", "enabled"),
        ("tags", "monitoring"),
    } <= facts.keys


def test_fact_files_parent_and_vendored_subchart(chart: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    source = {
        "repo": "https://example.invalid/charts",
        "ref": "app-1.2.3",
        "commit": "abc",
        "path": "charts/app",
    }
    written = script.write_facts(chart, source, out)
    assert [p.name for p in written] == ["app-1.2.3.json", "app.sub-0.1.0.json"]
    doc = json.loads(written[0].read_text())
    assert doc["chart"] == "app" and doc["version"] == "1.2.3" and doc["appVersion"] == "4.5"
    assert doc["source"] == source and doc["generatedBy"] == "scripts/chart_keys.py"
    assert doc["keys"] == sorted(doc["keys"]) and ["image", "tag"] in doc["keys"]
    sub = json.loads(written[1].read_text())
    assert sub["chart"] == "app/sub" and sub["source"]["path"] == "charts/app/charts/sub"
    assert ["global", "registry"] in sub["keys"]
    # no upstream text: only key names, versions and the source reference
    assert "example/app" not in written[0].read_text() and "info" not in written[0].read_text()
    # the packaged loader reads what the script writes
    parsed = chart_keys._parse(written[0].name, written[0].read_text())
    assert parsed.subcharts == {"metrics": ("exporter", "2.0.0"), "sub": ("app/sub", "0.1.0")}
    assert ("image", "tag") in parsed.keys and ("nodeSelector",) in parsed.open


def test_cli_reads_a_tag_of_a_git_repository(chart: Path, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "charts").mkdir(parents=True)
    chart.rename(repo / "charts" / "app")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "chart"], check=True)
    subprocess.run([*git, "tag", "app-1.2.3"], check=True)
    commit = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout
    out = tmp_path / "out"
    argv = [
        "--git",
        str(repo),
        "--ref",
        "app-1.2.3",
        "--path",
        "charts/app",
        "--source",
        "https://x.invalid/r",
    ]
    assert script.main([*argv, "--out", str(out)]) == 0
    doc = json.loads((out / "app-1.2.3.json").read_text())
    assert doc["source"] == {
        "repo": "https://x.invalid/r",
        "ref": "app-1.2.3",
        "commit": commit.strip(),
        "path": "charts/app",
    }


def test_cli_errors_are_one_line_not_tracebacks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert script.main([str(tmp_path), "--source", "x", "--out", str(tmp_path / "out")]) == 2
    assert "Chart.yaml: cannot be read" in capsys.readouterr().err
    (tmp_path / "Chart.yaml").write_text("name: [unclosed\n")
    assert script.main([str(tmp_path), "--source", "x", "--out", str(tmp_path / "out")]) == 2
    assert "not valid YAML" in capsys.readouterr().err
    missing = ["--git", str(tmp_path), "--ref", "v9", "--path", "charts/app", "--source", "x"]
    assert script.main([*missing, "--out", str(tmp_path / "out")]) == 2
    assert "git rev-parse" in capsys.readouterr().err
