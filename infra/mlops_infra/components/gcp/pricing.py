"""The API key OpenCost needs on GKE: its GCP pricing reads the Cloud Billing Catalog API, which takes an API
key (OpenCost does not start its GCP provider without one). The key is restricted to that one API, lives in
Pulumi state as a secret and reaches the cluster only as a Kubernetes Secret."""

from __future__ import annotations

import pulumi
import pulumi_gcp as gcp

CLOUD_BILLING_API = "cloudbilling.googleapis.com"
API_KEYS_API = "apikeys.googleapis.com"  # gcp.projects.ApiKey calls it (the provider's apikeys client)


def billing_catalog_api_key(name: str, project: str, parent: pulumi.Resource) -> pulumi.Output[str]:
    """Enable the Cloud Billing API (what the key calls) and the API Keys API (what creates the key) on the
    project, then create a key that can call only the Cloud Billing API."""
    services = [
        gcp.projects.Service(
            f"{name}-{api.split('.')[0]}-api",
            project=project,
            service=api,
            disable_on_destroy=False,  # other tools of the project may use it too
            opts=pulumi.ResourceOptions(parent=parent),
        )
        for api in (CLOUD_BILLING_API, API_KEYS_API)
    ]
    key = gcp.projects.ApiKey(
        f"{name}-pricing-key",
        name=f"{name}-pricing"[:63].rstrip("-"),
        project=project,
        display_name="OpenCost price look-ups (Cloud Billing Catalog API only)",
        restrictions=gcp.projects.ApiKeyRestrictionsArgs(
            api_targets=[gcp.projects.ApiKeyRestrictionsApiTargetArgs(service=CLOUD_BILLING_API)]
        ),
        opts=pulumi.ResourceOptions(parent=parent, depends_on=services),
    )
    return pulumi.Output.secret(key.key_string)
