"""`pods-schedulable`: a model of kube-scheduler and cluster-autoscaler over the plan's node groups. It passes
on every reference stack and catches each class of mistake a real cluster would leave Pending."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from policy.plan_edits import edit_plan, findings

from mlops_infra.components import accelerators
from mlops_infra.tooling.plan import Plan, RecordedResource
from mlops_policies.selectors import node_affinity_matches, selector_matches, tolerates

from plan_support import REFERENCE_STACKS

RULE = "pods-schedulable"
ROLLOUT = "kubernetes:argoproj.io/v1alpha1:Rollout"
ASG_TAG = "aws:autoscaling/tag:Tag"
RELEASE = "kubernetes:helm.sh/v3:Release"


def _rollout_pod(inputs: dict[str, Any]) -> dict[str, Any]:
    pod: dict[str, Any] = inputs["spec"]["template"]["spec"]
    return pod


def _messages(plan: Plan) -> list[str]:
    return [v.message for v in findings(plan, RULE)]


@pytest.mark.parametrize("stack", REFERENCE_STACKS)
def test_every_pod_of_every_reference_stack_schedules(stack_plan, stack: str) -> None:
    assert _messages(stack_plan(stack)) == []


def _gpu_serving(mutated_plan, stack: str) -> Plan:
    def gpu(cfg: dict[str, Any]) -> None:
        cfg["mlops-platform:workloads"]["serving"]["gpu"] = True

    return mutated_plan(stack, gpu)


@pytest.mark.parametrize("stack", ["prod", "prod-gcp"])
def test_gpu_serving_schedules_on_each_cloud(mutated_plan, stack: str) -> None:
    assert _messages(_gpu_serving(mutated_plan, stack)) == []


def test_finding_11_aws_gpu_label_on_gke_is_unschedulable(mutated_plan) -> None:
    """The old GPU variant selected `nvidia.com/gpu.present`, a label only our AWS groups set."""
    plan = _gpu_serving(mutated_plan, "prod-gcp")

    def old_selector(inputs: dict[str, Any]) -> None:
        pod = _rollout_pod(inputs)
        del pod["affinity"]
        pod["nodeSelector"] = {"nvidia.com/gpu.present": "true"}

    (message,) = _messages(edit_plan(plan, lambda r: r.type == ROLLOUT, old_selector))
    assert message.startswith("Rollout serving/fraud-server cannot be scheduled on any node group")
    assert "gpu-l4: nodeSelector nvidia.com/gpu.present=true (node has no such label)" in message


def test_missing_toleration_is_caught(mutated_plan) -> None:
    plan = _gpu_serving(mutated_plan, "prod")
    tampered = edit_plan(plan, lambda r: r.type == ROLLOUT, lambda i: _rollout_pod(i).pop("tolerations"))
    (message,) = _messages(tampered)
    assert "gpu-a10g: taint nvidia.com/gpu=true:NoSchedule not tolerated" in message


def test_requests_beyond_the_largest_node_are_caught(mutated_plan) -> None:
    def huge(cfg: dict[str, Any]) -> None:
        cfg["mlops-platform:workloads"]["serving"]["cpu"] = "16"

    (message,) = _messages(mutated_plan("dev", huge))
    assert "Rollout serving/fraud-server" in message
    # 4 vCPU minus the kubelet reservation (0.08) and the EKS node agents (0.155)
    assert "cpu: requests cpu 16, m6i.xlarge has 3.765 free" in message


def _neuron_job(plan: Plan) -> Plan:
    """A Job asking for one Inferentia device the way the registry places it."""
    spec: dict[str, Any] = {"containers": [{"name": "infer", "image": "x", "resources": {}}]}
    accelerators.accelerator("neuron", "aws").place(spec, spec["containers"][0]["resources"], 1)
    job = RecordedResource(
        urn="urn:pulumi:dev::mlops-platform::kubernetes:batch/v1:Job::neuron-job",
        type="kubernetes:batch/v1:Job",
        name="neuron-job",
        parent=None,
        custom=True,
        protect=False,
        provider=None,
        inputs={
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "neuron-job", "namespace": "default"},
            "spec": {"template": {"spec": spec}},
        },
    )
    return dataclasses.replace(plan, resources=[*plan.resources, job])


def test_scale_from_zero_template_must_advertise_the_device(stack_plan) -> None:
    plan = _neuron_job(stack_plan("dev"))
    assert _messages(plan) == []
    untagged = edit_plan(
        plan,
        lambda r: r.type == ASG_TAG and r.inputs["tag"]["key"].endswith("/resources/aws.amazon.com/neuron"),
        drop=True,
    )
    (message,) = _messages(untagged)
    assert "Job default/neuron-job cannot be scheduled" in message
    assert (
        "inf2: fits its nodes, but the group scales from zero and cluster-autoscaler's template "
        "(ASG node-template tags) says: requests aws.amazon.com/neuron but nothing on the node advertises it"
    ) in message


def test_without_the_device_plugin_gpu_nodes_advertise_nothing(mutated_plan) -> None:
    plan = _gpu_serving(mutated_plan, "prod")
    no_plugin = edit_plan(
        plan, lambda r: r.type == RELEASE and r.inputs["chart"] == "nvidia-device-plugin", drop=True
    )
    messages = _messages(no_plugin)
    assert any(
        m.startswith("node group gpu-a10g: no device plugin runs on its g5.2xlarge nodes, so they advertise no "
                     "nvidia.com/gpu")
        for m in messages
    )  # fmt: skip
    assert any("requests nvidia.com/gpu but nothing on the node advertises it" in m for m in messages)


def test_device_plugin_affinity_on_a_label_no_node_has(stack_plan) -> None:
    def wrong_label(inputs: dict[str, Any]) -> None:
        term = inputs["values"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        term["nodeSelectorTerms"][0]["matchExpressions"][0]["key"] = "nvidia.com/gpu.deploy.device-plugin"

    plan = edit_plan(
        stack_plan("dev"),
        lambda r: r.type == RELEASE and r.inputs["chart"] == "nvidia-device-plugin",
        wrong_label,
    )
    messages = _messages(plan)
    assert (
        "DaemonSet kube-system/nvidia-device-plugin/nvidia-device-plugin cannot be scheduled" in messages[0]
    )
    assert sum("no device plugin runs" in m for m in messages) == 4  # 2 groups x 2 instance types


# ---- the matching semantics the model relies on (Kubernetes' own rules)


def test_toleration_semantics() -> None:
    assert tolerates([{"operator": "Exists"}], "any", "v", "NoSchedule")  # empty key + Exists: everything
    assert tolerates([{"key": "k", "operator": "Exists"}], "k", "v", "NoExecute")  # empty effect: all
    assert not tolerates([{"key": "k", "operator": "Exists", "effect": "NoSchedule"}], "k", "v", "NoExecute")
    assert tolerates([{"key": "k", "value": "v"}], "k", "v", "NoSchedule")  # operator defaults to Equal
    assert not tolerates([{"key": "k", "value": "w"}], "k", "v", "NoSchedule")


def test_node_affinity_semantics() -> None:
    def req(*terms: list[dict[str, Any]]) -> dict[str, Any]:
        node_terms = [{"matchExpressions": t} for t in terms]
        return {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": node_terms}
            }
        }

    labels = {"a": "1", "n": "5"}
    assert node_affinity_matches(
        req([{"key": "x", "operator": "In", "values": ["1"]}], [{"key": "a", "operator": "Exists"}]), labels
    )
    assert not node_affinity_matches(
        req([{"key": "a", "operator": "Exists"}, {"key": "x", "operator": "Exists"}]), labels
    )
    assert node_affinity_matches(req([{"key": "x", "operator": "NotIn", "values": ["1"]}]), labels)
    assert node_affinity_matches(req([{"key": "n", "operator": "Gt", "values": ["4"]}]), labels)
    assert not node_affinity_matches(req([]), labels)  # an empty term matches no node
    assert node_affinity_matches(None, labels)
    assert selector_matches({}, labels) and not selector_matches({"matchLabels": {"a": "2"}}, labels)
