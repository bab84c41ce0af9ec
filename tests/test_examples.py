"""The examples run offline exactly as another team's Pulumi program would."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from mlops_infra.tooling.offline import evaluate

from plan_support import ROOT, STACKS


def test_existing_cluster_example() -> None:
    source = ROOT / "examples" / "existing-cluster" / "__main__.py"
    assert "from mlops_infra." in source.read_text() and "sys.path" not in source.read_text()
    spec = importlib.util.spec_from_file_location("example_existing_cluster", source)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    plan = evaluate(STACKS / "Pulumi.local.yaml", program=module.main)
    namespace = plan.named("fraud-serving")
    assert namespace.inputs["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert namespace.inputs["metadata"]["labels"]["team"] == "fraud"
    assert namespace.provider == plan.named("team-cluster-k8s").urn
    assert plan.outputs == {"namespace": "fraud-serving"}
    assert Path(module.__file__).parent.name == "existing-cluster"
