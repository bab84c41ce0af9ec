"""`mlops-infra cost STACK --compare BASE`: what a change does to the monthly bill, per resource and in total.

The diff is a pure function over two `cost --json` objects (a `plan --json` object works too: its `cost`
field is used). Items are matched by URN; a resource priced on several lines (compute and disk of a node
group) is summed first, so a changed instance type shows as one changed resource, not a removal and an add.

A git ref as BASE is evaluated with the BASE's own code, not this tree's (tooling/base_plan.py, shared with
`plan --compare`): the figure is what the base revision itself would have reported, so a pricing or program
change shows up in the delta too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from mlops_infra.tooling.base_plan import BaseError, load_base

BOUNDS = ("min", "expected", "max")


class CompareError(Exception):
    """A base that cannot be read or evaluated: reported on stderr, exit code 2."""


# ---------------------------------------------------------------------------------------------------- diff


def cost_of(document: Mapping[str, Any]) -> Mapping[str, Any]:
    """The cost object of a `cost --json` or `plan --json` document."""
    if "items" in document and "monthly" in document:
        return document
    cost = document.get("cost")
    if isinstance(cost, Mapping) and "items" in cost:
        return cost
    raise CompareError("not a `cost --json` or `plan --json` document: no cost items found")


def _zero() -> dict[str, float]:
    return dict.fromkeys(BOUNDS, 0.0)


def _by_urn(items: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """One entry per URN: monthly summed over its lines, SKUs in order of appearance."""
    merged: dict[str, dict[str, Any]] = {}
    for item in items:
        try:
            urn, monthly = str(item["urn"]), item["monthly"]
            amounts = {b: float(monthly[b]) for b in BOUNDS}
        except (KeyError, TypeError, ValueError) as exc:
            raise CompareError(f"malformed cost item {dict(item)!r}: {exc}") from None
        entry = merged.setdefault(
            urn, {"urn": urn, "type": str(item.get("type", "")), "skus": [], "monthly": _zero()}
        )
        sku = str(item.get("sku", ""))
        if sku not in entry["skus"]:
            entry["skus"].append(sku)
        for b in BOUNDS:
            entry["monthly"][b] += amounts[b]
    return merged


def _round(values: Mapping[str, float]) -> dict[str, float]:
    return {b: round(values[b], 2) for b in BOUNDS}


def _sub(head: Mapping[str, float], base: Mapping[str, float]) -> dict[str, float]:
    return {b: round(head[b] - base[b], 2) for b in BOUNDS}


def _total(entries: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    total = _zero()
    for entry in entries:
        for b in BOUNDS:
            total[b] += entry["monthly"][b]
    return _round(total)


def compare(base: Mapping[str, Any], head: Mapping[str, Any]) -> dict[str, Any]:
    """Per-URN and total monthly difference `head - base`; only resources whose cost or SKUs changed."""
    base_items, head_items = _by_urn(cost_of(base)["items"]), _by_urn(cost_of(head)["items"])
    changes: list[dict[str, Any]] = []
    for urn in sorted(base_items.keys() | head_items.keys()):
        old, new = base_items.get(urn), head_items.get(urn)
        if old is None and new is not None:
            change, before, after = "added", _zero(), new["monthly"]
        elif new is None and old is not None:
            change, before, after = "removed", old["monthly"], _zero()
        elif old is not None and new is not None:
            before, after = old["monthly"], new["monthly"]
            if _sub(after, before) == _zero() and old["skus"] == new["skus"]:
                continue
            change = "changed"
        else:  # pragma: no cover - the URN came from one of the two maps
            continue
        ref = new if new is not None else old
        assert ref is not None
        changes.append(
            {
                "urn": urn,
                "type": ref["type"],
                "change": change,
                "baseSkus": old["skus"] if old else [],
                "headSkus": new["skus"] if new else [],
                "base": _round(before),
                "head": _round(after),
                "delta": _sub(after, before),
            }
        )
    base_total, head_total = _total(base_items.values()), _total(head_items.values())
    return {
        "currency": str(cost_of(head).get("currency") or cost_of(base).get("currency") or "USD"),
        "base": {"monthly": base_total},
        "head": {"monthly": head_total, "budget": cost_of(head).get("budget")},
        "delta": {"monthly": _sub(head_total, base_total)},
        "changes": changes,
        "unchanged": len(base_items.keys() & head_items.keys())
        - sum(c["change"] == "changed" for c in changes),
    }


def _signed(value: float) -> str:
    return f"{value:+,.2f}" if value else "0.00"


def _short(urn: str) -> str:
    return urn.rsplit("::", 1)[-1]


def to_markdown(diff: Mapping[str, Any], stack: str, base_label: str, embedded: bool = False) -> str:
    """A pull-request comment: totals first (what a reviewer reads), then one row per changed resource.
    `embedded`: a section of a larger comment (`plan --compare --format markdown`): no marker, a lower heading."""
    cur = diff["currency"]
    base, head, delta = diff["base"]["monthly"], diff["head"]["monthly"], diff["delta"]["monthly"]
    lines = [] if embedded else ["<!-- mlops-infra-cost -->"]
    lines += [
        f"{'####' if embedded else '###'} Monthly cost of `{stack}` vs `{base_label}` ({cur}, 730 h/month)",
        "",
        "| | min | expected | max |",
        "|---|---:|---:|---:|",
        f"| base | {base['min']:,.2f} | {base['expected']:,.2f} | {base['max']:,.2f} |",
        f"| this change | {head['min']:,.2f} | {head['expected']:,.2f} | {head['max']:,.2f} |",
        f"| **delta** | **{_signed(delta['min'])}** | **{_signed(delta['expected'])}** "
        f"| **{_signed(delta['max'])}** |",
        "",
    ]
    budget = diff["head"].get("budget")
    if budget:
        basis = str(budget.get("basis", "expected"))
        value, limit = head["max" if basis == "max" else "expected"], float(budget["monthlyUsd"])
        state = "within" if value <= limit else "**OVER**"
        lines += [f"Budget {limit:,.2f} {cur} ({basis}): {state} ({value:,.2f}).", ""]
    if not diff["changes"]:
        lines.append("No priced resource changed.")
        return "\n".join(lines) + "\n"
    lines += [
        "| resource | change | sku | delta min | delta expected | delta max |",
        "|---|---|---|---:|---:|---:|",
    ]
    for c in diff["changes"]:
        skus = ", ".join(c["headSkus"] or c["baseSkus"])
        if c["change"] == "changed" and c["baseSkus"] != c["headSkus"]:
            skus = f"{', '.join(c['baseSkus'])} → {', '.join(c['headSkus'])}"
        d = c["delta"]
        lines.append(
            f"| `{_short(c['urn'])}` | {c['change']} | {skus} "
            f"| {_signed(d['min'])} | {_signed(d['expected'])} | {_signed(d['max'])} |"
        )
    lines += ["", f"{diff['unchanged']} resource(s) unchanged."]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------------- base


def base_document(base: str, stack: str, cwd: Path | None = None) -> tuple[dict[str, Any], str]:
    """The base's `cost`/`plan --json` document and a label for it (tooling/base_plan.py: a JSON file, else a
    git ref run with its own code). A stack the base revision does not have costs nothing there."""
    try:
        found = load_base(base, stack, cwd)
    except BaseError as exc:
        raise CompareError(str(exc)) from None
    if found.document is None:
        return {"currency": "USD", "budget": None, "monthly": _zero(), "items": []}, found.label
    cost_of(found.document)
    return found.document, found.label
