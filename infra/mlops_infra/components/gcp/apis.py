"""The Google Cloud APIs a GCP stack calls, enabled by the stack itself so that a new project works.

A new project has only a default set of APIs on (Service Usage docs, "Enabled services": Cloud Storage,
Logging, Monitoring, BigQuery, Service Usage, ...). Every GCP resource of this package depends on the
`gcp.projects.Service` of the APIs it calls; `mlops_policies.preconditions.gcp_apis` checks that on every plan.
APIs are never disabled on destroy: other stacks and tools of the project may use them.

Two APIs cannot be enabled this way: enabling goes through Service Usage and the provider reads the project
through Cloud Resource Manager first. Both are enabled once by hand (docs/gcp.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

COMPUTE = "compute.googleapis.com"  # VPC, subnet, router, NAT; GKE nodes are Compute Engine VMs
CONTAINER = "container.googleapis.com"  # GKE clusters and node pools
IMAGE_STREAMING = "containerfilesystem.googleapis.com"  # node pools with gcfs_config (image streaming)
KMS = "cloudkms.googleapis.com"  # the key ring and key for Secrets encryption
IAM = "iam.googleapis.com"  # service accounts and their IAM bindings (Workload Identity)
STORAGE = "storage.googleapis.com"  # the MLflow artifact bucket
ARTIFACT_REGISTRY = "artifactregistry.googleapis.com"  # the workload image repository
LOGGING = "logging.googleapis.com"  # GKE system and control-plane logs
MONITORING = "monitoring.googleapis.com"  # GKE system metrics
SQL_ADMIN = "sqladmin.googleapis.com"  # Cloud SQL instances, databases and users (MLflow's managed database)
SERVICE_NETWORKING = (
    "servicenetworking.googleapis.com"  # Private Service Access peering (Cloud SQL private IP)
)

REQUIRED_APIS: tuple[str, ...] = (
    COMPUTE,
    CONTAINER,
    IMAGE_STREAMING,
    KMS,
    IAM,
    STORAGE,
    ARTIFACT_REGISTRY,
    LOGGING,
    MONITORING,
)
# Only for a stack whose MLflow database is Cloud SQL: an unused API stays off.
MANAGED_DATABASE_APIS: tuple[str, ...] = (SQL_ADMIN, SERVICE_NETWORKING)
# Enabled by hand before the first `pulumi up`: the program cannot enable them itself.
BOOTSTRAP_APIS: tuple[str, ...] = ("serviceusage.googleapis.com", "cloudresourcemanager.googleapis.com")


@dataclass(frozen=True)
class ProjectApisArgs:
    project: str
    apis: tuple[str, ...] = REQUIRED_APIS


class ProjectApis(pulumi.ComponentResource):
    """One `gcp.projects.Service` per API; `after(...)` gives what a resource calling those APIs depends on."""

    def __init__(self, name: str, args: ProjectApisArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlops:gcp:ProjectApis", name, None, opts)
        self.services: dict[str, gcp.projects.Service] = {
            api: gcp.projects.Service(
                f"{name}-{api.split('.', 1)[0]}",
                project=args.project,
                service=api,
                disable_on_destroy=False,
                opts=pulumi.ResourceOptions(parent=self),
            )
            for api in args.apis
        }
        self.register_outputs({"services": sorted(self.services)})

    def after(self, *apis: str) -> list[pulumi.Resource]:
        missing = [api for api in apis if api not in self.services]
        if missing:
            raise ValueError(
                f"APIs {', '.join(missing)} are not enabled by this stack; add them to REQUIRED_APIS"
            )
        return [self.services[api] for api in apis]


def after(apis: ProjectApis | None, *names: str) -> list[pulumi.Resource]:
    """Dependencies of a resource calling `names`; none when a component is used without a ProjectApis
    (another repo enabling its APIs elsewhere)."""
    return apis.after(*names) if apis is not None else []
