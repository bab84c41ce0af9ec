"""The database rules know Cloud SQL: each passes on prod-gcp and reports a planted defect of its class
(a public IP, plaintext connections, a zonal instance, backups or point-in-time recovery off, a deletion guard
off, no `protect`). Before they knew Cloud SQL, every one of these defects passed unreported."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from policy.plan_edits import edit_plan, findings

from mlops_infra.tooling.plan import Plan, RecordedResource

INSTANCE = "gcp:sql/databaseInstance:DatabaseInstance"
RULES = ("rds-not-public", "rds-encrypted", "prod-multi-az", "prod-stateful-protected")


def _instance(r: RecordedResource) -> bool:
    return r.type == INSTANCE


def _settings(**changes: Any) -> Callable[[dict[str, Any]], None]:
    """Edit `settings` keys; `a__b` edits one level down (`ipConfiguration__sslMode`); None deletes the key."""

    def change(inputs: dict[str, Any]) -> None:
        for path, value in changes.items():
            target = inputs["settings"]
            *parents, key = path.split("__")
            for parent in parents:
                target = target[parent]
            if value is None:
                target.pop(key, None)
            else:
                target[key] = value

    return change


@pytest.fixture(scope="module")
def prod_gcp() -> Plan:
    from plan_support import reference_plan

    return reference_plan("prod-gcp")


def test_prod_gcp_passes_every_database_rule(prod_gcp: Plan) -> None:
    for rule in RULES:
        assert findings(prod_gcp, rule) == [], rule


@pytest.mark.parametrize(
    ("rule", "change", "expected"),
    [
        ("rds-not-public", _settings(ipConfiguration__ipv4Enabled=True), "public IP"),
        # The provider's default is a public IPv4 address: leaving the key out is a defect too.
        ("rds-not-public", _settings(ipConfiguration__ipv4Enabled=None), "ipv4Enabled=false"),
        ("rds-encrypted", _settings(ipConfiguration__sslMode="ALLOW_UNENCRYPTED_AND_ENCRYPTED"), "sslMode"),
        ("rds-encrypted", _settings(ipConfiguration__sslMode=None), "unencrypted connections"),
        ("prod-multi-az", _settings(availabilityType="ZONAL"), "availabilityType=REGIONAL"),
        ("prod-multi-az", _settings(availabilityType=None), "availabilityType=REGIONAL"),
        ("prod-stateful-protected", _settings(backupConfiguration__enabled=False), "backups are off"),
        (
            "prod-stateful-protected",
            _settings(backupConfiguration__pointInTimeRecoveryEnabled=False),
            "point-in-time recovery",
        ),
        ("prod-stateful-protected", _settings(deletionProtectionEnabled=False), "deletionProtectionEnabled"),
        ("prod-stateful-protected", lambda i: i.update(deletionProtection=False), "deletionProtection=true"),
    ],
)
def test_a_planted_cloud_sql_defect_is_reported(
    prod_gcp: Plan, rule: str, change: Callable[[dict[str, Any]], None], expected: str
) -> None:
    [violation] = findings(edit_plan(prod_gcp, _instance, change), rule)
    assert expected in violation.message
    assert violation.urn.endswith("::mlops-prod-mlflow")


def test_public_ip_open_to_the_internet_is_named(prod_gcp: Plan) -> None:
    opened = edit_plan(
        prod_gcp,
        _instance,
        _settings(
            ipConfiguration__ipv4Enabled=True,
            ipConfiguration__authorizedNetworks=[{"name": "all", "value": "0.0.0.0/0"}],
        ),
    )
    [violation] = findings(opened, "rds-not-public")
    assert "0.0.0.0/0" in violation.message


def test_unprotected_instance_and_database_are_reported(prod_gcp: Plan) -> None:
    unprotected = edit_plan(prod_gcp, lambda r: r.type.startswith("gcp:sql/data"), protect=False)
    reported = sorted(v.urn.rsplit("::", 1)[-1] for v in findings(unprotected, "prod-stateful-protected"))
    assert reported == ["mlops-prod-mlflow", "mlops-prod-mlflow-database"]


def test_the_prod_only_rules_leave_a_test_stack_alone(mutated_plan: Callable[..., Plan]) -> None:
    def to_test(cfg: dict[str, Any]) -> None:
        cfg["mlops-platform:environment"] = "test"

    plan = mutated_plan("prod-gcp", to_test, name="gcp-test")
    instance = plan.of_type(INSTANCE)[0]
    assert instance.inputs["settings"]["availabilityType"] == "ZONAL" and not instance.protect
    assert findings(plan, "prod-multi-az") == [] and findings(plan, "prod-stateful-protected") == []
    # Security rules hold in every environment.
    assert findings(plan, "rds-not-public") == [] and findings(plan, "rds-encrypted") == []
