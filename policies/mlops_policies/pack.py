"""Wrap the plain rule functions in CrossGuard policies (imported only by `policies/__main__.py` and tests).

Resource rules become `ResourceValidationPolicy`, stack rules `StackValidationPolicy`; both adapt the
engine's arguments to :class:`mlops_policies.model.Resource` and report each message the rule yields.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from mlops_policies.model import Resource, Rule, exempt
from mlops_policies.runner import ALL_RULES

PACK_NAME = "mlops-guardrails"


def resource_from_args(args: ResourceValidationArgs) -> Resource:
    opts = getattr(args, "opts", None)
    return Resource(
        urn=args.urn,
        type=args.resource_type,
        name=args.name,
        props=args.props,
        protect=bool(getattr(opts, "protect", False)),
    )


def resource_from_policy_resource(r: PolicyResource) -> Resource:
    deps = [d.urn for d in r.dependencies]
    for dep_list in r.property_dependencies.values():
        deps.extend(d.urn for d in dep_list)
    return Resource(
        urn=r.urn,
        type=r.resource_type,
        name=r.name,
        props=r.props,
        protect=bool(getattr(r.opts, "protect", False)),
        dependencies=tuple(dict.fromkeys(deps)),
        parent=r.parent.urn if r.parent is not None else None,
        outputs=r.props,  # a stack policy's props are the resource's outputs
    )


def _schema(rule: Rule) -> PolicyConfigSchema | None:
    return PolicyConfigSchema(properties=dict(rule.config_schema)) if rule.config_schema else None


def to_policy(rule: Rule) -> ResourceValidationPolicy | StackValidationPolicy:
    if rule.resource_check is not None:
        check = rule.resource_check

        def validate_resource(args: ResourceValidationArgs, report: ReportViolation) -> None:
            config: Mapping[str, Any] = args.get_config() or {}
            resource = resource_from_args(args)
            if exempt(resource, rule.name):
                return
            for message in check(resource, config):
                report(message, None)

        return ResourceValidationPolicy(
            name=rule.name,
            description=rule.description,
            validate=validate_resource,
            config_schema=_schema(rule),
        )
    stack_check = rule.stack_check
    assert stack_check is not None

    def validate_stack(args: StackValidationArgs, report: ReportViolation) -> None:
        resources = [resource_from_policy_resource(r) for r in args.resources]
        by_urn = {r.urn: r for r in resources}
        for urn, message in stack_check(resources, args.get_config() or {}):
            if urn is None or urn not in by_urn or not exempt(by_urn[urn], rule.name):
                report(message, urn)

    return StackValidationPolicy(
        name=rule.name, description=rule.description, validate=validate_stack, config_schema=_schema(rule)
    )


def policies() -> list[ResourceValidationPolicy | StackValidationPolicy]:
    return [to_policy(r) for r in ALL_RULES]


DEFAULT_ENFORCEMENT = EnforcementLevel.MANDATORY
