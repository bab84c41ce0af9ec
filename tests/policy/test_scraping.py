"""`no-duplicate-scrape`: no pod port is reached by two scrape paths, with Argo Rollouts' Service selector
changes modelled. Shown passing on every reference stack and firing on real plans edited the way the defect
would look: the scrape label back on the -stable/-canary Services (finding 5), a planted duplicate
ServiceMonitor, a PodMonitor over pods a ServiceMonitor already scrapes."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from typing import Any

import pytest
from policy.plan_edits import edit_plan, findings

from mlops_infra.tooling.plan import Plan, RecordedResource
from mlops_policies.runner import resources_from_plan
from mlops_policies.scraping import phases, scrape_paths, selects

from plan_support import REFERENCE_STACKS

RULE = "no-duplicate-scrape"
SERVICE = "kubernetes:core/v1:Service"
SERVICE_MONITOR = "kubernetes:monitoring.coreos.com/v1:ServiceMonitor"
SCRAPE = {"mlops/scrape": "model-server"}
STABLE, NEW = (
    "Rollout serving/fraud-server (stable ReplicaSet)",
    "Rollout serving/fraud-server (new ReplicaSet)",
)


def named(token: str, name: str) -> Callable[[RecordedResource], bool]:
    return lambda r: r.type == token and r.name == name


def set_scrape_label(plan: Plan, services: dict[str, bool]) -> Plan:
    """Put the serving scrape label on (True) or off (False) the named Services of the plan."""
    for name, on in services.items():

        def change(inputs: dict[str, Any], on: bool = on) -> None:
            labels = inputs["metadata"]["labels"]
            labels.update(SCRAPE) if on else labels.pop("mlops/scrape", None)

        plan = edit_plan(plan, named(SERVICE, name), change)
    return plan


def add_copy(plan: Plan, token: str, name: str, change: Callable[[dict[str, Any]], None]) -> Plan:
    """A second object made from one of the plan's own, as a copy-pasted manifest or chart would add it."""
    original = next(r for r in plan.resources if named(token, name)(r))
    inputs = copy.deepcopy(original.inputs)
    change(inputs)
    planted = dataclasses.replace(
        original, urn=original.urn + "-planted", name=name + "-planted", inputs=inputs
    )
    return dataclasses.replace(plan, resources=[*plan.resources, planted])


def paths_per_target(plan: Plan) -> dict[str, dict[tuple[str, Any, str], int]]:
    resources = resources_from_plan(plan)
    return {
        phase.name: {t: len(p) for t, p in scrape_paths(resources, phase).items()}
        for phase in phases(resources)
    }


@pytest.mark.parametrize("stack", REFERENCE_STACKS)
def test_reference_stacks_scrape_each_pod_once(stack_plan: Callable[[str], Plan], stack: str) -> None:
    plan = stack_plan(stack)
    assert findings(plan, RULE) == []
    counts = paths_per_target(plan)
    # the canary analysis needs both ReplicaSets scraped during a rollout, and the stable one after it
    assert counts["during a rollout"][(STABLE, 8080, "/metrics")] == 1
    assert counts["during a rollout"][(NEW, 8080, "/metrics")] == 1
    assert counts["once a rollout is promoted"][(STABLE, 8080, "/metrics")] == 1


def test_finding_5_scrape_label_on_stable_and_canary_services(stack_plan: Callable[[str], Plan]) -> None:
    """The old deployer: both Argo-managed Services carry the label. Declared, their selectors are disjoint per
    ReplicaSet during a rollout; after promotion Argo points both at the stable pods - the duplicate."""
    old = set_scrape_label(
        stack_plan("prod"),
        {"fraud-serving-main": False, "fraud-serving-stable": True, "fraud-serving-canary": True},
    )
    (found,) = findings(old, RULE)
    assert found.enforcement == "mandatory" and found.urn is not None and "ServiceMonitor" in found.urn
    assert found.message.startswith(
        f"{STABLE} port 8080 /metrics is scraped 2 times once a rollout is promoted:"
    )
    assert "via Service serving/fraud-server-stable" in found.message
    assert "via Service serving/fraud-server-canary" in found.message
    assert "during a rollout" not in found.message


def test_scraping_only_the_stable_service_loses_the_canary(stack_plan: Callable[[str], Plan]) -> None:
    """Why the Argo model matters: as declared, the stable Service selects every pod of the Rollout, so a
    label-only check would call this fine; during a rollout it selects only the stable ReplicaSet and the
    canary pods, the very pods the analysis judges, are not scraped at all."""
    plan = set_scrape_label(stack_plan("prod"), {"fraud-serving-main": False, "fraud-serving-stable": True})
    assert findings(plan, RULE) == []
    during = paths_per_target(plan)["during a rollout"]
    assert (STABLE, 8080, "/metrics") in during and (NEW, 8080, "/metrics") not in during


def test_planted_duplicate_service_monitor(stack_plan: Callable[[str], Plan]) -> None:
    plan = add_copy(
        stack_plan("prod"),
        SERVICE_MONITOR,
        "mlflow-service-monitor",
        lambda i: i["metadata"].update(name="mlflow-copy"),
    )
    (found,) = findings(plan, RULE)
    assert found.urn is not None and found.urn.endswith("-planted")
    assert found.message.startswith(
        "Deployment mlflow/mlflow port 5000 /metrics is scraped 2 times during a rollout and once a rollout is "
        "promoted: ServiceMonitor mlflow/mlflow endpoints[0] via Service mlflow/mlflow; "
        "ServiceMonitor mlflow/mlflow-copy endpoints[0] via Service mlflow/mlflow."
    )


def test_pod_monitor_over_pods_a_service_monitor_scrapes(stack_plan: Callable[[str], Plan]) -> None:
    def to_pod_monitor(i: dict[str, Any]) -> None:
        i.update(kind="PodMonitor")
        i["metadata"]["name"] = "fraud-server-pods"
        endpoint = i["spec"].pop("endpoints")[0]
        i["spec"]["podMetricsEndpoints"] = [endpoint]
        i["spec"]["selector"] = {"matchLabels": {"app.kubernetes.io/name": "model-server"}}

    plan = add_copy(stack_plan("prod"), SERVICE_MONITOR, "fraud-serving-servicemonitor", to_pod_monitor)
    plan = dataclasses.replace(
        plan,
        resources=[
            dataclasses.replace(r, type="kubernetes:monitoring.coreos.com/v1:PodMonitor")
            if r.name.endswith("-planted")
            else r
            for r in plan.resources
        ],
    )
    found = findings(plan, RULE)
    # both ReplicaSets during a rollout, the stable one after it (one finding per pod set and set of paths)
    assert {f.message.split(" port ")[0] for f in found} == {STABLE, NEW}
    assert all("PodMonitor serving/fraud-server-pods podMetricsEndpoints[0]" in f.message for f in found)


def test_other_ports_paths_and_namespaces_are_not_duplicates(stack_plan: Callable[[str], Plan]) -> None:
    prod = stack_plan("prod")
    other_path = add_copy(
        prod,
        SERVICE_MONITOR,
        "mlflow-service-monitor",
        lambda i: i["spec"]["endpoints"][0].update(path="/other"),
    )
    assert findings(other_path, RULE) == []

    def elsewhere(i: dict[str, Any]) -> None:
        i["metadata"]["namespace"] = "monitoring"
        i["spec"].pop("namespaceSelector")  # then only its own namespace, which holds no mlflow Service

    assert findings(add_copy(prod, SERVICE_MONITOR, "mlflow-service-monitor", elsewhere), RULE) == []

    def everywhere(i: dict[str, Any]) -> None:
        elsewhere(i)
        i["spec"]["namespaceSelector"] = {"any": True}

    assert len(findings(add_copy(prod, SERVICE_MONITOR, "mlflow-service-monitor", everywhere), RULE)) == 1


def test_label_selector_semantics() -> None:
    labels = {"app": "a", "tier": "web"}
    assert selects({}, labels)  # an empty selector selects everything
    assert selects({"matchLabels": {"app": "a"}}, labels)
    assert not selects({"matchLabels": {"app": "b"}}, labels)
    assert selects(
        {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["web", "api"]}]}, labels
    )
    assert not selects(
        {"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["web"]}]}, labels
    )
    assert selects({"matchExpressions": [{"key": "app", "operator": "Exists"}]}, labels)
    assert not selects({"matchExpressions": [{"key": "app", "operator": "DoesNotExist"}]}, labels)
    assert not selects(None, labels)
