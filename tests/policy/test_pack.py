"""The CrossGuard wrapping: the pack's policies call the same rule functions with the engine's arguments,
and honour per-rule config (the per-stack config files: test_policy_config.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from pulumi_policy import (
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from mlops_infra.tooling.plan import Plan
from mlops_policies.pack import policies, resource_from_args
from mlops_policies.runner import ALL_RULES, resources_from_plan
from mlops_policies.settings import PolicyConfigError, default_config, resolve

POLICIES_DIR = Path(__file__).resolve().parents[2] / "policies"


def _opts(protect: bool = False) -> PolicyResourceOptions:
    return PolicyResourceOptions(protect, [], False, [], None, [], None)  # type: ignore[arg-type]


def _by_name() -> dict[str, ResourceValidationPolicy | StackValidationPolicy]:
    return {p.name: p for p in policies()}


def test_every_rule_is_wrapped_with_its_scope() -> None:
    wrapped = _by_name()
    assert set(wrapped) == {r.name for r in ALL_RULES}
    for rule in ALL_RULES:
        expected = ResourceValidationPolicy if rule.scope == "resource" else StackValidationPolicy
        assert isinstance(wrapped[rule.name], expected), rule.name


def test_resource_policy_reports_through_the_engine_callback(stack_plan: Callable[[str], Plan]) -> None:
    cluster = next(r for r in stack_plan("prod").resources if r.type == "aws:eks/cluster:Cluster")
    props = json.loads(json.dumps(cluster.inputs))
    props["vpcConfig"]["endpointPublicAccess"] = True
    reports: list[tuple[str, str | None]] = []
    args = ResourceValidationArgs(
        cluster.type, props, cluster.urn, cluster.name, _opts(), None, config={"requirePrivate": True}
    )
    _by_name()["eks-endpoint-private"].validate(args, lambda m, u=None: reports.append((m, u)))
    assert len(reports) == 1 and "endpointPublicAccess=false" in reports[0][0]
    # with the dev setting (public allowed to listed CIDRs) the same resource passes
    reports.clear()
    props["vpcConfig"]["publicAccessCidrs"] = ["203.0.113.0/24"]
    args = ResourceValidationArgs(
        cluster.type, props, cluster.urn, cluster.name, _opts(), None, config={"requirePrivate": False}
    )
    _by_name()["eks-endpoint-private"].validate(args, lambda m, u=None: reports.append((m, u)))
    assert reports == []


def test_stack_policy_sees_protect_from_resource_options(stack_plan: Callable[[str], Plan]) -> None:
    plan = stack_plan("prod")
    resources = [
        PolicyResource(
            r.type,
            r.props,
            r.urn,
            r.name,
            _opts(protect=r.protect and r.type != "aws:s3/bucket:Bucket"),
            None,
            None,
            [],
            {},
        )
        for r in resources_from_plan(plan)
    ]
    reports: list[tuple[str, str | None]] = []
    _by_name()["prod-stateful-protected"].validate(
        StackValidationArgs(resources, config={"environment": "prod"}),
        lambda m, u=None: reports.append((m, u)),
    )
    [(message, urn)] = reports
    assert "protect=True" in message and urn is not None and "aws:s3/bucket:Bucket" in urn


def test_environment_is_inferred_from_tags_when_config_lacks_it(stack_plan: Callable[[str], Plan]) -> None:
    """Under the engine without a config file, the `environment` tag on cloud resources decides."""
    resources = [
        PolicyResource(r.type, r.props, r.urn, r.name, _opts(), None, None, [], {})
        for r in resources_from_plan(stack_plan("dev"))
    ]
    reports: list[str] = []
    _by_name()["prod-multi-az"].validate(StackValidationArgs(resources), lambda m, u=None: reports.append(m))
    assert reports == []  # dev's single NAT is not a prod finding
    retagged = [
        PolicyResource(
            r.resource_type,
            {**r.props, "tags": {**r.props["tags"], "environment": "prod"}} if "tags" in r.props else r.props,
            r.urn,
            r.name,
            _opts(),
            None,
            None,
            [],
            {},
        )
        for r in resources
    ]
    _by_name()["prod-multi-az"].validate(StackValidationArgs(retagged), lambda m, u=None: reports.append(m))
    assert any("one per zone" in m for m in reports)


def test_adapter_keeps_urn_name_and_type() -> None:
    args = ResourceValidationArgs(
        "aws:rds/instance:Instance", {"storageEncrypted": False}, "urn:x", "db", _opts(True), None
    )
    r = resource_from_args(args)
    assert (r.type, r.urn, r.name, r.protect) == ("aws:rds/instance:Instance", "urn:x", "db", True)


def test_prod_makes_every_rule_mandatory_and_dev_relaxes_cost_rules() -> None:
    prod = resolve(default_config("prod"), ALL_RULES)
    assert {level for level, _ in prod.values()} == {"mandatory"}
    dev = resolve(default_config("dev"), ALL_RULES)
    assert dev["budget-within-limit"][0] == "advisory"
    assert dev["s3-no-public-access"][0] == "mandatory"


def test_bad_policy_config_is_a_clear_error() -> None:
    with pytest.raises(PolicyConfigError, match="unknown rules budget-within-limits"):
        resolve({"budget-within-limits": "advisory"}, ALL_RULES)
    with pytest.raises(PolicyConfigError, match="allowed: advisory, mandatory"):
        resolve({"all": "blocking"}, ALL_RULES)


def test_pack_files_exist_and_main_only_builds_the_pack() -> None:
    main = (POLICIES_DIR / "__main__.py").read_text()
    assert "PolicyPack(" in main and "def " not in main  # rules live in mlops_policies
    manifest = (POLICIES_DIR / "PulumiPolicy.yaml").read_text()
    assert "runtime:" in manifest and "python" in manifest


def test_pack_starts_as_the_engine_would_run_it() -> None:
    """`python policies/__main__.py` builds the PolicyPack and serves it: the first stdout line is its port."""
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "__main__.py"],
        cwd=POLICIES_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.isdigit() and int(line) > 0, proc.stderr.read() if proc.stderr else line
    finally:
        proc.terminate()
        proc.wait(timeout=10)
