"""A model of a GitHub-hosted runner that executes one workflow job's steps in order, for
test_workflow_order.py.

What a job starts with: an empty workspace, HOME, and on PATH only (a) the runner image's local tools
(`SYSTEM_TOOLS`: bash, make, git, coreutils, tar, ... the real binaries, symlinked) and (b) its tools that
reach a network or a cloud (`curl`, `aws`, `gcloud`, `kubectl`, `gh`, `sudo`/`apt-get`, the system
`python3`), which are recording fakes (fake_tools.py). Nothing else: a command no earlier step provided is
"command not found", a file no earlier step wrote is "No such file or directory".

`uses:` steps are modelled by what they leave behind for later steps:
- actions/checkout: the repository at the commit under test (a `git clone`); without `fetch-depth: 0` the
  clone keeps no remote branches, as a depth-1 checkout of one commit has none;
- actions/setup-python: `python`, `python3`, `python3.X` and `pip` (fakes) on PATH;
- aws-actions/configure-aws-credentials (v4.2.1 `src/helpers.ts`): AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
  AWS_SESSION_TOKEN, AWS_REGION and AWS_DEFAULT_REGION in the environment of later steps; it fails without
  `id-token: write` (no OIDC token) or without a region;
- pulumi/actions (v6.6.1): the Pulumi CLI on PATH, then the `pulumi` command lines and the PR comment it makes
  of its inputs (pulumi_action.py), run through the fakes in the step's environment.
Every `uses:` must name its action at the full commit SHA of a release these models were read from
(action_facts.PINS): a tag or branch fails the step (a tag can be moved to other code), an unknown commit
too (the models describe another version). An action with no model here fails the test, so a new one gets
modelled before it is trusted.

`run:` steps run as GitHub runs them (`bash -e {0}`, or `bash --noprofile --norc -eo pipefail {0}` for
`shell: bash`) in the workspace, with workflow, job and step `env` and `${{ ... }}` replaced by plausible
values (`CONTEXT`; an expression this model cannot evaluate fails the test). GITHUB_ENV and GITHUB_PATH
written by a step apply to the later ones. Step and job `if:` conditions are taken as true (the main path).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ci.action_facts import PINS
from ci.fake_tools import write_wrapper
from ci.pulumi_action import NotModelled, run_pulumi_action

SYSTEM_TOOLS = [
    "bash",
    "sh",
    "make",
    "git",
    "grep",
    "egrep",
    "awk",
    "sed",
    "sha256sum",
    "tar",
    "gzip",
    "mkdir",
    "touch",
    "cat",
    "rm",
    "mktemp",
    "basename",
    "dirname",
    "env",
    "id",
    "cp",
    "mv",
    "ln",
    "ls",
    "head",
    "tail",
    "tr",
    "test",
    "true",
    "false",
    "sort",
    "uniq",
    "wc",
    "find",
    "chmod",
    "readlink",
    "realpath",
    "date",
    "sleep",
    "timeout",
    "xargs",
    "cut",
    "tee",
    "diff",
    "cmp",
    "uname",
    "printf",
    "echo",
    "which",
]
NETWORK_TOOLS = {
    "curl": "curl",
    "aws": "aws",
    "gcloud": "gcloud",
    "kubectl": "kubectl",
    "gh": "gh",
    "sudo": "sudo",
    "apt-get": "recorder",
    "python3": "python",  # the image's system Python (3.12 on ubuntu-24.04): stdlib only
}
RUN_TIMEOUT_S = 300


# Plausible values for every expression the workflows use; `vars.PULUMI_BACKEND_URL` is empty (the Pulumi
# Cloud case), so `pulumi` needs PULUMI_ACCESS_TOKEN in its step's environment.
def _ref_name(workflow: dict[str, Any]) -> str:
    """What the runner sets GITHUB_REF_NAME to for the workflow's trigger: a tag, a branch, a PR merge ref."""
    triggers = workflow.get("on") or workflow.get(True) or {}
    if isinstance(triggers, dict) and (triggers.get("push") or {}).get("tags"):
        return "v0.2.0"
    if isinstance(triggers, dict) and "pull_request" in triggers:
        return "42/merge"
    return "main"


CONTEXT: dict[str, Any] = {
    "github": {
        "repository": "example-org/mlops-infra",
        "base_ref": "main",
        "token": "ghs_fake_token",
        "event_name": "pull_request",
        "event": {"pull_request": {"number": 42, "head": {"repo": {"full_name": "example-org/mlops-infra"}}}},
    },
    "vars": {
        "AWS_DEPLOY_ROLE_ARN": "arn:aws:iam::123456789012:role/mlops-ci-deployer",
        "AWS_PREVIEW_ROLE_ARN": "arn:aws:iam::123456789012:role/mlops-ci-preview",
        "AWS_REGION": "us-east-1",
        "PULUMI_BACKEND_URL": "",
        "PROD_RUNNER_LABEL": "",
        "MODEL_RUNNER_LABEL": "",
        "MLFLOW_TRACKING_URI": "http://mlflow.example.internal:5000",
        "RETRAIN_DATA": "s3://example-bucket/fraud/train.parquet",
        "RETRAIN_HOLDOUT": "s3://example-bucket/fraud/holdout.parquet",
    },
    "secrets": {"PULUMI_ACCESS_TOKEN": "pul-fake-token", "MLFLOW_TRACKING_TOKEN": "fake-mlflow-token"},
}
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


class ModelError(Exception):
    """The workflow uses something this runner model does not know: extend the model, do not guess."""


@dataclass
class Step:
    name: str
    returncode: int
    output: str


@dataclass
class JobRun:
    job: str
    steps: list[Step]
    calls: list[dict[str, Any]] = field(default_factory=list)

    @property
    def failed(self) -> Step | None:
        return next((s for s in self.steps if s.returncode != 0), None)

    def report(self) -> str:
        step = self.failed
        if step is None:
            return f"{self.job}: every step passed"
        return f"{self.job}: step {step.name!r} failed ({step.returncode}):\n{step.output[-3000:]}"


def evaluate(expression: str, context: Mapping[str, Any]) -> str:
    """`a.b.c` lookups and `x || 'literal'`, the only forms the workflows use in env, with and run."""
    value: Any = ""
    for operand in (o.strip() for o in expression.split("||")):
        if re.fullmatch(r"'[^']*'", operand):
            value = operand[1:-1]
        elif re.fullmatch(r"[A-Za-z_][\w-]*(\.[A-Za-z_][\w-]*)+", operand):
            node: Any = context
            for part in operand.split("."):
                if not isinstance(node, Mapping) or part not in node:
                    raise ModelError(f"no plausible value for `{operand}`: add one to CONTEXT")
                node = node[part]
            value = node
        else:
            raise ModelError(f"expression not modelled: `{expression}`")
        if value not in ("", None, False):
            break
    return "" if value is None else str(value)


def substitute(text: str, context: Mapping[str, Any]) -> str:
    return EXPRESSION.sub(lambda m: evaluate(m.group(1), context), text)


def _input(value: Any, context: Mapping[str, Any]) -> str:
    """A `with:` value as the action reads it: YAML booleans as `true`/`false`, expressions evaluated."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return substitute(str(value), context)


def _inputs(workflow: Mapping[str, Any]) -> dict[str, str]:
    on = workflow.get("on", workflow.get(True)) or {}
    dispatch = on.get("workflow_dispatch") if isinstance(on, Mapping) else None
    spec = (dispatch or {}).get("inputs") or {}
    return {name: str(item.get("default", "")) for name, item in spec.items()}


class Runner:
    """Runs jobs of workflows in fresh clones of `repo` at `commit`, one directory per job under `base`.
    `worktree=True` lays the repository's uncommitted files over each clone (for trying changes before
    committing them; CI runs on the committed tree)."""

    def __init__(self, base: Path, repo: Path, commit: str, worktree: bool = False):
        self.base, self.repo, self.commit, self.worktree = base, repo, commit, worktree

    def run(
        self,
        workflow: Mapping[str, Any],
        job_name: str,
        matrix: Mapping[str, Any] | None = None,
        prepare: Callable[[Path], None] | None = None,
    ) -> JobRun:
        """`prepare(workspace)` edits the checkout right after the checkout step (to plant a defect)."""
        job = workflow["jobs"][job_name]
        suffix = "-".join(str(v) for v in (matrix or {}).values())
        root = self.base / f"{job_name}{'-' + suffix if suffix else ''}"
        workspace, home, temp = root / "work", root / "home", root / "tmp"
        for d in (workspace, home, temp):
            d.mkdir(parents=True)
        path = [self._network_bin(root), self._system_bin(root)]
        log = root / "calls.jsonl"
        log.touch()
        context = {**CONTEXT, "inputs": _inputs(workflow), "matrix": dict(matrix or {})}
        exported: dict[str, str] = {}
        base_env = {
            "HOME": str(home),
            "CI": "true",
            "GITHUB_ACTIONS": "true",
            "GITHUB_WORKSPACE": str(workspace),
            "GITHUB_REF_NAME": _ref_name(workflow),
            "RUNNER_TEMP": str(temp),
            "LANG": "C.UTF-8",
            "FAKE_LOG": str(log),
            "FAKE_WORKSPACE": str(workspace),
        }
        steps: list[Step] = []
        for index, step in enumerate(job.get("steps", [])):
            name = str(step.get("name") or step.get("uses") or step.get("run", "")).splitlines()[0]
            env = dict(base_env)
            env.update(exported)
            for scope in (workflow.get("env"), job.get("env"), step.get("env")):
                env.update({k: substitute(str(v), context) for k, v in (scope or {}).items()})
            env["PATH"] = os.pathsep.join(path)
            env["FAKE_STEP"] = f"{index}: {name}"
            if "uses" in step:
                pull_request = (
                    42 if "pull_request" in (workflow.get("on") or workflow.get(True) or {}) else None
                )
                result = self._action(
                    step, job, context, env, workspace, path, exported, prepare, pull_request
                )
            else:
                result = self._run(step, env, context, workspace, temp, path, exported)
            steps.append(Step(name, *result))
            if result[0] != 0:
                break
        calls = [json.loads(line) for line in log.read_text().splitlines()]
        return JobRun(job_name, steps, calls)

    # -------------------------------------------------------------------------------------------- actions

    def _action(
        self,
        step: Mapping[str, Any],
        job: Mapping[str, Any],
        context: Mapping[str, Any],
        env: dict[str, str],
        workspace: Path,
        path: list[str],
        exported: dict[str, str],
        prepare: Callable[[Path], None] | None,
        pull_request: int | None,
    ) -> tuple[int, str]:
        action, _, ref = str(step["uses"]).partition("@")
        if not re.fullmatch(r"[0-9a-f]{40}", ref):
            return (
                1,
                f"{action}@{ref}: not pinned by full commit SHA (a tag or branch can be moved to other code)",
            )
        if action in PINS and PINS[action][1] != ref:
            tag, sha = PINS[action]
            return (
                1,
                f"{action}@{ref}: the sandbox's model is of {tag} ({sha}); read the action again at this commit",
            )
        given = {k: _input(v, context) for k, v in (step.get("with") or {}).items()}
        if action == "actions/checkout":
            self._checkout(workspace, full_history=given.get("fetch-depth") == "0")
            if prepare:
                prepare(workspace)
            return 0, f"checked out {self.commit}"
        if action == "actions/setup-python":
            version = given.get("python-version", "3.12")
            tool_bin = workspace.parent / "toolcache" / "bin"
            for name in ("python", "python3", f"python{version}"):
                write_wrapper(tool_bin / name, "python")
            for name in ("pip", "pip3"):
                write_wrapper(tool_bin / name, "pip")
            path.insert(0, str(tool_bin))
            exported["FAKE_PYTHON_VERSION"] = version
            return 0, f"python {version} on PATH"
        if action == "aws-actions/configure-aws-credentials":
            if (job.get("permissions") or {}).get("id-token") != "write":
                return 1, "Credentials could not be loaded: could not get ID token (needs `id-token: write`)"
            if not given.get("role-to-assume") or not given.get("aws-region"):
                return 1, "Input required: role-to-assume and a valid aws-region"
            exported.update(
                AWS_ACCESS_KEY_ID="ASIAFAKE",
                AWS_SECRET_ACCESS_KEY="fake-secret",
                AWS_SESSION_TOKEN="fake-session",
                AWS_REGION=given["aws-region"],
                AWS_DEFAULT_REGION=given["aws-region"],
            )
            return 0, f"assumed {given['role-to-assume']}"
        if action == "pulumi/actions":
            try:
                return run_pulumi_action(
                    given,
                    default=lambda expression: substitute(expression, context),
                    permissions=job.get("permissions") or {},
                    pull_request=pull_request,
                    env=env,
                    workspace=workspace,
                    path=path,
                    tool_cache=workspace.parent / "toolcache",
                    comments=Path(env["FAKE_LOG"]).parent / "gh-comments.json",
                )
            except NotModelled as exc:
                raise ModelError(str(exc)) from None
        raise ModelError(
            f"no model for action {action}: describe what it leaves behind in workflow_sandbox.py"
        )

    def _checkout(self, workspace: Path, full_history: bool) -> None:
        def git(*args: str, cwd: Path | None = None) -> None:
            subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, timeout=120)

        git("clone", "--quiet", "--no-checkout", str(self.repo), str(workspace))
        git("checkout", "--quiet", self.commit, cwd=workspace)
        if self.worktree:
            self._overlay(workspace)
        # The checkout is a detached commit; only `fetch-depth: 0` also fetches the remote's branches.
        refs = subprocess.run(
            [
                "git",
                "for-each-ref",
                "--format=%(refname)",
                "refs/heads",
                *([] if full_history else ["refs/remotes"]),
            ],
            cwd=workspace,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        for ref in refs:
            git("update-ref", "-d", ref, cwd=workspace)

    def _overlay(self, workspace: Path) -> None:
        def listed(*args: str) -> list[str]:
            out = subprocess.run(
                ["git", "ls-files", "-z", *args], cwd=self.repo, capture_output=True, check=True
            )
            return [f for f in out.stdout.decode().split("\0") if f]

        for name in listed("--cached", "--others", "--exclude-standard"):
            source, target = self.repo / name, workspace / name
            if source.is_file():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target)
        for name in listed("--deleted"):
            (workspace / name).unlink(missing_ok=True)

    # ------------------------------------------------------------------------------------------------ run

    def _run(
        self,
        step: Mapping[str, Any],
        env: dict[str, str],
        context: Mapping[str, Any],
        workspace: Path,
        temp: Path,
        path: list[str],
        exported: dict[str, str],
    ) -> tuple[int, str]:
        script = temp / "step.sh"
        script.write_text(substitute(str(step["run"]), context))
        shell = step.get("shell")
        if shell not in (None, "bash"):
            raise ModelError(f"shell {shell!r} is not modelled")
        command = (
            ["bash", "-e", str(script)]
            if shell is None
            else ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)]
        )
        github_env, github_path = temp / "github_env", temp / "github_path"
        github_env.write_text("")
        github_path.write_text("")
        env.update(GITHUB_ENV=str(github_env), GITHUB_PATH=str(github_path))
        cwd = workspace / str(step.get("working-directory", "."))
        proc = subprocess.run(
            command, cwd=cwd, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False
        )
        for line in github_env.read_text().splitlines():
            if "=" in line:
                key, value = line.split("=", 1)
                exported[key] = value
        path[:0] = [line for line in reversed(github_path.read_text().splitlines()) if line]
        return proc.returncode, proc.stdout + proc.stderr

    # ---------------------------------------------------------------------------------------- runner image

    def _system_bin(self, root: Path) -> str:
        bin_dir = root / "system-bin"
        bin_dir.mkdir()
        for tool in SYSTEM_TOOLS:
            real = shutil.which(tool)
            if real:
                (bin_dir / tool).symlink_to(real)
        return str(bin_dir)

    def _network_bin(self, root: Path) -> str:
        bin_dir = root / "image-bin"
        for tool, kind in NETWORK_TOOLS.items():
            write_wrapper(bin_dir / tool, kind)
        return str(bin_dir)
