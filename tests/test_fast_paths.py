"""The speed-ups of the offline engine change nothing a user sees: every reference stack gives the same
`plan --json` document (resources, outputs, cost, policy findings) with them as without them, and they leave
the interpreter as they found it."""

from __future__ import annotations

import contextlib
import gc
import subprocess
import sys
from typing import Any

import pytest
from pulumi.runtime import resource as pulumi_resource

from mlops_infra.tooling import offline, sdk
from mlops_infra.tooling.cli import plan_document
from mlops_infra.tooling.offline import evaluate, evaluate_program
from mlops_infra.tooling.plan import Plan
from mlops_policies import pods

from plan_support import REFERENCE_STACKS, STACKS, reference_plan


def _document(plan: Plan) -> dict[str, Any]:
    return {**plan_document(plan), "exported": plan.outputs}


@pytest.mark.parametrize("stack", REFERENCE_STACKS)
def test_same_document_as_the_straightforward_evaluation(stack: str, monkeypatch: pytest.MonkeyPatch) -> None:
    tuned = _document(reference_plan(stack))
    # The straightforward path: default collector thresholds, stack traces captured, manifests parsed afresh.
    monkeypatch.setattr(offline, "_few_collections", contextlib.nullcontext)
    monkeypatch.setattr(sdk, "no_stack_traces", contextlib.nullcontext)
    pods._parsed_manifest.cache_clear()
    plain = _document(evaluate(STACKS / f"Pulumi.{stack}.yaml"))
    assert plain == tuned
    assert plain["resources"] and "violations" in plain and plain["cost"]["items"] is not None


def test_the_interpreter_is_left_as_it_was() -> None:
    thresholds, capture = gc.get_threshold(), pulumi_resource._get_stack_trace
    seen: dict[str, Any] = {}

    def program() -> None:
        seen["threshold"] = gc.get_threshold()
        seen["capture"] = pulumi_resource._get_stack_trace
        raise RuntimeError("a failing program")

    with pytest.raises(Exception, match="a failing program"):
        evaluate_program(program)
    assert seen["threshold"] == offline.EVALUATION_GC_THRESHOLD and seen["capture"] is not capture
    assert gc.get_threshold() == thresholds and pulumi_resource._get_stack_trace is capture


def test_cached_manifests_cannot_be_changed_through_a_caller() -> None:
    text = "kind: Job\nspec:\n  template:\n    spec:\n      containers: [{name: a}]\n"
    first = pods._manifest(text)
    first["spec"]["template"]["spec"]["containers"].append({"name": "b"})
    assert pods._manifest(text) == {
        "kind": "Job",
        "spec": {"template": {"spec": {"containers": [{"name": "a"}]}}},
    }
    assert pods._manifest("kind: [unclosed") is None


def test_version_imports_neither_the_sdk_nor_the_pack() -> None:
    """`--version` (and parsing any command line) answers without importing the heavy modules."""
    heavy = ("pulumi", "pulumi_aws", "pulumi_kubernetes", "mlops_policies", "rich", "pydantic")
    code = (
        "import sys\nfrom mlops_infra.tooling import cli\nparser = cli.build_parser()\n"
        "parser.parse_args(['check', '--json'])\n"
        "try:\n    cli.main(['--version'])\nexcept SystemExit as exc:\n    assert exc.code == 0\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {heavy!r}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    version, imported = out.strip().splitlines()
    assert version.startswith("mlops-infra ") and imported == "[]"


def test_one_set_of_collector_thresholds() -> None:
    """The CLI process, an evaluation and a base revision's run (base_plan's bootstrap) use the same."""
    from mlops_infra.tooling import base_plan, cli

    assert cli.RUN_GC_THRESHOLD == offline.EVALUATION_GC_THRESHOLD
    assert "gc.set_threshold({:_}, {}, {})".format(*offline.EVALUATION_GC_THRESHOLD) in base_plan._BOOTSTRAP
