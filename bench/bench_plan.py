"""Benchmark: wall time of the commands a developer runs on every save, each a fresh process, for this tree
and for a baseline revision of it in the same run, side by side.

- `mlops-infra check` (every stack in stacks/): target <= 10 s
- `mlops-infra plan prod`: target <= 2.5 s
- `mlops-infra cost prod --compare REF`: target <= 8 s; this tree's figure is given with a cold base cache
  (every run evaluates the base) and a warm one (the base comes from .mlops-infra-cache/)
- `mlops-infra --version`

The baseline (default: main before the speed-ups; `--baseline REF` for another) is checked out into a temporary
`git worktree` (removed afterwards) and run from there with its own code on this environment's interpreter and
packages; its stacks are its own. The base cache of this tree (.mlops-infra-cache/) is cleared between runs. Timings on a shared machine vary several-fold between days: only the ratio of two
figures taken in the same run means anything. Runs of the two trees alternate so that both see the same load.

Both trees run with bytecode caches (in a temporary PYTHONPYCACHEPREFIX, written by one untimed warm-up run
per command) as any machine without PYTHONDONTWRITEBYTECODE does. Each command's output must be the same for
both trees (the version line aside); a difference is reported.

In-process, after a warm-up evaluation (so that no stack pays the provider imports), every stack is evaluated
once more: the per-stack cost of the evaluation itself.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# main just before the speed-ups of issue 15 (the merge of the karpenter branch)
DEFAULT_BASELINE = "f2b93b46c74fb1fcb89df99c696c624134620559"
TARGETS_S = {"check": 10.0, "plan prod": 2.5, "cost prod --compare": 8.0}


@dataclass
class Tree:
    label: str
    root: Path
    env: dict[str, str]
    wall: dict[str, list[float]] = field(default_factory=dict)
    cpu: dict[str, list[float]] = field(default_factory=dict)
    out: dict[str, str] = field(default_factory=dict)


def _env(root: Path, pycache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = os.pathsep.join([str(root / "infra"), str(root / "policies")])
    env["PYTHONPYCACHEPREFIX"] = str(pycache)
    env.pop("MLOPS_INFRA_NO_CACHE", None)
    return env


def _cli_module(root: Path) -> str:
    return (
        "mlops_infra.tooling.cli"
        if (root / "infra/mlops_infra/tooling/cli.py").is_file()
        else "mlops_infra.cli"
    )


def _run(tree: Tree, name: str, argv: list[str], record: bool) -> None:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", _cli_module(tree.root), *argv],
        cwd=tree.root,
        env=tree.env,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode not in (0, 1):  # check exits 1 on a mandatory finding
        raise SystemExit(
            f"{tree.label}: mlops-infra {' '.join(argv)} failed ({proc.returncode}): {proc.stderr}"
        )
    tree.out[name] = proc.stdout
    if record:
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        tree.wall.setdefault(name, []).append(wall)
        tree.cpu.setdefault(name, []).append(cpu)


def _git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True)


@contextlib.contextmanager
def _baseline_checkout(ref: str, into: Path) -> Iterator[bool]:
    """A temporary `git worktree` of REF (the base of `cost --compare` needs a repository around it), removed
    afterwards; False when REF is not in this clone."""
    try:
        commit = _git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}").stdout.strip()
        _git("worktree", "add", "--detach", "--quiet", str(into), commit)
    except (OSError, subprocess.CalledProcessError):
        yield False
        return
    try:
        yield True
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            _git("worktree", "remove", "--force", str(into))


def _clear_cache(tree: Tree) -> None:
    shutil.rmtree(tree.root / ".mlops-infra-cache", ignore_errors=True)


def _figure(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} s"


def _in_process(stacks: list[str]) -> None:
    sys.path[:0] = [str(ROOT / "infra"), str(ROOT / "policies")]
    from mlops_infra.tooling.offline import evaluate

    files = [ROOT / "stacks" / f"Pulumi.{s}.yaml" for s in stacks]
    for path in files:  # warm-up: every provider module the stacks use is imported here, untimed
        evaluate(path)
    print("\nin-process evaluation (this tree, after a warm-up evaluation of every stack):")
    print(f"  {'stack':<18}{'resources':>10}{'seconds':>10}")
    for path in files:
        start = time.perf_counter()
        plan = evaluate(path)
        print(f"  {plan.stack:<18}{len(plan.resources):>10}{time.perf_counter() - start:>10.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--baseline", default=DEFAULT_BASELINE, help="git ref to compare with (default: %(default)s)"
    )
    parser.add_argument("--compare-ref", help="BASE of `cost prod --compare` (default: the baseline ref)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per command and tree (median shown)")
    parser.add_argument("--no-in-process", action="store_true", help="skip the per-stack in-process figures")
    args = parser.parse_args()
    compare_ref = args.compare_ref or args.baseline
    commands = {
        "check": ["check"],
        "plan prod": ["plan", "prod"],
        "cost prod --compare": ["cost", "prod", "--compare", compare_ref],
        "--version": ["--version"],
    }
    with tempfile.TemporaryDirectory(prefix="bench-plan-") as tmp:
        work = Path(tmp)
        trees = [Tree("this tree", ROOT, _env(ROOT, work / "pycache-head"))]
        baseline_root = work / "baseline"
        with _baseline_checkout(args.baseline, baseline_root) as available:
            if available:
                label = f"baseline {args.baseline[:12]}"
                trees.insert(0, Tree(label, baseline_root, _env(baseline_root, work / "pycache-base")))
            else:
                print(f"baseline {args.baseline!r} is not in this clone (shallow?): timing this tree only")
            _bench(trees, commands, args.runs)
    if not args.no_in_process:
        _in_process(sorted(p.name.split(".")[1] for p in (ROOT / "stacks").glob("Pulumi.*.yaml")))


def _bench(trees: list[Tree], commands: dict[str, list[str]], runs: int) -> None:
    head = trees[-1]
    print(
        f"{len(trees)} tree(s), {runs} timed runs per command, after one untimed warm-up run each", flush=True
    )
    for name, argv in commands.items():
        for tree in trees:
            _clear_cache(tree)
            _run(tree, name, argv, record=False)
        for _ in range(runs):
            for tree in trees:
                _clear_cache(tree)  # cold: the base is evaluated
                _run(tree, name, argv, record=True)
        if name == "cost prod --compare":
            _run(head, name, argv, record=False)  # fills the cache
            for _ in range(runs):
                _run(head, f"{name} (warm cache)", argv, record=True)
            _clear_cache(head)
    _report(trees, head)


def _report(trees: list[Tree], head: Tree) -> None:
    base = trees[0] if len(trees) > 1 else None
    names = list(head.wall)
    print(f"\n{'command':<34}" + "".join(f"{t.label:>24}" for t in trees) + f"{'ratio':>8}  target")
    for name in names:
        row = f"{name:<34}"
        for tree in trees:
            wall, cpu = tree.wall.get(name, []), tree.cpu.get(name, [])
            cell = f"{_figure(wall)} ({statistics.median(cpu):5.2f} cpu)" if wall else ""
            row += f"{cell:>24}"
        ratio = ""
        if base is not None and base.wall.get(name):
            ratio = f"{statistics.median(base.wall[name]) / statistics.median(head.wall[name]):.2f}x"
        elif base is not None and name.endswith("(warm cache)"):
            cold = base.wall["cost prod --compare"]
            ratio = f"{statistics.median(cold) / statistics.median(head.wall[name]):.2f}x"
        target = TARGETS_S.get(name.replace(" (warm cache)", ""))
        verdict = ""
        if target is not None:
            median = statistics.median(head.wall[name])
            verdict = f"<= {target:g} s: {'met' if median <= target else 'MISSED'}"
        print(f"{row}{ratio:>8}  {verdict}")
    print("(median wall time of each tree, its median CPU time in brackets; ratio = baseline / this tree)")
    if base is not None:
        for name in names:
            if name in base.out and name != "--version" and base.out[name] != head.out[name]:
                print(f"OUTPUT DIFFERS between the trees for `{name}`")
        print("outputs compared: " + ", ".join(n for n in names if n in base.out and n != "--version"))


if __name__ == "__main__":
    main()
