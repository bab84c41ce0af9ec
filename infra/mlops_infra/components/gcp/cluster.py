"""A GKE Standard cluster with secure defaults, and the Kubernetes provider every in-cluster component uses.

Private nodes, Workload Identity, Shielded nodes, Dataplane V2 (network policy enforced by eBPF), secrets
encrypted at the application layer with a rotating Cloud KMS key, a least-privilege node service account,
and the default node pool removed so that every pool is declared (and autoscaled) on its own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Literal

import pulumi
import pulumi_gcp as gcp
import pulumi_kubernetes as k8s

from mlops_infra.components.gcp.apis import CONTAINER, IAM, KMS, LOGGING, MONITORING, ProjectApis, after
from mlops_infra.components.gcp.labels import account_id

# Project roles of the node service account: write logs and metrics, read monitoring metadata (GKE's hardening
# guide list). Nothing else: nodes read images only from the stack's own repository (a grant on that
# repository, artifact_registry.py), workloads get their own identities.
NODE_SA_ROLES: tuple[str, ...] = (
    "roles/logging.logWriter",
    "roles/monitoring.metricWriter",
    "roles/monitoring.viewer",
    "roles/stackdriver.resourceMetadata.writer",
)
CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
KMS_ROTATION_PERIOD = "7776000s"  # 90 days
DEFAULT_MAX_PODS_PER_NODE = 110  # => each node takes a /24 of the pods range

# config.cluster.logging (EKS names) -> GKE control-plane log components; audit logs are Cloud Audit Logs on GKE.
_LOG_COMPONENTS = {"api": "APISERVER", "controllerManager": "CONTROLLER_MANAGER", "scheduler": "SCHEDULER"}


def logging_components(logging: list[str]) -> list[str]:
    """GKE logging components for a stack's `cluster.logging` list (system and workload logs always on)."""
    extra = sorted({_LOG_COMPONENTS[item] for item in logging if item in _LOG_COMPONENTS})
    return ["SYSTEM_COMPONENTS", "WORKLOADS", *extra]


def gke_kubeconfig(name: str, endpoint: str, ca_certificate: str) -> str:
    """A kubeconfig that authenticates through gke-gcloud-auth-plugin (no static token lands in state)."""
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": name,
                    "cluster": {
                        "server": f"https://{endpoint}",
                        "certificate-authority-data": ca_certificate,
                    },
                }
            ],
            "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
            "current-context": name,
            "users": [
                {
                    "name": name,
                    "user": {
                        "exec": {
                            "apiVersion": "client.authentication.k8s.io/v1beta1",
                            "command": "gke-gcloud-auth-plugin",
                            "installHint": "Install gke-gcloud-auth-plugin: gcloud components install "
                            "gke-gcloud-auth-plugin (see cloud.google.com/kubernetes-engine/docs/how-to/cluster-access-for-kubectl)",
                            "provideClusterInfo": True,
                            "interactiveMode": "Never",
                        }
                    },
                }
            ],
        },
        sort_keys=True,
    )


@dataclass(frozen=True)
class GkeClusterArgs:
    project: str
    region: str
    # Region for a regional control plane (prod), a zone for a zonal one.
    location: str
    network_id: pulumi.Input[str]
    subnet_id: pulumi.Input[str]
    pods_range_name: str
    services_range_name: str
    node_cidr: str
    version: str = "1.33"
    release_channel: Literal["RAPID", "REGULAR", "STABLE"] = "REGULAR"
    node_locations: list[str] = field(default_factory=list)
    private_endpoint: bool = True
    authorized_cidrs: list[str] = field(default_factory=list)
    autoscaling_profile: Literal["BALANCED", "OPTIMIZE_UTILIZATION"] = "BALANCED"
    logging: list[str] = field(default_factory=lambda: ["api"])
    managed_prometheus: bool = (
        False  # the platform runs its own Prometheus; GMP would scrape everything twice
    )
    deletion_protection: bool = True
    labels: dict[str, str] = field(default_factory=dict)
    apis: ProjectApis | None = None  # the stack's enabled APIs, which every resource here waits for


class GkeCluster(pulumi.ComponentResource):
    """The control plane, its KMS key, the node service account, and a provider for in-cluster resources."""

    def __init__(self, name: str, args: GkeClusterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlops:gcp:GkeCluster", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        protect = args.deletion_protection
        self.workload_pool = f"{args.project}.svc.id.goog"

        # Node identity with only the roles nodes need (the default compute SA has Editor on the project).
        self.node_service_account = gcp.serviceaccount.Account(
            f"{name}-nodes",
            account_id=account_id(f"{name}-nodes"),
            display_name=f"GKE nodes of {name}",
            project=args.project,
            opts=pulumi.ResourceOptions(parent=self, depends_on=after(args.apis, IAM)),
        )
        self.node_sa_roles = [
            gcp.projects.IAMMember(
                f"{name}-nodes-{role.split('/')[-1].replace('.', '-').lower()}",
                project=args.project,
                role=role,
                member=self.node_service_account.member,
                opts=child,
            )
            for role in NODE_SA_ROLES
        ]

        # Application-layer secrets encryption: etcd Secrets are wrapped with this key, rotated every 90 days.
        # Key rings cannot be deleted in GCP; the key is protected in prod so a destroy cannot orphan secrets.
        self.key_ring = gcp.kms.KeyRing(
            f"{name}-keyring",
            name=f"{name}-gke",
            location=args.region,
            project=args.project,
            opts=pulumi.ResourceOptions(parent=self, protect=protect, depends_on=after(args.apis, KMS)),
        )
        self.secrets_key = gcp.kms.CryptoKey(
            f"{name}-secrets",
            name=f"{name}-secrets",
            key_ring=self.key_ring.id,
            purpose="ENCRYPT_DECRYPT",
            rotation_period=KMS_ROTATION_PERIOD,
            labels=args.labels,
            opts=pulumi.ResourceOptions(parent=self, protect=protect, depends_on=after(args.apis, KMS)),
        )
        project = gcp.organizations.get_project_output(
            project_id=args.project, opts=pulumi.InvokeOutputOptions(parent=self)
        )
        self.gke_agent_key_access = gcp.kms.CryptoKeyIAMMember(
            f"{name}-gke-agent-secrets-key",
            crypto_key_id=self.secrets_key.id,
            role="roles/cloudkms.cryptoKeyEncrypterDecrypter",
            member=project.number.apply(
                lambda number: (
                    f"serviceAccount:service-{number}@container-engine-robot.iam.gserviceaccount.com"
                )
            ),
            # The GKE service agent exists only once the Kubernetes Engine API is enabled.
            opts=pulumi.ResourceOptions(parent=self, depends_on=after(args.apis, KMS, CONTAINER)),
        )

        authorized = [
            gcp.container.ClusterMasterAuthorizedNetworksConfigCidrBlockArgs(
                cidr_block=cidr, display_name=f"allowed-{i}"
            )
            for i, cidr in enumerate(args.authorized_cidrs)
        ]
        if args.private_endpoint:
            authorized.append(
                gcp.container.ClusterMasterAuthorizedNetworksConfigCidrBlockArgs(
                    cidr_block=args.node_cidr, display_name="cluster-subnet"
                )
            )
        node_defaults = gcp.container.ClusterNodeConfigArgs(
            # Only used by the temporary default pool GKE creates before removing it.
            service_account=self.node_service_account.email,
            oauth_scopes=[CLOUD_PLATFORM_SCOPE],
            shielded_instance_config=gcp.container.ClusterNodeConfigShieldedInstanceConfigArgs(
                enable_secure_boot=True, enable_integrity_monitoring=True
            ),
            workload_metadata_config=gcp.container.ClusterNodeConfigWorkloadMetadataConfigArgs(
                mode="GKE_METADATA"
            ),
        )
        self.cluster = gcp.container.Cluster(
            name,
            name=name,
            project=args.project,
            location=args.location,
            node_locations=args.node_locations or None,
            min_master_version=args.version,
            release_channel=gcp.container.ClusterReleaseChannelArgs(channel=args.release_channel),
            network=args.network_id,
            subnetwork=args.subnet_id,
            networking_mode="VPC_NATIVE",
            ip_allocation_policy=gcp.container.ClusterIpAllocationPolicyArgs(
                cluster_secondary_range_name=args.pods_range_name,
                services_secondary_range_name=args.services_range_name,
            ),
            default_max_pods_per_node=DEFAULT_MAX_PODS_PER_NODE,
            private_cluster_config=gcp.container.ClusterPrivateClusterConfigArgs(
                enable_private_nodes=True, enable_private_endpoint=args.private_endpoint
            ),
            master_authorized_networks_config=gcp.container.ClusterMasterAuthorizedNetworksConfigArgs(
                cidr_blocks=authorized, gcp_public_cidrs_access_enabled=False
            ),
            workload_identity_config=gcp.container.ClusterWorkloadIdentityConfigArgs(
                workload_pool=self.workload_pool
            ),
            enable_shielded_nodes=True,
            # Dataplane V2: Kubernetes NetworkPolicy is enforced without the Calico add-on.
            datapath_provider="ADVANCED_DATAPATH",
            database_encryption=gcp.container.ClusterDatabaseEncryptionArgs(
                state="ENCRYPTED", key_name=self.secrets_key.id
            ),
            remove_default_node_pool=True,
            initial_node_count=1,
            node_config=node_defaults,
            logging_config=gcp.container.ClusterLoggingConfigArgs(
                enable_components=logging_components(args.logging)
            ),
            monitoring_config=gcp.container.ClusterMonitoringConfigArgs(
                enable_components=["SYSTEM_COMPONENTS"],
                managed_prometheus=gcp.container.ClusterMonitoringConfigManagedPrometheusArgs(
                    enabled=args.managed_prometheus
                ),
            ),
            # Node auto-provisioning stays off (every pool is declared); the profile tunes the built-in autoscaler.
            cluster_autoscaling=gcp.container.ClusterClusterAutoscalingArgs(
                enabled=False, autoscaling_profile=args.autoscaling_profile
            ),
            cost_management_config=gcp.container.ClusterCostManagementConfigArgs(enabled=True),
            maintenance_policy=gcp.container.ClusterMaintenancePolicyArgs(
                recurring_window=gcp.container.ClusterMaintenancePolicyRecurringWindowArgs(
                    start_time="2025-01-04T02:00:00Z",
                    end_time="2025-01-04T08:00:00Z",
                    recurrence="FREQ=WEEKLY;BYDAY=SA,SU",
                )
            ),
            deletion_protection=args.deletion_protection,
            resource_labels=args.labels,
            opts=pulumi.ResourceOptions(
                parent=self,
                protect=protect,
                depends_on=[
                    self.gke_agent_key_access,
                    *self.node_sa_roles,
                    *after(args.apis, CONTAINER, LOGGING, MONITORING),
                ],
            ),
        )
        self.kubeconfig: pulumi.Output[str] = pulumi.Output.all(
            self.cluster.endpoint, self.cluster.master_auth.cluster_ca_certificate
        ).apply(lambda parts: gke_kubeconfig(name, str(parts[0]), str(parts[1] or "")))
        self.provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=self.kubeconfig,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs(
            {
                "clusterId": self.cluster.id,
                "endpoint": self.cluster.endpoint,
                "workloadPool": self.workload_pool,
            }
        )
