"""The examples run offline exactly as another team's Pulumi program would (in the repo here; from the installed
wheel outside the repo in tests/packaging)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from mlops_infra.tooling.offline import evaluate, evaluate_program
from mlops_infra.tooling.plan import Plan

from plan_support import ROOT, STACKS

EXAMPLES = ROOT / "examples"


def _load(example: str) -> ModuleType:
    source = EXAMPLES / example / "__main__.py"
    text = source.read_text()
    assert "from mlops_infra." in text and "sys.path" not in text  # only the installed package
    spec = importlib.util.spec_from_file_location(f"example_{example.replace('-', '_')}", source)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _plan(example: str, main: Any = None) -> Plan:
    module = _load(example)
    stack = EXAMPLES / example / "Pulumi.dev.yaml"
    return evaluate_program(main or module.main, stack if stack.exists() else None)


def test_existing_cluster_example() -> None:
    module = _load("existing-cluster")
    plan = evaluate(STACKS / "Pulumi.local.yaml", program=module.main)
    namespace = plan.named("fraud-serving")
    assert namespace.inputs["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert namespace.provider == plan.named("team-cluster-k8s").urn
    assert plan.outputs == {"namespace": "fraud-serving"}


def test_gpu_node_group_on_an_existing_eks_cluster() -> None:
    plan = _plan("gpu-node-group")
    (group,) = plan.of_type("aws:eks/nodeGroup:NodeGroup")
    assert group.inputs["clusterName"] == "fraud-dev" and group.inputs["amiType"] == "AL2023_x86_64_NVIDIA"
    assert {"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"} in group.inputs["taints"]
    tags = {r.inputs["tag"]["key"]: r.inputs["tag"]["value"] for r in plan.of_type("aws:autoscaling/tag:Tag")}
    assert tags["k8s.io/cluster-autoscaler/fraud-dev"] == "owned"
    assert tags["k8s.io/cluster-autoscaler/node-template/resources/nvidia.com/gpu"] == "1"
    (plugin,) = plan.helm_releases()
    assert plugin.inputs["chart"] == "nvidia-device-plugin"
    assert plugin.provider == plan.named("team-cluster").urn


def test_services_on_an_existing_cluster() -> None:
    plan = _plan("services-on-existing-cluster")
    charts = {r.inputs["chart"] for r in plan.helm_releases()}
    assert {"kube-prometheus-stack", "prometheus-pushgateway"} <= charts
    kinds = {(r.inputs["kind"], r.inputs["metadata"]["name"]) for r in plan.k8s_objects()}
    assert {("Deployment", "mlflow"), ("StatefulSet", "postgres"), ("StatefulSet", "redis")} <= kinds
    assert plan.outputs["mlflow"] == "http://mlflow.mlflow.svc.cluster.local:5000"
    assert all(r.provider for r in plan.resources if r.custom and r.type.startswith("kubernetes:"))


def test_the_whole_platform_from_a_teams_stack_config() -> None:
    module = _load("team-platform")
    from mlops_infra.platform.stack import program

    assert module.main is program
    plan = _plan("team-platform")
    assert plan.outputs["environment"] == "dev" and plan.outputs["cloud"] == "local"
    (rollout,) = [r for r in plan.k8s_objects() if r.inputs["kind"] == "Rollout"]
    assert rollout.inputs["spec"]["template"]["spec"]["containers"][0]["image"].startswith(
        "registry.example.com/"
    )


@pytest.mark.parametrize(
    "example", ["gpu-node-group", "services-on-existing-cluster", "team-platform", "existing-cluster"]
)
def test_examples_depend_on_a_release_range_not_a_path(example: str) -> None:
    requirement = [
        line
        for line in (EXAMPLES / example / "requirements.txt").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert requirement == ["mlops-infra>=0.2,<0.3"]
    assert not any(Path(EXAMPLES / example).glob("*.lock"))


def test_plan_records_a_teams_program_with_cost_and_policies(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from mlops_infra.tooling import cli

    example = EXAMPLES / "gpu-node-group"
    code = cli.main(
        ["plan", "--program", f"{example}/__main__.py:main", str(example / "Pulumi.dev.yaml"), "--json"]
    )
    doc = json.loads(capsys.readouterr().out)
    assert code == 0 and doc["stack"] == "dev"
    assert any(r["type"] == "aws:eks/nodeGroup:NodeGroup" for r in doc["resources"])
    assert doc["cost"]["monthly"]["max"] > 0  # 4 spot g6 nodes at most
    assert cli.main(["plan", "--program", f"{example}/__main__.py:nosuch"]) == 2
    assert "has no function 'nosuch'" in capsys.readouterr().err
