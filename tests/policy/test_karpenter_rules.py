"""The policy pack on Karpenter stacks: each reference stack passes, and each mistake a NodePool can carry is
caught by the rule that owns it (bounded size, spot and scale-to-zero outside prod, scheduling, PDBs,
interruption handling, node classes, IMDS)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import yaml
from policy.plan_edits import edit_plan, findings

from mlops_infra.tooling.offline import evaluate
from mlops_infra.tooling.plan import Plan, RecordedResource
from mlops_policies.runner import check_plan

from plan_support import load_stack_doc

NODE_POOL = "kubernetes:karpenter.sh/v1:NodePool"
NODE_CLASS = "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass"
RELEASE = "kubernetes:helm.sh/v3:Release"
STACK = "prod-karpenter"


def _pool(name: str) -> Callable[[RecordedResource], bool]:
    return lambda r: r.type == NODE_POOL and r.inputs["metadata"]["name"] == name


def _karpenter_release(r: RecordedResource) -> bool:
    return r.type == RELEASE and r.inputs.get("name") == "karpenter"


def _messages(plan: Plan, rule: str) -> list[str]:
    return [v.message for v in findings(plan, rule)]


def _karpenter(cfg: dict[str, Any]) -> None:
    cfg["mlops-platform:autoscaler"] = {"engine": "karpenter"}


@pytest.fixture(scope="module")
def dev_karpenter(tmp_path_factory) -> Plan:
    """The dev stack with engine: karpenter (spot GPU pools that scale to zero)."""
    doc = load_stack_doc("dev")
    _karpenter(doc["config"])
    path = tmp_path_factory.mktemp("dev-karpenter") / "Pulumi.dev.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return evaluate(path)


def test_reference_stack_passes_every_rule(stack_plan) -> None:
    assert check_plan(stack_plan(STACK)) == []


def test_dev_with_karpenter_passes_every_rule(dev_karpenter: Plan) -> None:
    assert check_plan(dev_karpenter) == []


def test_a_node_pool_without_limits_is_unbounded(stack_plan) -> None:
    plan = edit_plan(stack_plan(STACK), _pool("gpu-a10g"), lambda i: i["spec"].pop("limits"))
    (message,) = _messages(plan, "node-group-max-bounded")
    assert message.startswith("NodePool gpu-a10g: no spec.limits bound how many nodes it launches")


def test_limits_above_the_accelerator_ceiling_are_refused(stack_plan) -> None:
    def bigger(inputs: dict[str, Any]) -> None:
        inputs["spec"]["limits"] = {"nvidia.com/gpu": "40"}  # 40 g5.2xlarge: cpu/memory/nodes unbounded

    plan = edit_plan(stack_plan(STACK), _pool("gpu-a10g"), bigger)
    (message,) = _messages(plan, "node-group-max-bounded")
    assert "maxSize 40 exceeds the gpu limit of 32 nodes" in message


def test_on_demand_and_static_accelerator_pools_outside_prod(dev_karpenter: Plan) -> None:
    def on_demand(inputs: dict[str, Any]) -> None:
        for req in inputs["spec"]["template"]["spec"]["requirements"]:
            if req["key"] == "karpenter.sh/capacity-type":
                req["values"] = ["on-demand"]

    (message,) = _messages(
        edit_plan(dev_karpenter, _pool("gpu-l4"), on_demand), "spot-for-nonprod-accelerators"
    )
    assert message.startswith("NodePool gpu-l4: gpu group runs on-demand in dev")
    static = edit_plan(dev_karpenter, _pool("gpu-l4"), lambda i: i["spec"].update(replicas=1))
    (message,) = _messages(static, "accelerators-scale-to-zero-nonprod")
    assert message.startswith("NodePool gpu-l4: gpu group keeps 1 node(s) running in dev")


def test_types_outside_the_allowed_list(dev_karpenter: Plan) -> None:
    def p5(inputs: dict[str, Any]) -> None:
        reqs = inputs["spec"]["template"]["spec"]["requirements"]
        inputs["spec"]["template"]["spec"]["requirements"] = [
            {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": ["p5.48xlarge"]},
            *[
                r
                for r in reqs
                if r["key"]
                not in (
                    "node.kubernetes.io/instance-type",
                    "karpenter.k8s.aws/instance-family",
                    "karpenter.k8s.aws/instance-size",
                )
            ],
        ]

    (message,) = _messages(edit_plan(dev_karpenter, _pool("gpu-l4"), p5), "allowed-instance-types")
    assert "instance type p5.48xlarge is not allowed here" in message


def test_controller_on_a_node_it_launches_cannot_schedule(stack_plan) -> None:
    def on_cpu_pool(inputs: dict[str, Any]) -> None:
        inputs["values"]["nodeSelector"] = {"mlops.platform/role": "cpu"}

    plan = edit_plan(stack_plan(STACK), _karpenter_release, on_cpu_pool)
    (message,) = _messages(plan, "pods-schedulable")
    assert message.startswith(
        "Deployment kube-system/karpenter/karpenter cannot be scheduled on any node group"
    )
    assert "cpu: no instance type of the pool takes it" in message and "required node affinity" in message


def test_a_pod_asking_more_gpus_than_any_pool_type_has(mutated_plan) -> None:
    def two_gpus(cfg: dict[str, Any]) -> None:
        cfg["mlops-platform:workloads"]["serving"] |= {"gpu": True, "gpusPerReplica": 2}

    plan = mutated_plan(STACK, two_gpus)
    (message,) = _messages(plan, "pods-schedulable")
    assert "Rollout serving/fraud-server cannot be scheduled" in message
    assert (
        "gpu-a10g: no instance type of the pool takes it, e.g. g5.2xlarge: requests nvidia.com/gpu 2"
        in message
    )
    assert _messages(plan, "gpu-request-fits-node")


def test_gpu_serving_fits_the_gpu_pool(mutated_plan) -> None:
    def gpu(cfg: dict[str, Any]) -> None:
        cfg["mlops-platform:workloads"]["serving"]["gpu"] = True

    plan = mutated_plan(STACK, gpu)
    assert _messages(plan, "pods-schedulable") == [] and _messages(plan, "prod-serving-on-demand") == []

    def spot(inputs: dict[str, Any]) -> None:
        for req in inputs["spec"]["template"]["spec"]["requirements"]:
            if req["key"] == "karpenter.sh/capacity-type":
                req["values"] = ["spot", "on-demand"]

    (message,) = _messages(edit_plan(plan, _pool("gpu-a10g"), spot), "prod-serving-on-demand")
    assert "can land on spot node group(s) gpu-a10g" in message


def test_termination_grace_period_over_pdb_protected_pods(stack_plan) -> None:
    def grace(inputs: dict[str, Any]) -> None:
        inputs["spec"]["template"]["spec"]["terminationGracePeriod"] = "1h"

    (message,) = _messages(edit_plan(stack_plan(STACK), _pool("cpu"), grace), "karpenter-respects-pdbs")
    assert message.startswith("NodePool cpu: terminationGracePeriod 1h lets Karpenter delete pods")
    assert "Rollout serving/fraud-server (PodDisruptionBudget serving/fraud-server)" in message
    # No pod behind a PDB can land on the GPU pool: nothing to protect there.
    assert _messages(edit_plan(stack_plan(STACK), _pool("gpu-a10g"), grace), "karpenter-respects-pdbs") == []


def test_spot_pools_need_the_interruption_queue(dev_karpenter: Plan) -> None:
    assert _messages(dev_karpenter, "karpenter-interruption-queue") == []
    plan = edit_plan(
        dev_karpenter, _karpenter_release, lambda i: i["values"]["settings"].pop("interruptionQueue")
    )
    (message,) = _messages(plan, "karpenter-interruption-queue")
    assert "launch spot nodes, but no Karpenter release sets settings.interruptionQueue" in message


def test_node_pool_naming_a_missing_node_class(stack_plan) -> None:
    def typo(inputs: dict[str, Any]) -> None:
        inputs["spec"]["template"]["spec"]["nodeClassRef"]["name"] = "gpu-a10"

    (message,) = _messages(
        edit_plan(stack_plan(STACK), _pool("gpu-a10g"), typo), "karpenter-node-class-exists"
    )
    assert "nodeClassRef EC2NodeClass/gpu-a10 names no EC2NodeClass of this stack" in message


def test_node_class_imds_hop_limit(stack_plan) -> None:
    def hop(inputs: dict[str, Any]) -> None:
        inputs["spec"]["metadataOptions"]["httpPutResponseHopLimit"] = 2

    node_class = lambda r: r.type == NODE_CLASS and r.inputs["metadata"]["name"] == "cpu"  # noqa: E731
    (message,) = _messages(edit_plan(stack_plan(STACK), node_class, hop), "imdsv2-required")
    assert message.startswith("EC2NodeClass cpu: metadataOptions.httpPutResponseHopLimit=2")
    # Without metadataOptions Karpenter's defaults apply (required, hop limit 1): nothing to report.
    plain = edit_plan(stack_plan(STACK), node_class, lambda i: i["spec"].pop("metadataOptions"))
    assert _messages(plain, "imdsv2-required") == []
