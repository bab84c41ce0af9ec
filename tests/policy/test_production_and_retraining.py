"""Valid configs that silently remove a prod or retraining guarantee, each caught by a rule."""

from __future__ import annotations

from typing import Any

import pytest
from policy.plan_edits import edit_plan, findings

from mlops_infra.platform.cron import CronError, min_interval_minutes

from plan_support import REFERENCE_STACKS

RULES = (
    "prod-serving-on-demand",
    "prod-managed-database",
    "prod-monitoring-and-analysis",
    "prod-flow-logs",
    "retraining-schedule-sane",
    "drift-threshold-reachable",
)


@pytest.mark.parametrize("stack", REFERENCE_STACKS)
@pytest.mark.parametrize("rule", RULES)
def test_reference_stacks_pass(stack_plan, stack: str, rule: str) -> None:
    assert findings(stack_plan(stack), rule) == []


def messages(plan: Any, rule: str) -> list[str]:
    return [v.message for v in findings(plan, rule)]


def test_gpu_serving_on_a_spot_group_in_prod(mutated_plan) -> None:
    def spot_gpus(cfg: dict[str, Any]) -> None:
        cfg["mlops-platform:workloads"]["serving"]["gpu"] = True
        for group in cfg["mlops-platform:nodeGroups"]:
            if group["role"] == "gpu":
                group["capacity"] = "spot"

    (message,) = messages(mutated_plan("prod", spot_gpus), "prod-serving-on-demand")
    assert message.startswith(
        "Rollout serving/fraud-server holds accelerators and can land on spot node group(s) gpu-a10g"
    )


def test_spot_gpu_serving_outside_prod_is_not_this_rules_business(mutated_plan) -> None:
    def gpu(cfg: dict[str, Any]) -> None:
        cfg["mlops-platform:workloads"]["serving"]["gpu"] = True

    assert findings(mutated_plan("dev", gpu), "prod-serving-on-demand") == []


def test_in_cluster_database_in_prod(mutated_plan) -> None:
    def in_cluster(cfg: dict[str, Any]) -> None:
        cfg["mlops-platform:services"]["mlflow"] = {"database": "in-cluster"}

    (message,) = messages(mutated_plan("prod", in_cluster), "prod-managed-database")
    assert message.startswith("StatefulSet mlflow/postgres runs postgres in the cluster in prod")


def test_monitoring_off_in_prod_loses_alerts_and_canary_analysis(mutated_plan) -> None:
    def no_monitoring(cfg: dict[str, Any]) -> None:
        cfg["mlops-platform:services"]["monitoring"] = {"enabled": False}

    found = sorted(messages(mutated_plan("prod", no_monitoring), "prod-monitoring-and-analysis"))
    assert len(found) == 2
    assert found[0].startswith(
        "Rollout serving/fraud-server: a prod canary without analysis never rolls back"
    )
    assert found[1].startswith("prod has no monitoring stack")


def test_flow_logs_off_in_prod(mutated_plan) -> None:
    def no_flow_logs(cfg: dict[str, Any]) -> None:
        cfg["mlops-platform:network"]["flowLogs"] = False

    (message,) = messages(mutated_plan("prod", no_flow_logs), "prod-flow-logs")
    assert "prod VPC without flow logs" in message


def test_prod_gcp_subnetwork_without_flow_logs(stack_plan) -> None:
    plan = edit_plan(
        stack_plan("prod-gcp"),
        lambda r: r.type == "gcp:compute/subnetwork:Subnetwork",
        lambda inputs: inputs.pop("logConfig"),
    )
    assert len(messages(plan, "prod-flow-logs")) == 1


def _cron(name: str) -> Any:
    return lambda r: r.inputs.get("kind") == "CronJob" and r.inputs["metadata"]["name"] == name


def test_training_every_minute_is_caught(stack_plan) -> None:
    plan = edit_plan(
        stack_plan("dev"), _cron("fraud-retrain"), lambda i: i["spec"].update(schedule="* * * * *")
    )
    (message,) = messages(plan, "retraining-schedule-sane")
    assert message == (
        "CronJob retraining/fraud-retrain: schedule '* * * * *' runs every 1 min; a training job may run at most "
        "every 60 min"
    )


def test_a_drift_check_every_two_minutes_is_caught_every_ten_is_fine(stack_plan) -> None:
    fast = edit_plan(
        stack_plan("dev"), _cron("fraud-drift"), lambda i: i["spec"].update(schedule="*/2 * * * *")
    )
    assert len(messages(fast, "retraining-schedule-sane")) == 1
    ok = edit_plan(
        stack_plan("dev"), _cron("fraud-drift"), lambda i: i["spec"].update(schedule="*/10 * * * *")
    )
    assert findings(ok, "retraining-schedule-sane") == []


def test_an_unreachable_drift_threshold_is_caught(stack_plan) -> None:
    """The stack config refuses such a threshold (exit 2); the rule catches it in any plan."""

    def ten(inputs: dict[str, Any]) -> None:
        args = inputs["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"]
        args[args.index("--threshold") + 1] = "10"

    (message,) = messages(
        edit_plan(stack_plan("dev"), _cron("fraud-drift"), ten), "drift-threshold-reachable"
    )
    assert "--threshold: PSI threshold 10 is never reached by real drift; use a value in (0, 1]" in message


@pytest.mark.parametrize(
    ("schedule", "minutes"),
    [
        ("* * * * *", 1),
        ("*/20 * * * *", 20),
        ("0 3 * * 1", 1440),
        ("0 3 * * *", 1440),
        ("15 * * * *", 60),
        ("0,30 9-17 * * 1-5", 30),
        ("0 9,21 * * *", 720),
        ("5-10/5 * * * *", 5),
        ("@hourly", 60),
        ("@weekly", 10080),
    ],
)
def test_cron_intervals(schedule: str, minutes: int) -> None:
    assert min_interval_minutes(schedule) == minutes


@pytest.mark.parametrize("schedule", ["* * * *", "61 * * * *", "*/0 * * * *", "a b c d e", "5-1 * * * *"])
def test_cron_errors(schedule: str) -> None:
    with pytest.raises(CronError):
        min_interval_minutes(schedule)
