"""The plan a change is compared against (`plan --compare BASE`, `cost --compare BASE`): a saved JSON file, or a
git ref evaluated with the BASE's own code, not this tree's.

A git ref is exported with `git archive` into a temporary directory and the base's own CLI
(`python -m <its cli module> plan STACK --json`) runs there with `PYTHONPATH=<base>/infra:<base>/policies` and the
same relative working directory. The document is then what the base revision itself would have reported, so
a change of the program, the pricing or the policies shows up in the comparison too. One implementation for
both commands: they read different fields of the same `plan --json` object.

The document is cached by the content of the base revision (tooling/base_cache.py): comparing against the same
ref again costs two git look-ups instead of an export and a plan.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops_infra.tooling import base_cache

PLAN_TIMEOUT_S = 300
# The base's CLI runs under this bootstrap: the collector tuned as this tree's evaluation tunes it
# (tooling/offline.py) and the heap frozen at exit, whatever the base revision's own code does. Neither changes
# what a program computes; together they save a third of the base's run.
_BOOTSTRAP = (
    "import atexit, gc, runpy, sys; gc.set_threshold(50_000, 50, 100); atexit.register(gc.freeze); "
    "sys.argv = sys.argv[1:]; runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)"
)


class BaseError(Exception):
    """A base that cannot be read or evaluated: reported on stderr, exit code 2."""


@dataclass(frozen=True)
class Base:
    """The base's JSON document (None: the stack does not exist at the base ref) and a label for reports."""

    document: dict[str, Any] | None
    label: str


def _git(args: list[str], cwd: Path) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, check=True, timeout=120)
    except FileNotFoundError:
        raise BaseError("git is not installed: pass a saved `plan --json` file as --compare") from None
    except subprocess.CalledProcessError as exc:
        msg = exc.stderr.decode(errors="replace").strip().splitlines()
        raise BaseError(f"git {' '.join(args[:2])}: {msg[-1] if msg else 'failed'}") from None


def _resolve(ref: str, cwd: Path) -> tuple[Path, str]:
    """The top of the repository cwd is in, and the commit REF names."""
    if ref.startswith("-"):
        raise BaseError(f"--compare {ref!r}: not a git ref or file")
    top = Path(_git(["rev-parse", "--show-toplevel"], cwd).stdout.decode().strip())
    try:
        commit = _git(["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], cwd).stdout.decode().strip()
    except BaseError:
        raise BaseError(f"--compare {ref!r}: neither a file nor a commit in this repository") from None
    return top.resolve(), commit


def _export(commit: str, cwd: Path, into: Path) -> None:
    """`git archive COMMIT` unpacked into `into`."""
    archive = _git(["archive", "--format=tar", commit], cwd).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")


def _stack_arg(stack: str, cwd: Path) -> str:
    """The stack argument as the base checkout sees it: names stay, paths become cwd-relative."""
    path = Path(stack)
    if path.suffix not in {".yaml", ".yml"} and not path.exists():
        return stack
    try:
        return str(path.resolve().relative_to(cwd.resolve()))
    except ValueError:
        raise BaseError(
            f"{stack}: a stack file outside the working directory has no counterpart in a git ref; "
            "compare against a saved `plan --json` file instead"
        ) from None


def _cli_module(root: Path) -> str:
    """The base revision's CLI module: `mlops_infra.tooling.cli`, or `mlops_infra.cli` before the layers."""
    return (
        "mlops_infra.tooling.cli"
        if (root / "infra/mlops_infra/tooling/cli.py").is_file()
        else "mlops_infra.cli"
    )


def _read_file(path: Path) -> Base:
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BaseError(f"{path}: not a readable JSON file ({exc})") from None
    if not isinstance(doc, dict):
        raise BaseError(f"{path}: not a `plan --json` or `cost --json` object")
    return Base(doc, path.name)


def _run_base_plan(ref: str, arg: str, root: Path, work: Path) -> dict[str, Any]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(root / "infra"), str(root / "policies")])
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _BOOTSTRAP, _cli_module(root), "plan", arg, "--json"],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=PLAN_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        raise BaseError(f"plan of {arg} at {ref} took over {PLAN_TIMEOUT_S} s") from None
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise BaseError(f"plan of {arg} at {ref} failed (exit {proc.returncode}): {tail}")
    try:
        doc = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise BaseError(f"plan of {arg} at {ref} printed no JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise BaseError(f"plan of {arg} at {ref} printed no JSON object")
    return doc


def _relocated(value: Any, old: str, new: str) -> Any:
    """`value` with every string path under `old` moved under `new`, at any depth."""
    if isinstance(value, str):
        return new + value[len(old) :] if value == old or value.startswith(old + os.sep) else value
    if isinstance(value, dict):
        return {k: _relocated(v, old, new) for k, v in value.items()}
    if isinstance(value, list):
        return [_relocated(v, old, new) for v in value]
    return value


def load_base(base: str, stack: str, cwd: Path | None = None) -> Base:
    """The base for STACK: a JSON file when BASE names one, else the `plan --json` of STACK at git ref BASE.

    A stack that does not exist in the base revision (a new stack) has no document: everything is added.
    """
    cwd = cwd or Path.cwd()
    candidate = Path(base)
    if candidate.is_file():
        return _read_file(candidate)
    arg = _stack_arg(stack, cwd)
    top, commit = _resolve(base, cwd)
    relative = cwd.resolve().relative_to(top)
    cache_key = None
    if base_cache.enabled():
        tree = base_cache.relevant_entries(_git(["ls-tree", commit], cwd).stdout.decode())
        cache_key = base_cache.key(tree, arg, relative.as_posix(), top)
        cached = base_cache.load(top, cache_key)
        if cached is not None:
            return _labelled(cached.document, base)
    document = _evaluate_base(base, commit, arg, cwd, top, relative)
    if cache_key is not None:
        base_cache.store(top, cache_key, document)
    return _labelled(document, base)


def _labelled(document: dict[str, Any] | None, base: str) -> Base:
    return Base(document, base if document is not None else f"{base} (no such stack)")


def _evaluate_base(
    base: str, commit: str, arg: str, cwd: Path, top: Path, relative: Path
) -> dict[str, Any] | None:
    """STACK's `plan --json` at COMMIT, run with that revision's code; None when it has no such stack."""
    with tempfile.TemporaryDirectory(prefix="mlops-infra-base-") as tmp:
        root = Path(tmp)
        _export(commit, cwd, root)
        work = root / relative
        stack_file = (
            Path(arg) if Path(arg).suffix in {".yaml", ".yml"} else Path("stacks", f"Pulumi.{arg}.yaml")
        )
        if not (work / stack_file).is_file():
            return None
        # Inputs that hold a path of the checkout (a Docker build context) read as if the base had been
        # evaluated where this checkout is: otherwise every such input would differ by the temp directory.
        relocated: dict[str, Any] = _relocated(
            _run_base_plan(base, arg, root, work), str(root.resolve()), str(top)
        )
        return relocated
