"""prod-gcp keeps MLflow's database in Cloud SQL for PostgreSQL, not in a single-replica StatefulSet: private IP
only (Private Service Access), TLS only, regional HA, backups with point-in-time recovery, protected."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from policy.plan_edits import findings
from services.service_lookup import find_object, only

from mlops_infra.components.gcp.apis import SERVICE_NETWORKING, SQL_ADMIN
from mlops_infra.components.gcp.cloud_sql import DATABASE_FLAGS, POSTGRES_VERSION
from mlops_infra.tooling.plan import SECRET, Plan, RecordedResource
from mlops_policies.preconditions.graph import DependencyGraph
from mlops_policies.runner import resources_from_plan

INSTANCE = "gcp:sql/databaseInstance:DatabaseInstance"
DATABASE = "gcp:sql/database:Database"
USER = "gcp:sql/user:User"
RANGE = "gcp:compute/globalAddress:GlobalAddress"
CONNECTION = "gcp:servicenetworking/connection:Connection"
SERVICE = "gcp:projects/service:Service"


@pytest.fixture(scope="module")
def plan() -> Plan:
    from plan_support import reference_plan

    return reference_plan("prod-gcp")


def _postgres_statefulsets(plan: Plan) -> list[str]:
    return [
        r.name
        for r in plan.k8s_objects()
        if r.inputs.get("kind") == "StatefulSet"
        and any("postgres" in str(c.get("image")) for c in r.inputs["spec"]["template"]["spec"]["containers"])
    ]


def _mlflow_uri(plan: Plan) -> str:
    container = find_object(plan, "Deployment", "mlflow", "mlflow").inputs["spec"]["template"]["spec"]
    env = {e["name"]: e for e in container["containers"][0]["env"]}
    return str(env["MLFLOW_BACKEND_STORE_URI"]["value"])


def _api(plan: Plan, api: str) -> RecordedResource:
    (service,) = [s for s in plan.of_type(SERVICE) if s.inputs["service"] == api]
    return service


def test_prod_gcp_runs_no_database_in_the_cluster(plan: Plan) -> None:
    """Fails on the code before Cloud SQL: prod-gcp ran postgres as a one-replica StatefulSet, and
    `prod-managed-database` reported it."""
    assert _postgres_statefulsets(plan) == []
    assert findings(plan, "prod-managed-database") == []
    only(plan, INSTANCE)


def test_instance_has_a_private_ip_only_in_the_clusters_vpc(plan: Plan) -> None:
    instance, cluster = only(plan, INSTANCE), only(plan, "gcp:container/cluster:Cluster")
    vpc = cluster.inputs["network"]
    assert vpc == f"projects/acme-mlops-prod/global/networks/{only(plan, 'gcp:compute/network:Network').name}"
    ip = instance.inputs["settings"]["ipConfiguration"]
    assert ip["ipv4Enabled"] is False, "no public IPv4 address"
    assert "authorizedNetworks" not in ip
    assert ip["privateNetwork"] == vpc
    peering_range, connection = only(plan, RANGE), only(plan, CONNECTION)
    assert (
        peering_range.inputs["purpose"] == "VPC_PEERING" and peering_range.inputs["addressType"] == "INTERNAL"
    )
    assert peering_range.inputs["network"] == vpc
    assert 8 <= peering_range.inputs["prefixLength"] <= 24, "Google's minimum is a /24"
    assert ip["allocatedIpRange"] == peering_range.inputs["name"]
    assert connection.inputs["service"] == "servicenetworking.googleapis.com"
    assert connection.inputs["network"] == vpc
    assert connection.inputs["reservedPeeringRanges"] == [peering_range.inputs["name"]]
    # Created before the peering exists, the instance would have no route into the VPC.
    assert connection.urn in instance.depends_on
    # Pods reach a peered private IP only from VPC-native (alias IP) ranges, which are VPC subnet ranges.
    assert cluster.inputs["networkingMode"] == "VPC_NATIVE"


def test_instance_is_regional_backed_up_with_pitr_and_protected_in_prod(plan: Plan) -> None:
    instance = only(plan, INSTANCE)
    settings = instance.inputs["settings"]
    assert settings["availabilityType"] == "REGIONAL", "a standby in another zone with automatic failover"
    backups = settings["backupConfiguration"]
    assert backups["enabled"] is True and backups["pointInTimeRecoveryEnabled"] is True
    retention = plan.config.services.mlflow.backup_retention_days
    assert backups["backupRetentionSettings"] == {"retainedBackups": retention, "retentionUnit": "COUNT"}
    assert retention >= 7 and backups["transactionLogRetentionDays"] == 7  # Enterprise edition maximum
    assert instance.inputs["deletionProtection"] is True, "Pulumi refuses to delete it"
    assert settings["deletionProtectionEnabled"] is True, "the API, gcloud and the console refuse too"
    assert settings["retainBackupsOnDelete"] is True
    assert instance.protect and only(plan, DATABASE).protect
    assert settings["ipConfiguration"]["sslMode"] == "ENCRYPTED_ONLY"
    assert instance.inputs["databaseVersion"] == POSTGRES_VERSION == "POSTGRES_17"
    # PostgreSQL 16+ default to Enterprise Plus, which refuses custom tiers.
    assert (
        settings["edition"] == "ENTERPRISE" and settings["tier"] == plan.config.services.mlflow.database_tier
    )
    assert settings["maintenanceWindow"] == {"day": 7, "hour": 4, "updateTrack": "stable"}
    assert {f["name"]: f["value"] for f in settings["databaseFlags"]} == DATABASE_FLAGS
    assert settings["diskAutoresize"] is True and settings["diskAutoresizeLimit"] >= settings["diskSize"]
    # After an autoresize a declared diskSize would shrink the disk back, which replaces the instance.
    assert "settings.diskSize" in instance.ignore_changes
    assert settings["userLabels"]["environment"] == "prod"


def test_mlflow_reaches_the_private_ip_over_tls_once_database_and_user_exist(plan: Plan) -> None:
    instance = only(plan, INSTANCE)
    private_ip = instance.outputs["privateIpAddress"]
    assert _mlflow_uri(plan) == f"postgresql://mlflow:$(DB_PASSWORD)@{private_ip}:5432/mlflow?sslmode=require"
    deployment = find_object(plan, "Deployment", "mlflow", "mlflow")
    database, user = only(plan, DATABASE), only(plan, USER)
    assert database.inputs["name"] == "mlflow" and user.inputs["name"] == "mlflow"
    assert database.inputs["instance"] == user.inputs["instance"] == instance.inputs["name"]
    assert {database.urn, user.urn} <= set(deployment.depends_on), "the schema migration needs both"
    assert (
        plan.outputs["mlflowCloudSqlConnectionName"]
        == f"acme-mlops-prod:us-central1:{instance.inputs['name']}"
    )


def test_the_password_is_a_secret_that_reaches_pods_only_through_the_secret(plan: Plan) -> None:
    user = only(plan, USER)
    assert user.inputs["password"] == SECRET
    assert user.inputs["deletionPolicy"] == "ABANDON", "Postgres refuses to drop a user that owns tables"
    assert find_object(plan, "Secret", "mlflow", "mlflow-db").inputs["stringData"] == {"password": SECRET}
    pod = find_object(plan, "Deployment", "mlflow", "mlflow").inputs["spec"]["template"]["spec"]
    for container in pod["containers"] + pod["initContainers"]:
        env = {e["name"]: e for e in container["env"]}
        assert env["DB_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "mlflow-db", "key": "password"}


def test_every_cloud_sql_resource_waits_for_its_apis(plan: Plan) -> None:
    assert findings(plan, "gcp-apis-enabled") == []
    graph = DependencyGraph(resources_from_plan(plan))
    sql_admin, networking = _api(plan, SQL_ADMIN), _api(plan, SERVICE_NETWORKING)
    for token in (INSTANCE, DATABASE, USER):
        assert graph.waits_for(only(plan, token).urn, sql_admin.urn), token
    assert graph.waits_for(only(plan, CONNECTION).urn, networking.urn)
    assert graph.waits_for(only(plan, RANGE).urn, _api(plan, "compute.googleapis.com").urn)


def test_the_apis_rule_catches_a_stack_that_does_not_enable_cloud_sql(plan: Plan) -> None:
    """Planted defect: the platform forgets the Cloud SQL APIs; every SQL resource and the peering is reported."""
    from policy.plan_edits import edit_plan

    missing = edit_plan(
        plan,
        lambda r: r.type == SERVICE and r.inputs["service"] in (SQL_ADMIN, SERVICE_NETWORKING),
        drop=True,
    )
    reported = {v.urn.rsplit("::", 1)[-1] for v in findings(missing, "gcp-apis-enabled")}
    assert {only(plan, t).name for t in (INSTANCE, DATABASE, USER, CONNECTION)} <= reported


def test_a_non_prod_gcp_stack_defaults_to_in_cluster_and_a_managed_one_is_zonal_and_unprotected(
    mutated_plan: Callable[..., Plan],
) -> None:
    def to_test(explicit_managed: bool) -> Callable[[dict[str, Any]], None]:
        def mutate(cfg: dict[str, Any]) -> None:
            cfg["mlops-platform:environment"] = "test"
            mlflow = cfg["mlops-platform:services"]["mlflow"]
            mlflow.pop("database")
            if explicit_managed:
                mlflow["database"] = "managed"

        return mutate

    default = mutated_plan("prod-gcp", to_test(False), name="gcp-test")
    assert not default.of_type(INSTANCE) and _postgres_statefulsets(default)
    assert not [s for s in default.of_type(SERVICE) if s.inputs["service"] in (SQL_ADMIN, SERVICE_NETWORKING)]
    managed = mutated_plan("prod-gcp", to_test(True), name="gcp-test")
    instance = only(managed, INSTANCE)
    assert instance.inputs["settings"]["availabilityType"] == "ZONAL"
    assert instance.inputs["deletionProtection"] is False
    assert instance.inputs["settings"]["deletionProtectionEnabled"] is False
    assert not instance.protect and not only(managed, DATABASE).protect
    assert instance.inputs["settings"]["ipConfiguration"]["ipv4Enabled"] is False
    assert findings(managed, "gcp-apis-enabled") == []
