"""Node groups: kinds, taints and labels, launch templates, IAM, and the tags that make scale-from-zero work."""

from __future__ import annotations

import pytest
from aws_plan_helpers import asg_tags, children, component_of, node_groups

from mlops_infra.components.accelerators import NodeTaint
from mlops_infra.components.aws.node_groups import autoscaler_node_template_tags
from mlops_infra.components.node_group import NodeGroupSpec

TEMPLATE = "k8s.io/cluster-autoscaler/node-template"
EXPECTED = {
    # role: (component type, AMI type, taint key)
    "system": ("mlops:aws:SystemNodeGroup", "AL2023_x86_64_STANDARD", "CriticalAddonsOnly"),
    "cpu": ("mlops:aws:CpuNodeGroup", "AL2023_x86_64_STANDARD", None),
    "gpu": ("mlops:aws:GpuNodeGroup", "AL2023_x86_64_NVIDIA", "nvidia.com/gpu"),
    "neuron": ("mlops:aws:NeuronNodeGroup", "AL2023_x86_64_NEURON", "aws.amazon.com/neuron"),
}


@pytest.mark.parametrize("stack", ["dev", "test", "prod"])
def test_each_group_has_its_kind_ami_and_taint(stack_plan, stack):
    plan = stack_plan(stack)
    groups = node_groups(plan)
    assert set(groups) == {g.name for g in plan.config.node_groups}
    for config in plan.config.node_groups:
        ng = groups[config.name]
        kind, ami, taint_key = EXPECTED[config.role]
        assert component_of(plan, ng).type == kind
        assert ng.inputs["amiType"] == ami
        taints = ng.inputs.get("taints", [])
        if taint_key is None:
            assert taints == []
        else:
            assert {"key": taint_key, "value": "true", "effect": "NO_SCHEDULE"} in taints
        assert ng.inputs["labels"]["mlops.platform/role"] == config.role
        assert ng.inputs["labels"]["mlops.platform/node-group"] == config.name
        assert ng.inputs["capacityType"] == ("SPOT" if config.capacity == "spot" else "ON_DEMAND")
        assert ng.inputs["instanceTypes"] == config.instance_types
        assert ng.inputs["version"] == plan.config.cluster.version


def test_gpu_and_neuron_labels(stack_plan):
    groups = node_groups(stack_plan("dev"))
    assert groups["gpu-a10g"].inputs["labels"]["k8s.amazonaws.com/accelerator"] == "nvidia-a10g"
    assert groups["gpu-l4"].inputs["labels"]["k8s.amazonaws.com/accelerator"] == "nvidia-l4"
    assert groups["gpu-a10g"].inputs["labels"]["nvidia.com/gpu.present"] == "true"
    assert groups["inf2"].inputs["labels"]["aws.amazon.com/neuron.present"] == "true"
    assert groups["system"].inputs["labels"] == {
        "mlops.platform/role": "system",
        "mlops.platform/node-group": "system",
    }


@pytest.mark.parametrize("stack", ["dev", "test"])
def test_non_prod_accelerators_are_spot_and_start_at_zero(stack_plan, stack):
    plan = stack_plan(stack)
    groups = node_groups(plan)
    accelerated = [g for g in plan.config.node_groups if g.accelerated]
    assert accelerated
    for config in accelerated:
        scaling = groups[config.name].inputs["scalingConfig"]
        assert scaling["minSize"] == 0 and scaling["desiredSize"] == 0
        assert groups[config.name].inputs["capacityType"] == "SPOT"


def test_prod_accelerators_are_on_demand_from_zero(stack_plan):
    plan = stack_plan("prod")
    groups = node_groups(plan)
    gpu = groups["gpu-a10g"].inputs
    assert gpu["capacityType"] == "ON_DEMAND"
    assert gpu["instanceTypes"] == ["g5.2xlarge"]
    assert (gpu["scalingConfig"]["minSize"], gpu["scalingConfig"]["maxSize"]) == (0, 8)


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_autoscaler_owns_desired_size(stack_plan, stack):
    for ng in stack_plan(stack).of_type("aws:eks/nodeGroup:NodeGroup"):
        assert "scalingConfig.desiredSize" in ng.ignore_changes


def test_update_config_replaces_scarce_nodes_one_at_a_time(stack_plan):
    groups = node_groups(stack_plan("prod"))
    assert groups["system"].inputs["updateConfig"] == {"maxUnavailable": 1}
    assert groups["gpu-a10g"].inputs["updateConfig"] == {"maxUnavailable": 1}
    assert groups["cpu"].inputs["updateConfig"] == {"maxUnavailablePercentage": 33}


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_launch_templates_enforce_imdsv2_and_encrypted_gp3(stack_plan, stack):
    plan = stack_plan(stack)
    templates = plan.of_type("aws:ec2/launchTemplate:LaunchTemplate")
    assert len(templates) == len(plan.config.node_groups)
    by_group = {g.name: g for g in plan.config.node_groups}
    for lt in templates:
        meta = lt.inputs["metadataOptions"]
        assert meta["httpTokens"] == "required"
        assert meta["httpPutResponseHopLimit"] == 1
        (root,) = lt.inputs["blockDeviceMappings"]
        assert root["deviceName"] == "/dev/xvda"
        ebs = root["ebs"]
        assert ebs["volumeType"] == "gp3" and ebs["encrypted"] == "true"
        assert ebs["kmsKeyId"].startswith("arn:aws:kms:")
        group = by_group[lt.inputs["tags"]["node-group"]]
        assert ebs["volumeSize"] == group.disk_size_gb
        kinds = {spec["resourceType"] for spec in lt.inputs["tagSpecifications"]}
        assert kinds == {"instance", "volume", "network-interface"}
        for spec in lt.inputs["tagSpecifications"]:
            assert spec["tags"]["costCenter"] == "4711"
    for ng in plan.of_type("aws:eks/nodeGroup:NodeGroup"):
        assert "diskSize" not in ng.inputs  # the launch template owns the disk


def test_node_role_policies(stack_plan):
    plan = stack_plan("prod")
    for ng in plan.of_type("aws:eks/nodeGroup:NodeGroup"):
        role = next(r for r in plan.of_type("aws:iam/role:Role") if r.parent == ng.parent)
        attached = {
            a.inputs["policyArn"].rsplit("/", 1)[-1]
            for a in children(plan, role, "aws:iam/rolePolicyAttachment:RolePolicyAttachment")
        }
        assert attached == {
            "AmazonEKSWorkerNodePolicy",
            "AmazonEC2ContainerRegistryReadOnly",
            "AmazonSSMManagedInstanceCore",
        }  # CNI permissions live on the vpc-cni IRSA role


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_every_asg_is_tagged_for_discovery_and_ownership(stack_plan, stack):
    plan = stack_plan(stack)
    name = plan.config.cluster_name
    for group in plan.config.node_groups:
        tags = asg_tags(plan, group.name)
        assert tags["k8s.io/cluster-autoscaler/enabled"] == "true"
        assert tags[f"k8s.io/cluster-autoscaler/{name}"] == "owned"
        assert tags[f"kubernetes.io/cluster/{name}"] == "owned"  # what the autoscaler's IAM condition checks
        assert tags[f"{TEMPLATE}/label/eks.amazonaws.com/nodegroup"] == group.name
    # Tags land on the managed group's ASG, whose name only exists once the group does.
    ng = node_groups(plan)["gpu-a10g"]
    for tag in children(plan, component_of(plan, ng), "aws:autoscaling/tag:Tag"):
        assert tag.inputs["autoscalingGroupName"].startswith("eks-gpu-a10g-")
        assert tag.inputs["tag"]["propagateAtLaunch"] is False


def test_asg_template_tags_describe_labels_taints_and_resources(stack_plan):
    plan = stack_plan("dev")
    gpu = asg_tags(plan, "gpu-a10g")
    assert gpu[f"{TEMPLATE}/taint/nvidia.com/gpu"] == "true:NoSchedule"
    assert gpu[f"{TEMPLATE}/label/k8s.amazonaws.com/accelerator"] == "nvidia-a10g"
    assert gpu[f"{TEMPLATE}/label/eks.amazonaws.com/capacityType"] == "SPOT"
    assert gpu[f"{TEMPLATE}/resources/nvidia.com/gpu"] == "1"
    assert gpu[f"{TEMPLATE}/resources/ephemeral-storage"] == "90Gi"
    inf2 = asg_tags(plan, "inf2")
    assert inf2[f"{TEMPLATE}/taint/aws.amazon.com/neuron"] == "true:NoSchedule"
    assert inf2[f"{TEMPLATE}/resources/aws.amazon.com/neuron"] == "1"
    assert inf2[f"{TEMPLATE}/resources/aws.amazon.com/neuroncore"] == "2"
    system = asg_tags(plan, "system")
    assert system[f"{TEMPLATE}/taint/CriticalAddonsOnly"] == "true:NoSchedule"
    assert not any("/resources/nvidia.com" in k or "neuron" in k for k in system)


def test_accelerator_counts_come_from_the_catalog(mutated_plan):
    def add_groups(cfg):
        cfg["mlops-platform:nodeGroups"] += [
            {"name": "gpu-4x", "role": "gpu", "instanceTypes": ["g5.12xlarge"], "maxSize": 2},
            {"name": "gpu-mixed", "role": "gpu", "instanceTypes": ["g5.12xlarge", "g5.xlarge"], "maxSize": 2},
            {"name": "inf2-24", "role": "neuron", "instanceTypes": ["inf2.24xlarge"], "maxSize": 1},
        ]

    plan = mutated_plan("dev", add_groups, name="dev-accel")
    assert asg_tags(plan, "gpu-4x")[f"{TEMPLATE}/resources/nvidia.com/gpu"] == "4"
    # Several types: the smallest count, so the template never promises GPUs a node may not have.
    assert asg_tags(plan, "gpu-mixed")[f"{TEMPLATE}/resources/nvidia.com/gpu"] == "1"
    neuron = asg_tags(plan, "inf2-24")
    assert neuron[f"{TEMPLATE}/resources/aws.amazon.com/neuron"] == "6"
    assert neuron[f"{TEMPLATE}/resources/aws.amazon.com/neuroncore"] == "12"
    # New groups start at zero and are spot in dev by the environment default.
    group = node_groups(plan)["gpu-4x"].inputs
    assert group["scalingConfig"]["minSize"] == 0 and group["capacityType"] == "SPOT"


def test_template_tags_unit():
    group = NodeGroupSpec(
        name="g",
        role="gpu",
        instance_types=("g6.12xlarge",),
        max_size=3,
        disk_size_gb=200,
        capacity="on-demand",
    )
    tags = autoscaler_node_template_tags(
        "c", group, {"a/b": "x"}, [NodeTaint("nvidia.com/gpu", "", "NoExecute")]
    )
    assert tags[f"{TEMPLATE}/label/a/b"] == "x"
    assert tags[f"{TEMPLATE}/taint/nvidia.com/gpu"] == ":NoExecute"
    assert tags[f"{TEMPLATE}/resources/nvidia.com/gpu"] == "4"
    assert tags[f"{TEMPLATE}/resources/ephemeral-storage"] == "180Gi"
    assert tags[f"{TEMPLATE}/label/eks.amazonaws.com/capacityType"] == "ON_DEMAND"
