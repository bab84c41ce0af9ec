"""Karpenter on EKS (`autoscaler.engine: karpenter`): the controller, its IAM and interruption queue, and each
non-system group as a NodePool + EC2NodeClass whose nodes look exactly like the managed group's."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_plan_helpers import node_groups, policy, release

from mlops_infra.components import catalog
from mlops_infra.components.aws import karpenter_types
from mlops_infra.components.aws.interruption_queue import EVENT_RULES
from mlops_infra.components.aws.karpenter import CHART, CHART_VERSION
from mlops_infra.components.aws.karpenter_iam import REGIONAL_READ_ACTIONS
from mlops_infra.platform.config import load_stack
from mlops_infra.tooling.plan import Plan, RecordedResource

from plan_support import STACKS

NODE_POOL = "kubernetes:karpenter.sh/v1:NodePool"
NODE_CLASS = "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass"
STACK = "prod-karpenter"
CLUSTER = "mlops-prod-karpenter"


def _by_name(plan: Plan, type_token: str) -> dict[str, RecordedResource]:
    return {r.inputs["metadata"]["name"]: r for r in plan.of_type(type_token)}


def _policy_docs(plan: Plan) -> dict[str, dict[str, Any]]:
    return {
        r.inputs["name"].removeprefix("KarpenterController").split("Policy-")[0]: json.loads(
            r.inputs["policy"]
        )
        for r in plan.of_type("aws:iam/policy:Policy")
        if r.inputs["name"].startswith("KarpenterController")
    }


def test_only_the_system_group_stays_a_managed_group_and_no_cluster_autoscaler(stack_plan):
    plan = stack_plan(STACK)
    assert set(node_groups(plan)) == {"system"}
    assert set(_by_name(plan, NODE_POOL)) == set(_by_name(plan, NODE_CLASS)) == {"cpu", "gpu-a10g", "inf2"}
    assert not [r for r in plan.helm_releases() if r.inputs["name"] == "cluster-autoscaler"]
    karpenter = release(plan, "karpenter")
    assert (karpenter.inputs["chart"], karpenter.inputs["version"]) == (CHART, CHART_VERSION)
    # The CRDs come from karpenter-crd at the same version (Helm never upgrades a chart's crds/), first.
    crds = release(plan, "karpenter-crd")
    assert (crds.inputs["chart"], crds.inputs["version"]) == (
        "oci://public.ecr.aws/karpenter/karpenter-crd",
        CHART_VERSION,
    )
    assert karpenter.inputs["skipCrds"] is True and crds.urn in karpenter.depends_on
    pool = next(r for r in plan.of_type(NODE_POOL))
    assert karpenter.urn in pool.depends_on


def test_default_engine_is_unchanged(stack_plan):
    plan = stack_plan("prod")
    assert not plan.of_type(NODE_POOL) and not plan.of_type("aws:sqs/queue:Queue")
    assert set(node_groups(plan)) == {"system", "cpu", "gpu-a10g", "inf2"}
    release(plan, "cluster-autoscaler")


@pytest.mark.parametrize("group", ["cpu", "gpu-a10g", "inf2"])
def test_pool_nodes_carry_the_managed_groups_labels_and_taints(stack_plan, group):
    """The same group as a managed group in `prod` and as a NodePool in `prod-karpenter`: workloads, device
    plugins and exporters select the very same labels and tolerate the very same taints."""
    managed = node_groups(stack_plan("prod"))[group].inputs
    pool = _by_name(stack_plan(STACK), NODE_POOL)[group].inputs["spec"]["template"]
    assert pool["metadata"]["labels"] == managed["labels"]
    effects = {"NO_SCHEDULE": "NoSchedule", "NO_EXECUTE": "NoExecute"}
    want = [
        {"key": t["key"], "value": t.get("value"), "effect": effects[t["effect"]]}
        for t in managed.get("taints", [])
    ]
    got = [
        {"key": t["key"], "value": t.get("value"), "effect": t["effect"]}
        for t in pool["spec"].get("taints", [])
    ]
    assert got == want


def test_requirements_admit_exactly_the_groups_types_capacity_and_zones(stack_plan):
    config = load_stack(STACKS / f"Pulumi.{STACK}.yaml")
    pools = _by_name(stack_plan(STACK), NODE_POOL)
    for group in (g for g in config.node_groups if g.role != "system"):
        reqs = pools[group.name].inputs["spec"]["template"]["spec"]["requirements"]
        assert sorted(t.name for t in karpenter_types.admitted_types(reqs)) == sorted(group.instance_types)
        assert karpenter_types.capacity_types(reqs) == [group.capacity]
        zones = next(r["values"] for r in reqs if r["key"] == "topology.kubernetes.io/zone")
        assert zones == ["us-east-1a", "us-east-1b", "us-east-1c"]


def test_limits_follow_max_size_of_the_largest_type(stack_plan):
    pools = _by_name(stack_plan(STACK), NODE_POOL)
    assert pools["cpu"].inputs["spec"]["limits"] == {"nodes": "12", "cpu": "96", "memory": "384Gi"}
    assert pools["gpu-a10g"].inputs["spec"]["limits"] == {
        "nodes": "8",
        "cpu": "64",
        "memory": "256Gi",
        "nvidia.com/gpu": "8",
    }
    assert pools["inf2"].inputs["spec"]["limits"]["aws.amazon.com/neuron"] == "4"
    for pool in pools.values():
        limits = pool.inputs["spec"]["limits"]
        reqs = pool.inputs["spec"]["template"]["spec"]["requirements"]
        ceilings = {
            karpenter_types.nodes_within_limits(t, limits) for t in karpenter_types.admitted_types(reqs)
        }
        assert ceilings == {int(limits["nodes"])}, "cpu/memory/device limits never bind below maxSize"


def test_disruption_waits_for_pdbs_and_replaces_accelerators_one_at_a_time(stack_plan):
    pools = _by_name(stack_plan(STACK), NODE_POOL)
    for name, budget in (("cpu", "33%"), ("gpu-a10g", "1"), ("inf2", "1")):
        spec = pools[name].inputs["spec"]
        assert spec["disruption"] == {
            "consolidationPolicy": "WhenEmptyOrUnderutilized",
            "consolidateAfter": "15m",  # prod's scale-down time (ENVIRONMENT_DEFAULTS)
            "budgets": [{"nodes": budget}],
        }
        assert "terminationGracePeriod" not in spec["template"]["spec"]
    assert pools["cpu"].inputs["metadata"]["annotations"] == {"mlops.platform/expected-nodes": "3"}


def test_node_class_has_imdsv2_encrypted_gp3_pinned_al2023_and_the_clusters_network(stack_plan):
    plan = stack_plan(STACK)
    ebs_key = plan.named(f"{CLUSTER}-ebs").outputs["arn"]
    cluster_sg = plan.of_type("aws:eks/cluster:Cluster")[0].outputs["vpcConfig"]["clusterSecurityGroupId"]
    subnets = set(node_groups(plan)["system"].inputs["subnetIds"])  # the private subnets of all three zones
    assert len(subnets) == 3
    node_role = plan.named(f"{CLUSTER}-karpenter-node")
    for name, node_class in _by_name(plan, NODE_CLASS).items():
        spec = node_class.inputs["spec"]
        assert spec["amiSelectorTerms"] == [{"alias": "al2023@v20260724"}]
        assert spec["metadataOptions"] == {
            "httpEndpoint": "enabled",
            "httpProtocolIPv6": "disabled",
            "httpPutResponseHopLimit": 1,
            "httpTokens": "required",
        }
        (root,) = spec["blockDeviceMappings"]
        assert root["rootVolume"] and root["deviceName"] == "/dev/xvda"
        assert root["ebs"] | {"volumeSize": None} == {
            "volumeSize": None,
            "volumeType": "gp3",
            "iops": 3000,
            "throughput": 125,
            "encrypted": True,
            "kmsKeyID": ebs_key,
            "deleteOnTermination": True,
        }
        assert root["ebs"]["volumeSize"] == "100Gi"
        assert spec["securityGroupSelectorTerms"] == [{"id": cluster_sg}]
        assert {t["id"] for t in spec["subnetSelectorTerms"]} == subnets
        assert spec["role"] == node_role.inputs["name"]
        assert spec["tags"]["node-group"] == name and spec["tags"]["environment"] == "prod"


def test_nodes_join_through_an_ec2_linux_access_entry(stack_plan):
    plan = stack_plan(STACK)
    role = plan.named(f"{CLUSTER}-karpenter-node")
    (entry,) = [r for r in plan.of_type("aws:eks/accessEntry:AccessEntry") if r.inputs["type"] == "EC2_LINUX"]
    assert entry.inputs["principalArn"] == role.outputs["arn"]
    assert json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]["Principal"] == {
        "Service": "ec2.amazonaws.com"
    }


def test_interruption_queue_receives_the_five_event_kinds_over_tls_only(stack_plan):
    plan = stack_plan(STACK)
    (queue,) = plan.of_type("aws:sqs/queue:Queue")
    assert queue.inputs["name"] == CLUSTER
    assert queue.inputs["messageRetentionSeconds"] == 300 and queue.inputs["sqsManagedSseEnabled"] is True
    arn = queue.outputs["arn"]
    assert arn == f"arn:aws:sqs:us-east-1:123456789012:{CLUSTER}"
    doc = policy(plan.of_type("aws:sqs/queuePolicy:QueuePolicy")[0])
    allow, deny = doc["Statement"]
    assert allow["Principal"] == {"Service": ["events.amazonaws.com", "sqs.amazonaws.com"]}
    assert allow["Action"] == "sqs:SendMessage" and allow["Resource"] == arn
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    patterns = {
        tuple(json.loads(r.inputs["eventPattern"])["detail-type"])
        for r in plan.of_type("aws:cloudwatch/eventRule:EventRule")
    }
    assert patterns == {(detail,) for _, detail in EVENT_RULES.values()}
    targets = plan.of_type("aws:cloudwatch/eventTarget:EventTarget")
    assert len(targets) == 5 and {t.inputs["arn"] for t in targets} == {arn}
    assert release(plan, "karpenter").inputs["values"]["settings"]["interruptionQueue"] == CLUSTER


def test_controller_policies_are_the_upstream_ones_scoped_to_this_cluster(stack_plan):
    docs = _policy_docs(stack_plan(STACK))
    assert set(docs) == {
        "NodeLifecycle",
        "IAMIntegration",
        "EKSIntegration",
        "Interruption",
        "ResourceDiscovery",
    }
    statements = [s for d in docs.values() for s in d["Statement"]]
    sids = {s["Sid"] for s in statements}
    assert sids == {
        "AllowScopedEC2InstanceAccessActions",
        "AllowScopedEC2LaunchTemplateAccessActions",
        "AllowScopedEC2InstanceActionsWithTags",
        "AllowScopedResourceCreationTagging",
        "AllowScopedResourceTagging",
        "AllowScopedDeletion",
        "AllowPassingInstanceRole",
        "AllowScopedInstanceProfileCreationActions",
        "AllowScopedInstanceProfileTagActions",
        "AllowScopedInstanceProfileActions",
        "AllowAPIServerEndpointDiscovery",
        "AllowInterruptionQueueActions",
        "AllowRegionalReadActions",
        "AllowSSMReadActions",
        "AllowPricingReadActions",
        "AllowUnscopedInstanceProfileListAction",
        "AllowInstanceProfileReadActions",
    }
    owned = f"kubernetes.io/cluster/{CLUSTER}"
    by_sid = {s["Sid"]: s for s in statements}
    for sid in (
        "AllowScopedDeletion",
        "AllowScopedEC2LaunchTemplateAccessActions",
        "AllowScopedResourceTagging",
    ):
        assert by_sid[sid]["Condition"]["StringEquals"] == {f"aws:ResourceTag/{owned}": "owned"}
    assert by_sid["AllowScopedEC2InstanceActionsWithTags"]["Condition"]["StringEquals"] == {
        f"aws:RequestTag/{owned}": "owned",
        "aws:RequestTag/eks:eks-cluster-name": CLUSTER,
    }
    # Every action that changes something carries a condition or names one resource of this stack.
    mutating = [
        s
        for s in statements
        if any(not a.split(":")[1].startswith(("Describe", "Get", "List")) for a in _list(s["Action"]))
    ]
    for s in mutating:
        assert "Condition" in s or s["Resource"] != "*", s["Sid"]
    passed = by_sid["AllowPassingInstanceRole"]
    assert passed["Resource"] == stack_plan(STACK).named(f"{CLUSTER}-karpenter-node").outputs["arn"]
    assert by_sid["AllowRegionalReadActions"]["Action"] == list(REGIONAL_READ_ACTIONS)
    assert by_sid["AllowInterruptionQueueActions"]["Resource"].endswith(f":{CLUSTER}")
    assert (
        by_sid["AllowAPIServerEndpointDiscovery"]["Resource"]
        == f"arn:aws:eks:us-east-1:123456789012:cluster/{CLUSTER}"
    )


def _list(value: Any) -> list[str]:
    return value if isinstance(value, list) else [value]


def test_controller_runs_on_system_nodes_with_irsa_by_default(stack_plan):
    plan = stack_plan(STACK)
    values = release(plan, "karpenter").inputs["values"]
    assert values["nodeSelector"] == {"mlops.platform/role": "system"}
    assert values["tolerations"] == [
        {"key": "CriticalAddonsOnly", "operator": "Exists", "effect": "NoSchedule"}
    ]
    assert values["replicas"] == 2  # prod's controller_replicas
    assert values["settings"]["clusterName"] == CLUSTER
    role = plan.named(f"{CLUSTER}-karpenter-controller")
    assert values["serviceAccount"] == {
        "create": True,
        "name": "karpenter",
        "annotations": {"eks.amazonaws.com/role-arn": role.outputs["arn"]},
    }
    trust = json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]
    assert trust["Condition"]["StringEquals"][
        next(k for k in trust["Condition"]["StringEquals"] if k.endswith(":sub"))
    ] == ("system:serviceaccount:kube-system:karpenter")
    assert not plan.of_type("aws:eks/podIdentityAssociation:PodIdentityAssociation")


def test_pod_identity_when_the_cluster_runs_its_agent(mutated_plan):
    def agent(cfg: dict[str, Any]) -> None:
        cfg["mlops-platform:cluster"]["podIdentityAgent"] = True

    plan = mutated_plan(STACK, agent)
    (association,) = plan.of_type("aws:eks/podIdentityAssociation:PodIdentityAssociation")
    role = plan.named(f"{CLUSTER}-karpenter-controller")
    assert (association.inputs["namespace"], association.inputs["serviceAccount"]) == (
        "kube-system",
        "karpenter",
    )
    assert association.inputs["roleArn"] == role.outputs["arn"]
    trust = json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]
    assert trust["Principal"] == {"Service": "pods.eks.amazonaws.com"}
    assert trust["Condition"]["ArnEquals"] == {
        "aws:SourceArn": f"arn:aws:eks:us-east-1:123456789012:cluster/{CLUSTER}"
    }
    assert release(plan, "karpenter").inputs["values"]["serviceAccount"]["annotations"] == {}


def test_spot_pools_bring_the_spot_service_linked_role(stack_plan, mutated_plan):
    def roles(plan: Plan) -> set[str]:
        return {
            r.inputs["awsServiceName"] for r in plan.of_type("aws:iam/serviceLinkedRole:ServiceLinkedRole")
        }

    assert roles(stack_plan(STACK)) == {"autoscaling.amazonaws.com"}  # all pools on-demand

    def spot(cfg: dict[str, Any]) -> None:
        cfg["mlops-platform:nodeGroups"][2]["capacity"] = "spot"

    assert roles(mutated_plan(STACK, spot)) == {"autoscaling.amazonaws.com", "spot.amazonaws.com"}


def test_ebs_key_serves_ec2_fleet_launches_only_with_karpenter(stack_plan):
    def statements(stack: str) -> dict[str, Any]:
        cluster = "mlops-prod" if stack == "prod" else CLUSTER
        doc = json.loads(stack_plan(stack).named(f"{cluster}-ebs").inputs["policy"])
        return {s["Sid"]: s for s in doc["Statement"]}

    via_ec2 = statements(STACK)["AccountUsesKeyThroughEc2"]
    assert via_ec2["Condition"] == {
        "StringEquals": {"kms:ViaService": "ec2.us-east-1.amazonaws.com", "kms:CallerAccount": "123456789012"}
    }
    assert "AccountUsesKeyThroughEc2" not in statements("prod")


def test_pool_sizes_come_from_the_catalog():
    """`limits` uses the catalog's vCPU and memory: a wrong catalog row would under- or over-cap the pool."""
    assert (catalog.instance("m7i.2xlarge").vcpu, catalog.instance("m7i.2xlarge").memory_gib) == (8, 32)
