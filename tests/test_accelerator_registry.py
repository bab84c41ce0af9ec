"""The accelerator registry is the one source of accelerator facts: node groups, workloads, monitoring and the
cost code all agree with it, and no other module spells the device resources or accelerator labels."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from mlops_infra.components import accelerators, catalog
from mlops_infra.components.accelerators import REGISTRY, UnsupportedAccelerator, accelerator
from mlops_infra.components.gcp.node_pools import gke_added_labels, node_labels, pool_taints
from mlops_infra.components.node_group import NodeGroupSpec

from plan_support import MONITORING_FILES

ROOT = Path(__file__).resolve().parents[1]
# Spellings that belong to the registry alone.
REGISTRY_FACTS = (
    "nvidia.com/gpu",
    "aws.amazon.com/neuron",
    "google.com/tpu",
    "cloud.google.com/gke-accelerator",
    "cloud.google.com/gke-tpu-accelerator",
    "k8s.amazonaws.com/accelerator",
    "AL2023_x86_64_NVIDIA",
    "AL2023_ARM_64_NVIDIA",
    "AL2023_x86_64_NEURON",
)


def _code_lines(path: Path) -> list[tuple[int, str]]:
    """Source lines that are not comments or docstring prose (a docstring may name a fact)."""
    lines: list[tuple[int, str]] = []
    in_doc = False
    for number, line in enumerate(path.read_text().splitlines(), 1):
        stripped = line.strip()
        quotes = stripped.count('"""')
        if in_doc or stripped.startswith('"""'):
            in_doc = in_doc != (quotes % 2 == 1)
            continue
        if stripped.startswith("#"):
            continue
        lines.append((number, line.split("  #")[0]))
    return lines


def test_no_module_spells_accelerator_facts_outside_the_registry():
    tracked = subprocess.run(
        ["git", "ls-files", "infra/mlops_infra", "policies/mlops_policies", "monitoring/build_dashboards.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    offenders = [
        f"{name}:{number}: {line.strip()}"
        for name in tracked
        if name.endswith(".py") and name != "infra/mlops_infra/components/accelerators.py"
        for number, line in _code_lines(ROOT / name)
        if any(fact in line for fact in REGISTRY_FACTS)
    ]
    assert offenders == []


def test_every_device_resource_maps_to_its_kind():
    assert accelerators.DEVICE_RESOURCES == {
        "nvidia.com/gpu": "gpu",
        "aws.amazon.com/neuron": "neuron",
        "aws.amazon.com/neurondevice": "neuron",
        "aws.amazon.com/neuroncore": "neuron",
        "google.com/tpu": "tpu",
    }
    for (kind, cloud), acc in REGISTRY.items():
        assert (acc.kind, acc.cloud) == (kind, cloud)
        assert acc.advertised[0] == acc.resource


def test_unsupported_combinations_say_where_the_kind_exists():
    with pytest.raises(
        UnsupportedAccelerator, match="tpu accelerators are not available on aws; available on: gcp"
    ):
        accelerator("tpu", "aws")
    with pytest.raises(UnsupportedAccelerator, match="neuron accelerators are not available on gcp"):
        accelerator("neuron", "gcp")


def test_device_counts_come_from_the_catalog():
    assert accelerators.devices_per_node("g5.12xlarge", "nvidia.com/gpu") == 4
    assert accelerators.devices_per_node("inf2.xlarge", "aws.amazon.com/neuron") == 1
    assert accelerators.devices_per_node("inf2.xlarge", "aws.amazon.com/neuroncore") == 2
    assert accelerators.devices_per_node("ct5lp-hightpu-4t", "google.com/tpu") == 4
    assert accelerators.devices_per_node("m6i.large", "nvidia.com/gpu") == 0
    assert accelerators.devices_per_node("g5.xlarge", "google.com/tpu") == 0


@pytest.mark.parametrize("kind", ["gpu", "tpu"])
def test_gke_pool_labels_and_taints_are_what_a_registry_placed_pod_needs(kind):
    machine, topology = ("g2-standard-8", None) if kind == "gpu" else ("ct5lp-hightpu-4t", "2x2")
    group = NodeGroupSpec(name="acc", role=kind, instance_types=(machine,), max_size=2, tpu_topology=topology)
    acc = accelerator(kind, "gcp")
    labels = {**node_labels(group), **gke_added_labels(group)}
    key, value = acc.selector
    assert key in labels and (value is None or labels[key] == value)
    if kind == "gpu":  # GKE taints TPU pools itself; GPU pools declare the taint too
        assert (acc.taint.key, acc.taint.value, "NO_SCHEDULE") in pool_taints(group)


def test_aws_groups_carry_the_registry_taint_labels_and_ami(stack_plan):
    plan = stack_plan("dev")
    for group in plan.config.node_groups:
        ng = next(
            r for r in plan.of_type("aws:eks/nodeGroup:NodeGroup") if r.inputs["nodeGroupName"] == group.name
        )
        assert ng.inputs["labels"][accelerators.ROLE_LABEL] == group.role
        if group.role not in accelerators.KINDS:
            continue
        acc = accelerator(group.role, "aws")
        assert ng.inputs["amiType"] == acc.ami_types[catalog.instance(group.instance_types[0]).arch]
        assert {"key": acc.taint.key, "value": acc.taint.value, "effect": "NO_SCHEDULE"} in ng.inputs[
            "taints"
        ]
        for key, value in acc.platform_node_labels().items():
            assert ng.inputs["labels"][key] == value


def test_the_pending_accelerator_alert_watches_every_registry_resource():
    rules = yaml.safe_load((MONITORING_FILES / "rules/accelerators.yaml").read_text())
    exprs = [r.get("expr", "") for g in rules["groups"] for r in g["rules"]]
    regexes = {m for e in exprs for m in re.findall(r'resource=~"([^"]+)"', e)}
    assert regexes == {accelerators.kube_state_metrics_resource_regex()}
