"""`plan STACK --graph`: the committed architecture pictures are current (their DOT equals a fresh one, and the
SVG was drawn from that DOT), and the legibility rules keep every dependency the picture claims."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mlops_infra.tooling.cli import main
from mlops_infra.tooling.plan import Plan, plan_json
from mlops_infra.tooling.plan_graph import to_dot

from plan_support import ROOT, reference_plan

DOCS = ROOT / "docs"
PICTURED = ["prod", "prod-gcp"]


@pytest.mark.parametrize("stack", PICTURED)
def test_committed_dot_is_current(stack: str) -> None:
    committed = (DOCS / f"architecture-{stack}.dot").read_text()
    assert to_dot(plan_json(reference_plan(stack))) == committed, (
        f"docs/architecture-{stack}.dot is stale: run `make graphs` and commit docs/architecture-*"
    )


def _structure(dot: str) -> tuple[set[str], set[tuple[str, str]]]:
    nodes = set(re.findall(r"^\s*(n\d+) \[label=", dot, re.MULTILINE))
    edges = set(re.findall(r"^\s*(n\d+) -> (n\d+)", dot, re.MULTILINE))
    return nodes, edges


@pytest.mark.parametrize("stack", PICTURED)
def test_committed_svg_was_drawn_from_the_committed_dot(stack: str) -> None:
    """SVG bytes differ between Graphviz versions; its node and edge titles do not."""
    nodes, edges = _structure((DOCS / f"architecture-{stack}.dot").read_text())
    svg = (DOCS / f"architecture-{stack}.svg").read_text()
    titles = set(re.findall(r"<title>([^<]*)</title>", svg))
    assert {t for t in titles if re.fullmatch(r"n\d+", t)} == nodes
    assert {tuple(t.split("&#45;&gt;")) for t in titles if "&#45;&gt;" in t} == edges


def test_a_changed_stack_makes_the_committed_dot_stale(mutated_plan: Callable[..., Plan]) -> None:
    """The staleness check catches a real change: one more node group in prod is another cluster."""

    def one_more_group(cfg: dict[str, Any]) -> None:
        groups = cfg["mlops-platform:nodeGroups"]
        extra = dict(next(g for g in groups if g["name"] == "gpu-a10g"), name="gpu-extra")
        groups.append(extra)

    fresh = to_dot(plan_json(mutated_plan("prod", one_more_group)))
    assert fresh != (DOCS / "architecture-prod.dot").read_text()
    assert "mlops-prod-gpu-extra" in fresh


def _r(
    urn: str, parent: str | None, deps: tuple[str, ...] = (), custom: bool = True, type_: str = "aws:x/y:Y"
) -> dict[str, Any]:
    return {
        "urn": urn,
        "type": type_ if custom else "mlops:test:Comp",
        "name": urn,
        "parent": parent,
        "custom": custom,
        "dependencies": list(deps),
    }


def test_folding_reduction_and_collapsing_on_a_small_plan() -> None:
    doc = {
        "stack": "t",
        "resources": [
            _r("comp", None, custom=False),
            _r("a", "comp"),
            _r("b", "comp", ("a",)),
            _r("c", "comp", ("a", "b")),  # a -> c is implied by a -> b -> c
            *(_r(f"tag{i}", "comp", ("b",), type_="aws:autoscaling/tag:Tag") for i in range(4)),
            _r("other", None, custom=False),
            _r("d", "other", ("a", "b", "c", "tag0", "tag1", "tag2", "tag3")),  # depends on all of comp
            _r("e", "a"),  # parented to a resource: drawn in that resource's component
        ],
    }
    dot = to_dot(doc)
    label = dict(re.findall(r"(n\d+) \[label=\"([^\"]*)\"", dot))
    by_label = {v.split("\\n")[0]: k for k, v in label.items()}
    edges = set(re.findall(r"(n\d+) -> (n\d+)( \[ltail=\"cluster_c\d+\"\])?", dot))
    plain = {(a, b) for a, b, tail in edges if not tail}
    assert "4 x aws autoscaling Tag" in by_label  # four same-type leaves with the same dependents: one node
    assert (by_label["a"], by_label["b"]) in plain and (by_label["b"], by_label["c"]) in plain
    assert (by_label["a"], by_label["c"]) not in plain
    folded = [(a, b) for a, b, tail in edges if tail]
    assert [b for _, b in folded] == [by_label["d"]]  # one edge from comp's cluster, not seven
    assert not any(b == by_label["d"] for _, b in plain)
    comp_cluster = dot.split('label="mlops:test:Comp\\ncomp";', 1)[1].split("}", 1)[0]
    assert f"{by_label['e']} [" in comp_cluster
    assert to_dot(doc) == dot  # deterministic


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz not installed (scripts/ensure-tools.sh)")
def test_cli_svg_and_dot(capsysbinary: pytest.CaptureFixture[bytes], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    assert main(["plan", "local", "--graph", "--format", "svg"]) == 0
    svg = capsysbinary.readouterr().out
    assert svg.lstrip().startswith(b"<?xml") and b"</svg>" in svg
    assert main(["plan", "local", "--graph"]) == 0
    assert capsysbinary.readouterr().out.decode() == to_dot(plan_json(reference_plan("local")))


def test_svg_without_graphviz_is_a_clear_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert main(["plan", "local", "--graph", "--format", "svg"]) == 2
    err = capsys.readouterr().err
    assert "needs Graphviz's `dot`" in err and len(err.strip().splitlines()) == 1
