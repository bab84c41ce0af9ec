"""Workflows run in order: each job's steps, executed one after another on a fresh clone of the committed tree,
all succeed, and a step that uses something no earlier step created fails.

workflow_sandbox.py models the runner (what the job starts with, what each `uses:` step leaves behind) and
fake_tools.py the tools that reach a network or a cloud; everything else is real: bash, make and the
Makefile's recipes, git, tar and sha256sum. Installers are fakes that create what the real install would
(the virtualenv's scripts are recording fakes), so a whole job takes about a second instead of minutes of
`uv sync`, and the old deploy.yml defect (`.venv/bin/mlops-infra` before anything created `.venv`) fails
with "No such file or directory" exactly as it would on GitHub. The planted-defect tests below show each
prerequisite the model checks catching its defect.

Set MLOPS_WORKFLOW_TEST_WORKTREE=1 to run the jobs on the uncommitted working tree instead.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Callable, Iterator
from itertools import product
from pathlib import Path
from typing import Any

import pytest
import yaml
from ci.workflow_sandbox import JobRun, Runner

from mlops_infra.tooling.cli import build_parser as mlops_parser
from retrain_job.cli import build_parser as retrain_parser

from plan_support import reference_plan

ROOT = Path(__file__).resolve().parents[2]
WORKTREE = os.environ.get("MLOPS_WORKFLOW_TEST_WORKTREE") == "1"
_head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False)
if _head.returncode != 0:
    pytest.skip("not a git checkout: the jobs run on a clone of the committed tree", allow_module_level=True)
HEAD = _head.stdout.strip()
WHERE = (
    "the working tree" if WORKTREE else f"commit {HEAD[:12]} (MLOPS_WORKFLOW_TEST_WORKTREE=1: working tree)"
)


def _workflow(name: str) -> dict[str, Any]:
    path = f".github/workflows/{name}"
    if WORKTREE:
        text = (ROOT / path).read_text()
    else:
        text = subprocess.run(
            ["git", "show", f"{HEAD}:{path}"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout
    return _parse(text)


def _parse(text: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(text)
    if True in doc:  # YAML 1.1 reads `on:` as a boolean
        doc["on"] = doc.pop(True)
    return doc


def _workflow_files() -> list[str]:
    if WORKTREE:
        return sorted(p.name for p in (ROOT / ".github" / "workflows").glob("*.yml"))
    listing = subprocess.run(
        ["git", "ls-tree", "--name-only", HEAD, ".github/workflows/"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    return sorted(Path(line).name for line in listing.stdout.splitlines() if line.endswith(".yml"))


def _jobs() -> Iterator[Any]:
    for file in _workflow_files():
        path = Path(file)
        for name, job in _workflow(file)["jobs"].items():
            matrix = (job.get("strategy") or {}).get("matrix") or {}
            keys = sorted(matrix)
            for values in product(*(matrix[k] for k in keys)) if keys else [()]:
                combo = dict(zip(keys, values, strict=True))
                label = "-".join([path.stem, name, *map(str, values)])
                yield pytest.param(path.name, name, combo, id=label)


@pytest.fixture
def runner(tmp_path: Path) -> Runner:
    return Runner(tmp_path, ROOT, HEAD, worktree=WORKTREE)


def _argv(call: dict[str, Any]) -> list[str]:
    return list(call["argv"])


def _pulumi(run: JobRun, command: str) -> list[list[str]]:
    return [_argv(c) for c in run.calls if c["kind"] == "pulumi" and _argv(c)[:1] == [command]]


def _value(argv: list[str], flag: str) -> str | None:
    return argv[argv.index(flag) + 1] if flag in argv else None


def _assert_calls_are_real(run: JobRun) -> None:
    """What the fakes recorded is something the real tools accept: argv the real parsers take, the policy
    config of the stack being deployed, stack outputs the program exports."""
    for call in run.calls:
        argv = _argv(call)
        if call["kind"] == "mlops-infra":
            try:
                mlops_parser().parse_args(argv)
            except SystemExit:
                pytest.fail(f"{run.job}: mlops-infra rejects {argv}")
        if call["kind"] == "python-project" and argv[:2] == ["-m", "retrain_job"]:
            try:
                retrain_parser().parse_args(argv[2:])
            except SystemExit:
                pytest.fail(f"{run.job}: retrain_job rejects {argv[2:]}")
    for argv in _pulumi(run, "up") + _pulumi(run, "preview"):
        stack = _value(argv, "--stack")
        assert _value(argv, "--policy-pack") == "policies", argv
        assert _value(argv, "--policy-pack-config") == f"policies/config/{stack}.json", argv
    for argv in (a for a in _pulumi(run, "stack") if a[1] == "output"):
        stack, name = _value(argv, "--stack"), argv[2]
        assert stack is not None and name in reference_plan(stack).outputs, f"{stack} exports no {name}"


def _assert_deploys_its_own_stack(run: JobRun, stack: str) -> None:
    """A deploy job checks its stack offline, then `pulumi up`s it, then waits for nodes and the model server."""
    wanted = {("mlops-infra", "check"), ("pulumi", "up"), ("kubectl", "wait")}
    order = [(c["kind"], w) for c in run.calls for w in _argv(c)[:3] if (c["kind"], w) in wanted]
    assert order == [("mlops-infra", "check"), ("pulumi", "up"), ("kubectl", "wait"), ("kubectl", "wait")]
    checked = [_argv(c) for c in run.calls if c["kind"] == "mlops-infra" and _argv(c)[0] == "check"]
    assert checked == [["check", stack]]
    assert [_value(a, "--stack") for a in _pulumi(run, "up")] == [stack]


def _assert_previews_its_own_stack(run: JobRun, stack: str, comments: Path) -> None:
    """pulumi/actions logs in, selects the stack and previews it once with the pack and the stack's policy
    config from the workspace root, after the freshness check; its comment names the stack."""
    pulumi = [_argv(c) for c in run.calls if c["kind"] == "pulumi"]
    assert [a[a.index("login")] if "login" in a else a[0] for a in pulumi] == ["login", "stack", "preview"]
    [preview] = _pulumi(run, "preview")
    assert _value(preview, "--stack") == stack and "--diff" in preview
    assert {c["cwd"] for c in run.calls if c["kind"] == "pulumi"} == {run.calls[0]["cwd"]}
    kinds = [(c["kind"], _argv(c)[:1]) for c in run.calls]
    assert kinds.index(("mlops-infra", ["policy-config"])) < kinds.index(("pulumi", ["preview"]))
    [comment] = json.loads(comments.read_text())
    assert comment["body"].startswith(f"#### :tropical_drink: `preview` on mlops-platform/{stack}\n")
    assert f"Previewing update ({stack}):" in comment["body"]


@pytest.mark.parametrize(("file", "job", "matrix"), list(_jobs()))
def test_every_job_runs_in_order_on_a_fresh_clone(
    file: str, job: str, matrix: dict[str, Any], runner: Runner
) -> None:
    workflow = _workflow(file)
    run = runner.run(workflow, job, matrix)
    assert run.failed is None, f"on {WHERE}: {run.report()}"
    assert len(run.steps) == len(workflow["jobs"][job]["steps"])
    _assert_calls_are_real(run)
    if file == "deploy.yml":
        _assert_deploys_its_own_stack(run, workflow["jobs"][job]["env"]["STACK"])
    if (file, job) == ("pr.yml", "preview"):
        _assert_previews_its_own_stack(
            run, matrix["stack"], runner.base / f"preview-{matrix['stack']}" / "gh-comments.json"
        )


# ------------------------------------------------------------------------------------ the old defects

OLD_DEPLOY_DEV = """
jobs:
  dev:
    permissions: {contents: read, id-token: write}
    env: {STACK: dev, PULUMI_BACKEND_URL: "${{ vars.PULUMI_BACKEND_URL }}", PULUMI_ACCESS_TOKEN: "${{ secrets.PULUMI_ACCESS_TOKEN }}"}
    steps:
      - uses: actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683 # v4.2.2
        with: {persist-credentials: false}
      - uses: actions/setup-python@a26af69be951a213d495a4c3e4e4022e16d87065 # v5.6.0
        with: {python-version: "3.11"}
      - uses: aws-actions/configure-aws-credentials@b47578312673ae6fa5b5096b330d9fbac3d116df # v4.2.1
        with: {role-to-assume: "${{ vars.AWS_DEPLOY_ROLE_ARN }}", aws-region: "${{ vars.AWS_REGION }}"}
      - run: make pulumi-cli
      - name: Policy pack before touching the stack
        run: .venv/bin/mlops-infra check dev
      - run: make deploy
      - run: make smoke
"""

OLD_PROMOTE_DEV = """
jobs:
  dev:
    permissions: {contents: read}
    steps:
      - uses: actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683 # v4.2.2
        with: {persist-credentials: false}
      - uses: actions/setup-python@a26af69be951a213d495a4c3e4e4022e16d87065 # v5.6.0
        with: {python-version: "3.11"}
      - run: make setup
      - name: Train, evaluation gate, promote champion when it passes
        run: .venv/bin/python -m retrain_job run
"""


def test_the_old_deploy_workflow_fails_where_it_used_the_virtualenv_before_creating_it(
    runner: Runner,
) -> None:
    run = runner.run(_parse(OLD_DEPLOY_DEV), "dev")
    assert run.failed is not None and run.failed.name == "Policy pack before touching the stack"
    assert ".venv/bin/mlops-infra: No such file or directory" in run.failed.output
    assert [s.name for s in run.steps[:4] if s.returncode == 0][-1] == "make pulumi-cli"


def test_the_old_promotion_workflow_fails_on_a_module_the_virtualenv_cannot_import(runner: Runner) -> None:
    run = runner.run(_parse(OLD_PROMOTE_DEV), "dev")
    assert run.failed is not None and run.failed.name.startswith("Train, evaluation gate")
    assert "No module named retrain_job" in run.failed.output


def _edit(path: str, old: str, new: str) -> Callable[[Path], None]:
    def prepare(workspace: Path) -> None:
        text = (workspace / path).read_text()
        assert old in text, f"{path} no longer contains {old!r}: update this planted defect"
        (workspace / path).write_text(text.replace(old, new, 1))

    return prepare


def _without_step(job: dict[str, Any], pattern: str) -> None:
    kept = [s for s in job["steps"] if not re.search(pattern, str(s.get("uses", s.get("run", ""))))]
    assert len(kept) == len(job["steps"]) - 1, pattern
    job["steps"] = kept


def _swap_last_two(job: dict[str, Any]) -> None:
    job["steps"][-2:] = job["steps"][-1:-3:-1]


def _with(key: str, value: str | None, rename: str | None = None) -> Callable[[dict[str, Any]], None]:
    """Edit one input of the job's pulumi/actions step: a new value, removed (None), or renamed."""

    def edit(job: dict[str, Any]) -> None:
        [step] = [s for s in job["steps"] if str(s.get("uses", "")).startswith("pulumi/actions@")]
        assert key in step["with"], key
        if rename:
            step["with"][rename] = step["with"].pop(key)
        elif value is None:
            step["with"].pop(key)
        else:
            step["with"][key] = value

    return edit


def _uses(ref: str) -> Callable[[dict[str, Any]], None]:
    def edit(job: dict[str, Any]) -> None:
        [step] = [s for s in job["steps"] if str(s.get("uses", "")).startswith("pulumi/actions@")]
        step["uses"] = f"pulumi/actions@{ref}"

    return edit


PREVIEW = "pulumi preview with the policy pack"


PLANTED = [
    # (workflow, job, edit of the job, edit of the checkout, failing step, message in its output)
    (
        "deploy.yml",
        "dev",
        None,
        _edit("Makefile", "$(CURDIR)/$(TOOLS)/bin:", ""),
        "make deploy",
        "Could not find `uv` executable",
    ),
    (
        "deploy.yml",
        "dev",
        None,
        _edit("stacks/Pulumi.dev.yaml", "monthlyUsd: 800", "monthlyUsd: 900"),
        "make deploy",
        "policies/config/dev.json: stale",
    ),
    (
        "deploy.yml",
        "dev",
        None,
        _edit("policies/PulumiPolicy.yaml", "virtualenv: ../.venv", "virtualenv: ../.venv-pack"),
        "make deploy",
        "virtualenv ../.venv-pack does not exist",
    ),
    (
        "deploy.yml",
        "dev",
        lambda job: _without_step(job, "configure-aws-credentials"),
        None,
        "make deploy",
        "NoCredentialProviders",
    ),
    (
        "deploy.yml",
        "test",
        lambda job: job["permissions"].pop("id-token"),
        None,
        "aws-actions/configure-aws-credentials",
        "could not get ID token",
    ),
    (
        "deploy.yml",
        "prod",
        None,
        _edit("Makefile", "--kubeconfig $(TOOLS)/kubeconfig-$(STACK)\n", "\n"),
        "make smoke",
        "connection to the server localhost:8080 was refused",
    ),
    (
        "pr.yml",
        "check",
        lambda job: _without_step(job, "setup-python"),
        None,
        "Policy pack on every stack",
        "python3.11",
    ),
    ("pr.yml", "diff", _swap_last_two, None, "Post or update one PR comment", "plan-dev.md: cannot read"),
    (
        "pr.yml",
        "diff",
        lambda job: job["steps"][0]["with"].pop("fetch-depth"),
        None,
        "Resource changes and cost delta",
        "--compare 'origin/main': neither a file nor a commit",
    ),
    (
        "pr.yml",
        "diff",
        lambda job: job["steps"][-1]["env"].pop("GH_TOKEN"),
        None,
        "Post or update one PR comment",
        "set the GH_TOKEN environment variable",
    ),
    (
        "pr.yml",
        "preview",
        lambda job: job["steps"][-1].pop("env"),
        None,
        PREVIEW,
        "PULUMI_ACCESS_TOKEN must be set",
    ),
    # pulumi/actions: what its inputs point at must exist where the action resolves it (work-dir)
    (
        "pr.yml",
        "preview",
        _with("policyPackConfigs", "policies/${{ matrix.stack }}.json"),
        None,
        PREVIEW,
        "policies/dev.json: [Errno 2] No such file or directory",
    ),
    ("pr.yml", "preview", _with("policyPacks", "dist/policy-pack"), None, PREVIEW, "no PulumiPolicy.yaml"),
    ("pr.yml", "preview", _with("work-dir", "infra"), None, PREVIEW, "no Pulumi.yaml project file found"),
    # ... its inputs are the ones action.yml declares, with values its parsers take
    (
        "pr.yml",
        "preview",
        _with("policyPacks", None, rename="policyPack"),
        None,
        PREVIEW,
        "Unexpected input(s) 'policyPack'",
    ),
    ("pr.yml", "preview", _with("command", "previw"), None, PREVIEW, "'previw' is not one of"),
    (
        "pr.yml",
        "preview",
        _with("stack-name", None),
        None,
        PREVIEW,
        "Input required and not supplied: stack-name",
    ),
    ("pr.yml", "preview", _with("diff", "yes"), None, PREVIEW, 'Input does not meet YAML 1.2 "Core Schema"'),
    # ... it is pinned to the commit the model was read from
    ("pr.yml", "preview", _uses("v6"), None, PREVIEW, "not pinned by full commit SHA"),
    (
        "pr.yml",
        "preview",
        _uses("8e5e406f4007fca908480587cb9893c07090f58d"),
        None,
        PREVIEW,
        "model is of v6.6.1",
    ),
    # ... and gets what it needs from the job: the comment's permission, uv and the pack's virtualenv
    (
        "pr.yml",
        "preview",
        lambda job: job["permissions"].pop("pull-requests"),
        None,
        PREVIEW,
        "Resource not accessible",
    ),
    (
        "pr.yml",
        "preview",
        lambda job: _without_step(job, "make preview-env"),
        None,
        PREVIEW,
        "Could not find `uv`",
    ),
    (
        "pr.yml",
        "preview",
        None,
        _edit("stacks/Pulumi.dev.yaml", "monthlyUsd: 800", "monthlyUsd: 900"),
        "Policy config of the stack current",
        "policies/config/dev.json: stale",
    ),
]


@pytest.mark.parametrize(
    ("file", "job", "edit_job", "edit_checkout", "step", "message"),
    PLANTED,
    ids=[f"{p[0]}-{p[1]}-{p[4]}-{p[5][:24]}" for p in PLANTED],
)
def test_a_planted_missing_prerequisite_fails_its_step(
    file: str,
    job: str,
    edit_job: Callable[[dict[str, Any]], Any] | None,
    edit_checkout: Callable[[Path], None] | None,
    step: str,
    message: str,
    runner: Runner,
) -> None:
    workflow = _workflow(file)
    if edit_job:
        edit_job(workflow["jobs"][job])
    matrix = {"stack": "dev"} if "matrix" in str(workflow["jobs"][job].get("strategy")) else None
    run = runner.run(workflow, job, matrix, prepare=edit_checkout)
    assert run.failed is not None, f"the planted defect went unnoticed: {run.report()}"
    assert run.failed.name.startswith(step), run.report()
    assert message in run.failed.output, run.report()


def test_the_pr_diff_job_leaves_one_comment_per_cloud_stack(runner: Runner, tmp_path: Path) -> None:
    """The real `mlops-infra pr-comment` posts through the fake `gh api`: one comment per stack file, each
    starting with its stack's marker (what the next push finds and edits)."""
    run = runner.run(_workflow("pr.yml"), "diff")
    assert run.failed is None, run.report()
    comments = json.loads((tmp_path / "diff" / "gh-comments.json").read_text())
    firsts = sorted(c["body"].splitlines()[0] for c in comments)
    stacks = sorted(
        p.name.split(".")[1]
        for p in (ROOT / "stacks").glob("Pulumi.*.yaml")
        if yaml.safe_load(p.read_text())["config"].get("mlops-platform:cloud") != "local"
    )
    assert len(stacks) >= 6  # dev, test, prod, prod-gcp, prod-karpenter, dev-gpu-sharing
    assert firsts == [f"<!-- mlops-infra-plan:{s} -->" for s in stacks]
    assert {c["issue"] for c in comments} == {42}
