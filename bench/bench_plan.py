"""Benchmark: wall time of `mlops-infra plan STACK --json` (a fresh process, as CI runs it) and of the
in-process evaluation, with resources per second. Target: under 3 s for the prod stack on a 2-core machine.

The tool a user would otherwise run, `pulumi preview`, needs the Pulumi CLI and cloud credentials, neither of
which exists here; the figure to compare with is the import time of the providers, printed alongside.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def time_cli(stack: str, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "mlops_infra.tooling.cli", "plan", stack, "--json"],
            cwd=ROOT,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        times.append(time.perf_counter() - start)
    return times


def time_imports() -> float:
    code = "import pulumi, pulumi_aws, pulumi_kubernetes, pulumi_random"
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("stacks", nargs="*", default=["prod", "dev", "local"])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "infra"))
    from mlops_infra.tooling.offline import evaluate

    print(f"provider imports alone (fresh process): {time_imports():.2f} s")
    print(
        f"{'stack':<10}{'resources':>10}{'cli median s':>14}{'cli min s':>11}{'in-process s':>14}{'res/s':>9}"
    )
    for stack in args.stacks:
        path = ROOT / "stacks" / f"Pulumi.{stack}.yaml"
        if not path.exists():
            continue
        cli = time_cli(stack, args.runs)
        start = time.perf_counter()
        plan = evaluate(path)
        in_process = time.perf_counter() - start
        count = len(plan.resources)
        median = statistics.median(cli)
        print(
            f"{stack:<10}{count:>10}{median:>14.2f}{min(cli):>11.2f}{in_process:>14.2f}{count / median:>9.0f}"
        )


if __name__ == "__main__":
    main()
