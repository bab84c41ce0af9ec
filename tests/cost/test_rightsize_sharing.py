"""Right-sizing with shared GPUs: slices counted per node, cost per replica, and time-slicing recommended (with
the saving) when the observed GPU use leaves most of each GPU idle."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from mlops_infra.components import catalog, pricing
from mlops_infra.components.accelerators import GpuSharing
from mlops_infra.tooling.cost.estimator import HOURS_PER_MONTH
from mlops_infra.tooling.cost.rightsize import allocatable, load_workload_usage, rightsize
from mlops_infra.tooling.offline import evaluate
from mlops_infra.tooling.plan import Plan

from plan_support import load_stack_doc, reference_plan

SERVING = "serving/fraud-server"


def _group(report: Any, name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(g for g in report.to_json()["groups"] if g["group"] == name)
    return found


def test_a_time_sliced_group_packs_four_replicas_per_gpu_and_prices_each() -> None:
    """dev-gpu-sharing: 4 serving replicas, one slice each, on a T4 sliced 4 ways: one spot g4dn.xlarge."""
    group = _group(rightsize(reference_plan("dev-gpu-sharing")), "gpu-t4-shared")
    assert group["workloads"] == [SERVING]
    assert (group["current"]["instanceType"], group["current"]["nodes"]) == ("g4dn.xlarge", 1)
    assert group["current"]["strandedDevices"] == 0
    node = pricing.hourly("g4dn.xlarge", spot=True) * HOURS_PER_MONTH
    assert group["monthlyPerReplica"]["current"] == pytest.approx(node / 4, abs=0.01)


def test_slices_are_what_a_shared_node_offers() -> None:
    g5 = catalog.instance("g5.12xlarge")
    assert allocatable(g5, "gpu", "nvidia.com/gpu.shared", GpuSharing("time-slicing", 3)).devices == 12
    assert allocatable(g5, "gpu", "nvidia.com/gpu.shared").devices == 0  # no sharing: no slices


@pytest.fixture(scope="module")
def whole_gpus(tmp_path_factory: pytest.TempPathFactory) -> Plan:
    """dev with the model server on whole A10Gs: 4 replicas, one GPU each."""
    doc = load_stack_doc("dev")
    doc["config"]["mlops-platform:workloads"]["serving"].update(
        replicas=4, maxReplicas=8, gpu=True, cpu="500m"
    )
    path = tmp_path_factory.mktemp("sharing") / "Pulumi.dev.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return evaluate(path)


def _usage(tmp_path: Path, gpu: float) -> dict[str, dict[str, float]]:
    path = tmp_path / "usage.yaml"
    path.write_text(yaml.safe_dump({"workloads": {SERVING: {"cpu": "400m", "memory": "800Mi", "gpu": gpu}}}))
    return load_workload_usage(path)


def test_time_slicing_is_recommended_when_most_of_each_gpu_is_idle(whole_gpus: Plan, tmp_path: Path) -> None:
    report = rightsize(whole_gpus, _usage(tmp_path, 0.2))
    group = _group(report, "gpu-a10g")
    assert (group["current"]["instanceType"], group["current"]["nodes"]) == ("g5.xlarge", 4)
    sharing = group["sharing"]
    # 0.2 of a GPU plus the VPA margin (0.23) fits 4 times: 4 slices per GPU, the 4 replicas on one node.
    assert (sharing["mode"], sharing["replicas"], sharing["observedGpu"]) == ("time-slicing", 4, 0.2)
    assert (sharing["packing"]["instanceType"], sharing["packing"]["nodes"]) == ("g5.xlarge", 1)
    node = pricing.hourly("g5.xlarge", spot=True) * HOURS_PER_MONTH
    assert sharing["monthlySavings"] == pytest.approx(3 * node, abs=0.02)
    assert any("saving" in f and "replicas: 4" in f for f in group["findings"])


def test_no_sharing_advice_for_a_busy_gpu_or_without_observations(whole_gpus: Plan, tmp_path: Path) -> None:
    assert _group(rightsize(whole_gpus, _usage(tmp_path, 0.7)), "gpu-a10g")["sharing"] is None
    assert _group(rightsize(whole_gpus), "gpu-a10g")["sharing"] is None
