"""Reference integrity: selectors select, referenced objects exist, ReadWriteOnce claims stay on one node.
Each rule passes on every reference stack and catches a planted defect of its class."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from policy.plan_edits import edit_plan, findings

from mlops_infra.tooling.plan import Plan, RecordedResource

from plan_support import REFERENCE_STACKS

RULES = ("selectors-resolve", "pod-references-resolve", "rwo-claims-single-node")


def k8s(kind: str, name: str | None = None) -> Callable[[RecordedResource], bool]:
    return lambda r: r.inputs.get("kind") == kind and (name is None or r.inputs["metadata"]["name"] == name)


def one(plan: Plan, rule: str) -> str:
    (violation,) = findings(plan, rule)
    return violation.message


@pytest.mark.parametrize("stack", REFERENCE_STACKS)
@pytest.mark.parametrize("rule", RULES)
def test_reference_stacks_resolve(stack_plan, stack: str, rule: str) -> None:
    assert findings(stack_plan(stack), rule) == []


# ---- selectors


def test_a_service_selecting_no_pod(stack_plan) -> None:
    def typo(inputs: dict[str, Any]) -> None:
        inputs["spec"]["selector"]["app.kubernetes.io/name"] = "model-sever"

    plan = edit_plan(stack_plan("dev"), k8s("Service", "fraud-server"), typo)
    assert "Service serving/fraud-server selects" in one(plan, "selectors-resolve")


def test_a_service_monitor_selecting_no_service(stack_plan) -> None:
    def typo(inputs: dict[str, Any]) -> None:
        inputs["spec"]["selector"]["matchLabels"] = {"app.kubernetes.io/name": "neuron-monitr"}

    plan = edit_plan(stack_plan("dev"), k8s("ServiceMonitor", "neuron-monitor"), typo)
    assert (
        one(plan, "selectors-resolve")
        == "ServiceMonitor kube-system/neuron-monitor selects no Service of the plan"
    )


def test_a_pdb_and_an_hpa_pointing_nowhere(stack_plan) -> None:
    plan = edit_plan(
        stack_plan("prod"),
        k8s("PodDisruptionBudget", "fraud-server"),
        lambda i: i["spec"].update(selector={"matchLabels": {"app": "gone"}}),
    )
    plan = edit_plan(
        plan,
        k8s("HorizontalPodAutoscaler", "fraud-server"),
        lambda i: i["spec"]["scaleTargetRef"].update(name="fraud"),
    )
    messages = sorted(v.message for v in findings(plan, "selectors-resolve"))
    assert messages == [
        "HorizontalPodAutoscaler serving/fraud-server scales Rollout fraud, which the plan does not declare",
        "PodDisruptionBudget serving/fraud-server: spec.selector selects no pod of the plan",
    ]


# ---- pod references


def test_a_secret_the_plan_does_not_declare(stack_plan) -> None:
    def rename(inputs: dict[str, Any]) -> None:
        for env in inputs["spec"]["template"]["spec"]["containers"][0]["env"]:
            if "secretKeyRef" in env.get("valueFrom", {}):
                env["valueFrom"]["secretKeyRef"]["name"] = "redis-password"

    plan = edit_plan(stack_plan("dev"), k8s("Rollout"), rename)
    message = one(plan, "pod-references-resolve")
    assert message.startswith("Rollout serving/fraud-server references what the plan does not declare: ")
    assert "Secret redis-password (containers[0] server env REDIS_PASSWORD)" in message


def test_optional_references_and_built_ins_are_fine(stack_plan) -> None:
    def optional(inputs: dict[str, Any]) -> None:
        spec = inputs["spec"]["template"]["spec"]
        spec["containers"][0]["envFrom"] = [{"secretRef": {"name": "extra", "optional": True}}]
        spec["volumes"].append({"name": "ca", "configMap": {"name": "kube-root-ca.crt"}})

    assert findings(edit_plan(stack_plan("dev"), k8s("Rollout"), optional), "pod-references-resolve") == []


def test_a_pod_in_an_undeclared_namespace(stack_plan) -> None:
    plan = edit_plan(
        stack_plan("local"), k8s("Deployment", "mlflow"), lambda i: i["metadata"].update(namespace="ml")
    )
    messages = [v.message for v in findings(plan, "pod-references-resolve")]
    assert any(m.startswith("Deployment ml/mlflow: namespace ml is not declared") for m in messages)


# ---- ReadWriteOnce claims


def _strip_colocation(inputs: dict[str, Any]) -> None:
    """What the retraining CronJobs looked like before finding 10 was fixed."""
    pod = inputs["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    pod["affinity"].pop("podAffinity")


def test_finding_10_claim_shared_by_cronjobs_on_any_node(stack_plan) -> None:
    plan = edit_plan(stack_plan("prod"), k8s("CronJob"), _strip_colocation)
    message = one(plan, "rwo-claims-single-node")
    assert message.startswith(
        "PersistentVolumeClaim retraining/retraining-data is ReadWriteOnce but mounted by "
    )
    for user in ("CronJob retraining/fraud-drift", "CronJob retraining/fraud-retrain", "Job retraining/"):
        assert user in message


def test_every_pod_of_the_data_claim_requires_the_same_node(stack_plan) -> None:
    plan = stack_plan("prod")
    pods = [r for r in plan.k8s_objects() if r.inputs.get("kind") == "CronJob"]
    for cron in pods:
        pod = cron.inputs["spec"]["jobTemplate"]["spec"]["template"]
        assert pod["metadata"]["labels"]["mlops.platform/data-claim"] == "retraining-data"
        (term,) = pod["spec"]["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        assert term == {
            "labelSelector": {"matchLabels": {"mlops.platform/data-claim": "retraining-data"}},
            "topologyKey": "kubernetes.io/hostname",
        }


@pytest.mark.parametrize(
    ("replicas", "strategy", "caught"),
    [(1, "Recreate", False), (1, "RollingUpdate", True), (2, "Recreate", True)],
)
def test_a_deployment_on_a_rwo_claim(stack_plan, replicas: int, strategy: str, caught: bool) -> None:
    def shape(inputs: dict[str, Any]) -> None:
        inputs["spec"]["replicas"] = replicas
        inputs["spec"]["strategy"] = {"type": strategy}

    plan = edit_plan(stack_plan("local"), k8s("Deployment", "mlflow"), shape)
    assert bool(findings(plan, "rwo-claims-single-node")) is caught
