"""The guardrail subcommands of `mlops-infra`: `cost`, `rightsize` and `check`, plus the `cost` and
`violations` fields of `plan --json`. Kept apart from cli.py so that file stays a thin dispatcher."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported where used: building the parser (and `--version`) needs none of them
    from rich.console import Console

    from mlops_infra.tooling.cost.estimator import Estimate, Usage
    from mlops_infra.tooling.plan import Plan

EXIT_OK, EXIT_VIOLATION, EXIT_INVALID = 0, 1, 2


class GuardrailInputError(Exception):
    """A usage or policy-config file that cannot be used: reported on stderr, exit code 2."""


def policies_runner() -> ModuleType:
    """`mlops_policies.runner`, imported late: plan and render do not need the policy pack."""
    import mlops_policies.runner as runner

    return runner


def _usage(path: str | None) -> Usage | None:
    from mlops_infra.tooling.cost.estimator import UsageError, load_usage

    if path is None:
        return None
    try:
        return load_usage(Path(path))
    except UsageError as exc:
        raise GuardrailInputError(str(exc)) from None


def violations_json(plan: Plan) -> list[dict[str, Any]]:
    return [v.to_json() for v in policies_runner().check_plan(plan)]


def add_to_plan_document(plan: Plan, document: dict[str, Any]) -> dict[str, Any]:
    from mlops_infra.tooling.cost.estimator import estimate_plan

    document["cost"] = estimate_plan(plan).to_json()
    document["violations"] = violations_json(plan)
    return document


# ---------------------------------------------------------------------------------------------------- cost


def _money(value: float) -> str:
    return f"{value:,.2f}"


def _unit_price(hourly: float, unit: str) -> str:
    """Price per catalog unit (per hour, GB-month, GB or month) as the catalog states it."""
    price = hourly if unit == "hour" else hourly * 730.0
    return f"{price:.4g}/{unit}"


def _register_catalog(path: str | None) -> None:
    """`cost --catalog FILE`: a team's own machine types, known before the stack is read."""
    if path is None:
        return
    from mlops_infra.components import catalog

    try:
        catalog.register_instance_file(Path(path))
    except catalog.CatalogDataError as exc:
        raise GuardrailInputError(str(exc)) from None


def print_estimate(plan: Plan, result: Estimate, out: Console) -> None:
    from rich.table import Table

    region = result.region or "unknown"
    table = Table(title=f"{plan.stack}: monthly cost (USD, 730 h/month), region {region}")
    for column in ("resource", "sku", "qty min/exp/max", "unit price", "min", "expected", "max"):
        table.add_column(
            column, justify="right" if column not in ("resource", "sku") else "left", overflow="fold"
        )
    for item in result.items:
        q = item.quantity
        m = item.monthly
        table.add_row(
            item.urn.rsplit("::", 1)[-1],
            item.sku + (" *" if item.estimated and not item.unpriced else ""),
            f"{q.min:g} / {q.expected:g} / {q.max:g}",
            "unpriced" if item.unpriced else _unit_price(item.hourly, item.unit),
            _money(m.min),
            _money(m.expected),
            _money(m.max),
        )
    total = result.monthly
    table.add_section()
    table.add_row("total", "", "", "", _money(total.min), _money(total.expected), _money(total.max))
    out.print(table)
    tables = ", ".join(f"{t.file} (as of {t.as_of})" for t in result.tables) or "none used"
    out.print(f"region: {region}; instance price tables: {tables}", soft_wrap=True)
    out.print(
        f"{result.estimated_count} items estimated, {result.unpriced_count} unpriced "
        f"(of {len(result.items)}; unpriced items count 0 in the totals)"
    )
    reasons = Counter("; ".join(i.estimated) for i in result.items if i.estimated and not i.unpriced)
    for reason, count in sorted(reasons.items()):
        out.print(f"  * {count} estimated: {reason}", soft_wrap=True)
    for item in result.items:
        if item.unpriced:
            name = item.urn.rsplit("::", 1)[-1]
            out.print(f"  unpriced: {name} {item.sku}: {item.unpriced}", soft_wrap=True)
    if result.budget:
        basis = str(result.budget.get("basis", "expected"))
        value = total.max if basis == "max" else total.expected
        limit = float(result.budget["monthlyUsd"])
        state = "within" if value <= limit else "OVER"
        out.print(f"budget: {_money(limit)} USD ({basis}): {state} ({_money(value)} USD)")
    if not result.items:
        out.print("no priced cloud resources (a local stack runs on an existing cluster)")


def cmd_cost(args: argparse.Namespace, out: Console, plan_of: Callable[[str], Plan]) -> int:
    from mlops_infra.tooling.cost.estimator import estimate_plan

    usage = _usage(args.usage)
    _register_catalog(getattr(args, "catalog", None))
    plan = plan_of(args.stack)
    result = estimate_plan(plan, usage)
    for warning in result.warnings:
        print(f"warning: {plan.stack}: {warning}", file=sys.stderr)
    if getattr(args, "compare", None):
        return _cost_compare(args, out, plan, result)
    if args.format == "markdown":
        raise GuardrailInputError("--format markdown needs --compare BASE (it is the pull-request comment)")
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        print_estimate(plan, result, out)
    return EXIT_OK


def _cost_compare(args: argparse.Namespace, out: Console, plan: Plan, result: Estimate) -> int:
    """`cost --compare BASE`: head minus base per resource and in total (cost/compare.py)."""
    from rich.table import Table

    from mlops_infra.tooling.cost import compare

    try:
        base, label = compare.base_document(args.compare, args.stack)
        diff = compare.compare(base, result.to_json())
    except compare.CompareError as exc:
        raise GuardrailInputError(str(exc)) from None
    if args.json:
        print(json.dumps(diff, indent=2))
    elif args.format == "markdown":
        print(compare.to_markdown(diff, plan.stack, label), end="")
    else:
        table = Table(title=f"{plan.stack} vs {label}: monthly cost delta ({diff['currency']}, 730 h/month)")
        for column in ("resource", "change", "delta min", "delta expected", "delta max"):
            table.add_column(column, justify="left" if column in ("resource", "change") else "right")
        for c in diff["changes"]:
            d = c["delta"]
            table.add_row(
                c["urn"].rsplit("::", 1)[-1],
                c["change"],
                _money(d["min"]),
                _money(d["expected"]),
                _money(d["max"]),
            )
        table.add_section()
        d = diff["delta"]["monthly"]
        table.add_row("total", "", _money(d["min"]), _money(d["expected"]), _money(d["max"]))
        out.print(table)
    return EXIT_OK


# ---------------------------------------------------------------------------------------------------- rightsize


def cmd_rightsize(args: argparse.Namespace, out: Console, plan_of: Callable[[str], Plan]) -> int:
    from mlops_infra.tooling.cost.rightsize import (
        WorkloadUsageError,
        load_workload_usage,
        print_report,
        rightsize,
    )

    try:
        observed = load_workload_usage(Path(args.usage)) if args.usage else None
    except WorkloadUsageError as exc:
        raise GuardrailInputError(str(exc)) from None
    plan = plan_of(args.stack)
    report = rightsize(plan, observed)
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print_report(report, out)
    return EXIT_OK


# ---------------------------------------------------------------------------------------------------- check


def cmd_check(
    args: argparse.Namespace,
    out: Console,
    stack_files: Callable[[Sequence[str]], list[Path]],
    evaluate: Callable[[Path], Plan],
) -> int:
    from rich.table import Table

    from mlops_infra.platform.config import ConfigError, Problem

    runner = policies_runner()
    from mlops_policies.settings import PolicyConfigError, load_config

    try:
        overrides = load_config(Path(args.policy_config)) if args.policy_config else None
    except PolicyConfigError as exc:
        raise GuardrailInputError(str(exc)) from None
    problems: list[Problem] = []
    results: dict[str, list[Any]] = {}
    saved = [s for s in args.stacks if s.endswith(".json")]
    for name in saved:
        label, found = _check_saved_plan(Path(name), overrides)
        results[label] = found
    stacks = [s for s in args.stacks if not s.endswith(".json")]
    for path in stack_files(stacks) if stacks or not saved else []:
        try:
            plan = evaluate(path)
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        try:
            results[plan.stack] = runner.check_plan(plan, overrides)
        except PolicyConfigError as exc:
            raise GuardrailInputError(str(exc)) from None
    if problems:
        raise ConfigError(problems)
    blocked = {stack: runner.blocking(found) for stack, found in results.items()}
    if args.json:
        doc = {
            "passed": not any(blocked.values()),
            "stacks": {
                stack: {"violations": [v.to_json() for v in found], "mandatory": len(blocked[stack])}
                for stack, found in results.items()
            },
        }
        print(json.dumps(doc, indent=2))
    else:
        for stack, found in results.items():
            if not found:
                out.print(f"{stack}: no violations ({len(runner.ALL_RULES)} rules)")
                continue
            table = Table(title=f"{stack}: {len(found)} violation(s), {len(blocked[stack])} mandatory")
            for column in ("policy", "enforcement", "resource", "message"):
                table.add_column(column, overflow="fold")
            for v in found:
                where = v.urn.rsplit("::", 1)[-1] if v.urn else "(stack)"
                table.add_row(v.policy, v.enforcement, where, v.message)
            out.print(table)
    return EXIT_VIOLATION if any(blocked.values()) else EXIT_OK


def _check_saved_plan(path: Path, overrides: Any) -> tuple[str, list[Any]]:
    """`check PLAN.json`: the pack over a saved `plan --json` object, e.g. one edited to try a change."""
    runner = policies_runner()
    from mlops_policies.settings import PolicyConfigError

    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GuardrailInputError(f"{path}: not a readable JSON file ({exc})") from None
    if not isinstance(doc, dict):
        raise GuardrailInputError(f"{path}: expected the object `mlops-infra plan STACK --json` prints")
    try:
        return f"{doc.get('stack', path.stem)} ({path.name})", runner.check_document(
            doc, str(path), overrides
        )
    except (runner.PlanDocumentError, PolicyConfigError) as exc:
        raise GuardrailInputError(str(exc)) from None


def add_parsers(sub: Any, handlers: dict[str, Callable[[argparse.Namespace, Console], int]]) -> None:
    """Register `cost`, `rightsize` and `check` on the CLI's subparsers with cli.py's handlers."""
    p = sub.add_parser("cost", help="monthly cost min / expected / max in the stack's region (price tables)")
    p.add_argument("stack", metavar="STACK")
    p.add_argument("--json", action="store_true", help="machine-readable estimate (docs/cli.md)")
    p.add_argument("--usage", metavar="FILE", help="usage file: natGatewayGb, logsGb, bucketGb (per month)")
    p.add_argument(
        "--catalog",
        metavar="FILE",
        help="team catalog file: extra instance types with their facts and optional prices (docs/catalog.md)",
    )
    p.add_argument(
        "--compare",
        metavar="BASE",
        help="difference against BASE: a saved `plan --json`/`cost --json` file or a git ref (run with its code)",
    )
    p.add_argument(
        "--format",
        choices=("table", "markdown"),
        default="table",
        help="markdown: the --compare result as a pull-request comment",
    )
    p.set_defaults(func=handlers["cost"])
    p = sub.add_parser("rightsize", help="cheapest node shapes that still fit the workloads' requests")
    p.add_argument("stack", metavar="STACK")
    p.add_argument("--json", action="store_true")
    p.add_argument("--usage", metavar="FILE", help="observed p95 cpu/memory/gpu per workload")
    p.set_defaults(func=handlers["rightsize"])
    p = sub.add_parser("check", help="policy pack on each stack; exit 1 on a mandatory violation")
    p.add_argument(
        "stacks",
        nargs="*",
        metavar="STACK",
        help="stack names, stack file paths or saved `plan --json` files (default: every stack)",
    )
    p.add_argument("--json", action="store_true")
    p.add_argument(
        "--policy-config",
        metavar="FILE",
        help="policy config overriding the environment defaults (CrossGuard format)",
    )
    p.set_defaults(func=handlers["check"])
