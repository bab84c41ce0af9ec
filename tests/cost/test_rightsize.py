"""Right-sizing on a real offline plan: prod with its A10G group set to g5.12xlarge and the reference model
server configured for one GPU per replica (workloads.serving.gpu) - the over-sized group case."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlops_infra.components import catalog, pricing
from mlops_infra.tooling.cli import main
from mlops_infra.tooling.cost.estimator import HOURS_PER_MONTH
from mlops_infra.tooling.cost.rightsize import (
    allocatable,
    load_workload_usage,
    reserved_cpu,
    reserved_memory_mib,
    rightsize,
    workloads,
)
from mlops_infra.tooling.offline import evaluate
from mlops_infra.tooling.plan import Plan

from plan_support import ROOT, load_stack_doc

REPLICAS = 3


@pytest.fixture(scope="module")
def oversized(tmp_path_factory: pytest.TempPathFactory) -> Path:
    doc = load_stack_doc("prod")
    for group in doc["config"]["mlops-platform:nodeGroups"]:
        if group["name"] == "gpu-a10g":
            group["instanceTypes"] = ["g5.12xlarge"]
    serving = doc["config"]["mlops-platform:workloads"]["serving"]
    serving.update(replicas=REPLICAS, gpu=True, gpusPerReplica=1, cpu="2", memory="8Gi")
    path = tmp_path_factory.mktemp("rightsize") / "Pulumi.prod-oversized.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def plan(oversized: Path) -> Plan:
    return evaluate(oversized)


def test_reservations_follow_the_eks_and_gke_formulas() -> None:
    assert reserved_cpu(1) == pytest.approx(0.06)
    assert reserved_cpu(4) == pytest.approx(0.06 + 0.01 + 2 * 0.005)
    assert reserved_cpu(48) == pytest.approx(0.08 + 44 * 0.0025)
    m6i = catalog.instance("m6i.large")
    assert reserved_memory_mib(m6i) == pytest.approx(255 + 11 * m6i.max_pods + 100)
    e2 = catalog.instance("e2-standard-4")  # 16 GiB: 25 % of 4 + 20 % of 4 + 10 % of 8
    assert reserved_memory_mib(e2) == pytest.approx((1 + 0.8 + 0.8) * 1024 + 100)
    g5 = catalog.instance("g5.xlarge")
    alloc = allocatable(g5, "gpu", "nvidia.com/gpu")
    assert alloc.devices == 1 and 3 < alloc.cpu < 4 and alloc.memory_mib < g5.memory_gib * 1024 - 900


def test_serving_requests_are_read_from_the_plan(plan: Plan) -> None:
    [serving] = [w for w in workloads(plan) if w.device_resource]
    assert serving.kind == "Rollout" and serving.replicas == REPLICAS
    assert (serving.shape.cpu, serving.shape.memory_mib, serving.shape.devices) == (2.0, 8192.0, 1.0)


def test_oversized_gpu_group_gets_the_smallest_a10g_and_the_saving(plan: Plan) -> None:
    report = rightsize(plan)
    [group] = [g for g in report.groups if g.group == "gpu-a10g"]
    big, small = (
        pricing.hourly(n, spot=False, region="us-east-1") or 0.0 for n in ("g5.12xlarge", "g5.xlarge")
    )
    assert group.current is not None and group.recommended is not None
    # three 1-GPU pods fit one 4-GPU node, leaving one GPU stranded
    assert (group.current.instance_type, group.current.nodes, group.current.stranded_devices) == (
        "g5.12xlarge",
        1,
        1,
    )
    assert group.current.monthly == pytest.approx(big * HOURS_PER_MONTH)
    assert (group.recommended.instance_type, group.recommended.nodes) == ("g5.xlarge", REPLICAS)
    assert group.recommended.monthly == pytest.approx(REPLICAS * small * HOURS_PER_MONTH)
    assert group.monthly_savings == pytest.approx(group.current.monthly - group.recommended.monthly)
    assert any("stranded" in f for f in group.findings)
    # the neuron group has no workload: reported, no recommendation
    [inf2] = [g for g in report.groups if g.group == "inf2"]
    assert inf2.recommended is None and "no workload" in inf2.findings[0]


def test_nonprod_warm_accelerator_group_is_flagged(plan: Plan) -> None:
    groups = [
        g.model_copy(update={"min_size": 1}) if g.name == "gpu-a10g" else g for g in plan.config.node_groups
    ]
    config = plan.config.model_copy(update={"environment": "dev", "node_groups": groups})
    report = rightsize(Plan(plan.stack, config, plan.resources, plan.outputs))
    [group] = [g for g in report.groups if g.group == "gpu-a10g"]
    assert any("minSize: 0" in f for f in group.findings)
    assert not any("minSize: 0" in f for f in rightsize(plan).groups[0].findings)


def test_observed_usage_gives_vpa_and_kubecost_requests(plan: Plan, tmp_path: Path) -> None:
    [serving] = [w for w in workloads(plan) if w.device_resource]
    usage = tmp_path / "usage.yaml"
    usage.write_text(
        yaml.safe_dump({"workloads": {serving.key: {"cpu": "500m", "memory": "3Gi", "gpu": 0.6}}})
    )
    report = rightsize(plan, load_workload_usage(usage))
    [advice] = report.requests
    assert advice.vpa["cpu"] == pytest.approx(0.58)  # 0.5 x 1.15, rounded up to 10m
    assert advice.vpa["memoryMib"] == math.ceil(3072 * 1.15)
    assert advice.vpa["devices"] == 1  # whole devices
    assert advice.kubecost["cpu"] == pytest.approx(0.5 / 0.7, abs=1e-3)
    assert advice.kubecost["memoryMib"] == pytest.approx(3072 / 0.7, abs=0.1)


def test_bad_usage_file_is_a_clear_error(tmp_path: Path) -> None:
    usage = tmp_path / "usage.yaml"
    usage.write_text("workloads: {serving/x: {cpu: lots}}\n")
    with pytest.raises(ValueError, match=r"workloads.serving/x.cpu: got 'lots'"):
        load_workload_usage(usage)


def test_rightsize_cli(
    oversized: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(ROOT)
    assert main(["rightsize", "prod", "--json"]) == 0
    doc: dict[str, Any] = json.loads(capsys.readouterr().out)
    assert doc["stack"] == "prod" and {g["group"] for g in doc["groups"]} == {"gpu-a10g", "inf2"}
    assert all({"current", "recommended", "monthlySavings", "findings"} <= set(g) for g in doc["groups"])
    bad = tmp_path / "u.yaml"
    bad.write_text("[]")
    assert main(["rightsize", "prod", "--usage", str(bad)]) == 2
    assert "expected `workloads:" in capsys.readouterr().err
