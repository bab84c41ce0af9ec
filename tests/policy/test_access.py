"""Plan-level tampering the stack config cannot express, each caught: host paths, admin ports open to the
world, IAM wildcards, cluster-admin for a service account."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from policy.plan_edits import edit_plan, findings

from mlops_infra.tooling.plan import Plan, RecordedResource

from plan_support import REFERENCE_STACKS

RULES = (
    "k8s-no-host-path",
    "no-world-open-admin-ports",
    "iam-no-admin-wildcard",
    "k8s-no-cluster-admin-binding",
)


def add(plan: Plan, type_token: str, name: str, inputs: dict[str, Any]) -> Plan:
    resource = RecordedResource(
        urn=f"urn:pulumi:{plan.stack}::mlops-platform::{type_token}::{name}",
        type=type_token,
        name=name,
        parent=None,
        custom=True,
        protect=False,
        provider=None,
        inputs=inputs,
    )
    return dataclasses.replace(plan, resources=[*plan.resources, resource])


def messages(plan: Plan, rule: str) -> list[str]:
    return [v.message for v in findings(plan, rule)]


@pytest.mark.parametrize("stack", REFERENCE_STACKS)
@pytest.mark.parametrize("rule", RULES)
def test_reference_stacks_pass(stack_plan, stack: str, rule: str) -> None:
    assert findings(stack_plan(stack), rule) == []


def test_docker_socket_mount_is_caught_outside_kube_system(stack_plan) -> None:
    def docker_sock(inputs: dict[str, Any]) -> None:
        inputs["spec"]["template"]["spec"]["volumes"].append(
            {"name": "docker", "hostPath": {"path": "/var/run/docker.sock"}}
        )

    plan = edit_plan(
        stack_plan("dev"),
        lambda r: r.inputs.get("kind") == "Deployment" and r.name == "mlflow-deployment",
        docker_sock,
    )
    (message,) = messages(plan, "k8s-no-host-path")
    assert message.startswith(
        "Deployment mlflow/mlflow: volume docker mounts the node path /var/run/docker.sock"
    )


@pytest.mark.parametrize(
    ("token", "inputs"),
    [
        (
            "aws:ec2/securityGroup:SecurityGroup",
            {"ingress": [{"fromPort": 5432, "toPort": 5432, "protocol": "tcp", "cidrBlocks": ["0.0.0.0/0"]}]},
        ),
        (
            "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
            {"fromPort": 22, "toPort": 22, "ipProtocol": "tcp", "cidrIpv6": "::/0"},
        ),
        (
            "aws:ec2/securityGroupRule:SecurityGroupRule",
            {"type": "ingress", "fromPort": 0, "toPort": 0, "protocol": "-1", "cidrBlocks": ["0.0.0.0/0"]},
        ),
        (
            "gcp:compute/firewall:Firewall",
            {"sourceRanges": ["0.0.0.0/0"], "allows": [{"protocol": "tcp", "ports": ["20-23"]}]},
        ),
    ],
)
def test_admin_ports_open_to_the_world_are_caught(stack_plan, token: str, inputs: dict[str, Any]) -> None:
    (message,) = messages(add(stack_plan("prod"), token, "open", inputs), "no-world-open-admin-ports")
    assert "to the whole internet" in message
    assert "22 (SSH)" in message or "5432 (PostgreSQL)" in message


def test_https_to_the_world_and_admin_ports_to_the_vpc_are_fine(stack_plan) -> None:
    plan = add(
        stack_plan("prod"),
        "aws:ec2/securityGroup:SecurityGroup",
        "web",
        {
            "ingress": [
                {"fromPort": 443, "toPort": 443, "protocol": "tcp", "cidrBlocks": ["0.0.0.0/0"]},
                {"fromPort": 5432, "toPort": 5432, "protocol": "tcp", "cidrBlocks": ["10.30.0.0/16"]},
            ]
        },
    )
    assert findings(plan, "no-world-open-admin-ports") == []


def test_iam_star_on_star_and_administrator_access_are_caught(stack_plan) -> None:
    star = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    plan = add(stack_plan("prod"), "aws:iam/policy:Policy", "god", {"policy": json.dumps(star)})
    plan = add(
        plan,
        "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
        "admin",
        {"role": "r", "policyArn": "arn:aws:iam::aws:policy/AdministratorAccess"},
    )
    assert sorted(messages(plan, "iam-no-admin-wildcard")) == [
        "Policy god: policy allows every action on every resource; grant the actions it needs",
        "RolePolicyAttachment admin: attaches AdministratorAccess; grant the actions it needs",
    ]


def test_scoped_wildcards_are_not_admin(stack_plan) -> None:
    scoped = {"Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::b/*"}]}
    plan = add(stack_plan("prod"), "aws:iam/policy:Policy", "s3", {"policy": json.dumps(scoped)})
    assert findings(plan, "iam-no-admin-wildcard") == []


def _binding(kind: str, role_kind: str, role: str) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": kind,
        "metadata": {"name": "escalate", **({"namespace": "serving"} if kind == "RoleBinding" else {})},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role},
        "subjects": [{"kind": "ServiceAccount", "name": "fraud-server", "namespace": "serving"}],
    }


def test_cluster_admin_for_a_workload_service_account_is_caught(stack_plan) -> None:
    token = "kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding"
    plan = add(
        stack_plan("dev"), token, "escalate", _binding("ClusterRoleBinding", "ClusterRole", "cluster-admin")
    )
    (message,) = messages(plan, "k8s-no-cluster-admin-binding")
    assert message.startswith(
        "ClusterRoleBinding escalate grants cluster-admin to service account serving/fraud-server"
    )


def test_a_role_with_every_verb_is_caught(stack_plan) -> None:
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "all", "namespace": "serving"},
        "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["*"]}],
    }
    plan = add(stack_plan("dev"), "kubernetes:rbac.authorization.k8s.io/v1:Role", "all", role)
    plan = add(
        plan,
        "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding",
        "escalate",
        _binding("RoleBinding", "Role", "all"),
    )
    (message,) = messages(plan, "k8s-no-cluster-admin-binding")
    assert "grants Role all (verbs: *) to service account serving/fraud-server" in message
