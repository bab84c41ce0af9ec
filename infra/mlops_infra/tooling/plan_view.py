"""A plan as a person reads it: the resource tree by component, as `pulumi preview` shows it, a count per type
and a summary line. Plain text, one resource per line, never folded: it stays readable piped to a file."""

from __future__ import annotations

from collections import Counter, defaultdict

from mlops_infra.tooling.plan import Plan, RecordedResource

PROVIDER_PREFIX = "pulumi:providers:"


def describe_type(type_token: str) -> str:
    """Type tokens as a user knows them: `pulumi:providers:kubernetes` is the kubernetes provider."""
    if type_token.startswith(PROVIDER_PREFIX):
        return f"{type_token.removeprefix(PROVIDER_PREFIX)} provider"
    return type_token


def tree_lines(plan: Plan) -> list[str]:
    """`+ <type>  <name>` per resource, children indented under their component, in a stable order."""
    by_urn = {r.urn: r for r in plan.resources}
    children: dict[str | None, list[RecordedResource]] = defaultdict(list)
    for r in plan.resources:
        parent = r.parent if r.parent in by_urn else None
        children[parent].append(r)
    lines: list[str] = []

    def walk(parent: str | None, depth: int) -> None:
        # Components first (they group the rest), then resources; each by type and name.
        for r in sorted(children[parent], key=lambda r: (r.custom, r.type, r.name)):
            flags = " [protected]" if r.protect else ""
            lines.append(f"{'    ' * depth}+ {describe_type(r.type)}  {r.name}{flags}")
            walk(r.urn, depth + 1)

    walk(None, 0)
    return lines


def type_counts(plan: Plan) -> list[tuple[int, str]]:
    counts = Counter(describe_type(r.type) for r in plan.resources if r.custom)
    return sorted(((n, t) for t, n in counts.items()), key=lambda item: (-item[0], item[1]))


def summary_line(plan: Plan) -> str:
    custom = sum(1 for r in plan.resources if r.custom)
    protected = sum(1 for r in plan.resources if r.protect)
    parts = [f"{custom} resources to create", f"{len(plan.resources) - custom} components"]
    if protected:
        parts.append(f"{protected} protected")
    return ", ".join(parts)
