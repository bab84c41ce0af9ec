"""What `pulumi/actions` (v6.6.1, facts in action_facts.py) does in a job, for workflow_sandbox.py: which
inputs it takes, the Pulumi CLI it installs, the `pulumi` command lines it runs (through the recording fake, so
a missing project, stack file, policy pack, policy config, `uv` or credential fails as the real CLI would) and
the PR comment it leaves.

The order follows src/main.ts: install the CLI (`pulumi-version`, else `^3`) and put it on PATH; without
`command`, stop there. Otherwise resolve `work-dir` against the workspace, `pulumi login` (a failure only
warns), `pulumi stack select` (Automation API `selectStack`), the command with the Automation API's flags, and
with `comment-on-pr` on a pull request the comment through the GitHub REST API (listed, then edited when one
starts with the same heading, or created). GitHub only warns about an input the action does not declare;
this model fails the step, because the action then runs without it (a misspelt `policyPacks` previews with
no pack at all). Inputs the action declares but this model does not map to flags raise NotModelled.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml
from ci.action_facts import (
    PULUMI_ACTIONS_BOOLEANS,
    PULUMI_ACTIONS_COMMANDS,
    PULUMI_ACTIONS_COMMENT_HEADING,
    PULUMI_ACTIONS_COMMENT_SUMMARY,
    PULUMI_ACTIONS_INPUTS,
    PULUMI_ACTIONS_LISTS,
    PULUMI_ACTIONS_USER_AGENT,
)
from ci.fake_tools import write_wrapper

BOOLEAN_VALUES = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
# Inputs this model turns into the Automation API's flags (stack.ts preview/up); any other input that is set
# away from its default is not modelled yet.
MODELLED = {
    "command",
    "stack-name",
    "pulumi-version",
    "work-dir",
    "comment-on-pr",
    "github-token",
    "edit-pr-comment",
    "color",
    "cloud-url",
    "diff",
    "refresh",
    "expect-no-changes",
    *PULUMI_ACTIONS_LISTS,
}


class ActionFailed(Exception):
    """`core.setFailed(message)`: the step fails with this message."""


class NotModelled(Exception):
    """An input the action declares but this model does not turn into what the action does with it."""


def run_pulumi_action(
    given: Mapping[str, str],
    *,
    default: Callable[[str], str],
    permissions: Mapping[str, str],
    pull_request: int | None,
    env: dict[str, str],
    workspace: Path,
    path: list[str],
    tool_cache: Path,
    comments: Path,
) -> tuple[int, str]:
    """`default(expression)` evaluates an input's default (`${{ github.token }}`); `path` is the job's PATH,
    which the installed CLI joins (`core.addPath`) for this and later steps; `comments` is the PR's comments
    (the JSON file the fake `gh api` keeps too)."""
    unknown = sorted(set(given) - set(PULUMI_ACTIONS_INPUTS))
    if unknown:
        valid = ", ".join(f"'{n}'" for n in PULUMI_ACTIONS_INPUTS)
        names = ", ".join(f"'{n}'" for n in unknown)
        return 1, f"Unexpected input(s) {names}, valid inputs are [{valid}]"
    inputs = {n: default(d) for n, d in PULUMI_ACTIONS_INPUTS.items() if d is not None}
    inputs.update(given)
    unmodelled = sorted(n for n, v in given.items() if n not in MODELLED and v != PULUMI_ACTIONS_INPUTS[n])
    if unmodelled:
        raise NotModelled(
            f"pulumi/actions inputs not modelled: {unmodelled}: extend tests/ci/pulumi_action.py"
        )
    log: list[str] = []
    try:
        flags = {n: _boolean(n, inputs[n]) for n in PULUMI_ACTIONS_BOOLEANS}
        log.append(_install(inputs, workspace, path, tool_cache))
        command = inputs.get("command", "")
        if not command:
            return 0, "\n".join([*log, "Pulumi has been successfully installed. Exiting."])
        if command not in PULUMI_ACTIONS_COMMANDS:
            raise ActionFailed(f"command: {command!r} is not one of {', '.join(PULUMI_ACTIONS_COMMANDS)}")
        stack = inputs.get("stack-name", "")
        if not stack:
            raise ActionFailed("Input required and not supplied: stack-name")
        work_dir = (workspace / inputs["work-dir"]).resolve()
        if not work_dir.is_dir():
            raise ActionFailed(f"work-dir {inputs['work-dir']}: no such directory under the workspace")
        env = dict(env, PATH=os.pathsep.join(path))

        def pulumi(*args: str, check: bool = True) -> str:
            proc = subprocess.run(
                ["pulumi", *args], cwd=work_dir, env=env, capture_output=True, text=True, check=False
            )
            if check and proc.returncode != 0:
                raise ActionFailed(proc.stderr or proc.stdout)
            return proc.stdout

        login = ["login", inputs["cloud-url"]] if inputs.get("cloud-url") else ["login"]
        pulumi("--non-interactive", "--cwd", str(work_dir), *login, check=False)
        if command != "output":
            pulumi("stack", "select", "--stack", stack, "--non-interactive")
        argv = [*_command_line(command, inputs, flags), "--stack", stack, "--non-interactive"]
        output = pulumi(*argv)
        log.append(output)
        if command != "output" and flags["comment-on-pr"] and pull_request is not None:
            log.append(
                _comment(command, stack, work_dir, output, inputs, flags, permissions, pull_request, comments)
            )
    except ActionFailed as exc:
        return 1, "\n".join([*log, f"Error: {exc}"])
    return 0, "\n".join(log)


def _boolean(name: str, value: str) -> bool:
    if value not in BOOLEAN_VALUES:
        raise ActionFailed(
            f'Input does not meet YAML 1.2 "Core Schema" specification: {name}\n'
            "Support boolean input list: `true | True | TRUE | false | False | FALSE`"
        )
    return BOOLEAN_VALUES[value]


def _install(inputs: Mapping[str, str], workspace: Path, path: list[str], tool_cache: Path) -> str:
    """pulumi-cli.ts downloadCli: the release for the version (or range) into the tool cache, added to PATH."""
    version, version_file = inputs.get("pulumi-version", ""), inputs.get("pulumi-version-file", "")
    if version and version_file:
        raise ActionFailed(
            "Only one of 'pulumi-version' or 'pulumi-version-file' should be provided, got both"
        )
    if version_file:
        file = workspace / version_file
        if not file.is_file():
            raise ActionFailed(f"pulumi-version-file '{version_file}' does not exist")
        version = file.read_text().strip()
    version = version or "^3"
    bin_dir = tool_cache / "pulumi" / version / "x64"
    write_wrapper(bin_dir / "pulumi", "pulumi")
    path.insert(0, str(bin_dir))
    return f"Configured range: {version}"


def _command_line(command: str, inputs: Mapping[str, str], flags: Mapping[str, bool]) -> list[str]:
    """The Automation API's argv for `preview`/`up` (stack.ts): options in its order, then the exec kind."""
    argv = {"update": ["up", "--yes", "--skip-preview"], "up": ["up", "--yes", "--skip-preview"]}.get(
        command, [command]
    )
    for name, flag in (
        ("expect-no-changes", "--expect-no-changes"),
        ("refresh", "--refresh"),
        ("diff", "--diff"),
    ):
        if flags[name]:
            argv.append(flag)
    for name, flag in (("policyPacks", "--policy-pack"), ("policyPackConfigs", "--policy-pack-config")):
        for item in _list(inputs.get(name, "")):
            argv += [flag, item]
    argv += [
        "--exec-agent",
        PULUMI_ACTIONS_USER_AGENT,
        "--color",
        inputs["color"],
        "--exec-kind",
        "auto.local",
    ]
    return argv


def _list(value: str) -> list[str]:
    """getMultilineInput (non-empty lines) split on "," and trimmed (utils.ts parseSemicolorToArray)."""
    lines = [line for line in value.splitlines() if line.strip()]
    return [item.strip() for line in lines for item in line.split(",") if item != ""]


def _comment(
    command: str,
    stack: str,
    work_dir: Path,
    output: str,
    inputs: Mapping[str, str],
    flags: Mapping[str, bool],
    permissions: Mapping[str, str],
    pull_request: int,
    comments: Path,
) -> str:
    """pr.ts handlePullRequestMessage: the heading names the command, the project and the stack."""
    if not inputs.get("github-token"):
        raise ActionFailed("github-token is missing.")
    if permissions.get("pull-requests") != "write":
        raise ActionFailed(
            "HttpError: Resource not accessible by integration (403): needs `pull-requests: write`"
        )
    project = yaml.safe_load((work_dir / "Pulumi.yaml").read_text())["name"]
    heading = PULUMI_ACTIONS_COMMENT_HEADING.format(command=command, project=project, stack=stack)
    body = (
        f"{heading}\n\n<details>\n{PULUMI_ACTIONS_COMMENT_SUMMARY}\n\n<pre>\n{output}\n</pre>\n\n</details>"
    )
    state: list[dict[str, Any]] = json.loads(comments.read_text()) if comments.is_file() else []
    mine = next(
        (
            c
            for c in state
            if c["issue"] == pull_request
            and c["body"].startswith(heading)
            and PULUMI_ACTIONS_COMMENT_SUMMARY in c["body"]
        ),
        None,
    )
    if mine is not None and flags["edit-pr-comment"]:
        mine["body"] = body
    else:
        state.append(
            {
                "id": 1000 + len(state),
                "issue": pull_request,
                "body": body,
                "user": {"login": "github-actions[bot]"},
            }
        )
    comments.write_text(json.dumps(state))
    return f"{'edited' if mine is not None else 'created'} the PR comment {heading!r}"
