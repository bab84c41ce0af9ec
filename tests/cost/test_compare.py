"""`mlops-infra cost STACK --compare BASE`: the delta of a real change equals the catalog price difference,
against a saved plan and against a git ref evaluated with the base's own code; bad bases fail clearly."""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlops_infra.components import catalog, pricing
from mlops_infra.tooling.cli import main, plan_document
from mlops_infra.tooling.cost.compare import CompareError, compare, to_markdown
from mlops_infra.tooling.cost.estimator import HOURS_PER_MONTH
from mlops_infra.tooling.plan import Plan

from plan_support import ROOT, committed_project_copy, git, load_stack_doc

GPU_GROUP = "gpu-a10g"
EXTRA_NODES = 4


def _bigger_gpu_group(cfg: dict[str, Any]) -> int:
    """Raise the prod GPU group's maxSize by EXTRA_NODES; returns the new maxSize."""
    group = next(g for g in cfg["mlops-platform:nodeGroups"] if g["name"] == GPU_GROUP)
    assert group["instanceTypes"] == ["g5.2xlarge"] and group["capacity"] == "on-demand"
    group["maxSize"] += EXTRA_NODES
    return int(group["maxSize"])


def _write_prod_copy(path: Path) -> int:
    doc = load_stack_doc("prod")
    new_max = _bigger_gpu_group(doc["config"])
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return new_max


def _expected_max_delta(disk_gb: float) -> float:
    """4 more g5.2xlarge on demand for 730 h, plus their root volumes, straight from the price tables."""
    node = (pricing.hourly("g5.2xlarge", spot=False, region="us-east-1") or 0.0) * HOURS_PER_MONTH
    disk = catalog.service_price("ebs-gp3-gb-month").price * disk_gb
    return EXTRA_NODES * (node + disk)


def _gpu_disk_gb(cost_doc: dict[str, Any], new_max: int) -> float:
    ebs = [i for i in cost_doc["items"] if i["urn"].endswith(f"-{GPU_GROUP}") and i["sku"].startswith("ebs-")]
    assert len(ebs) == 1
    return float(ebs[0]["quantity"]["max"]) / new_max


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _check_gpu_delta(diff: dict[str, Any], disk_gb: float) -> None:
    expected = _expected_max_delta(disk_gb)
    assert diff["delta"]["monthly"]["min"] == 0.0
    assert diff["delta"]["monthly"]["expected"] == 0.0  # minSize 0: more headroom costs nothing until used
    assert math.isclose(diff["delta"]["monthly"]["max"], expected, abs_tol=0.02)
    assert [c["change"] for c in diff["changes"]] == ["changed"]
    (change,) = diff["changes"]
    assert change["urn"].endswith(f"::mlops-prod-{GPU_GROUP}")
    assert change["baseSkus"] == change["headSkus"] and "aws:g5.2xlarge:on-demand" in change["headSkus"]
    assert math.isclose(change["delta"]["max"], expected, abs_tol=0.02)
    assert math.isclose(
        diff["head"]["monthly"]["max"] - diff["base"]["monthly"]["max"], expected, abs_tol=0.02
    )


def test_against_saved_plan_json_delta_is_catalog_price_difference(
    stack_plan: Callable[[str], Plan], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = tmp_path / "base-plan.json"
    base.write_text(json.dumps(plan_document(stack_plan("prod"))))
    head = tmp_path / "Pulumi.prod.yaml"
    new_max = _write_prod_copy(head)

    code, out, err = _run(capsys, "cost", str(head), "--compare", str(base), "--json")
    assert code == 0, err
    diff = json.loads(out)
    code, out, _ = _run(capsys, "cost", str(head), "--json")
    _check_gpu_delta(diff, _gpu_disk_gb(json.loads(out), new_max))

    code, md, _ = _run(capsys, "cost", str(head), "--compare", str(base), "--format", "markdown")
    assert code == 0
    assert f"+{diff['delta']['monthly']['max']:,.2f}" in md
    assert f"`mlops-prod-{GPU_GROUP}` | changed" in md
    assert "Budget 16,000.00 USD (max):" in md


@pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")
def test_against_git_ref_runs_the_base_revision(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = tmp_path / "repo"
    committed_project_copy(repo)
    new_max = _write_prod_copy(repo / "stacks" / "Pulumi.prod.yaml")
    monkeypatch.chdir(repo)

    code, out, err = _run(capsys, "cost", "prod", "--compare", "HEAD", "--json")
    assert code == 0, err
    diff = json.loads(out)
    # Again: the base comes from the cache (tooling/base_cache.py), with exactly the same figures.
    [entry] = (repo / ".mlops-infra-cache" / "base-plans").glob("*.json")
    code, again, err = _run(capsys, "cost", "prod", "--compare", "HEAD", "--json")
    assert code == 0 and again == out, err
    assert [entry] == list((repo / ".mlops-infra-cache" / "base-plans").glob("*.json"))
    code, out, _ = _run(capsys, "cost", "prod", "--json")
    _check_gpu_delta(diff, _gpu_disk_gb(json.loads(out), new_max))

    # The base really is the committed revision's code: break its program and the base plan fails.
    (repo / "infra" / "mlops_infra" / "platform" / "stack.py").write_text(
        "raise SystemExit('base code ran')\n"
    )
    git(repo, "commit", "-q", "-am", "broken program")
    (repo / "infra" / "mlops_infra" / "platform" / "stack.py").write_text(
        (ROOT / "infra/mlops_infra/platform/stack.py").read_text()
    )
    code, _, err = _run(capsys, "cost", "prod", "--compare", "HEAD", "--json")
    assert code == 2 and "plan of prod at HEAD failed" in err

    # A stack the base does not have yet: every priced resource is added.
    shutil.copy(repo / "stacks" / "Pulumi.prod.yaml", repo / "stacks" / "Pulumi.prod2.yaml")
    code, out, err = _run(capsys, "cost", "prod2", "--compare", "HEAD~1", "--json")
    assert code == 0, err
    diff = json.loads(out)
    assert diff["base"]["monthly"] == {"min": 0.0, "expected": 0.0, "max": 0.0}
    assert {c["change"] for c in diff["changes"]} == {"added"}
    assert diff["delta"]["monthly"] == diff["head"]["monthly"]


def _item(urn: str, sku: str, lo: float, mid: float, hi: float) -> dict[str, Any]:
    return {"urn": urn, "type": "t", "sku": sku, "monthly": {"min": lo, "expected": mid, "max": hi}}


def _cost(*items: dict[str, Any]) -> dict[str, Any]:
    return {"currency": "USD", "budget": None, "monthly": {}, "items": list(items)}


def test_compare_matches_by_urn_and_sums_lines_of_one_resource() -> None:
    base = _cost(_item("a", "m5", 1, 2, 3), _item("a", "ebs", 1, 1, 1), _item("gone", "x", 5, 5, 5))
    head = _cost(
        _item("a", "m6", 2, 3, 4),
        _item("a", "ebs", 1, 1, 1),
        _item("new", "y", 0, 1, 10),
        _item("same", "z", 1, 1, 1),
    )
    head_as_plan = {"resources": [], "cost": head}
    diff = compare(_cost(*base["items"], _item("same", "z", 1, 1, 1)), head_as_plan)
    by_urn = {c["urn"]: c for c in diff["changes"]}
    assert {u: c["change"] for u, c in by_urn.items()} == {"a": "changed", "gone": "removed", "new": "added"}
    assert by_urn["a"]["delta"] == {"min": 1.0, "expected": 1.0, "max": 1.0}
    assert by_urn["a"]["baseSkus"] == ["m5", "ebs"] and by_urn["a"]["headSkus"] == ["m6", "ebs"]
    assert by_urn["gone"]["delta"] == {"min": -5.0, "expected": -5.0, "max": -5.0}
    assert diff["delta"]["monthly"] == {"min": -4.0, "expected": -3.0, "max": 6.0}
    assert diff["unchanged"] == 1
    md = to_markdown(diff, "dev", "main")
    assert "| **delta** | **-4.00** | **-3.00** | **+6.00** |" in md
    assert "m5, ebs → m6, ebs" in md


def test_same_price_different_sku_is_a_change_and_identical_is_not() -> None:
    diff = compare(_cost(_item("a", "m5", 1, 1, 1)), _cost(_item("a", "m6", 1, 1, 1)))
    assert [c["change"] for c in diff["changes"]] == ["changed"]
    diff = compare(_cost(_item("a", "m5", 1, 1, 1)), _cost(_item("a", "m5", 1, 1, 1)))
    assert diff["changes"] == [] and "No priced resource changed." in to_markdown(diff, "dev", "main")


def test_malformed_documents_are_rejected() -> None:
    with pytest.raises(CompareError, match="no cost items"):
        compare({"resources": []}, _cost())
    with pytest.raises(CompareError, match="malformed cost item"):
        compare(_cost({"urn": "a", "monthly": {"min": 1}}), _cost())


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["cost", "dev", "--compare", "no-such-ref-xyz"], "neither a file nor a commit"),
        (["cost", "dev", "--compare=--upload-pack=x"], "not a git ref or file"),
        (["cost", "dev", "--format", "markdown"], "--format markdown needs --compare"),
    ],
)
def test_bad_base_exits_2_with_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    code, out, err = _run(capsys, *argv)
    assert code == 2 and message in err and "Traceback" not in err and out == ""


def test_base_file_that_is_not_a_cost_document(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    code, _, err = _run(capsys, "cost", "dev", "--compare", str(bad))
    assert code == 2 and "not a `plan --json` or `cost --json` object" in err
    bad.write_text("{not json")
    code, _, err = _run(capsys, "cost", "dev", "--compare", str(bad))
    assert code == 2 and "not a readable JSON file" in err
