"""The stack's Artifact Registry repository for workload images, who may pull and push, and push credentials.

Images pushed by `pulumi up` need a repository that exists (Artifact Registry refuses a push to an unknown
one) and credentials for its host. The repository is one per stack (`<location>-docker.pkg.dev/<project>/
mlops`), each workload an image below it. Tags are immutable (tags are content hashes, like ECR's IMMUTABLE);
cleanup keeps the newest versions of each image, as the ECR lifecycle policy does. The node service account
reads this repository only (nodes pull, image streaming needs Artifact Registry); the identity running
`pulumi up` writes to it and pushes with its own short-lived OAuth access token (user `oauth2accesstoken`,
Artifact Registry docs, "Configure authentication to Artifact Registry for Docker": access token).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_gcp as gcp

from mlops_infra.components.gcp.apis import ARTIFACT_REGISTRY, ProjectApis, after
from mlops_infra.components.images import Registry

REPOSITORY_ID = "mlops"
KEEP_VERSIONS = 30  # newest versions kept per image, as ECR's lifecycle policy (aws/ecr.py)
DELETE_OLDER_THAN = "2592000s"  # 30 days: versions beyond the newest ones are deleted only once this old
TOKEN_USERNAME = "oauth2accesstoken"
READER = "roles/artifactregistry.reader"
WRITER = "roles/artifactregistry.writer"


def docker_host(location: str) -> str:
    return f"{location}-docker.pkg.dev"


def principal(email: str) -> str:
    """IAM member for the identity behind a credential: a service account, or a person."""
    kind = "serviceAccount" if email.endswith(".gserviceaccount.com") else "user"
    return f"{kind}:{email}"


@dataclass(frozen=True)
class ArtifactRegistryArgs:
    project: str
    location: str  # a region: images sit next to the cluster's nodes
    readers: list[pulumi.Input[str]] = field(default_factory=list)  # IAM members that pull (the nodes)
    repository_id: str = REPOSITORY_ID
    labels: dict[str, str] = field(default_factory=dict)
    protect: bool = False
    apis: ProjectApis | None = None


class ArtifactRegistry(pulumi.ComponentResource):
    """A Docker repository; `self.registry` is where and how the workloads' images are pushed."""

    def __init__(self, name: str, args: ArtifactRegistryArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlops:gcp:ArtifactRegistry", name, None, opts)
        after_api = after(args.apis, ARTIFACT_REGISTRY)
        self.repository = gcp.artifactregistry.Repository(
            name,
            project=args.project,
            location=args.location,
            repository_id=args.repository_id,
            format="DOCKER",
            description="mlops platform workload images (pushed by pulumi up)",
            docker_config=gcp.artifactregistry.RepositoryDockerConfigArgs(immutable_tags=True),
            cleanup_policies=[
                gcp.artifactregistry.RepositoryCleanupPolicyArgs(
                    id="keep-newest",
                    action="KEEP",
                    most_recent_versions=gcp.artifactregistry.RepositoryCleanupPolicyMostRecentVersionsArgs(
                        keep_count=KEEP_VERSIONS
                    ),
                ),
                gcp.artifactregistry.RepositoryCleanupPolicyArgs(
                    id="delete-old",
                    action="DELETE",
                    condition=gcp.artifactregistry.RepositoryCleanupPolicyConditionArgs(
                        tag_state="ANY", older_than=DELETE_OLDER_THAN
                    ),
                ),
            ],
            cleanup_policy_dry_run=False,
            labels=args.labels,
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect, depends_on=after_api),
        )
        grant = pulumi.ResourceOptions(parent=self, depends_on=after_api)
        for i, member in enumerate(args.readers):
            gcp.artifactregistry.RepositoryIamMember(
                f"{name}-reader-{i}",
                project=args.project,
                location=args.location,
                repository=self.repository.name,
                role=READER,
                member=member,
                opts=grant,
            )
        invoke = pulumi.InvokeOutputOptions(parent=self)
        deployer = gcp.organizations.get_client_open_id_user_info_output(opts=invoke)
        self.writer = gcp.artifactregistry.RepositoryIamMember(
            f"{name}-writer",
            project=args.project,
            location=args.location,
            repository=self.repository.name,
            role=WRITER,
            member=deployer.email.apply(principal),
            opts=grant,
        )
        token = gcp.organizations.get_client_config_output(opts=invoke)
        self.registry = Registry(
            server=docker_host(args.location),
            repository=self.repository.registry_uri,
            username=TOKEN_USERNAME,
            password=pulumi.Output.secret(token.access_token),
            ready=(self.writer,),
        )
        self.register_outputs({"repositoryUrl": self.repository.registry_uri})
