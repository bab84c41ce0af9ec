"""Facts about the GitHub Actions the workflows use, read from each action's own repository at the pinned tag
(`git rev-parse TAG^{commit}`, `git show TAG:action.yml`; for pulumi/actions also `src/config.ts`,
`src/main.ts`, `src/libs/pr.ts`, `src/libs/utils.ts` and `src/libs/pulumi-cli.ts`). A new pin means reading
them again: the workflow sandbox refuses a commit these facts do not describe.
"""

from __future__ import annotations

# action -> (release tag, the commit that tag points to)
PINS: dict[str, tuple[str, str]] = {
    "actions/checkout": ("v4.2.2", "11bd71901bbe5b1630ceea73d27597364c9af683"),
    "actions/setup-python": ("v5.6.0", "a26af69be951a213d495a4c3e4e4022e16d87065"),
    "aws-actions/configure-aws-credentials": ("v4.2.1", "b47578312673ae6fa5b5096b330d9fbac3d116df"),
    "pulumi/actions": ("v6.6.1", "8582a9e8cc630786854029b4e09281acd6794b58"),
}

# pulumi/actions v6.6.1, action.yml `inputs:`: name -> default (None: no default). `github-token` defaults to
# the expression `${{ github.token }}`.
PULUMI_ACTIONS_INPUTS: dict[str, str | None] = {
    "command": None,
    "stack-name": None,
    "pulumi-version": None,
    "pulumi-version-file": None,
    "work-dir": "./",
    "comment-on-pr": "false",
    "comment-on-pr-number": None,
    "comment-on-summary": "false",
    "github-token": "${{ github.token }}",
    "cloud-url": None,
    "secrets-provider": None,
    "parallel": None,
    "message": None,
    "config-map": None,
    "expect-no-changes": "false",
    "diff": "false",
    "replace": None,
    "exclude": None,
    "exclude-dependents": "false",
    "target": None,
    "target-dependents": "false",
    "policyPacks": None,
    "policyPackConfigs": None,
    "refresh": "false",
    "upsert": "false",
    "remove": "false",
    "edit-pr-comment": "true",
    "color": "auto",
    "exclude-protected": "false",
    "plan": None,
    "suppress-outputs": "false",
    "suppress-progress": "false",
    "always-include-summary": "false",
    "continue-on-error": "false",
    "log-verbosity": None,
    "log-flow": "false",
    "debug": "false",
}
# src/config.ts: `command` is a union of these (no `command` at all: install the CLI and exit); `stack-name`
# and `work-dir` are required; these inputs go through getBooleanInput (YAML 1.2 core booleans only).
PULUMI_ACTIONS_COMMANDS = ("up", "update", "refresh", "destroy", "preview", "output")
PULUMI_ACTIONS_BOOLEANS = frozenset(
    name for name, default in PULUMI_ACTIONS_INPUTS.items() if default in ("true", "false")
)
# getMultilineInput, then every line split on "," (utils.ts parseSemicolorToArray): one flag per item.
PULUMI_ACTIONS_LISTS = ("policyPacks", "policyPackConfigs")
# Passed to the Automation API as `userAgent` (`--exec-agent`).
PULUMI_ACTIONS_USER_AGENT = "pulumi/actions@v6"
# src/libs/pr.ts: the comment's first line (edited in place when a comment starts with it and holds the
# summary tag) and the summary tag.
PULUMI_ACTIONS_COMMENT_HEADING = "#### :tropical_drink: `{command}` on {project}/{stack}"
PULUMI_ACTIONS_COMMENT_SUMMARY = "<summary>Pulumi report</summary>"
