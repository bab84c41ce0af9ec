"""`plan STACK --compare BASE`: which resources a change adds, removes, updates or replaces, and how their
inputs change. A pure function over two `plan --json` documents (the base from tooling/base_plan.py).

Resources are matched by URN, as the engine matches them (a renamed or re-parented resource without an alias
is a removal plus an addition). Inputs are compared leaf by leaf: objects key by key, lists index by index,
as `pulumi preview --diff` shows them. Secrets are `"[secret]"` on both sides (the offline plan never holds
their values), so a changed secret value is not visible here. A change forces replacement when its path lies
under a property the provider replaces on change (replace_facts.json, extracted from the providers' sources
by scripts/replace_facts.py); a resource type the table does not know is never flagged.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from functools import cache
from importlib import resources
from typing import Any

ABSENT: Any = object()
CLIP = 120  # characters of one value shown; longer strings are cut around their first difference
_INDEX = re.compile(r"\[[^\]]*\]")


class PlanDiffError(Exception):
    """A base or head document without the resources `plan --compare` needs: exit code 2."""


@cache
def replace_facts() -> dict[str, Any]:
    """The fact table: `types` maps a type token to the input paths whose change forces replacement."""
    text = resources.files("mlops_infra.tooling").joinpath("replace_facts.json").read_text()
    facts: dict[str, Any] = json.loads(text)
    return facts


def _resources(document: Mapping[str, Any] | None, what: str) -> dict[str, Mapping[str, Any]]:
    if document is None:
        return {}
    found = document.get("resources")
    if not isinstance(found, list):
        raise PlanDiffError(
            f"{what}: no resources; `plan --compare` needs a `plan --json` document (a `cost --json` one "
            "only carries prices)"
        )
    by_urn: dict[str, Mapping[str, Any]] = {}
    for r in found:
        if not isinstance(r, Mapping) or not isinstance(r.get("urn"), str):
            raise PlanDiffError(f"{what}: a resource without a URN: {str(r)[:80]}")
        by_urn[r["urn"]] = r
    return by_urn


def _leaf_changes(old: Any, new: Any, path: str) -> Iterator[tuple[str, Any, Any]]:
    """(path, old, new) for every leaf that differs; ABSENT where a side has no value."""
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        for key in sorted(old.keys() | new.keys()):
            yield from _leaf_changes(
                old.get(key, ABSENT), new.get(key, ABSENT), f"{path}.{key}" if path else key
            )
    elif isinstance(old, list) and isinstance(new, list):
        for i in range(max(len(old), len(new))):
            yield from _leaf_changes(
                old[i] if i < len(old) else ABSENT, new[i] if i < len(new) else ABSENT, f"{path}[{i}]"
            )
    elif old != new or (type(old) is not type(new) and not _same_number(old, new)):
        yield path, old, new


def _same_number(a: Any, b: Any) -> bool:
    """3 and 3.0 are the same input (the wire format has one number type)."""
    numbers = (int, float)
    return (
        isinstance(a, numbers)
        and isinstance(b, numbers)
        and not isinstance(a, bool)
        and not isinstance(b, bool)
        and a == b
    )


def _segments(path: str) -> list[str]:
    return [s for s in _INDEX.sub("", path).split(".") if s]


def replaces(
    type_token: str, path: str, facts: Mapping[str, Any] | None = None, table: str = "types"
) -> bool:
    """True when changing `path` (list indices ignored) of a `type_token` resource forces replacement
    (`table="conditional"`: may force it, depending on the values)."""
    changed = _segments(path)
    for fact in (facts or replace_facts()).get(table, {}).get(type_token, ()):
        wanted = _segments(fact)
        if changed[: len(wanted)] == wanted:
            return True
    return False


def _display(value: Any) -> Any:
    """A JSON value as shown: whole numbers without `.0` (the wire format sends 3 as 3.0), at any depth."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Mapping):
        return {k: _display(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_display(v) for v in value]
    return value


def clip_pair(old: Any, new: Any, limit: int = CLIP) -> tuple[str, str]:
    """Both sides as text, long ones cut to `limit` characters around where they first differ."""
    texts = [_text(old), _text(new)]
    if max(len(t) for t in texts) <= limit:
        return texts[0], texts[1]
    a, b = texts
    start = 0
    while start < min(len(a), len(b)) and a[start] == b[start]:
        start += 1
    begin = max(0, start - limit // 4)
    return _cut(a, begin, limit), _cut(b, begin, limit)


def _text(value: Any) -> str:
    if value is ABSENT:
        return "(absent)"
    shown = _display(value)
    if isinstance(shown, str):
        return json.dumps(shown, ensure_ascii=False)
    return json.dumps(shown, sort_keys=True, separators=(",", ":"), default=str)


def _cut(text: str, begin: int, limit: int) -> str:
    if len(text) <= limit:
        return text
    begin = min(begin, max(0, len(text) - limit))
    body = text[begin : begin + limit]
    return ("…" if begin else "") + body + ("…" if begin + limit < len(text) else "")


def _entry(type_token: str, path: str, old: Any, new: Any, facts: Mapping[str, Any]) -> dict[str, Any]:
    kind = "add" if old is ABSENT else "delete" if new is ABSENT else "update"
    shown_old, shown_new = clip_pair(old, new)
    return {
        "path": path,
        "kind": kind,
        "old": None if old is ABSENT else shown_old,
        "new": None if new is ABSENT else shown_new,
        "replaces": replaces(type_token, path, facts),
        "mayReplace": replaces(type_token, path, facts, "conditional"),
    }


def _summary(resource: Mapping[str, Any], change: str) -> dict[str, Any]:
    return {
        "urn": resource["urn"],
        "type": str(resource.get("type", "")),
        "name": str(resource.get("name", resource["urn"].rsplit("::", 1)[-1])),
        "change": change,
        "protect": bool(resource.get("protect", False)),
    }


def diff_plans(
    base: Mapping[str, Any] | None, head: Mapping[str, Any], facts: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Every resource that differs between `base` and `head`, in URN order, and counts per kind of change.

    `change` is `create`, `delete`, `update` or `replace` (an update of a property the provider cannot change
    in place). Each updated or replaced resource lists its changed inputs as `{path, kind, old, new,
    replaces, mayReplace}`, values as JSON text cut to a readable length (`mayReplace`: the provider
    replaces on some changes of it only); a changed `protect` option is a change too.
    """
    facts = facts or replace_facts()
    old_by_urn, new_by_urn = _resources(base, "base"), _resources(head, "head")
    changes: list[dict[str, Any]] = []
    for urn in sorted(old_by_urn.keys() | new_by_urn.keys()):
        old, new = old_by_urn.get(urn), new_by_urn.get(urn)
        if old is None and new is not None:
            changes.append(_summary(new, "create"))
            continue
        if new is None and old is not None:
            changes.append(_summary(old, "delete"))
            continue
        assert old is not None and new is not None
        type_token = str(new.get("type", ""))
        entries = [
            _entry(type_token, path, a, b, facts)
            for path, a, b in _leaf_changes(old.get("inputs") or {}, new.get("inputs") or {}, "")
        ]
        if bool(old.get("protect")) != bool(new.get("protect")):
            entries.append(
                {
                    "path": "(protect)",
                    "kind": "update",
                    "old": json.dumps(bool(old.get("protect"))),
                    "new": json.dumps(bool(new.get("protect"))),
                    "replaces": False,
                    "mayReplace": False,
                }
            )
        if not entries:
            continue
        change = "replace" if any(e["replaces"] for e in entries) else "update"
        changes.append({**_summary(new, change), "diffs": entries})
    counts = {
        kind: sum(c["change"] == kind for c in changes) for kind in ("create", "update", "replace", "delete")
    }
    unchanged = len(old_by_urn.keys() & new_by_urn.keys()) - counts["update"] - counts["replace"]
    return {"counts": {**counts, "same": unchanged}, "resources": changes}
