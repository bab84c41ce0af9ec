"""The two other views of `mlops-infra plan STACK`: `--compare BASE` (what a change does: resources and cost)
and `--graph` (the stack as a picture). Kept apart from cli.py so that file stays a thin dispatcher."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # building the parser needs neither
    from rich.console import Console

    from mlops_infra.tooling.plan import Plan

FORMATS = ("text", "markdown", "dot", "svg")


class PlanViewError(Exception):
    """Bad flags or a base or graph that cannot be produced: one line on stderr, exit code 2."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--compare",
        metavar="BASE",
        help="changes against BASE: a saved `plan --json` file or a git ref (evaluated with its own code)",
    )
    p.add_argument("--graph", action="store_true", help="the component/resource/dependency graph")
    p.add_argument(
        "--format",
        choices=FORMATS,
        help="--compare: text (default) or markdown (the PR comment); --graph: dot (default) or svg",
    )


def check_flags(args: argparse.Namespace) -> None:
    """Refuse flag combinations that have no meaning, before the (seconds long) evaluation."""
    if args.compare and args.graph:
        raise PlanViewError("--compare and --graph are separate views: pass one of them")
    if args.graph and args.json:
        raise PlanViewError("--graph prints DOT or SVG (--format dot|svg), not JSON")
    fmt = args.format
    if fmt in ("text", "markdown") and not args.compare:
        raise PlanViewError(f"--format {fmt} needs --compare BASE")
    if fmt in ("dot", "svg") and not args.graph:
        raise PlanViewError(f"--format {fmt} needs --graph")
    if fmt and args.json:
        raise PlanViewError("--json and --format are alternatives: pass one of them")


def cmd_compare(args: argparse.Namespace, out: Console, plan: Plan, head: dict[str, Any]) -> int:
    """`plan STACK --compare BASE`: resource changes and the monthly cost delta, head minus base."""
    from mlops_infra.tooling import plan_diff, plan_report
    from mlops_infra.tooling.base_plan import BaseError, load_base
    from mlops_infra.tooling.cost import compare

    try:
        base = load_base(args.compare, args.stack)
        diff = plan_diff.diff_plans(base.document, head)
        empty_cost: dict[str, Any] = {"currency": "USD", "budget": None, "monthly": {}, "items": []}
        cost = compare.compare(base.document if base.document is not None else empty_cost, head)
    except (BaseError, plan_diff.PlanDiffError, compare.CompareError) as exc:
        raise PlanViewError(str(exc)) from None
    if args.json:
        document = {"stack": plan.stack, "base": base.label, **diff, "cost": cost}
        print(json.dumps(document, indent=2))
    elif args.format == "markdown":
        print(plan_report.to_markdown(diff, cost, plan.stack, base.label), end="")
    else:
        for line in plan_report.to_text(diff, cost, plan.stack, base.label).splitlines():
            out.print(line)
    return 0


def cmd_graph(args: argparse.Namespace, head: dict[str, Any]) -> int:
    """`plan STACK --graph [--format dot|svg]` on stdout."""
    from mlops_infra.tooling.plan_graph import GraphError, to_dot, to_svg

    dot = to_dot(head)
    if args.format == "svg":
        try:
            sys.stdout.buffer.write(to_svg(dot))
        except GraphError as exc:
            raise PlanViewError(str(exc)) from None
        sys.stdout.flush()
    else:
        sys.stdout.write(dot)
    return 0
