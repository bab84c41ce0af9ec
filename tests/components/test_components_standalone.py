"""Components as another repo uses them: plain typed args, their own validation, Outputs where a value is only
known after another resource exists (a cluster created in the same program)."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_aws as aws
import pytest

from mlops_infra.components.aws.node_groups import GpuNodeGroup, NodeGroupArgs
from mlops_infra.components.node_group import NodeGroupSpec, NodeGroupSpecError
from mlops_infra.tooling.offline import evaluate

from plan_support import STACKS


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"min_size": 3, "max_size": 2}, "sizes must satisfy 0 <= min (3) <= desired (3) <= max (2)"),
        ({"instance_types": ("m6i.large",)}, "m6i.large has no accelerator, but the role is gpu"),
        ({"instance_types": ("g9.huge",)}, "g9.huge"),
        ({"name": "GPU_1"}, "name must be lowercase letters"),
        ({"tpu_topology": "2x2"}, "tpu_topology is set exactly for TPU groups"),
        ({"instance_types": ()}, "needs at least one instance type"),
    ],
)
def test_a_node_group_spec_refuses_what_no_cloud_can_build(fields: dict[str, Any], message: str) -> None:
    base: dict[str, Any] = {"name": "gpu", "role": "gpu", "instance_types": ("g5.xlarge",), "max_size": 2}
    with pytest.raises(NodeGroupSpecError, match="node group") as info:
        NodeGroupSpec(**{**base, **fields})
    assert message in str(info.value)


def test_a_gpu_group_added_to_a_cluster_created_in_the_same_program() -> None:
    """`cluster_name` is an Output: the scale-from-zero tags resolve with the real name."""

    def program() -> dict[str, Any]:
        cluster = aws.eks.Cluster(
            "team-cluster",
            name="team-cluster",
            role_arn="arn:aws:iam::123456789012:role/eks",
            vpc_config=aws.eks.ClusterVpcConfigArgs(subnet_ids=["subnet-1", "subnet-2"]),
        )
        GpuNodeGroup(
            "team-gpu",
            NodeGroupArgs(
                cluster_name=cluster.name,
                cluster_version="1.33",
                group=NodeGroupSpec(name="gpu", role="gpu", instance_types=("g5.xlarge",), max_size=4),
                subnet_ids=["subnet-1", "subnet-2"],
            ),
        )
        return {"cluster": pulumi.Output.from_input(cluster.name)}

    plan = evaluate(STACKS / "Pulumi.dev.yaml", program=program)
    tags = {r.inputs["tag"]["key"]: r.inputs["tag"]["value"] for r in plan.of_type("aws:autoscaling/tag:Tag")}
    assert tags["kubernetes.io/cluster/team-cluster"] == "owned"
    assert tags["k8s.io/cluster-autoscaler/team-cluster"] == "owned"
    assert tags["k8s.io/cluster-autoscaler/node-template/resources/nvidia.com/gpu"] == "1"
    assert not any("<" in key for key in tags)  # the stand-in never reaches AWS
    assert len([k for k in tags if "team-cluster" in k]) == 2  # and nothing else was rewritten
