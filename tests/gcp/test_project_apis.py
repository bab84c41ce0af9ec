"""Finding 2: prod-gcp must work in a new project: it enables the APIs it calls (before the resources that call
them), creates the Artifact Registry repository it pushes to, and pushes with credentials for it."""

from __future__ import annotations

import pytest
from policy.plan_edits import findings

from mlops_infra.components.gcp.apis import MANAGED_DATABASE_APIS, REQUIRED_APIS
from mlops_infra.components.gcp.artifact_registry import ArtifactRegistry, ArtifactRegistryArgs
from mlops_infra.components.gcp.cluster import NODE_SA_ROLES
from mlops_infra.tooling.offline import evaluate
from mlops_infra.tooling.plan import SECRET, Plan

from plan_support import STACKS

STACK = "prod-gcp"
PROJECT = "acme-mlops-prod"
REGION = "us-central1"
SERVICE = "gcp:projects/service:Service"
REPOSITORY = "gcp:artifactregistry/repository:Repository"
REPOSITORY_MEMBER = "gcp:artifactregistry/repositoryIamMember:RepositoryIamMember"
IMAGE = "docker:index/image:Image"


@pytest.fixture(scope="module")
def plan() -> Plan:
    from plan_support import reference_plan

    return reference_plan(STACK)


def test_every_api_a_resource_calls_is_enabled_first(plan: Plan) -> None:
    """Fails on the code that enabled no API: a new project refused the network, the cluster, the keys..."""
    assert findings(plan, "gcp-apis-enabled") == []
    services = {s.inputs["service"]: s for s in plan.of_type(SERVICE)}
    # The project's APIs, plus the two OpenCost's pricing key needs (gcp/pricing.py), plus Cloud SQL Admin and
    # Service Networking: prod-gcp's MLflow database is Cloud SQL.
    assert set(services) == {
        *REQUIRED_APIS,
        *MANAGED_DATABASE_APIS,
        "cloudbilling.googleapis.com",
        "apikeys.googleapis.com",
    }
    assert {
        "compute.googleapis.com",
        "container.googleapis.com",
        "containerfilesystem.googleapis.com",
        "cloudkms.googleapis.com",
        "iam.googleapis.com",
        "artifactregistry.googleapis.com",
        "storage.googleapis.com",
    } <= set(services)
    for service in services.values():
        assert service.inputs["project"] == PROJECT
        assert service.inputs["disableOnDestroy"] is False, "a destroy must not switch APIs off for others"


def test_gke_service_agent_binding_waits_for_the_container_api(plan: Plan) -> None:
    """The GKE service agent exists only once the Kubernetes Engine API is on; binding it earlier fails."""
    (binding,) = plan.of_type("gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember")
    (container,) = [s for s in plan.of_type(SERVICE) if s.inputs["service"] == "container.googleapis.com"]
    assert container.urn in binding.depends_on


def test_images_go_to_a_declared_artifact_registry_repository_with_credentials(plan: Plan) -> None:
    """Fails on the code that pushed to <region>-docker.pkg.dev/<project>/mlops without creating it or logging in."""
    assert findings(plan, "image-push-targets-declared") == []
    (repo,) = plan.of_type(REPOSITORY)
    assert repo.inputs["format"] == "DOCKER"
    assert repo.inputs["location"] == REGION and repo.inputs["project"] == PROJECT
    assert repo.inputs["labels"]["environment"] == "prod"
    assert repo.inputs["dockerConfig"] == {"immutableTags": True}
    assert repo.protect, "prod keeps the images its pods run on through a mistaken destroy"
    url = repo.outputs["registryUri"]
    assert url == f"{REGION}-docker.pkg.dev/{PROJECT}/mlops"
    images = {i.name: i for i in plan.of_type(IMAGE)}
    assert set(images) == {"serving-image", "retraining-image"}
    writer = next(m for m in plan.of_type(REPOSITORY_MEMBER) if m.inputs["role"].endswith(".writer"))
    for name, image in images.items():
        assert image.inputs["imageName"].startswith(f"{url}/{name.removesuffix('-image')}:")
        # The password makes the whole block secret in the plan; the component's Registry shows the values.
        assert image.inputs["registry"] == {"server": SECRET, "username": SECRET, "password": SECRET}
        assert {repo.urn, writer.urn} <= set(image.depends_on), "push only once the repo and the grant exist"


def test_push_credentials_are_a_secret_access_token_for_the_registry_host() -> None:
    """What sits behind the secret block: Artifact Registry's host, the token user, the caller's access token."""

    def program() -> dict[str, object]:
        registry = ArtifactRegistry("images", ArtifactRegistryArgs(project=PROJECT, location=REGION)).registry
        return {
            "server": registry.server,
            "repository": registry.for_workload("serving").repository,
            "username": registry.username,
            "password": registry.password,
        }

    outputs = evaluate(STACKS / f"Pulumi.{STACK}.yaml", program).outputs
    assert outputs == {
        "server": f"{REGION}-docker.pkg.dev",
        "repository": f"{REGION}-docker.pkg.dev/{PROJECT}/mlops/serving",
        "username": "oauth2accesstoken",
        "password": SECRET,
    }


def test_nodes_read_and_the_deployer_writes_only_this_repository(plan: Plan) -> None:
    (repo,) = plan.of_type(REPOSITORY)
    members = {m.inputs["role"]: m.inputs["member"] for m in plan.of_type(REPOSITORY_MEMBER)}
    (nodes,) = [a for a in plan.of_type("gcp:serviceaccount/account:Account") if a.name.endswith("-nodes")]
    assert members == {
        "roles/artifactregistry.reader": nodes.outputs["member"],
        "roles/artifactregistry.writer": f"serviceAccount:deployer@{PROJECT}.iam.gserviceaccount.com",
    }
    for m in plan.of_type(REPOSITORY_MEMBER):
        assert m.inputs["repository"] == repo.outputs["name"] and m.inputs["location"] == REGION
    assert "roles/artifactregistry.reader" not in NODE_SA_ROLES, "read access is per repository now"
