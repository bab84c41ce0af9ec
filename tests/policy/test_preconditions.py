"""The cloud-precondition rules pass on every reference stack and catch each planted defect of their class:
a policy naming a principal nothing creates (or created later), a GCP resource whose API nothing enables (or
enables later), an image pushed to a repository nothing declares (or without credentials)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

import pytest
from policy.plan_edits import edit_plan, findings

from mlops_infra.tooling.offline import ACCOUNT_ID
from mlops_infra.tooling.plan import Plan, RecordedResource
from mlops_policies.model import Resource
from mlops_policies.preconditions.gcp_apis import needed_apis
from mlops_policies.preconditions.image_pushes import is_loopback, parse_image
from mlops_policies.preconditions.principals import always_exists

from plan_support import REFERENCE_STACKS

PRINCIPALS, APIS, IMAGES = "policy-principals-exist", "gcp-apis-enabled", "image-push-targets-declared"
SLR = "aws:iam/serviceLinkedRole:ServiceLinkedRole"
SERVICE = "gcp:projects/service:Service"
IMAGE = "docker:index/image:Image"


def named(name: str, type_token: str | None = None) -> Callable[[RecordedResource], bool]:
    return lambda r: r.name == name and (type_token is None or r.type == type_token)


def without_dependency(plan: Plan, dependent: str, dependency_urn: str) -> Plan:
    """The plan with one dependency edge removed: the engine would be free to create `dependent` first."""
    resources = [
        dataclasses.replace(r, depends_on=tuple(d for d in r.depends_on if d != dependency_urn))
        if r.name == dependent
        else r
        for r in plan.resources
    ]
    return dataclasses.replace(plan, resources=resources)


@pytest.mark.parametrize("rule", [PRINCIPALS, APIS, IMAGES])
@pytest.mark.parametrize("stack", REFERENCE_STACKS)
def test_reference_stacks_meet_every_precondition(
    stack_plan: Callable[[str], Plan], stack: str, rule: str
) -> None:
    assert findings(stack_plan(stack), rule) == []


# ------------------------------------------------------------------------------------------- principals


def add_statement(principal: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    def change(inputs: dict[str, Any]) -> None:
        doc = json.loads(inputs["policy"])
        doc["Statement"].append(
            {"Sid": "Planted", "Effect": "Allow", "Principal": principal, "Action": "kms:*"}
        )
        inputs["policy"] = json.dumps(doc)

    return change


def test_key_policy_naming_an_undeclared_role_is_caught(stack_plan: Callable[[str], Plan]) -> None:
    ci_role = f"arn:aws:iam::{ACCOUNT_ID}:role/ci-deployer"
    plan = edit_plan(stack_plan("prod"), named("mlops-prod-secrets"), add_statement({"AWS": [ci_role]}))
    (found,) = findings(plan, PRINCIPALS)
    assert found.enforcement == "mandatory" and ci_role in found.message
    assert "MalformedPolicyDocumentException" in found.message
    # a principal that exists outside the stack is declared as such in the rule's config
    assert (
        findings(plan, PRINCIPALS, {PRINCIPALS: {"externalPrincipals": ["arn:aws:iam::*:role/ci-*"]}}) == []
    )


def test_the_old_ebs_key_without_its_service_linked_role_is_caught(stack_plan: Callable[[str], Plan]) -> None:
    """Today's plan minus the role: the EBS key names AWSServiceRoleForAutoScaling and nothing creates it."""
    plan = edit_plan(stack_plan("dev"), lambda r: r.type == SLR, drop=True)
    (found,) = findings(plan, PRINCIPALS)
    assert (
        "AWSServiceRoleForAutoScaling" in found.message and found.urn and found.urn.endswith("mlops-dev-ebs")
    )


def test_key_created_before_the_role_it_names_is_caught(stack_plan: Callable[[str], Plan]) -> None:
    plan = stack_plan("prod")
    (role,) = plan.of_type(SLR)
    (found,) = findings(without_dependency(plan, "mlops-prod-ebs", role.urn), PRINCIPALS)
    assert "does not depend on it" in found.message


def test_trust_policy_naming_an_undeclared_identity_provider_is_caught(
    stack_plan: Callable[[str], Plan],
) -> None:
    other = f"arn:aws:iam::{ACCOUNT_ID}:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/OTHER"

    def retarget(inputs: dict[str, Any]) -> None:
        doc = json.loads(inputs["assumeRolePolicy"])
        doc["Statement"][0]["Principal"]["Federated"] = other
        inputs["assumeRolePolicy"] = json.dumps(doc)

    plan = edit_plan(
        stack_plan("prod"), named("mlops-prod-cluster-autoscaler", "aws:iam/role:Role"), retarget
    )
    (found,) = findings(plan, PRINCIPALS)
    assert other in found.message


def test_principals_aws_always_has() -> None:
    assert always_exists("*") and always_exists(ACCOUNT_ID)
    assert always_exists(f"arn:aws:iam::{ACCOUNT_ID}:root") and always_exists("accounts.google.com")
    assert not always_exists(f"arn:aws:iam::{ACCOUNT_ID}:role/aws-service-role/x.amazonaws.com/Y")
    assert not always_exists(f"arn:aws:iam::{ACCOUNT_ID}:oidc-provider/example.com")


# --------------------------------------------------------------------------------------------- GCP APIs


def test_a_removed_api_service_is_caught(stack_plan: Callable[[str], Plan]) -> None:
    plan = edit_plan(
        stack_plan("prod-gcp"), lambda r: r.type == SERVICE and r.inputs["service"] == "compute.googleapis.com",
        drop=True,
    )  # fmt: skip
    found = findings(plan, APIS)
    assert {v.urn.rsplit("$", 1)[-1].split("::")[0] for v in found if v.urn} == {
        "gcp:compute/network:Network",
        "gcp:compute/subnetwork:Subnetwork",
        "gcp:compute/router:Router",
        "gcp:compute/routerNat:RouterNat",
        "gcp:compute/globalAddress:GlobalAddress",  # the Private Service Access range of Cloud SQL
    }
    assert all("compute.googleapis.com" in v.message and "SERVICE_DISABLED" in v.message for v in found)


def test_a_resource_created_before_its_api_is_caught(stack_plan: Callable[[str], Plan]) -> None:
    plan = stack_plan("prod-gcp")
    (streaming,) = [
        s for s in plan.of_type(SERVICE) if s.inputs["service"] == "containerfilesystem.googleapis.com"
    ]
    (found,) = findings(without_dependency(plan, "system", streaming.urn), APIS)
    assert "containerfilesystem.googleapis.com" in found.message and "does not depend" in found.message


def test_an_api_enabled_in_another_project_does_not_count(stack_plan: Callable[[str], Plan]) -> None:
    plan = edit_plan(
        stack_plan("prod-gcp"),
        lambda r: r.type == SERVICE and r.inputs["service"] == "cloudkms.googleapis.com",
        lambda i: i.update(project="some-other-project"),
    )
    found = findings(plan, APIS)
    assert {v.urn.rsplit("::", 1)[-1] for v in found if v.urn} == {
        "mlops-prod-keyring",
        "mlops-prod-secrets",
        "mlops-prod-gke-agent-secrets-key",
    }


def test_a_gcp_type_without_a_known_api_is_reported(stack_plan: Callable[[str], Plan]) -> None:
    plan = stack_plan("prod-gcp")
    (network,) = plan.of_type("gcp:compute/network:Network")
    topic = dataclasses.replace(network, urn=network.urn + "-topic", type="gcp:pubsub/topic:Topic", name="t")
    (found,) = findings(dataclasses.replace(plan, resources=[*plan.resources, topic]), APIS)
    assert "no API is known for type gcp:pubsub/topic:Topic" in found.message


def test_api_table_by_type_and_feature() -> None:
    def needs(type_token: str, **props: Any) -> set[str] | None:
        return needed_apis(Resource(urn="u", type=type_token, name="n", props=props))

    assert needs("gcp:compute/network:Network") == {"compute.googleapis.com"}
    assert needs("gcp:projects/iAMMember:IAMMember") == {"cloudresourcemanager.googleapis.com"}
    assert needs("gcp:projects/iAMCustomRole:IAMCustomRole") == {"iam.googleapis.com"}
    assert needs("gcp:container/nodePool:NodePool") == {"container.googleapis.com"}
    assert needs("gcp:container/nodePool:NodePool", nodeConfig={"gcfsConfig": {"enabled": True}}) == {
        "container.googleapis.com",
        "containerfilesystem.googleapis.com",
    }
    assert needs(
        "gcp:container/cluster:Cluster", loggingConfig={"enableComponents": ["SYSTEM_COMPONENTS"]}
    ) == {
        "container.googleapis.com",
        "logging.googleapis.com",
    }
    assert needs("gcp:pubsub/topic:Topic") is None


# --------------------------------------------------------------------------------------------- images


def retag(image: str) -> Callable[[dict[str, Any]], None]:
    return lambda inputs: inputs.update(imageName=image)


@pytest.mark.parametrize(
    ("stack", "target"),
    [
        ("prod-gcp", "us-central1-docker.pkg.dev/acme-mlops-prod/elsewhere/serving"),
        ("prod", f"{ACCOUNT_ID}.dkr.ecr.us-east-1.amazonaws.com/mlops-prod/undeclared"),
    ],
)
def test_an_image_pushed_to_an_undeclared_repository_is_caught(
    stack_plan: Callable[[str], Plan], stack: str, target: str
) -> None:
    plan = edit_plan(stack_plan(stack), named("serving-image", IMAGE), retag(f"{target}:0123abcd"))
    (found,) = findings(plan, IMAGES)
    assert target in found.message and "nothing in this plan declares" in found.message
    registry = target.split("/", 1)[0]
    assert findings(plan, IMAGES, {IMAGES: {"externalRegistries": [f"{registry}/"]}}) == []


def test_an_image_pushed_without_credentials_is_caught(stack_plan: Callable[[str], Plan]) -> None:
    plan = edit_plan(stack_plan("prod-gcp"), named("retraining-image", IMAGE), lambda i: i.pop("registry"))
    (found,) = findings(plan, IMAGES)
    assert "without credentials" in found.message and "oauth2accesstoken" in found.message
    wrong_host = {"server": "europe-docker.pkg.dev", "username": "oauth2accesstoken", "password": "[secret]"}
    plan = edit_plan(
        stack_plan("prod-gcp"), named("retraining-image", IMAGE), lambda i: i.update(registry=wrong_host)
    )
    (found,) = findings(plan, IMAGES)
    assert "without credentials for it" in found.message


def test_an_image_pushed_before_its_repository_exists_is_caught(stack_plan: Callable[[str], Plan]) -> None:
    plan = stack_plan("prod")
    repo = next(r for r in plan.of_type("aws:ecr/repository:Repository") if r.name == "serving-images")
    (found,) = findings(without_dependency(plan, "serving-image", repo.urn), IMAGES)
    assert "does not depend on it" in found.message


def test_image_names_and_loopback_registries() -> None:
    ref = parse_image("us-central1-docker.pkg.dev/p/mlops/serving:abc@sha256:00")
    assert (ref.host, ref.path) == ("us-central1-docker.pkg.dev", "p/mlops/serving")
    assert parse_image("localhost:5001/mlops/serving:1").repository == "localhost:5001/mlops/serving"
    assert parse_image("python:3.11").repository == "docker.io/python"
    assert is_loopback("localhost:5001") and is_loopback("127.0.0.1:5000") and is_loopback("[::1]:5000")
    assert not is_loopback("registry.example.com:5000")


# --------------------------------------------------------------------------- under the policy engine


def _engine_view(plan: Plan) -> list[Any]:
    """The plan as CrossGuard hands it to a stack policy: outputs as props, dependencies as resources."""
    from pulumi_policy import PolicyResource, PolicyResourceOptions

    from mlops_policies.runner import resources_from_plan

    opts = PolicyResourceOptions(False, [], False, [], None, [], None)  # type: ignore[arg-type]
    views = {
        r.urn: PolicyResource(r.type, r.outputs, r.urn, r.name, opts, None, None, [], {})
        for r in resources_from_plan(plan)
    }
    for r in resources_from_plan(plan):
        views[r.urn].dependencies.extend(views[d] for d in r.dependencies if d in views)
    return list(views.values())


def test_the_pack_checks_principals_against_engine_outputs(stack_plan: Callable[[str], Plan]) -> None:
    from pulumi_policy import StackValidationArgs

    from mlops_policies.pack import policies

    (policy,) = [p for p in policies() if p.name == PRINCIPALS]
    reports: list[str] = []
    policy.validate(
        StackValidationArgs(_engine_view(stack_plan("prod"))), lambda m, u=None: reports.append(m)
    )
    assert reports == []
    broken = edit_plan(stack_plan("prod"), lambda r: r.type == SLR, drop=True)
    policy.validate(StackValidationArgs(_engine_view(broken)), lambda m, u=None: reports.append(m))
    assert len(reports) == 1 and "AWSServiceRoleForAutoScaling" in reports[0]


def test_a_registry_the_stack_names_is_taken_as_existing_elsewhere(mutated_plan: Callable[..., Plan]) -> None:
    """`workloads.registry` names a registry outside the plan: pushes to it are the operator's (their login)."""
    plan = mutated_plan(
        "prod-gcp", lambda cfg: cfg["mlops-platform:workloads"].update(registry="ghcr.io/acme/ml")
    )
    assert not plan.of_type("gcp:artifactregistry/repository:Repository")
    images = plan.of_type(IMAGE)
    assert images and all(i.inputs["imageName"].startswith("ghcr.io/acme/ml/") for i in images)
    assert findings(plan, IMAGES) == []
    assert len(findings(plan, IMAGES, {IMAGES: {"externalRegistries": []}})) == 2 * len(images)
