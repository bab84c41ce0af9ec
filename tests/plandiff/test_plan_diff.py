"""The resource diff as a pure function: matching by URN, leaf paths, masked secrets, replace flags from the
fact table, clipped values, and a PR comment that stays within GitHub's size limit."""

from __future__ import annotations

from typing import Any

import pytest

from mlops_infra.tooling import plan_report
from mlops_infra.tooling.plan_diff import PlanDiffError, clip_pair, diff_plans, replaces

FACTS: dict[str, Any] = {
    "types": {
        "kubernetes:apps/v1:Deployment": ["metadata.name", "spec.selector"],
        "kubernetes:core/v1:Pod": ["spec.containers[*].image"],
    },
    "conditional": {"gcp:compute/subnetwork:Subnetwork": ["ipCidrRange"]},
}
NO_COST = {
    "currency": "USD",
    "base": {"monthly": {"min": 0.0, "expected": 0.0, "max": 0.0}},
    "head": {"monthly": {"min": 0.0, "expected": 0.0, "max": 0.0}, "budget": None},
    "delta": {"monthly": {"min": 0.0, "expected": 0.0, "max": 0.0}},
    "changes": [],
    "unchanged": 0,
}


def _res(urn: str, type_: str, inputs: dict[str, Any], protect: bool = False) -> dict[str, Any]:
    return {"urn": urn, "type": type_, "name": urn.rsplit("::", 1)[-1], "inputs": inputs, "protect": protect}


def _doc(*resources: dict[str, Any]) -> dict[str, Any]:
    return {"resources": list(resources)}


DEPLOY = "kubernetes:apps/v1:Deployment"


def test_create_delete_update_replace_and_unchanged() -> None:
    base = _doc(
        _res("u::gone", "t", {}),
        _res("u::same", "t", {"a": 1}),
        _res("u::web", DEPLOY, {"spec": {"replicas": 2.0, "selector": {"app": "a"}}}),
        _res("u::api", DEPLOY, {"spec": {"replicas": 2}}),
    )
    head = _doc(
        _res("u::new", "t", {}),
        _res("u::same", "t", {"a": 1.0}),  # 1 and 1.0 are one wire value
        _res("u::web", DEPLOY, {"spec": {"replicas": 2, "selector": {"app": "b"}}}),
        _res("u::api", DEPLOY, {"spec": {"replicas": 4}}),
    )
    diff = diff_plans(base, head, FACTS)
    assert {r["name"]: r["change"] for r in diff["resources"]} == {
        "api": "update",
        "gone": "delete",
        "new": "create",
        "web": "replace",
    }
    assert diff["counts"] == {"create": 1, "update": 1, "replace": 1, "delete": 1, "same": 1}
    [web] = [r for r in diff["resources"] if r["name"] == "web"]
    assert web["diffs"] == [
        {
            "path": "spec.selector.app",
            "kind": "update",
            "old": '"a"',
            "new": '"b"',
            "replaces": True,
            "mayReplace": False,
        }
    ]


def test_lists_by_index_additions_removals_and_types() -> None:
    base = _doc(_res("u::x", "t", {"l": [1, 2, 3], "flag": True, "gone": {"k": 1}}))
    head = _doc(_res("u::x", "t", {"l": [1, 5], "flag": 1, "added": {"k": [1]}}))
    entries = {
        e["path"]: (e["kind"], e["old"], e["new"])
        for e in diff_plans(base, head, FACTS)["resources"][0]["diffs"]
    }
    assert entries == {
        "added": ("add", None, '{"k":[1]}'),
        "flag": ("update", "true", "1"),  # a bool is not the number 1
        "gone": ("delete", '{"k":1}', None),
        "l[1]": ("update", "2", "5"),
        "l[2]": ("delete", "3", None),
    }


def test_secrets_stay_masked_and_equal_masks_are_no_change() -> None:
    base = _doc(_res("u::s", "t", {"password": "[secret]", "user": "app"}))
    same = diff_plans(base, _doc(_res("u::s", "t", {"password": "[secret]", "user": "app"})), FACTS)
    assert same["resources"] == []
    became = diff_plans(_doc(_res("u::s", "t", {"password": "hunter2"})), base, FACTS)
    entries = {e["path"]: e for e in became["resources"][0]["diffs"]}
    assert entries["password"]["new"] == '"[secret]"'


def test_protect_is_a_change() -> None:
    diff = diff_plans(_doc(_res("u::db", "t", {})), _doc(_res("u::db", "t", {}, protect=True)), FACTS)
    assert diff["resources"][0]["diffs"][0]["path"] == "(protect)"
    assert "[protected]" in plan_report.resource_lines(diff)[0]


@pytest.mark.parametrize(
    ("type_", "path", "expected"),
    [
        (DEPLOY, "spec.selector", True),
        (DEPLOY, "spec.selector.matchLabels.app", True),  # under a replacing property
        (DEPLOY, "spec.selectorX", False),  # a longer name is another property
        (DEPLOY, "spec", False),  # above it: the diff is reported per leaf, never here
        ("kubernetes:core/v1:Pod", "spec.containers[3].image", True),  # [*] matches any index
        ("unknown:type", "metadata.name", False),  # a type the table does not know is never flagged
    ],
)
def test_replace_paths_match_by_segment(type_: str, path: str, expected: bool) -> None:
    assert replaces(type_, path, FACTS) is expected


def test_conditional_replacement_is_marked_may() -> None:
    net = "gcp:compute/subnetwork:Subnetwork"
    diff = diff_plans(
        _doc(_res("u::n", net, {"ipCidrRange": "10.0.0.0/20"})),
        _doc(_res("u::n", net, {"ipCidrRange": "10.0.0.0/21"})),
        FACTS,
    )
    [entry] = diff["resources"][0]["diffs"]
    assert diff["resources"][0]["change"] == "update" and entry["mayReplace"] and not entry["replaces"]
    assert plan_report.resource_lines(diff)[1].endswith("(may force replacement)")


def test_long_values_are_cut_around_the_first_difference() -> None:
    old = "x" * 500 + "OLD" + "y" * 500
    new = "x" * 500 + "NEW" + "y" * 500
    a, b = clip_pair(old, new, limit=80)
    assert "OLD" in a and "NEW" in b
    assert a.startswith("…") and a.endswith("…") and len(a) <= 82


def test_a_document_without_resources_is_refused() -> None:
    with pytest.raises(PlanDiffError, match="needs a `plan --json` document"):
        diff_plans({"items": [], "monthly": {}}, _doc(), FACTS)
    assert diff_plans(None, _doc(_res("u::a", "t", {})), FACTS)["counts"]["create"] == 1  # a new stack


def test_markdown_fence_outlasts_backticks_in_values() -> None:
    diff = diff_plans(
        _doc(_res("u::c", "t", {"doc": "a"})), _doc(_res("u::c", "t", {"doc": "```\nrm -rf"})), FACTS
    )
    text = plan_report.to_markdown(diff, NO_COST, "dev", "main")
    assert "````diff\n" in text and "\n````\n" in text


def test_a_huge_diff_stays_a_valid_comment() -> None:
    base = _doc(*(_res(f"u::r{i}", "t", {"v": "a" * 300}) for i in range(400)))
    head = _doc(*(_res(f"u::r{i}", "t", {"v": "b" * 300}) for i in range(400)))
    text = plan_report.to_markdown(diff_plans(base, head, FACTS), NO_COST, "dev", "main")
    assert len(text) < 65_536
    assert "more lines: run `mlops-infra plan STACK --compare BASE`" in text
    assert text.rstrip().endswith("No priced resource changed.")  # the cost section is never cut
