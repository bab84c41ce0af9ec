"""Cloud SQL for PostgreSQL as MLflow's backend store on GCP: private IP only, TLS only, backed up with
point-in-time recovery, regional (HA) and protected in prod. The GCP counterpart of aws/rds.py.

Facts this follows (pulumi-gcp 9.x `sql.DatabaseInstance` docs, Cloud SQL docs):
- PostgreSQL 16+ default to the Enterprise Plus edition, which takes only `db-perf-optimized-*` tiers; custom
  tiers need `edition = ENTERPRISE`, so the edition is set explicitly.
- `deletion_protection` guards only against Pulumi; `settings.deletion_protection_enabled` guards against
  every client (API, gcloud, console). Prod sets both, plus `protect`.
- A private-IP instance needs Private Service Access on its VPC before it is created (private_service_access).
- Setting `disk_size` with autoresize on makes a later `pulumi up` shrink the disk back, which forces a new
  instance: the size is ignored after creation.
- A PostgreSQL user that owns objects cannot be deleted through the API: the user is abandoned on delete
  (dropped with its instance) rather than failing a destroy.
- Instance names cannot be reused for about a week after deletion.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pulumi
import pulumi_gcp as gcp

from mlops_infra.components import catalog
from mlops_infra.components.gcp.private_service_access import PrivateServiceAccess, PrivateServiceAccessArgs

# The major version new Cloud SQL instances default to (Cloud SQL for PostgreSQL FAQ), the one RDS pins too
# (aws/rds.py); MLflow 3.x reaches it through SQLAlchemy + psycopg2. Minor versions follow in maintenance.
POSTGRES_VERSION = "POSTGRES_17"
POSTGRES_PORT = 5432
DEFAULT_TIER = "db-custom-2-7680"  # 2 vCPU, 7.5 GB
# TLS required, no client certificate (MLflow authenticates with a password; libpq sslmode=require).
SSL_MODE = "ENCRYPTED_ONLY"
TLS_MODES = frozenset({"ENCRYPTED_ONLY", "TRUSTED_CLIENT_CERTIFICATE_REQUIRED"})
MAX_LOG_RETENTION_DAYS = 7  # transaction logs for point-in-time recovery: 1-7 days on the Enterprise edition
# Connection, lock and temp-file logging, the CIS GCP benchmark's PostgreSQL flags (Checkov CKV_GCP_51-56);
# statement text is not logged (log_min_duration_statement stays off): Query Insights shows slow queries.
DATABASE_FLAGS: dict[str, str] = {
    "log_checkpoints": "on",
    "log_connections": "on",
    "log_disconnections": "on",
    "log_lock_waits": "on",
    "log_temp_files": "0",
}
_NAME_RE = re.compile(r"^[a-z]([-a-z0-9]{0,48}[a-z0-9])?$")


@dataclass(frozen=True)
class CloudSqlPostgresArgs:
    project: str
    region: str
    network_id: pulumi.Input[str]  # the VPC the instance gets its private IP in (projects/.../networks/...)
    password: pulumi.Input[str]  # pass a Pulumi secret
    tier: str = DEFAULT_TIER
    storage_gb: int = 20
    max_storage_gb: int | None = None  # autoresize ceiling; None: 5 x storage_gb
    backup_retention_days: int = 7
    high_availability: bool = True  # REGIONAL: a standby in another zone, automatic failover
    deletion_protection: bool = True
    protect: bool = True
    database: str = "mlflow"
    user: str = "mlflow"
    database_version: str = POSTGRES_VERSION
    # An existing Private Service Access of the VPC; None: one is created for this instance.
    private_service_access: PrivateServiceAccess | None = None
    labels: dict[str, str] = field(default_factory=dict)
    # What every resource waits for: the project's enabled APIs (Cloud SQL Admin, Service Networking, Compute).
    depends_on: list[pulumi.Resource] = field(default_factory=list)


class CloudSqlPostgres(pulumi.ComponentResource):
    """One Cloud SQL instance with MLflow's database and user. `host` is the private IP; pods reach it over the
    VPC peering (GKE VPC-native pod ranges are VPC subnet ranges). `ready` lists what a client waits for."""

    def __init__(self, name: str, args: CloudSqlPostgresArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlops:gcp:CloudSqlPostgres", name, None, opts)
        if not _NAME_RE.match(name):
            raise ValueError(
                f"{name}: a Cloud SQL instance name here is 1-50 lowercase letters, digits and hyphens, "
                "starting with a letter"
            )
        if not 1 <= args.backup_retention_days <= 365:
            raise ValueError(f"{name}: backups are kept 1-365 days, got {args.backup_retention_days}")
        catalog.cloud_sql_tier(args.tier)  # raises ValueError naming the broken rule
        access = args.private_service_access or PrivateServiceAccess(
            f"{name}-psa",
            PrivateServiceAccessArgs(
                project=args.project,
                network_id=args.network_id,
                labels=args.labels,
                depends_on=args.depends_on,
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        settings = gcp.sql.DatabaseInstanceSettingsArgs(
            tier=args.tier,
            edition="ENTERPRISE",
            availability_type="REGIONAL" if args.high_availability else "ZONAL",
            disk_type="PD_SSD",
            disk_size=args.storage_gb,
            disk_autoresize=True,
            disk_autoresize_limit=args.max_storage_gb or 5 * args.storage_gb,
            ip_configuration=gcp.sql.DatabaseInstanceSettingsIpConfigurationArgs(
                ipv4_enabled=False,
                private_network=args.network_id,
                allocated_ip_range=access.range_name,
                ssl_mode=SSL_MODE,
                enable_private_path_for_google_cloud_services=False,
            ),
            backup_configuration=gcp.sql.DatabaseInstanceSettingsBackupConfigurationArgs(
                enabled=True,
                point_in_time_recovery_enabled=True,
                start_time="02:00",
                transaction_log_retention_days=min(MAX_LOG_RETENTION_DAYS, args.backup_retention_days),
                backup_retention_settings=gcp.sql.DatabaseInstanceSettingsBackupConfigurationBackupRetentionSettingsArgs(
                    retained_backups=args.backup_retention_days, retention_unit="COUNT"
                ),
            ),
            # Sunday 04:00 UTC, updates two weeks after notice: the RDS instance's window (aws/rds.py).
            maintenance_window=gcp.sql.DatabaseInstanceSettingsMaintenanceWindowArgs(
                day=7, hour=4, update_track="stable"
            ),
            database_flags=[
                gcp.sql.DatabaseInstanceSettingsDatabaseFlagArgs(name=k, value=v)
                for k, v in DATABASE_FLAGS.items()
            ],
            insights_config=gcp.sql.DatabaseInstanceSettingsInsightsConfigArgs(
                query_insights_enabled=True, record_client_address=False, record_application_tags=False
            ),
            deletion_protection_enabled=args.deletion_protection,
            # Automated backups outlive a deleted instance (for their retention): RDS's final snapshot role.
            retain_backups_on_delete=args.protect,
            user_labels=args.labels,
        )
        self.instance = gcp.sql.DatabaseInstance(
            name,
            name=name,
            project=args.project,
            region=args.region,
            database_version=args.database_version,
            deletion_protection=args.deletion_protection,
            settings=settings,
            opts=pulumi.ResourceOptions(
                parent=self,
                protect=args.protect,
                depends_on=[*args.depends_on, access.connection],
                ignore_changes=["settings.diskSize"],
            ),
        )
        self.database = gcp.sql.Database(
            f"{name}-database",
            name=args.database,
            project=args.project,
            instance=self.instance.name,
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect, depends_on=args.depends_on),
        )
        self.user = gcp.sql.User(
            f"{name}-user",
            name=args.user,
            project=args.project,
            instance=self.instance.name,
            type="BUILT_IN",
            password=pulumi.Output.secret(args.password),
            deletion_policy="ABANDON",
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=args.depends_on, additional_secret_outputs=["password"]
            ),
        )
        self.host: pulumi.Output[str] = self.instance.private_ip_address
        self.port = POSTGRES_PORT
        self.connection_name: pulumi.Output[str] = self.instance.connection_name
        self.ready: list[pulumi.Resource] = [self.database, self.user]
        self.register_outputs({"host": self.host, "connectionName": self.connection_name})
