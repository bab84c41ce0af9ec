"""RDS PostgreSQL for MLflow's backend store in prod: encrypted, multi-AZ, backed up, private, protected."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from mlops_infra.components.aws.kms import kms_key
from mlops_infra.components.aws.service_network import node_only_security_group
from mlops_infra.components.k8s.cluster import NetworkFacts

POSTGRES_ENGINE_VERSION = "17"  # major only: RDS picks the latest minor, auto minor upgrades keep it current
POSTGRES_PORT = 5432


@dataclass(frozen=True)
class PostgresDatabaseArgs:
    network: NetworkFacts
    password: pulumi.Input[str]  # pass a Pulumi secret
    instance_class: str = "db.t4g.medium"
    storage_gb: int = 20
    max_storage_gb: int | None = None  # storage autoscaling ceiling; None: 5 x storage_gb
    backup_retention_days: int = 7
    multi_az: bool = True
    deletion_protection: bool = True
    database: str = "mlflow"
    user: str = "mlflow"
    engine_version: str = POSTGRES_ENGINE_VERSION
    kms_key_arn: pulumi.Input[str] | None = None  # None: a key of its own
    protect: bool = True
    tags: dict[str, str] = field(default_factory=dict)


class PostgresDatabase(pulumi.ComponentResource):
    """One RDS instance that a `pulumi destroy` cannot silently lose: protect, deletion protection, final
    snapshot, automated backups; TLS enforced, never public, reachable from the cluster nodes only."""

    def __init__(self, name: str, args: PostgresDatabaseArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlops:aws:PostgresDatabase", name, None, opts)
        if not re.match(r"^[a-z][a-z0-9-]{0,62}$", name) or name.endswith("-") or "--" in name:
            raise ValueError(
                f"{name}: an RDS identifier is 1-63 lowercase letters, digits and single hyphens"
            )
        if not 1 <= args.backup_retention_days <= 35:
            raise ValueError(f"{name}: backup retention must be 1-35 days, got {args.backup_retention_days}")
        tags = {**args.tags, "Name": name}
        key_arn = args.kms_key_arn
        if key_arn is None:
            key_arn = kms_key(
                f"{name}-key",
                f"RDS {name} storage and Performance Insights",
                tags,
                self,
                protect=args.protect,
            ).arn
        subnets = aws.rds.SubnetGroup(
            f"{name}-subnets",
            name=f"{name}-subnets",
            description=f"Private subnets of {name}",
            subnet_ids=args.network.private_subnet_ids,
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self),
        )
        group = node_only_security_group(
            name, args.network, POSTGRES_PORT, f"Postgres {name}: nodes only", tags, self
        )
        major = args.engine_version.split(".")[0]
        params = aws.rds.ParameterGroup(
            f"{name}-params",
            name=f"{name}-postgres{major}",
            family=f"postgres{major}",
            description=f"{name}: TLS only, slow-query logging",
            parameters=[
                aws.rds.ParameterGroupParameterArgs(name="rds.force_ssl", value="1"),
                aws.rds.ParameterGroupParameterArgs(name="log_min_duration_statement", value="1000"),
            ],
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.instance = aws.rds.Instance(
            f"{name}-db",
            identifier=name,
            engine="postgres",
            engine_version=args.engine_version,
            instance_class=args.instance_class,
            allocated_storage=args.storage_gb,
            max_allocated_storage=args.max_storage_gb or 5 * args.storage_gb,
            storage_type="gp3",
            storage_encrypted=True,
            kms_key_id=key_arn,
            db_name=args.database,
            username=args.user,
            password=pulumi.Output.secret(args.password),
            port=POSTGRES_PORT,
            db_subnet_group_name=subnets.name,
            vpc_security_group_ids=[group.id],
            parameter_group_name=params.name,
            publicly_accessible=False,
            multi_az=args.multi_az,
            backup_retention_period=args.backup_retention_days,
            backup_window="02:00-03:00",
            maintenance_window="sun:04:00-sun:05:00",
            copy_tags_to_snapshot=True,
            deletion_protection=args.deletion_protection,
            skip_final_snapshot=False,
            final_snapshot_identifier=f"{name}-final",
            performance_insights_enabled=True,
            performance_insights_kms_key_id=key_arn,
            performance_insights_retention_period=7,
            iam_database_authentication_enabled=True,
            enabled_cloudwatch_logs_exports=["postgresql", "upgrade"],
            auto_minor_version_upgrade=True,
            ca_cert_identifier="rds-ca-rsa2048-g1",
            apply_immediately=False,
            tags=tags,
            opts=pulumi.ResourceOptions(
                parent=self, protect=args.protect, additional_secret_outputs=["password"]
            ),
        )
        self.host = self.instance.address
        self.port = POSTGRES_PORT
        self.register_outputs({"host": self.host, "port": self.port})
