"""The EKS control plane: endpoint access, encryption, logs, access entries, OIDC/IRSA, add-ons, provider."""

from __future__ import annotations

import copy
import json
import re

import pytest
from aws_plan_helpers import policy, walk

from mlops_infra.components.aws.cluster import endpoint_access
from mlops_infra.components.aws.irsa import trust_policy
from mlops_infra.components.aws.versions import EKS_ADDON_VERSIONS
from mlops_infra.platform.config import ConfigError, parse_stack_config, raw_from_pulumi_config


def cluster(plan):
    (c,) = plan.of_type("aws:eks/cluster:Cluster")
    return c


def test_prod_endpoint_is_private_only(stack_plan):
    vpc = cluster(stack_plan("prod")).inputs["vpcConfig"]
    assert vpc["endpointPrivateAccess"] is True
    assert vpc["endpointPublicAccess"] is False
    assert not vpc.get("publicAccessCidrs")


def test_dev_public_endpoint_only_from_listed_cidrs(stack_plan):
    vpc = cluster(stack_plan("dev")).inputs["vpcConfig"]
    assert vpc["endpointPublicAccess"] is True and vpc["endpointPrivateAccess"] is True
    assert vpc["publicAccessCidrs"] == ["203.0.113.0/24"]


@pytest.mark.parametrize("stack", ["dev", "test", "prod"])
def test_nothing_is_open_to_the_internet(stack_plan, stack):
    """0.0.0.0/0 appears only as the default route of route tables (egress), never as an allow rule."""
    for r in stack_plan(stack).resources:
        for path, value in walk(r.inputs):
            if isinstance(value, str) and value.endswith("0.0.0.0/0"):
                assert r.type == "aws:ec2/route:Route" and path == ".destinationCidrBlock", (r.name, path)


def test_endpoint_access_rules():
    assert endpoint_access(True, ("203.0.113.0/24",)) == (False, [])
    assert endpoint_access(False, ()) == (False, [])  # no CIDRs: no public access (EKS would open it to all)
    assert endpoint_access(False, ("203.0.113.0/24",)) == (True, ["203.0.113.0/24"])
    with pytest.raises(ValueError, match="internet"):
        endpoint_access(False, ("0.0.0.0/0",))


def test_secrets_are_envelope_encrypted_with_a_rotating_key(stack_plan):
    plan = stack_plan("prod")
    encryption = cluster(plan).inputs["encryptionConfig"]
    assert encryption["resources"] == ["secrets"]
    assert re.match(r"^arn:aws:kms:us-east-1:\d{12}:key/", encryption["provider"]["keyArn"])
    keys = plan.of_type("aws:kms/key:Key")
    assert {k.name for k in keys} >= {"mlops-prod-secrets", "mlops-prod-ebs"}
    for key in keys:
        assert key.inputs["enableKeyRotation"] is True
        assert key.inputs["deletionWindowInDays"] >= 7


def test_ebs_key_lets_auto_scaling_launch_encrypted_nodes(stack_plan):
    key = stack_plan("prod").named("mlops-prod-ebs")
    statements = {s["Sid"]: s for s in policy(key)["Statement"]}
    role = statements["AutoScalingCreatesGrants"]["Principal"]["AWS"]
    assert role.endswith(":role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling")
    assert statements["AutoScalingCreatesGrants"]["Condition"] == {
        "Bool": {"kms:GrantIsForAWSResource": "true"}
    }


def test_control_plane_logs_with_retention(stack_plan):
    plan = stack_plan("prod")
    assert cluster(plan).inputs["enabledClusterLogTypes"] == ["api", "audit", "authenticator"]
    group = plan.named("mlops-prod-control-plane")
    assert group.inputs["name"] == "/aws/eks/mlops-prod/cluster"
    assert group.inputs["retentionInDays"] == 365
    assert group.urn in cluster(plan).depends_on  # exists before EKS would create one without retention


def test_access_entries_for_admin_roles_only(stack_plan):
    plan = stack_plan("prod")
    access = cluster(plan).inputs["accessConfig"]
    assert access == {"authenticationMode": "API", "bootstrapClusterCreatorAdminPermissions": False}
    admins = plan.config.cluster.admin_role_arns
    entries = plan.of_type("aws:eks/accessEntry:AccessEntry")
    assert sorted(e.inputs["principalArn"] for e in entries) == sorted(admins)
    associations = plan.of_type("aws:eks/accessPolicyAssociation:AccessPolicyAssociation")
    assert len(associations) == len(admins)
    for a in associations:
        assert a.inputs["policyArn"] == "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
        assert a.inputs["accessScope"] == {"type": "cluster"}


def test_oidc_provider_and_irsa_trust(stack_plan):
    plan = stack_plan("prod")
    (oidc,) = plan.of_type("aws:iam/openIdConnectProvider:OpenIdConnectProvider")
    assert oidc.inputs["clientIdLists"] == ["sts.amazonaws.com"]
    issuer = oidc.inputs["url"].removeprefix("https://")
    role = plan.named("mlops-prod-cluster-autoscaler")
    (statement,) = policy(role, "assumeRolePolicy")["Statement"]
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert statement["Principal"]["Federated"].endswith(f":oidc-provider/{issuer}")
    assert statement["Condition"] == {
        "StringEquals": {
            f"{issuer}:sub": "system:serviceaccount:kube-system:cluster-autoscaler",
            f"{issuer}:aud": "sts.amazonaws.com",
        }
    }


def test_trust_policy_pins_one_service_account():
    doc = json.loads(trust_policy("arn:aws:iam::1:oidc-provider/x", "https://x", "ns", "sa"))
    assert doc["Statement"][0]["Condition"]["StringEquals"] == {
        "x:sub": "system:serviceaccount:ns:sa",
        "x:aud": "sts.amazonaws.com",
    }


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_managed_addons_are_pinned_for_the_cluster_minor(stack_plan, stack):
    plan = stack_plan(stack)
    pins = EKS_ADDON_VERSIONS[plan.config.cluster.version].by_name()
    addons = {a.inputs["addonName"]: a for a in plan.of_type("aws:eks/addon:Addon")}
    assert set(addons) == {"vpc-cni", "kube-proxy", "coredns", "aws-ebs-csi-driver"}
    for name, addon in addons.items():
        assert addon.inputs["addonVersion"] == pins[name]
        assert re.match(r"^v\d+\.\d+\.\d+-eksbuild\.\d+$", addon.inputs["addonVersion"])
    # The two that call AWS APIs run under their own IRSA roles, not the node role.
    assert addons["vpc-cni"].inputs["serviceAccountRoleArn"].endswith(":role/mlops-" + stack + "-vpc-cni")
    assert addons["aws-ebs-csi-driver"].inputs["serviceAccountRoleArn"].endswith("-aws-ebs-csi-driver")


def test_addons_are_ordered_around_the_node_groups(stack_plan):
    """vpc-cni/kube-proxy before nodes (nodes stay NotReady without a CNI), CoreDNS/EBS CSI after them
    (Deployments would wait for a node forever). Pulumi expands a component dependency to its children."""
    plan = stack_plan("dev")
    addons = {a.inputs["addonName"]: a for a in plan.of_type("aws:eks/addon:Addon")}
    node_groups = plan.of_type("aws:eks/nodeGroup:NodeGroup")
    after = plan.named("mlops-dev-addons")
    for ng in node_groups:
        assert ng.urn in after.depends_on
        component = next(r for r in plan.resources if r.urn == ng.parent)
        assert addons["vpc-cni"].urn in component.depends_on
        assert addons["kube-proxy"].urn in component.depends_on
        assert addons["coredns"].urn not in component.depends_on


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_every_kubernetes_resource_uses_the_cluster_provider(stack_plan, stack):
    plan = stack_plan(stack)
    (provider,) = [r for r in plan.resources if r.type == "pulumi:providers:kubernetes"]
    assert provider.inputs["kubeconfig"] == "[secret]"
    k8s_resources = [r for r in plan.resources if r.type.startswith("kubernetes:")]
    assert k8s_resources, "the stack declares in-cluster resources"
    for r in k8s_resources:
        assert r.provider == provider.urn, r.name


def test_kubeconfig_output_is_secret_and_cluster_outputs_exist(stack_plan):
    outputs = stack_plan("prod").outputs
    assert outputs["kubeconfig"] == "[secret]"
    assert outputs["clusterName"] == "mlops-prod"
    assert outputs["clusterEndpoint"].startswith("https://")
    assert outputs["oidcProviderArn"].startswith("arn:aws:iam::")
    assert outputs["vpcId"].startswith("vpc-")


def test_default_storage_class_is_encrypted_gp3(stack_plan):
    for stack, reclaim in (("dev", "Delete"), ("prod", "Retain")):
        (sc,) = stack_plan(stack).of_type("kubernetes:storage.k8s.io/v1:StorageClass")
        assert sc.inputs["metadata"]["annotations"] == {"storageclass.kubernetes.io/is-default-class": "true"}
        assert sc.inputs["provisioner"] == "ebs.csi.aws.com"
        assert sc.inputs["parameters"]["type"] == "gp3" and sc.inputs["parameters"]["encrypted"] == "true"
        assert sc.inputs["parameters"]["kmsKeyId"].startswith("arn:aws:kms:")
        assert sc.inputs["volumeBindingMode"] == "WaitForFirstConsumer"
        assert sc.inputs["reclaimPolicy"] == reclaim


def _parse(doc_config):
    raw, problems = raw_from_pulumi_config(doc_config, "Pulumi.x.yaml")
    assert not problems
    return parse_stack_config(raw, "Pulumi.x.yaml")


def _problems(doc_config):
    with pytest.raises(ConfigError) as exc:
        _parse(doc_config)
    return {p.path: p.message for p in exc.value.problems}


@pytest.fixture
def prod_config():
    from plan_support import load_stack_doc

    return copy.deepcopy(load_stack_doc("prod")["config"])


def test_config_rejects_public_cidrs_on_a_private_cluster(prod_config):
    prod_config["mlops-platform:cluster"]["endpoint"]["publicCidrs"] = ["203.0.113.0/24"]
    assert "public access stays off" in _problems(prod_config)["mlops-platform:cluster.endpoint.publicCidrs"]


def test_config_rejects_a_version_without_pins(prod_config):
    prod_config["mlops-platform:cluster"]["version"] = "1.29"
    message = _problems(prod_config)["mlops-platform:cluster.version"]
    assert "1.33" in message and "allowed" in message


def test_config_rejects_mixed_gpu_models_in_one_group(prod_config):
    prod_config["mlops-platform:nodeGroups"][2]["instanceTypes"] = ["g5.2xlarge", "g6.2xlarge"]
    message = _problems(prod_config)["mlops-platform:nodeGroups[2].instanceTypes"]
    assert "nvidia-a10g" in message and "nvidia-l4" in message


def test_config_requires_an_admin_role(prod_config):
    prod_config["mlops-platform:cluster"]["adminRoleArns"] = []
    assert "pulumi up" in _problems(prod_config)["mlops-platform:cluster.adminRoleArns"]
