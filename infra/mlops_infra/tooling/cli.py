"""`mlops-infra`: validate, plan and render stacks offline. Its `--json` output is a contract (docs/cli.md).

Exit codes: 0 success, 1 a mandatory policy violation (`check`), 2 invalid input (stack config, arguments,
usage or policy files), 3 an internal error (a bug: one line on stderr; MLOPS_INFRA_DEBUG=1 shows the
traceback), 130 interrupted.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

# Only what parsing the command line needs is imported here (`--version` answers at once); the Pulumi SDK, the
# providers, the policy pack and rich are imported by the commands that use them.
from mlops_infra import __version__
from mlops_infra.tooling import guardrails, plan_commands, policy_files, pr_comment
from mlops_infra.tooling.project import stacks_dir

if TYPE_CHECKING:
    from rich.console import Console

    from mlops_infra.platform.config import StackConfig
    from mlops_infra.tooling.plan import Plan

EXIT_OK, EXIT_VIOLATION, EXIT_INVALID, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


class UsageError(Exception):
    """A stack that cannot be found or read: reported like a config problem, exit code 2."""


def _stack_files(stacks: Sequence[str], default_all: bool) -> list[Path]:
    """Stack files by name (`stacks/` of the project, found upward from here) or by path."""
    from mlops_infra.tooling.offline import resolve_stack_file

    directory = stacks_dir()
    if not stacks and default_all:
        files = sorted(directory.glob("Pulumi.*.yaml"))
        if not files:
            raise UsageError(
                f"{directory}/: no Pulumi.<stack>.yaml files; run inside a project (a Pulumi.yaml above)"
            )
        return files
    paths = [resolve_stack_file(s, directory) for s in stacks]
    for stack, path in zip(stacks, paths, strict=True):
        if not path.is_file():
            known = ", ".join(sorted(p.name.split(".")[1] for p in directory.glob("Pulumi.*.yaml")))
            raise UsageError(f"{path}: stack {stack!r} not found; known stacks: {known or 'none'}")
    return paths


def _warn(config: StackConfig, path: Path) -> None:
    from mlops_infra.platform.config import override_warnings

    for warning in override_warnings(config, str(path)):
        print(f"warning: {warning}", file=sys.stderr)


def _evaluate(path: Path) -> Plan:
    """Evaluate a stack; on a terminal, say so on stderr when it takes more than a second."""
    from mlops_infra.tooling.offline import evaluate

    timer = None
    if sys.stderr.isatty():
        timer = threading.Timer(1.0, lambda: print(f"evaluating {path} ...", file=sys.stderr, flush=True))
        timer.daemon = True
        timer.start()
    try:
        plan = evaluate(path)
    finally:
        if timer is not None:
            timer.cancel()
    if plan.config is not None:
        _warn(plan.config, path)
    return plan


def _plan(stack: str) -> Plan:
    return _evaluate(_stack_files([stack], default_all=False)[0])


def cmd_validate(args: argparse.Namespace, out: Console) -> int:
    from mlops_infra.platform.config import ConfigError, Problem, load_stack

    problems: list[Problem] = []
    for path in _stack_files(args.stacks, default_all=True):
        try:
            config = load_stack(path)
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        out.print(
            f"{path}: valid ({config.environment}, {config.cloud}, {len(config.node_groups)} node groups)"
        )
        _warn(config, path)
    if problems:
        raise ConfigError(problems)
    return EXIT_OK


def plan_document(plan: Plan) -> dict[str, Any]:
    """The full `plan --json` object: the offline plan plus its cost estimate and policy violations."""
    from mlops_infra.tooling.plan import plan_json

    return guardrails.add_to_plan_document(plan, plan_json(plan))


def _where(plan: Plan) -> str:
    config = plan.config
    if config is None:
        return f"a program's own resources, environment {plan.environment or 'unknown'}"
    where = config.region or config.cluster.kube_context or "the current kube context"
    return f"{config.environment}, {config.cloud}, {where}"


def _program_plan(args: argparse.Namespace) -> Plan:
    """`plan --program module:function [STACK]`: a team's own program, STACK only supplying config values."""
    from mlops_infra.tooling.offline import ProgramError, evaluate_program, load_program

    try:
        program = load_program(args.program)
        stack_file = _stack_files([args.stack], default_all=False)[0] if args.stack else None

        def guarded() -> Any:
            try:
                return program()
            except Exception as exc:
                raise ProgramError(f"{args.program} raised {type(exc).__name__}: {exc}") from exc

        return evaluate_program(guarded, stack_file)
    except ProgramError as exc:
        raise UsageError(str(exc)) from None


def cmd_plan(args: argparse.Namespace, out: Console) -> int:
    from mlops_infra.tooling import plan_view
    from mlops_infra.tooling.plan import plan_json

    plan_commands.check_flags(args)
    if args.program and args.compare:
        raise UsageError("--compare evaluates a stack of this repository at BASE; it does not take --program")
    if args.program:
        plan = _program_plan(args)
    elif args.stack:
        plan = _plan(args.stack)
    else:
        raise UsageError("plan needs a STACK, or --program module:function")
    if args.graph:
        return plan_commands.cmd_graph(args, plan_json(plan))
    if args.compare:
        from mlops_infra.tooling.cost.estimator import estimate_plan

        head = plan_json(plan)
        head["cost"] = estimate_plan(plan).to_json()
        return plan_commands.cmd_compare(args, out, plan, head)
    if args.json:
        print(json.dumps(plan_document(plan), indent=2, sort_keys=False))
        return EXIT_OK
    out.print(f"Plan for stack {plan.stack} ({_where(plan)}):")
    for line in plan_view.tree_lines(plan):
        out.print(line)
    out.print("")
    out.print("Resources by type:")
    for count, type_name in plan_view.type_counts(plan):
        out.print(f"{count:>6}  {type_name}")
    out.print(plan_view.summary_line(plan))
    summary = plan_document(plan)
    monthly, budget = summary["cost"]["monthly"], summary["cost"]["budget"]
    out.print(
        f"monthly cost (USD): min {monthly['min']:,.2f}, expected {monthly['expected']:,.2f}, "
        f"max {monthly['max']:,.2f}"
        + (f"; budget {budget['monthlyUsd']:,.2f} on {budget['basis']}" if budget else "")
    )
    findings = summary["violations"]
    out.print(f"policy findings: {len(findings)}" + (":" if findings else ""))
    for v in findings:
        out.print(f"  [{v['enforcement']}] {v['policy']}: {v['message']}")
    return EXIT_OK


def cmd_render(args: argparse.Namespace, out: Console) -> int:
    from mlops_infra.tooling.render import RenderTargetError, render

    plan = _plan(args.stack)
    try:
        files = render(plan, Path(args.out))
    except RenderTargetError as exc:
        raise UsageError(str(exc)) from None
    out.print(f"{plan.stack}: wrote {len(files)} files to {args.out}")
    return EXIT_OK


def cmd_cost(args: argparse.Namespace, out: Console) -> int:
    return guardrails.cmd_cost(args, out, _plan)


def cmd_rightsize(args: argparse.Namespace, out: Console) -> int:
    return guardrails.cmd_rightsize(args, out, _plan)


def cmd_check(args: argparse.Namespace, out: Console) -> int:
    return guardrails.cmd_check(args, out, lambda stacks: _stack_files(stacks, default_all=True), _evaluate)


def cmd_policy_config(args: argparse.Namespace, out: Console) -> int:
    return policy_files.cmd_policy_config(args, out, lambda stacks: _stack_files(stacks, default_all=True))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlops-infra", description=__doc__)
    parser.add_argument("--version", action="version", version=f"mlops-infra {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("validate", help="validate stack config; exit 0 valid, 2 invalid")
    p.add_argument("stacks", nargs="*", metavar="STACK", help="stack names or Pulumi.<name>.yaml paths")
    p.set_defaults(func=cmd_validate)
    p = sub.add_parser("plan", help="resources a stack would create, evaluated offline")
    p.add_argument("stack", metavar="STACK", nargs="?")
    p.add_argument(
        "--program",
        metavar="MODULE:FUNCTION",
        help="record a team's own Pulumi program instead (STACK, if given, only supplies its config)",
    )
    p.add_argument("--json", action="store_true", help="machine-readable plan (docs/cli.md)")
    plan_commands.add_arguments(p)
    p.set_defaults(func=cmd_plan)
    p = sub.add_parser("render", help="write the stack's Kubernetes manifests and Helm values as YAML")
    p.add_argument("stack", metavar="STACK")
    p.add_argument("--out", required=True, metavar="DIR")
    p.set_defaults(func=cmd_render)
    guardrails.add_parsers(sub, {"cost": cmd_cost, "rightsize": cmd_rightsize, "check": cmd_check})
    policy_files.add_parser(sub, cmd_policy_config)
    pr_comment.add_parser(sub, pr_comment.cmd_pr_comment)
    return parser


# Wider than any table row we print; tables are not expanded, so they keep their natural width.
UNFOLDED_WIDTH = 100_000


def console(stderr: bool = False) -> Console:
    """Text is printed as it is: no markup (`[bold]`), no emoji codes (`:cloud:`), no highlighting. Keys,
    names and messages come from users and must reach them verbatim."""
    from rich.console import Console

    found = Console(stderr=stderr, soft_wrap=True, markup=False, emoji=False, highlight=False)
    if not found.is_terminal:
        found.width = UNFOLDED_WIDTH  # a file or a pipe gets whole table rows: no name or number split
    return found


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from mlops_infra.platform.config import ConfigError

    out, err = console(), console(stderr=True)
    try:
        code: int = args.func(args, out)
    except ConfigError as exc:
        for problem in exc.problems:
            err.print(str(problem))
        return EXIT_INVALID
    except (
        UsageError,
        guardrails.GuardrailInputError,
        plan_commands.PlanViewError,
        pr_comment.CommentError,
    ) as exc:
        err.print(str(exc))
        return EXIT_INVALID
    except KeyboardInterrupt:
        err.print("interrupted")
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug, not a finding: its own exit code, one line unless debugging
        if os.environ.get("MLOPS_INFRA_DEBUG"):
            raise
        err.print(f"internal error: {type(exc).__name__}: {exc}".splitlines()[0][:500])
        err.print(
            "this is a bug in mlops-infra; rerun with MLOPS_INFRA_DEBUG=1 for the traceback and report it"
        )
        return EXIT_INTERNAL
    return code


# The collector thresholds of the whole `mlops-infra` process: those of an evaluation (offline.py), so that the
# imports before it (the SDK, the policy pack) do not walk the heap again and again either.
RUN_GC_THRESHOLD = (50_000, 50, 100)


def run() -> NoReturn:
    """The `mlops-infra` program: `main` with fewer collections, then exit without a last garbage collection
    over the provider modules and the plan (about a second after a plan); the objects go with the process."""
    gc.set_threshold(*RUN_GC_THRESHOLD)
    code = main()
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    run()
