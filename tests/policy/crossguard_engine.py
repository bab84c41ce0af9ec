"""What `pulumi preview --policy-pack policies --policy-pack-config FILE` would report for a plan, without the
Pulumi CLI: the CLI's handling of the config file, modelled from its source, then the pack's own analyzer.

CLI side (pulumi/pulumi `pkg/resource/analyzer/config.go`, `parsePolicyPackConfig` / `ReconcilePolicyPackConfig`
/ `applyConfig` / `validatePolicyPackConfig`): a string value is an enforcement level; an object's
`enforcementLevel` is the level and the rest are properties; every policy starts at the level the pack
declares for it, `"all"` sets every policy's level, a policy's own entry then wins and its properties merge
on top; each policy's properties must validate against `{"type": "object", "properties": <its schema>}`, or
the CLI refuses the file. The result reaches the pack through the analyzer's `Configure` call.

Pack side: pulumi-policy's `_PolicyAnalyzerServicer`, the object `policies/__main__.py` serves over gRPC, is
called directly with the protobuf requests the engine sends (`Configure`, `Analyze` per resource,
`AnalyzeStack`), so config delivery, enforcement and property decoding are the library's, not ours. It is a
private class of pulumi-policy (1.21.0 in uv.lock): an upgrade may need this adapter adjusted. The resources
are the plan's custom resources, the set `check` sees, so the comparison isolates how the config travels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import jsonschema
from google.protobuf import json_format, struct_pb2
from pulumi.runtime import proto
from pulumi_policy.policy import _PolicyAnalyzerServicer

from mlops_policies.model import Resource
from mlops_policies.pack import DEFAULT_ENFORCEMENT, PACK_NAME, policies
from mlops_policies.runner import ALL_RULES

LEVELS = {"advisory", "mandatory", "remediate", "disabled"}
_PROTO_LEVEL = {
    "advisory": proto.ADVISORY,
    "mandatory": proto.MANDATORY,
    "remediate": proto.REMEDIATE,
    "disabled": proto.DISABLED,
}
_LEVEL_NAME = {v: k for k, v in _PROTO_LEVEL.items()}


class Finding(NamedTuple):
    policy: str
    enforcement: str
    urn: str | None


class ConfigRejected(Exception):
    """The Pulumi CLI would refuse this `--policy-pack-config` file before running anything."""


def reconcile(document: Mapping[str, Any]) -> dict[str, tuple[str, dict[str, Any]]]:
    """policy name -> (enforcement level, properties) as the CLI hands them to the pack."""
    given: dict[str, tuple[str | None, dict[str, Any]]] = {}
    for key, value in document.items():
        if isinstance(value, str):
            level, props = value, {}
        elif isinstance(value, Mapping):
            props = {k: v for k, v in value.items() if k != "enforcementLevel"}
            level = value.get("enforcementLevel")
        else:
            raise ConfigRejected(
                f"parsing {key!r}: {value!r} is not a valid value; must be a string or object"
            )
        if level is not None and level not in LEVELS:
            raise ConfigRejected(f"parsing enforcement level for {key!r}: {level!r} is not a valid level")
        if level is not None or props:
            given[key] = (level, props)
    pack_level = DEFAULT_ENFORCEMENT.value
    result: dict[str, tuple[str, dict[str, Any]]] = {r.name: (pack_level, {}) for r in ALL_RULES}
    all_level = given.get("all", (None, {}))[0]
    if all_level is not None:
        result = {name: (all_level, props) for name, (_, props) in result.items()}
    for name, (level, props) in given.items():
        if name in result:
            old_level, old_props = result[name]
            result[name] = (level or old_level, {**old_props, **props})
    errors = []
    for rule in ALL_RULES:
        schema = {"type": "object", "properties": dict(rule.config_schema)}
        for error in jsonschema.Draft7Validator(schema).iter_errors(result[rule.name][1]):
            errors.append(f"{rule.name}: {error.message}")
    if errors:
        raise ConfigRejected("; ".join(errors))
    return result


def _struct(value: Mapping[str, Any]) -> struct_pb2.Struct:
    return json_format.ParseDict(dict(value), struct_pb2.Struct())


def engine_findings(resources: Sequence[Resource], document: Mapping[str, Any]) -> list[Finding]:
    """Every violation the pack reports for these resources under this config file, as the engine records it
    (a resource policy's violation belongs to the resource the engine asked about)."""
    servicer = _PolicyAnalyzerServicer(PACK_NAME, "0.1.0", policies(), DEFAULT_ENFORCEMENT)
    configure = proto.ConfigureAnalyzerRequest()
    for name, (level, props) in reconcile(document).items():
        configure.policyConfig[name].CopyFrom(
            proto.PolicyConfig(enforcementLevel=_PROTO_LEVEL[level], properties=_struct(props))
        )
    servicer.Configure(configure, None)
    found: list[Finding] = []
    for r in resources:
        request = proto.AnalyzeRequest(
            type=r.type,
            properties=_struct(r.props),
            urn=r.urn,
            name=r.name,
            options=proto.AnalyzerResourceOptions(protect=r.protect),
        )
        for d in servicer.Analyze(request, None).diagnostics:
            found.append(Finding(d.policyName, _LEVEL_NAME[d.enforcementLevel], r.urn))
    stack = proto.AnalyzeStackRequest(
        resources=[
            proto.AnalyzerResource(
                type=r.type,
                # A stack policy sees each resource's state after the step: its outputs (inputs included).
                properties=_struct({**r.props, **r.outputs}),
                urn=r.urn,
                name=r.name,
                options=proto.AnalyzerResourceOptions(protect=r.protect),
                parent=r.parent or "",
                dependencies=list(r.dependencies),
            )
            for r in resources
        ]
    )
    for d in servicer.AnalyzeStack(stack, None).diagnostics:
        found.append(Finding(d.policyName, _LEVEL_NAME[d.enforcementLevel], d.urn or None))
    return sorted(found, key=lambda f: (f.policy, f.urn or "", f.enforcement))
