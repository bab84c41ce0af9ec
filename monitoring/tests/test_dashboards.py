"""Grafana dashboards: loadable JSON with stable uids, a Prometheus datasource variable, sane panels.

The uids are part of the interface (links, bookmarks, the provisioning ConfigMaps), hence pinned here.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import pytest

MONITORING = Path(__file__).resolve().parents[1]
# The rule and dashboard files ship inside the package.
FILES = Path(__file__).resolve().parents[2] / "infra/mlops_infra/components/k8s/monitoring_files"
DASHBOARDS = sorted((FILES / "dashboards").glob("*.json"))
EXPECTED_UIDS = {
    "accelerators.json": "mlops-accelerators",
    "gpu.json": "mlops-gpu",
    "neuron.json": "mlops-neuron",
    "cost.json": "mlops-cost",
    "model-drift.json": "mlops-model-drift",
    "model-serving.json": "mlops-model-serving",
}
BUILT_IN_VARS = {"__rate_interval", "__interval", "__range", "__interval_ms", "__range_s", "datasource"}


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def all_panels(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for p in panels:
        out.append(p)
        out.extend(all_panels(p.get("panels", [])))
    return out


def test_dashboards_and_uids_are_the_expected_ones() -> None:
    got = {p.name: load(p)["uid"] for p in DASHBOARDS}
    assert got == EXPECTED_UIDS
    assert len(set(got.values())) == len(got)
    assert all(len(uid) <= 40 and re.fullmatch(r"[a-z0-9-]+", uid) for uid in got.values())


def test_dashboards_are_up_to_date_with_their_generator() -> None:
    spec = importlib.util.spec_from_file_location("build_dashboards", MONITORING / "build_dashboards.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rendered = module.render()
    assert set(rendered) == {p.name for p in DASHBOARDS}
    for path in DASHBOARDS:
        assert path.read_text() == rendered[path.name], (
            f"{path.name} stale: run monitoring/build_dashboards.py"
        )


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_structure(path: Path) -> None:
    doc = load(path)
    assert 36 <= doc["schemaVersion"] <= 41
    assert doc["title"] and doc["panels"]
    variables = {v["name"]: v for v in doc["templating"]["list"]}
    ds = variables["datasource"]
    assert (ds["type"], ds["query"]) == ("datasource", "prometheus")
    for v in variables.values():
        if v["type"] == "query":
            assert v["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            assert v["definition"].startswith("label_values(")
            assert v["query"]["query"] == v["definition"]

    panels = all_panels(doc["panels"])
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    for p in panels:
        pos = p["gridPos"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24 and pos["h"] > 0, p["title"]
        if p["type"] in ("row", "text"):
            continue
        assert p["targets"], f"{p['title']}: no targets"
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        ref_ids = [t["refId"] for t in p["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), p["title"]
        for t in p["targets"]:
            assert t.get("expr", "").strip(), f"{p['title']}: target without expr"
            assert t["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            used = set(re.findall(r"\$\{?(\w+)\}?", t["expr"]))
            assert used <= set(variables) | BUILT_IN_VARS, f"{p['title']}: undefined {used - set(variables)}"


def test_no_panels_overlap() -> None:
    for path in DASHBOARDS:
        cells: dict[tuple[int, int], str] = {}
        for p in all_panels(load(path)["panels"]):
            g = p["gridPos"]
            for x in range(g["x"], g["x"] + g["w"]):
                for y in range(g["y"], g["y"] + g["h"]):
                    assert (x, y) not in cells, f"{path.name}: {p['title']} overlaps {cells[(x, y)]}"
                    cells[(x, y)] = p["title"]


def test_model_dashboards_have_a_model_variable() -> None:
    for name in ("model-serving.json", "model-drift.json"):
        variables = {v["name"]: v for v in load(FILES / "dashboards" / name)["templating"]["list"]}
        assert "model" in variables
        assert variables["model"]["definition"].endswith(", model)")
