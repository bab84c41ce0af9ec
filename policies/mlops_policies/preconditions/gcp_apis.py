"""Every Google Cloud API a resource calls is enabled by the plan, before the resource.

A new project has only a default set of APIs on (Cloud Storage, Logging, Monitoring, BigQuery, Service Usage,
...; Service Usage docs, "Enabled services"); Compute Engine, GKE, Cloud KMS, IAM, Artifact Registry are off
until enabled, and a resource whose API is off fails with `SERVICE_DISABLED` (403). The plan must hold a
`gcp:projects/service:Service` for each API and every resource must depend on the ones it needs.

Two APIs cannot be enabled by the plan itself: the provider's `google_project_service` reads the project
through Cloud Resource Manager and enables through Service Usage (terraform-provider-google
`resource_google_project_service.go`), so those two are enabled once by hand (docs/gcp.md).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from mlops_policies.model import Resource, Rule, as_list, dig, display, truthy
from mlops_policies.preconditions.graph import DependencyGraph

NAME = "gcp-apis-enabled"
SERVICE = "gcp:projects/service:Service"
# Enabled by hand before the first run (see the module docstring); never expected in the plan.
BOOTSTRAP_APIS = frozenset({"serviceusage.googleapis.com", "cloudresourcemanager.googleapis.com"})

# Type-token prefix -> the APIs its resources call: the host each resource's client uses
# (terraform-provider-google google/transport/config.go, DefaultBasePaths; pulumi-gcp bridges that provider).
# Longest prefix wins. A GCP type with no entry is reported, so a new resource kind cannot slip through.
TYPE_APIS: dict[str, tuple[str, ...]] = {
    "gcp:compute/": ("compute.googleapis.com",),
    "gcp:container/": ("container.googleapis.com",),
    "gcp:kms/": ("cloudkms.googleapis.com",),
    "gcp:serviceaccount/": ("iam.googleapis.com",),
    "gcp:storage/": ("storage.googleapis.com",),
    "gcp:artifactregistry/": ("artifactregistry.googleapis.com",),
    # The project's IAM policy (get/setIamPolicy on the project); custom roles live in the IAM API.
    "gcp:projects/iAMMember:": ("cloudresourcemanager.googleapis.com",),
    "gcp:projects/iAMBinding:": ("cloudresourcemanager.googleapis.com",),
    "gcp:projects/iAMPolicy:": ("cloudresourcemanager.googleapis.com",),
    "gcp:projects/iAMCustomRole:": ("iam.googleapis.com",),
    "gcp:projects/service:": ("serviceusage.googleapis.com", "cloudresourcemanager.googleapis.com"),
    "gcp:projects/apiKey:": ("apikeys.googleapis.com",),  # the provider's API Keys client
    # Cloud SQL instances, databases and users: SQLBasePath sqladmin.googleapis.com.
    "gcp:sql/": ("sqladmin.googleapis.com",),
    # The peering connection calls Service Networking and first looks the project number up in Cloud Resource
    # Manager (resource_service_networking_connection.go, RetrieveServiceNetworkingNetworkName).
    "gcp:servicenetworking/": ("servicenetworking.googleapis.com", "cloudresourcemanager.googleapis.com"),
}
IMAGE_STREAMING_API = "containerfilesystem.googleapis.com"
CLOUD_SQL_INSTANCE = "gcp:sql/databaseInstance:DatabaseInstance"


def feature_apis(r: Resource) -> set[str]:
    """APIs a feature of the resource needs beyond its own client's (GKE and Cloud SQL documentation):
    image streaming (`gcfsConfig.enabled`) needs the Container File System API ("Use Image streaming":
    Requirements); a cluster's system logs and metrics go to Cloud Logging and Cloud Monitoring; a Cloud SQL
    instance with a private IP (`ipConfiguration.privateNetwork`) needs Service Networking ("Configure
    private IP": Private Service Access)."""
    needed: set[str] = set()
    if r.type == CLOUD_SQL_INSTANCE and dig(r.props, "settings", "ipConfiguration", "privateNetwork"):
        needed.add("servicenetworking.googleapis.com")
    if truthy(dig(r.props, "nodeConfig", "gcfsConfig", "enabled", default=False)):
        needed.add(IMAGE_STREAMING_API)
    if r.type == "gcp:container/cluster:Cluster":
        if as_list(dig(r.props, "loggingConfig", "enableComponents")):
            needed.add("logging.googleapis.com")
        if as_list(dig(r.props, "monitoringConfig", "enableComponents")):
            needed.add("monitoring.googleapis.com")
    return needed


def needed_apis(r: Resource) -> set[str] | None:
    """The APIs a GCP resource needs; None for a GCP type the table does not know."""
    matches = [prefix for prefix in TYPE_APIS if r.type.startswith(prefix)]
    if not matches:
        return None
    return set(TYPE_APIS[max(matches, key=len)]) | feature_apis(r)


def project_of(r: Resource) -> str | None:
    """The resource's project: its `project` input, or the `projects/<id>/` of a parent path it names
    (a CryptoKey's `keyRing`, a key binding's `cryptoKeyId`)."""
    project = r.props.get("project")
    if isinstance(project, str) and project:
        return project
    for value in r.props.values():
        if isinstance(value, str) and value.startswith("projects/"):
            return value.split("/")[1]
    return None


def gcp_apis_enabled(
    resources: Sequence[Resource], config: Mapping[str, Any]
) -> Iterator[tuple[str | None, str]]:
    graph = DependencyGraph(resources)
    services: dict[str, list[Resource]] = {}
    for r in resources:
        if r.type == SERVICE and isinstance(r.props.get("service"), str):
            services.setdefault(r.props["service"], []).append(r)
    for r in resources:
        if not r.type.startswith("gcp:") or r.type.startswith("pulumi:providers:"):
            continue
        needed = needed_apis(r)
        if needed is None:
            yield (
                r.urn,
                f"{display(r)}: no API is known for type {r.type}; add its API to TYPE_APIS in "
                "mlops_policies/preconditions/gcp_apis.py (the host its client calls)",
            )
            continue
        project = project_of(r)
        for api in sorted(needed - BOOTSTRAP_APIS):
            enabling = [
                s
                for s in services.get(api, [])
                if project is None or s.props.get("project") in (None, project)
            ]
            if not enabling:
                yield (
                    r.urn,
                    f"{display(r)} needs {api}, which nothing in this plan enables: a new project has it off "
                    f'and the call fails with SERVICE_DISABLED; declare gcp.projects.Service(service="{api}", '
                    "disable_on_destroy=False) and depend on it",
                )
            elif not any(graph.waits_for(r.urn, s.urn) for s in enabling):
                yield (
                    r.urn,
                    f"{display(r)} needs {api} but does not depend on the Service that enables it "
                    f"({display(enabling[0])}); the engine may create it first: add dependsOn",
                )


RULE = Rule(
    name=NAME,
    category="reliability",
    description="Every Google Cloud API a resource needs is enabled in the plan, before the resource.",
    stack_check=gcp_apis_enabled,
)
