"""The GitHub Actions workflows: schema-valid, zizmor-clean, least privilege, SHA-pinned, one update per stack
at a time, and every `run:` step calls something this repository defines and tests (a Makefile target,
an `mlops-infra` or `python -m retrain_job` command line the real parsers accept) instead of ad-hoc shell.
That the steps also work in their order is test_workflow_order.py's job."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from ci.action_facts import PINS

from mlops_infra.tooling.cli import build_parser as mlops_parser
from retrain_job.cli import build_parser as retrain_parser

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
FILES = sorted(WORKFLOWS.glob("*.yml"))
BIN = Path(sys.executable).parent

SHA_PIN = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
SHELL_OPERATORS = ("&&", "||", ";", "|", "`", "$(")


def _load(path: Path) -> dict[str, Any]:
    doc = yaml.safe_load(path.read_text())
    assert isinstance(doc, dict)
    if True in doc:  # YAML 1.1 reads the `on:` key as a boolean
        doc["on"] = doc.pop(True)
    return doc


def _jobs() -> list[tuple[str, str, dict[str, Any]]]:
    return [(p.name, name, job) for p in FILES for name, job in _load(p)["jobs"].items()]


def _make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return {m.group(1) for m in re.finditer(r"^([A-Za-z][\w.-]*)\s*:(?!=)", text, re.MULTILINE)}


def test_the_workflows_exist() -> None:
    assert {p.name for p in FILES} == {"pr.yml", "deploy.yml", "promote-model.yml", "release.yml"}


def test_schema_valid() -> None:
    proc = subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *map(str, FILES)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_zizmor_finds_nothing() -> None:
    proc = subprocess.run(
        [str(BIN / "zizmor"), "--offline", "--min-severity", "low", str(WORKFLOWS)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "No findings" in proc.stdout + proc.stderr


def test_every_action_is_pinned_by_full_sha_with_a_version_comment() -> None:
    """The SHA is the commit of the release tag in the comment, as read from the action's repository
    (action_facts.PINS): a comment that names another version than the code, or an unverified pin, fails."""
    for path in FILES:
        lines = [line for line in path.read_text().splitlines() if re.match(r"^\s*-?\s*uses:", line)]
        for line in lines:
            m = re.match(r"^\s*-?\s*uses:\s*(\S+)\s*#\s*(v\d+\.\d+\.\d+)\s*$", line)
            assert m and SHA_PIN.match(m.group(1)), f"{path.name}: not SHA-pinned with a # vX.Y.Z: {line}"
            action, sha = m.group(1).split("@")
            assert PINS.get(action) == (m.group(2), sha), (
                f"{path.name}: {line.strip()} is not {PINS.get(action)}"
            )
    for file, name, job in _jobs():
        for step in job.get("steps", []):
            if "uses" in step:
                assert SHA_PIN.match(step["uses"]), (file, name, step["uses"])


def test_least_privilege_permissions() -> None:
    for path in FILES:
        assert _load(path).get("permissions") == {}, f"{path.name}: top-level permissions must be {{}}"
    for file, name, job in _jobs():
        perms = job.get("permissions")
        assert isinstance(perms, dict), f"{file}:{name} grants no explicit job permissions"
        writes = {k for k, v in perms.items() if v == "write"}
        assert writes <= {"id-token", "pull-requests", "contents"}, (file, name, writes)
        # contents: write only where a release is published, from a tag
        assert ("contents" in writes) == ("make release" in _runs(job)), (file, name)
        uses_oidc = any("configure-aws-credentials" in s.get("uses", "") for s in job["steps"])
        assert ("id-token" in writes) == uses_oidc, f"{file}:{name}: id-token only where a role is assumed"
        if "pull-requests" in writes:
            comments = [s for s in job["steps"] if "mlops-infra pr-comment" in s.get("run", "")] + [
                s for s in _pulumi_actions(job) if s["with"].get("comment-on-pr") is True
            ]
            assert comments, f"{file}:{name}: pull-requests: write without a step that comments"


def test_checkout_never_persists_credentials_and_no_long_lived_keys() -> None:
    for file, name, job in _jobs():
        for step in job["steps"]:
            if step.get("uses", "").startswith("actions/checkout@"):
                assert step.get("with", {}).get("persist-credentials") is False, (file, name)
            if "configure-aws-credentials" in step.get("uses", ""):
                assert "role-to-assume" in step["with"], (file, name)
                assert not {"aws-access-key-id", "aws-secret-access-key"} & set(step["with"]), (file, name)


def _pulumi_actions(job: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in job["steps"] if str(s.get("uses", "")).startswith("pulumi/actions@")]


def _runs(job: dict[str, Any]) -> list[str]:
    return [str(s["run"]) for s in job["steps"] if "run" in s]


def _is_deploy_job(job: dict[str, Any]) -> bool:
    return "environment" in job or any(
        re.search(r"make (deploy|model-promote|model-rollback)|retrain_job (run|rollback)", run)
        for run in _runs(job)
    )


def test_every_deploy_job_has_a_non_cancelling_concurrency_group() -> None:
    deploy_jobs = [(f, n, j) for f, n, j in _jobs() if _is_deploy_job(j)]
    assert len(deploy_jobs) >= 7  # dev/test/prod deploys, dev/test/prod promotions, rollback
    for file, name, job in deploy_jobs:
        conc = job.get("concurrency")
        assert isinstance(conc, dict) and conc.get("group"), f"{file}:{name} has no concurrency group"
        assert conc.get("cancel-in-progress") is False, f"{file}:{name} would cancel a running update"
    groups = [j["concurrency"]["group"] for f, _, j in deploy_jobs if f == "deploy.yml"]
    assert len(set(groups)) == len(groups) == 3


def test_deploy_order_and_prod_approval() -> None:
    jobs = _load(WORKFLOWS / "deploy.yml")["jobs"]
    assert jobs["test"]["needs"] == "dev" and jobs["prod"]["needs"] == "test"
    assert {n: j["environment"] for n, j in jobs.items()} == {"dev": "dev", "test": "test", "prod": "prod"}
    for name, job in jobs.items():
        assert job["env"]["STACK"] == name
        assert _runs(job)[-2:] == ["make deploy", "make smoke"]
    promote = _load(WORKFLOWS / "promote-model.yml")["jobs"]
    assert promote["test"]["needs"] == "dev" and promote["prod"]["needs"] == "test"
    assert promote["prod"]["environment"] == "prod"


def test_pr_comment_covers_every_cloud_stack_one_file_each() -> None:
    """Every cloud stack's diff is written to its own file and every file is posted (one comment per stack)."""
    job = _load(WORKFLOWS / "pr.yml")["jobs"]["diff"]
    script = "\n".join(_runs(job))
    cloud_stacks = {
        p.name.split(".")[1]
        for p in (ROOT / "stacks").glob("Pulumi.*.yaml")
        if yaml.safe_load(p.read_text())["config"].get("mlops-platform:cloud") != "local"
    }
    written = dict(re.findall(r"mlops-infra plan (\S+) --compare \S+ --format markdown > (\S+)", script))
    assert set(written) == cloud_stacks
    assert len(set(written.values())) == len(written)
    [post] = [c for run in _runs(job) for c in _commands(run) if c[1:2] == ["pr-comment"]]
    assert set(post[2:]) >= set(written.values())


def _commands(run: str) -> list[list[str]]:
    lines = run.replace("\\\n", " ").splitlines()
    commands = []
    for line in (raw.strip() for raw in lines):
        if not line or line.startswith("#"):
            continue
        assert not any(op in line for op in SHELL_OPERATORS), f"one command per line, no shell logic: {line}"
        words = shlex.split(line)
        kept: list[str] = []
        skip = False
        for word in words:  # drop output redirections and their target
            if skip:
                skip = False
            elif word in (">", ">>"):
                skip = True
            else:
                kept.append(word)
        commands.append(kept)
    return commands


def _parses(parser: Any, argv: list[str]) -> bool:
    try:
        parser.parse_args(argv)
    except SystemExit:
        return False
    return True


def test_every_run_step_calls_a_defined_target_or_a_real_command_line() -> None:
    targets = _make_targets()
    seen = 0
    for file, name, job in _jobs():
        for run in _runs(job):
            for cmd in _commands(run):
                seen += 1
                where = f"{file}:{name}: {' '.join(cmd)}"
                head = cmd[0]
                if head == "make":
                    goals = [w for w in cmd[1:] if "=" not in w]
                    assert goals and set(goals) <= targets, f"unknown Makefile target: {where}"
                elif head == ".venv/bin/mlops-infra":
                    assert _parses(mlops_parser(), cmd[1:]), f"mlops-infra rejects: {where}"
                elif cmd[:3] == [".venv/bin/python", "-m", "retrain_job"]:
                    assert _parses(retrain_parser(), cmd[3:]), f"retrain_job rejects: {where}"
                else:
                    pytest.fail(f"run step outside the Makefile/CLIs: {where}")
    assert seen >= 20


def test_a_step_uses_the_virtualenv_only_after_a_step_that_creates_it() -> None:
    """Cheap static companion of test_workflow_order.py: `.venv/...` only after `make setup` (or a target that
    bootstraps it); the old deploy.yml called `.venv/bin/mlops-infra` after only `make pulumi-cli`."""
    bootstraps = re.compile(
        r"^make (setup|check|check-all|test|deploy|preview|preview-env|smoke|policy-config|model-\w+)\b"
    )
    for file, name, job in _jobs():
        ready = False
        for run in _runs(job):
            for cmd in _commands(run):
                if cmd[0].startswith(".venv/"):
                    assert ready, f"{file}:{name}: {' '.join(cmd)} runs before any step creates .venv"
                ready = ready or bool(bootstraps.match(" ".join(cmd)))


@pytest.mark.parametrize("target", ["preview", "deploy"])
def test_pulumi_gets_the_stacks_own_policy_config(target: str) -> None:
    """`make preview/deploy STACK=prod` refuse a stale policies/config/prod.json and pass it to the pack."""
    proc = subprocess.run(
        ["make", "-n", target, "STACK=prod"], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    lines = proc.stdout.splitlines()
    freshness = lines.index(".venv/bin/mlops-infra policy-config prod --check")
    [pulumi] = [i for i, line in enumerate(lines) if "--policy-pack policies" in line]
    assert freshness < pulumi
    assert "--policy-pack-config policies/config/prod.json" in lines[pulumi]
    assert "/.venv-tools/bin:" in lines[pulumi]  # uv, which the project's uv toolchain looks up on PATH


def _cloud_stacks(cloud: str) -> list[str]:
    return sorted(
        p.name.split(".")[1]
        for p in (ROOT / "stacks").glob("Pulumi.*.yaml")
        if yaml.safe_load(p.read_text())["config"].get("mlops-platform:cloud") == cloud
    )


def test_the_pr_preview_runs_pulumi_actions_with_the_pack_and_each_stacks_config() -> None:
    """pulumi/actions previews every AWS stack (the job assumes an AWS role only) with the pinned CLI of the
    Makefile, the repository's pack and the matrix stack's own policy config, and comments on the PR; the step
    before it checks that config's freshness and puts `uv` on PATH."""
    job = _load(WORKFLOWS / "pr.yml")["jobs"]["preview"]
    assert sorted(job["strategy"]["matrix"]["stack"]) == _cloud_stacks("aws")
    assert job["env"]["STACK"] == "${{ matrix.stack }}"
    assert "vars.AWS_PREVIEW_ROLE_ARN != ''" in job["if"]  # only where a preview role exists
    assert "github.event.pull_request.head.repo.full_name == github.repository" in job["if"]  # never a fork
    [step] = _pulumi_actions(job)
    pinned = re.search(r"^PULUMI_VERSION := (\S+)$", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert pinned is not None
    assert step["with"] == {
        "command": "preview",
        "stack-name": "${{ matrix.stack }}",
        "pulumi-version": pinned.group(1),
        "work-dir": ".",
        "policyPacks": "policies",
        "policyPackConfigs": "policies/config/${{ matrix.stack }}.json",
        "diff": True,
        "comment-on-pr": True,
        "github-token": "${{ github.token }}",
    }
    assert set(step["env"]) == {"PULUMI_ACCESS_TOKEN"}
    assert job["steps"][job["steps"].index(step) - 1]["run"] == "make preview-env"


def test_make_preview_env_checks_the_config_then_puts_uv_and_the_venv_on_the_path_of_later_steps() -> None:
    proc = subprocess.run(
        ["make", "-n", "preview-env", "STACK=prod"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    lines = proc.stdout.splitlines()
    check = lines.index(".venv/bin/mlops-infra policy-config prod --check")
    written = [line for line in lines[check:] if "GITHUB_PATH" in line]
    assert [w.split('"')[1].removeprefix(str(ROOT)) for w in written] == ["/.venv-tools/bin", "/.venv/bin"]
