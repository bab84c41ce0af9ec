"""Cost of Karpenter NodePools: min 0 (no idle minimum), expected from the group's desired size, max from the
pool's limits at the admitted type with the highest ceiling."""

from __future__ import annotations

from typing import Any

import pytest

from mlops_infra.components import catalog
from mlops_infra.components.aws import karpenter_types
from mlops_infra.tooling.cost.estimator import HOURS_PER_MONTH, _Res, estimate, estimate_plan
from mlops_infra.tooling.cost.rightsize import rightsize

NODE_POOL = "kubernetes:karpenter.sh/v1:NodePool"


def _items(plan: Any) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for item in estimate_plan(plan).to_json()["items"]:
        out.setdefault(item["urn"].rsplit("::", 1)[-1], []).append(item)
    return out


def test_pools_are_priced_from_zero_to_their_limits(stack_plan) -> None:
    items = _items(stack_plan("prod-karpenter"))
    cpu, cpu_disk = items["mlops-prod-karpenter-cpu-nodepool"]
    assert cpu["sku"] == "aws:m7i.2xlarge:on-demand"  # dearer than m6i.2xlarge: the ceiling
    assert cpu["quantity"] == {"min": 0.0, "expected": 3.0, "max": 12.0}
    assert cpu["monthly"]["max"] == pytest.approx(12 * 0.4032 * HOURS_PER_MONTH, abs=0.01)
    assert cpu_disk["sku"] == "ebs-gp3-gb-month" and cpu_disk["quantity"]["max"] == 1200.0
    gpu = items["mlops-prod-karpenter-gpu-a10g-nodepool"][0]
    assert (gpu["sku"], gpu["quantity"]) == (
        "aws:g5.2xlarge:on-demand",
        {"min": 0.0, "expected": 1.0, "max": 8.0},  # scaleDownSchedule: 2 nodes 12 h a day
    )


def test_limits_keep_the_managed_groups_ceiling(stack_plan) -> None:
    """Same groups and schedules, both engines: the accelerator pools' expected and maximum are exactly the
    managed groups'."""
    managed, pools = _items(stack_plan("prod")), _items(stack_plan("prod-karpenter"))
    for group in ("gpu-a10g", "inf2"):
        pool = pools[f"mlops-prod-karpenter-{group}-nodepool"][0]["monthly"]
        asg = managed[f"mlops-prod-{group}"][0]["monthly"]
        assert (pool["expected"], pool["max"]) == (asg["expected"], asg["max"])


def _pool(limits: dict[str, str] | None, types: list[str], expected: str = "2") -> _Res:
    spec: dict[str, Any] = {
        "template": {
            "spec": {
                "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "x"},
                "requirements": [
                    {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": types}
                ],
            }
        }
    }
    if limits is not None:
        spec["limits"] = limits
    props = {
        "metadata": {"name": "gpu", "annotations": {"mlops.platform/expected-nodes": expected}},
        "spec": spec,
    }
    return _Res("urn:pool", NODE_POOL, "gpu", props)


def test_a_cpu_limit_alone_bounds_the_smallest_type_most() -> None:
    """64 vCPU is 16 g5.xlarge or 8 g5.2xlarge: the ceiling is the larger bill, 16 x g5.xlarge."""
    (item, _disk) = estimate([_pool({"cpu": "64"}, ["g5.xlarge", "g5.2xlarge"])]).items
    assert (item.sku, item.quantity.max) == ("aws:g5.xlarge:on-demand", 16.0)
    assert karpenter_types.nodes_within_limits(catalog.instance("g5.2xlarge"), {"cpu": "64"}) == 8
    assert (
        karpenter_types.nodes_within_limits(catalog.instance("g5.2xlarge"), {"memory": "1Ti", "nodes": "3"})
        == 3
    )
    assert (
        karpenter_types.nodes_within_limits(catalog.instance("g5.2xlarge"), {"aws.amazon.com/neuron": "4"})
        is None
    )


def test_a_pool_without_limits_says_so() -> None:
    (item, _disk) = estimate([_pool(None, ["g5.xlarge"])]).items
    assert item.quantity.max == item.quantity.expected == 2.0
    assert "no limits: the pool has no ceiling" in item.note


def test_root_volume_comes_from_the_node_class() -> None:
    node_class = _Res(
        "urn:nc",
        "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass",
        "x",
        {
            "metadata": {"name": "x"},
            "spec": {
                "blockDeviceMappings": [
                    {"deviceName": "/dev/xvda", "rootVolume": True, "ebs": {"volumeSize": "250Gi"}}
                ]
            },
        },
    )
    (_item, disk) = estimate([_pool({"nodes": "1"}, ["g5.xlarge"]), node_class]).items
    assert disk.note == "250 GB root volume per node"
    (_item, default_disk) = estimate([_pool({"nodes": "1"}, ["g5.xlarge"])]).items
    assert default_disk.note == "20 GB root volume per node"  # AL2023's default mapping


def test_rightsize_reads_the_same_groups_under_karpenter(mutated_plan) -> None:
    def gpu(cfg: dict[str, Any]) -> None:
        cfg["mlops-platform:workloads"]["serving"]["gpu"] = True

    managed = rightsize(mutated_plan("prod", gpu)).to_json()["groups"]
    pools = rightsize(mutated_plan("prod-karpenter", gpu)).to_json()["groups"]
    assert [g["group"] for g in pools] == ["gpu-a10g", "inf2"]
    assert pools[0]["current"] == managed[0]["current"] and pools[0]["workloads"] == ["serving/fraud-server"]
