"""cluster-autoscaler: least-privilege IAM, chart values per environment, priority expander."""

from __future__ import annotations

import pytest
from aws_plan_helpers import policy, release

from mlops_infra.components.aws.autoscaler_iam import READ_ACTIONS, WRITE_ACTIONS
from mlops_infra.components.aws.versions import CLUSTER_AUTOSCALER_IMAGE_TAGS
from mlops_infra.components.k8s.cluster_autoscaler import CHART_REPO, CHART_VERSION, expander_priorities
from mlops_infra.platform.aws import autoscaler_priorities
from mlops_infra.platform.config import NodeGroupConfig


def test_iam_policy_reads_everything_but_writes_only_owned_groups(stack_plan):
    plan = stack_plan("prod")
    doc = policy(plan.named("mlops-prod-cluster-autoscaler-policy"))
    statements = {s["Sid"]: s for s in doc["Statement"]}
    assert set(statements) == {"Describe", "ScaleOwnGroups"}
    read, write = statements["Describe"], statements["ScaleOwnGroups"]
    assert (
        set(read["Action"])
        == {
            "autoscaling:DescribeAutoScalingGroups",
            "autoscaling:DescribeAutoScalingInstances",
            "autoscaling:DescribeLaunchConfigurations",
            "autoscaling:DescribeScalingActivities",
            "autoscaling:DescribeTags",
            "ec2:DescribeImages",
            "ec2:DescribeInstanceTypes",
            "ec2:DescribeLaunchTemplateVersions",
            "ec2:GetInstanceTypesFromInstanceRequirements",
            "eks:DescribeNodegroup",
        }
        == set(READ_ACTIONS)
    )
    assert read["Resource"] == "*" and "Condition" not in read
    assert all(":Describe" in a or ":Get" in a for a in read["Action"])
    assert (
        set(write["Action"])
        == {
            "autoscaling:SetDesiredCapacity",
            "autoscaling:TerminateInstanceInAutoScalingGroup",
            "autoscaling:UpdateAutoScalingGroup",
        }
        == set(WRITE_ACTIONS)
    )
    assert write["Condition"] == {
        "StringEquals": {"autoscaling:ResourceTag/kubernetes.io/cluster/mlops-prod": "owned"}
    }


@pytest.mark.parametrize(
    ("stack", "unneeded", "replicas"), [("dev", "5m", 1), ("test", "10m", 1), ("prod", "15m", 2)]
)
def test_chart_values_per_environment(stack_plan, stack, unneeded, replicas):
    plan = stack_plan(stack)
    ca = release(plan, "cluster-autoscaler")
    assert ca.inputs["chart"] == "cluster-autoscaler"
    assert ca.inputs["version"] == CHART_VERSION
    assert ca.inputs["repositoryOpts"]["repo"] == CHART_REPO
    assert ca.inputs["namespace"] == "kube-system"
    values = ca.inputs["values"]
    assert values["image"]["tag"] == CLUSTER_AUTOSCALER_IMAGE_TAGS[plan.config.cluster.version]
    assert values["autoDiscovery"] == {"clusterName": plan.config.cluster_name}
    assert values["awsRegion"] == "us-east-1" and values["cloudProvider"] == "aws"
    args = values["extraArgs"]
    assert args["scale-down-unneeded-time"] == unneeded
    assert args["expander"] == plan.config.autoscaler.expander
    assert args["balance-similar-node-groups"] is True
    assert (
        args["scale-down-gpu-utilization-threshold"]
        == plan.config.autoscaler.gpu_scale_down_utilization_threshold
    )
    assert args["aws-use-static-instance-list"] is False
    assert values["replicaCount"] == replicas
    role_arn = values["rbac"]["serviceAccount"]["annotations"]["eks.amazonaws.com/role-arn"]
    assert role_arn.endswith(f":role/{plan.config.cluster_name}-cluster-autoscaler")
    assert values["rbac"]["serviceAccount"]["name"] == "cluster-autoscaler"


def test_runs_on_system_nodes_non_root_with_a_pdb(stack_plan):
    values = release(stack_plan("prod"), "cluster-autoscaler").inputs["values"]
    assert values["tolerations"] == [
        {"key": "CriticalAddonsOnly", "operator": "Exists", "effect": "NoSchedule"}
    ]
    assert values["nodeSelector"] == {"mlops.platform/role": "system"}
    assert values["securityContext"]["runAsNonRoot"] is True and values["securityContext"]["runAsUser"] > 0
    assert values["containerSecurityContext"]["allowPrivilegeEscalation"] is False
    assert values["containerSecurityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert values["podDisruptionBudget"] == {"maxUnavailable": 1}
    assert values["priorityClassName"] == "system-cluster-critical"


def test_release_waits_for_the_nodes(stack_plan):
    plan = stack_plan("dev")
    component = plan.named("mlops-dev-autoscaler")
    for ng in plan.of_type("aws:eks/nodeGroup:NodeGroup"):
        assert ng.urn in component.depends_on


def test_priority_expander_lists_every_worker_group(stack_plan):
    plan = stack_plan("dev")
    table = release(plan, "cluster-autoscaler").inputs["values"]["expanderPriorities"]
    assert table["1"] == [".*"]
    patterns = [p for key, ps in table.items() if key != "1" for p in ps]
    workers = [g.name for g in plan.config.node_groups if g.role != "system"]
    assert sorted(p.split("-", 1)[1].rsplit("-[", 1)[0] for p in patterns) == sorted(workers)


def test_priorities_prefer_spot_then_cheaper():
    def group(name, types, capacity):
        return NodeGroupConfig(name=name, role="gpu", instance_types=types, capacity=capacity, max_size=2)

    ranked = autoscaler_priorities(
        [
            group("gpu-od", ["g5.xlarge"], "on-demand"),
            group("gpu-spot-big", ["g5.2xlarge"], "spot"),
            group("gpu-spot", ["g5.xlarge"], "spot"),
            NodeGroupConfig(
                name="system", role="system", instance_types=["m6i.large"], min_size=1, max_size=2
            ),
        ]
    )
    order = [p.pattern.split("-", 1)[1].rsplit("-[", 1)[0] for p in sorted(ranked, key=lambda p: -p.priority)]
    assert order == ["gpu-spot", "gpu-spot-big", "gpu-od"]
    # A group's pattern does not also match a group whose name extends it.
    import re

    spot = next(p for p in ranked if p.pattern.startswith("^eks-gpu-spot-["))
    assert re.match(spot.pattern, "eks-gpu-spot-0ec7a1e2-1b2c-4d5e-8f90-123456789abc")
    assert not re.match(spot.pattern, "eks-gpu-spot-big-0ec7a1e2-1b2c-4d5e-8f90-123456789abc")


def test_expander_table_rejects_priorities_that_clash_with_the_catch_all():
    from mlops_infra.components.k8s.cluster_autoscaler import PriorityGroup

    with pytest.raises(ValueError, match="catch-all"):
        expander_priorities([PriorityGroup(pattern="x", priority=1)])


def test_no_priority_table_without_the_priority_expander(mutated_plan):
    plan = mutated_plan(
        "dev", lambda cfg: cfg["mlops-platform:autoscaler"].update(expander="least-waste"), name="dev-lw"
    )
    values = release(plan, "cluster-autoscaler").inputs["values"]
    assert "expanderPriorities" not in values
    assert values["extraArgs"]["expander"] == "least-waste"
