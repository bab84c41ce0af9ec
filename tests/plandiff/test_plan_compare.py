"""`plan STACK --compare BASE`: the reference change (prod's serving replicas doubled) shows the Rollout and HPA
inputs that change, as the committed golden PR comment; replacements are flagged from the fact table; the base
is a saved plan or a git ref run with its own code; bad input exits 2 in one line.

An intended change of the comment (a price, a canary step): rerun with MLOPS_UPDATE_GOLDEN=1 to rewrite the
golden file, then review its diff."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mlops_infra.tooling import plan_diff, plan_report
from mlops_infra.tooling.cli import main, plan_document
from mlops_infra.tooling.cost import compare
from mlops_infra.tooling.plan import Plan

from plan_support import ROOT, committed_project_copy, load_stack_doc, reference_plan

GOLDEN = Path(__file__).parent / "golden" / "plan-compare-prod-serving-replicas.md"
ROLLOUT = "kubernetes:argoproj.io/v1alpha1:Rollout"
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"


def _double_serving(cfg: dict[str, Any]) -> None:
    serving = cfg["mlops-platform:workloads"]["serving"]
    assert serving["replicas"] == 3
    serving["replicas"] = 6


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def doubled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of prod's stack file with the serving replicas doubled."""
    import yaml

    doc = load_stack_doc("prod")
    _double_serving(doc["config"])
    path = tmp_path_factory.mktemp("doubled") / "Pulumi.prod.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def test_doubling_serving_replicas_matches_the_golden_pr_comment(
    mutated_plan: Callable[..., Plan],
) -> None:
    base = plan_document(reference_plan("prod"))
    head = plan_document(mutated_plan("prod", _double_serving))
    diff = plan_diff.diff_plans(base, head)
    markdown = plan_report.to_markdown(diff, compare.compare(base, head), "prod", "origin/main")
    if os.environ.get("MLOPS_UPDATE_GOLDEN") == "1":
        GOLDEN.write_text(markdown)
    assert markdown == GOLDEN.read_text(), (
        "the PR comment of the reference change differs from tests/plandiff/golden/"
        f"{GOLDEN.name}; if the change is intended, write the new output there:\n{markdown}"
    )


def test_doubling_serving_replicas_changes_exactly_the_rollout_and_hpa(
    mutated_plan: Callable[..., Plan],
) -> None:
    base = plan_document(reference_plan("prod"))
    diff = plan_diff.diff_plans(base, plan_document(mutated_plan("prod", _double_serving)))
    by_type = {r["type"]: r for r in diff["resources"]}
    assert set(by_type) == {ROLLOUT, HPA}
    assert diff["counts"] == {
        "create": 0,
        "update": 2,
        "replace": 0,
        "delete": 0,
        "same": len(base["resources"]) - 2,
    }
    rollout = {e["path"]: (e["old"], e["new"]) for e in by_type[ROLLOUT]["diffs"]}
    assert rollout["spec.replicas"] == ("3", "6")
    assert by_type[HPA]["diffs"] == [
        {
            "path": "spec.minReplicas",
            "kind": "update",
            "old": "3",
            "new": "6",
            "replaces": False,
            "mayReplace": False,
        }
    ]
    assert not any(e["replaces"] for r in diff["resources"] for e in r["diffs"])


def test_a_new_instance_type_replaces_the_node_group_and_says_so(mutated_plan: Callable[..., Plan]) -> None:
    """EKS node groups cannot change instance types in place (terraform-provider-aws: ForceNew)."""

    def bigger(cfg: dict[str, Any]) -> None:
        group = next(g for g in cfg["mlops-platform:nodeGroups"] if g["name"] == "gpu-a10g")
        group["instanceTypes"] = ["g5.4xlarge"]

    base = plan_document(reference_plan("prod"))
    head = plan_document(mutated_plan("prod", bigger))
    diff = plan_diff.diff_plans(base, head)
    [node_group] = [r for r in diff["resources"] if r["type"] == "aws:eks/nodeGroup:NodeGroup"]
    assert node_group["change"] == "replace"
    [entry] = [e for e in node_group["diffs"] if e["path"].startswith("instanceTypes")]
    assert (entry["old"], entry["new"], entry["replaces"]) == ('"g5.2xlarge"', '"g5.4xlarge"', True)
    cost = compare.compare(base, head)
    text = plan_report.to_markdown(diff, cost, "prod", "origin/main")
    assert "**1 resource(s) will be replaced**" in text
    assert '~ instanceTypes[0]: "g5.2xlarge" => "g5.4xlarge"  (forces replacement)' in text
    assert "-/+ aws:eks/nodeGroup:NodeGroup  mlops-prod-gpu-a10g  (replace)" in text
    assert "aws:g5.4xlarge:on-demand" in text  # the cost section sits in the same comment


def test_cli_against_a_saved_plan_text_json_and_markdown(
    doubled: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = tmp_path / "main.json"
    base.write_text(json.dumps(plan_document(reference_plan("prod"))))
    code, out, err = _run(capsys, "plan", str(doubled), "--compare", str(base), "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["stack"] == "prod" and doc["base"] == "main.json"
    assert {r["type"] for r in doc["resources"]} == {ROLLOUT, HPA}
    assert doc["cost"]["delta"]["monthly"] == {"min": 0.0, "expected": 0.0, "max": 0.0}
    code, out, _ = _run(capsys, "plan", str(doubled), "--compare", str(base))
    assert code == 0
    assert out.splitlines()[
        0
    ] == "Plan of prod vs main.json: 0 to create, 2 to update, 0 to replace, 0 to delete, " + (
        f"{len(reference_plan('prod').resources) - 2} unchanged"
    )
    assert "      ~ spec.minReplicas: 3 => 6" in out
    code, out, _ = _run(capsys, "plan", str(doubled), "--compare", str(base), "--format", "markdown")
    assert code == 0 and out.startswith("<!-- mlops-infra-plan:prod -->\n")
    assert "#### Monthly cost of `prod` vs `main.json`" in out


@pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")
def test_against_a_git_ref_the_base_runs_its_own_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same base resolution as `cost --compare`: the committed revision is evaluated, not this tree."""
    import yaml

    repo = tmp_path / "repo"
    committed_project_copy(repo)
    doc = load_stack_doc("prod")
    _double_serving(doc["config"])
    (repo / "stacks" / "Pulumi.prod.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    monkeypatch.chdir(repo)
    code, out, err = _run(capsys, "plan", "prod", "--compare", "HEAD", "--json")
    assert code == 0, err
    changed = {r["type"]: r for r in json.loads(out)["resources"]}
    assert {t for t in changed if not t.startswith("docker:")} == {ROLLOUT, HPA}
    # The head here is this checkout's installed code, whose Docker build contexts are in this checkout,
    # not in the temporary repository (in CI both are the same checkout); nothing else of the images differs.
    for image in (r for t, r in changed.items() if t.startswith("docker:")):
        assert {e["path"] for e in image["diffs"]} == {"build.context", "build.dockerfile"}
    # A stack the base does not have: everything is created.
    shutil.copy(repo / "stacks" / "Pulumi.prod.yaml", repo / "stacks" / "Pulumi.prod2.yaml")
    code, out, err = _run(capsys, "plan", "prod2", "--compare", "HEAD", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["base"] == "HEAD (no such stack)"
    assert result["counts"]["create"] == sum(1 for _ in reference_plan("prod").resources)
    assert {r["change"] for r in result["resources"]} == {"create"}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["plan", "dev", "--format", "markdown"], "--format markdown needs --compare BASE"),
        (["plan", "dev", "--format", "svg"], "--format svg needs --graph"),
        (["plan", "dev", "--graph", "--compare", "main"], "separate views"),
        (["plan", "dev", "--graph", "--json"], "not JSON"),
        (["plan", "dev", "--compare", "no-such-ref-xyz"], "neither a file nor a commit"),
        (["plan", "dev", "--compare=--upload-pack=x"], "not a git ref or file"),
    ],
)
def test_bad_flags_and_bases_exit_2_in_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    code, out, err = _run(capsys, *argv)
    assert code == 2 and message in err and out == "", err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_a_cost_only_base_is_refused_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    base = tmp_path / "cost.json"
    base.write_text(json.dumps(plan_document(reference_plan("dev"))["cost"]))
    code, _, err = _run(capsys, "plan", "dev", "--compare", str(base))
    assert code == 2 and "needs a `plan --json` document" in err


def test_base_paths_read_as_if_evaluated_in_this_checkout(tmp_path: Path) -> None:
    """A base evaluated in a temporary export names its paths there; they are moved to this checkout's, so a
    Docker build context does not show as changed on every pull request."""
    from mlops_infra.tooling.base_plan import _relocated

    old, new = str(tmp_path / "export"), str(tmp_path / "checkout")
    doc = {"build": {"context": f"{old}/workloads/serving", "tags": [old, f"{old}x/y", "other"]}, "n": 3}
    assert _relocated(doc, old, new) == {
        "build": {"context": f"{new}/workloads/serving", "tags": [new, f"{old}x/y", "other"]},
        "n": 3,
    }
