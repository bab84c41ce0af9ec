"""`plan STACK --compare BASE` as a person reads it: text like `pulumi preview --diff`, or one markdown section
(the pull-request comment of one stack) holding the resource changes and the monthly cost delta together.

The markdown starts with a hidden marker naming the stack (`<!-- mlops-infra-plan:STACK -->`): the PR workflow
finds its earlier comment by it and edits that comment in place (tooling/pr_comment.py).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from mlops_infra.tooling.cost import compare

SYMBOL = {"create": "+", "delete": "-", "update": "~", "replace": "-/+"}
ENTRY_SYMBOL = {"add": "+", "delete": "-", "update": "~"}
# GitHub refuses comment bodies over 65,536 characters; the resource details give way first.
MARKDOWN_LIMIT = 60_000


def marker(stack: str) -> str:
    return f"<!-- mlops-infra-plan:{stack} -->"


def headline(diff: Mapping[str, Any]) -> str:
    n = diff["counts"]
    parts = [
        f"{n['create']} to create",
        f"{n['update']} to update",
        f"{n['replace']} to replace",
        f"{n['delete']} to delete",
    ]
    return ", ".join(parts) + f", {n['same']} unchanged"


def _entry_line(entry: Mapping[str, Any]) -> str:
    symbol = ENTRY_SYMBOL[entry["kind"]]
    if entry["kind"] == "add":
        text = f"{symbol} {entry['path']}: {entry['new']}"
    elif entry["kind"] == "delete":
        text = f"{symbol} {entry['path']}: {entry['old']}"
    else:
        text = f"{symbol} {entry['path']}: {entry['old']} => {entry['new']}"
    if entry["replaces"]:
        return text + "  (forces replacement)"
    return text + ("  (may force replacement)" if entry.get("mayReplace") else "")


def resource_lines(diff: Mapping[str, Any]) -> list[str]:
    """One line per changed resource, its input changes indented under it, as `pulumi preview --diff`."""
    lines: list[str] = []
    for r in diff["resources"]:
        flags = " [protected]" if r.get("protect") else ""
        lines.append(f"{SYMBOL[r['change']]} {r['type']}  {r['name']}  ({r['change']}){flags}")
        lines.extend(f"    {_entry_line(e)}" for e in r.get("diffs", ()))
    return lines


def to_text(diff: Mapping[str, Any], cost: Mapping[str, Any], stack: str, base_label: str) -> str:
    lines = [f"Plan of {stack} vs {base_label}: {headline(diff)}"]
    lines += [f"  {line}" for line in resource_lines(diff)]
    d, cur = cost["delta"]["monthly"], cost["currency"]
    lines.append(
        f"monthly cost delta ({cur}): min {_signed(d['min'])}, expected {_signed(d['expected'])}, "
        f"max {_signed(d['max'])}"
    )
    return "\n".join(lines) + "\n"


def _signed(value: float) -> str:
    return f"{value:+,.2f}" if value else "0.00"


def _fence(lines: list[str]) -> str:
    """A code fence longer than any backtick run in the content, so no value can close it early."""
    longest = max((len(m) for line in lines for m in re.findall(r"`+", line)), default=0)
    return "`" * max(3, longest + 1)


def _fit(lines: list[str], budget: int) -> list[str]:
    """The first lines that fit in `budget` characters, and a note of how many did not."""
    kept: list[str] = []
    used = 0
    for line in lines:
        if used + len(line) + 1 > budget:
            return [
                *kept,
                f"... {len(lines) - len(kept)} more lines: run `mlops-infra plan STACK --compare BASE`",
            ]
        kept.append(line)
        used += len(line) + 1
    return kept


def to_markdown(diff: Mapping[str, Any], cost: Mapping[str, Any], stack: str, base_label: str) -> str:
    """One stack's pull-request comment: resource changes (a `diff` block) then the monthly cost delta."""
    n = diff["counts"]
    head = [
        marker(stack),
        f"### Plan of `{stack}` vs `{base_label}`",
        "",
        "| create | update | replace | delete | unchanged |",
        "|---:|---:|---:|---:|---:|",
        f"| {n['create']} | {n['update']} | {n['replace']} | {n['delete']} | {n['same']} |",
        "",
    ]
    cost_section = compare.to_markdown(cost, stack, base_label, embedded=True)
    if not diff["resources"]:
        body = ["No resource changed.", ""]
    else:
        if n["replace"]:
            head += [f"**{n['replace']} resource(s) will be replaced** (deleted and created again).", ""]
        budget = MARKDOWN_LIMIT - sum(len(x) + 1 for x in head) - len(cost_section) - 200
        details = _fit(resource_lines(diff), budget)
        fence = _fence(details)
        body = [f"{fence}diff", *details, fence, ""]
    return "\n".join([*head, *body]) + "\n" + cost_section
