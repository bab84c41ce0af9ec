"""Apply the rule functions to an offline plan: what `mlops-infra check` and `plan --json` report.

The runner builds the same `Resource` views the CrossGuard adapter builds from the engine, and the policy
config a stack would get: its environment's defaults plus its budget and scale-down schedules.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from mlops_infra.components import catalog
from mlops_policies import (
    access,
    charts,
    cost,
    cost_allocation,
    karpenter,
    network_policy,
    preconditions,
    production,
    progressive_delivery,
    references,
    reliability,
    retraining,
    scheduling,
    scraping,
    security,
    telemetry,
)
from mlops_policies.model import Resource, Rule, Violation, dig, environment_of, exempt
from mlops_policies.settings import default_config, merge, resolve

if TYPE_CHECKING:
    from mlops_infra.platform.config import StackConfig
    from mlops_infra.tooling.plan import Plan

ALL_RULES: list[Rule] = [
    *security.RULES,
    *access.RULES,
    *network_policy.RULES,
    *reliability.RULES,
    *production.RULES,
    *cost.RULES,
    *retraining.RULES,
    *scheduling.RULES,
    *references.RULES,
    *charts.RULES,
    *scraping.RULES,
    *progressive_delivery.RULES,
    *telemetry.RULES,
    *preconditions.RULES,
    *cost_allocation.RULES,
    *karpenter.RULES,
]
BLOCKING = frozenset({"mandatory", "remediate"})  # remediate is treated as mandatory offline (no fix applied)


def rule(name: str) -> Rule:
    for r in ALL_RULES:
        if r.name == name:
            return r
    raise KeyError(f"unknown rule {name!r}")


def resources_from_plan(plan: Plan) -> list[Resource]:
    """Custom resources of the plan, as the engine would hand them to a policy pack."""
    return [
        Resource(
            urn=r.urn,
            type=r.type,
            name=r.name,
            props=r.inputs,
            protect=r.protect,
            dependencies=tuple(r.depends_on),
            parent=r.parent,
            outputs=r.outputs,
        )
        for r in plan.resources
        if r.custom and not r.type.startswith("pulumi:providers:")
    ]


def _team_type(name: str) -> bool:
    itype = catalog.find_instance(name)
    return itype is not None and itype.origin != "built-in"


def stack_policy_config(config: StackConfig) -> dict[str, Any]:
    """The policy config for one stack: environment defaults + budget + schedules. `check` uses it, and
    `mlops-infra policy-config` writes it to the `--policy-pack-config` file the real engine gets."""
    result = default_config(config.environment)
    budget: dict[str, Any] = {}
    if config.budget is not None:
        budget = {"monthlyUsd": config.budget.monthly_usd, "basis": config.budget.basis}
    schedules = {
        g.name: {
            "hoursPerDayActive": g.scale_down_schedule.hours_per_day_active,
            "daysPerWeek": g.scale_down_schedule.days_per_week,
            **(
                {"activeNodes": g.scale_down_schedule.active_nodes}
                if g.scale_down_schedule.active_nodes is not None
                else {}
            ),
        }
        for g in config.node_groups
        if g.scale_down_schedule is not None
    }
    if schedules:
        budget["scaleDownSchedules"] = schedules
    if budget and config.region:
        budget["region"] = config.region  # prices in the stack's region
    if budget:
        result = merge(result, {"budget-within-limit": budget})
    team = sorted(
        {t for g in config.node_groups for t in g.instance_types if _team_type(t)}
    )  # the engine's policy process does not read the stack's team catalog file
    if team:
        result = merge(result, {"allowed-instance-types": {"teamTypes": team}})
    if config.workloads.registry:  # a registry the stack names exists outside the plan, with its own login
        result = merge(
            result, {"image-push-targets-declared": {"externalRegistries": [config.workloads.registry]}}
        )
    return result


def run_rules(
    resources: Sequence[Resource], config: Mapping[str, Any], rules: Sequence[Rule] = ALL_RULES
) -> list[Violation]:
    """Every violation of every enabled rule, in rule order. A rule that fails on odd input reports that
    as a violation at its own level instead of crashing the command."""
    levels = resolve(config, list(rules))
    by_urn = {res.urn: res for res in resources}
    found: list[Violation] = []
    for r in rules:
        level, props = levels[r.name]
        if level == "disabled":
            continue
        try:
            if r.resource_check is not None:
                for res in resources:
                    if not exempt(res, r.name):
                        found.extend(
                            Violation(r.name, level, res.urn, m) for m in r.resource_check(res, props)
                        )
            elif r.stack_check is not None:
                found.extend(
                    Violation(r.name, level, urn, m)
                    for urn, m in r.stack_check(resources, props)
                    if urn is None or urn not in by_urn or not exempt(by_urn[urn], r.name)
                )
        except Exception as exc:  # report, never traceback
            found.append(Violation(r.name, level, None, f"rule could not evaluate this stack: {exc!r}"))
    return found


def check_plan(plan: Plan, overrides: Mapping[str, Any] | None = None) -> list[Violation]:
    """The pack over a plan: the stack's policy config, or for a program without one (`plan --program`) the
    defaults of the environment its resources are tagged with (dev when they carry none)."""
    config = (
        stack_policy_config(plan.config)
        if plan.config is not None
        else default_config(plan.environment or "dev")
    )
    if overrides:
        config = merge(config, overrides)
    return run_rules(resources_from_plan(plan), config)


class PlanDocumentError(ValueError):
    """A saved plan that is not a `plan --json` object; the message says what is wrong."""


def resources_from_document(doc: Mapping[str, Any], where: str) -> list[Resource]:
    """The custom resources of a saved `plan --json` object (outputs = inputs + the computed ones)."""
    items = doc.get("resources")
    if not isinstance(items, list):
        raise PlanDocumentError(
            f"{where}: no `resources` list; expected the output of `mlops-infra plan STACK --json`"
        )
    found: list[Resource] = []
    for i, item in enumerate(items):
        if not isinstance(item, Mapping) or not all(
            isinstance(item.get(k), str) for k in ("urn", "type", "name")
        ):
            raise PlanDocumentError(f"{where}: resources[{i}] needs string urn, type and name")
        inputs: Mapping[str, Any] = item["inputs"] if isinstance(item.get("inputs"), Mapping) else {}
        outputs: Mapping[str, Any] = item["outputs"] if isinstance(item.get("outputs"), Mapping) else {}
        if item.get("custom", True) is False or str(item["type"]).startswith("pulumi:providers:"):
            continue
        found.append(
            Resource(
                urn=item["urn"],
                type=item["type"],
                name=item["name"],
                props=inputs,
                protect=item.get("protect") is True,
                dependencies=tuple(str(d) for d in item.get("dependencies") or () if isinstance(d, str)),
                parent=item.get("parent") if isinstance(item.get("parent"), str) else None,
                outputs={**inputs, **outputs},
            )
        )
    return found


def check_document(
    doc: Mapping[str, Any], where: str, overrides: Mapping[str, Any] | None = None
) -> list[Violation]:
    """The pack over a saved plan (possibly edited by hand): the environment's defaults and the plan's budget
    decide, never anything else the document claims about its own policy config."""
    resources = resources_from_document(doc, where)
    environment = doc.get("environment")
    if not isinstance(environment, str):
        environment = environment_of(resources, {})
    if environment not in ("dev", "test", "prod"):
        raise PlanDocumentError(
            f"{where}: environment {environment!r}; a plan names dev, test or prod (`environment`, or the "
            "`environment` tag its resources carry)"
        )
    config = default_config(environment)
    budget = dig(doc, "cost", "budget")
    if isinstance(budget, Mapping) and "monthlyUsd" in budget:
        config = merge(
            config,
            {
                "budget-within-limit": {
                    "monthlyUsd": budget["monthlyUsd"],
                    "basis": budget.get("basis", "expected"),
                }
            },
        )
    if overrides:
        config = merge(config, overrides)
    return run_rules(resources, config)


def blocking(violations: Sequence[Violation]) -> list[Violation]:
    return [v for v in violations if v.enforcement in BLOCKING]
