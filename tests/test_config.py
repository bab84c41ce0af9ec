"""Every class of config error names the file, the key path, the bad value and what is allowed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlops_infra.platform.config import ENVIRONMENT_DEFAULTS, ConfigError, load_stack

from plan_support import REFERENCE_STACKS, STACKS

BASE: dict[str, Any] = {
    "aws:region": "us-east-1",
    "mlops-platform:environment": "dev",
    "mlops-platform:cloud": "aws",
    "mlops-platform:cluster": {"adminRoleArns": ["arn:aws:iam::123456789012:role/platform-admin"]},
    "mlops-platform:nodeGroups": [
        {"name": "system", "role": "system", "instanceTypes": ["m6i.large"], "minSize": 1, "maxSize": 3},
        {"name": "gpu", "role": "gpu", "instanceTypes": ["g5.xlarge"], "minSize": 0, "maxSize": 4},
    ],
}


def problems_for(tmp_path: Path, **changes: Any) -> list[str]:
    config = {**BASE, **{k.replace("__", ":"): v for k, v in changes.items()}}
    path = tmp_path / "Pulumi.bad.yaml"
    path.write_text(yaml.safe_dump({"config": config}))
    with pytest.raises(ConfigError) as info:
        load_stack(path)
    lines = [str(p) for p in info.value.problems]
    assert all(line.startswith(f"{path}: ") for line in lines)
    return lines


def only(lines: list[str]) -> str:
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.parametrize("stack", REFERENCE_STACKS)
def test_reference_stacks_are_valid(stack: str) -> None:
    load_stack(STACKS / f"Pulumi.{stack}.yaml")


def test_base_config_is_valid(tmp_path: Path) -> None:
    path = tmp_path / "Pulumi.ok.yaml"
    path.write_text(yaml.safe_dump({"config": BASE}))
    config = load_stack(path)
    gpu = config.node_groups[1]
    assert gpu.capacity == ENVIRONMENT_DEFAULTS["dev"].accelerator_capacity == "spot"
    assert config.node_groups[0].capacity == "on-demand"
    assert config.nat_gateways == "single" and not config.endpoint_private and not config.protect_stateful


def test_prod_defaults_are_safe(tmp_path: Path) -> None:
    path = tmp_path / "Pulumi.p.yaml"
    path.write_text(yaml.safe_dump({"config": {**BASE, "mlops-platform:environment": "prod"}}))
    config = load_stack(path)
    assert config.endpoint_private and config.protect_stateful and config.nat_gateways == "per-zone"
    assert config.node_groups[1].capacity == "on-demand" and config.defaults.zone_count == 3


def test_type_error(tmp_path: Path) -> None:
    line = only(problems_for(tmp_path, **{"mlops-platform__budget": {"monthlyUsd": "lots"}}))
    assert "mlops-platform:budget.monthlyUsd: got 'lots'" in line and "valid number" in line


def test_range_error(tmp_path: Path) -> None:
    groups = [
        dict(BASE["mlops-platform:nodeGroups"][0]),
        {**BASE["mlops-platform:nodeGroups"][1], "maxSize": -2},
    ]
    line = only(problems_for(tmp_path, **{"mlops-platform__nodeGroups": groups}))
    assert "mlops-platform:nodeGroups[1].maxSize: got -2: " in line and "greater than or equal to 1" in line


def test_enum_error_lists_allowed_values(tmp_path: Path) -> None:
    line = only(problems_for(tmp_path, **{"mlops-platform__environment": "staging"}))
    assert "mlops-platform:environment: got 'staging': allowed: 'dev', 'test' or 'prod'" in line


def test_unknown_top_level_key_suggests(tmp_path: Path) -> None:
    line = only(problems_for(tmp_path, **{"mlops-platform__nodeGroup": []}))
    assert "mlops-platform:nodeGroup" in line and "did you mean 'nodeGroups'?" in line


def test_unknown_nested_key_suggests(tmp_path: Path) -> None:
    groups = [
        dict(BASE["mlops-platform:nodeGroups"][0]),
        {**BASE["mlops-platform:nodeGroups"][1], "minSise": 0},
    ]
    line = only(problems_for(tmp_path, **{"mlops-platform__nodeGroups": groups}))
    assert "mlops-platform:nodeGroups[1].minSise" in line and "did you mean 'minSize'?" in line


def test_unquoted_version_is_explained(tmp_path: Path) -> None:
    cluster = {**BASE["mlops-platform:cluster"], "version": 1.3}
    line = only(problems_for(tmp_path, **{"mlops-platform__cluster": cluster}))
    assert "cluster.version: got 1.3" in line and 'quote the version, e.g. "1.3"' in line


def test_cross_field_min_desired_max(tmp_path: Path) -> None:
    gpu = {**BASE["mlops-platform:nodeGroups"][1], "minSize": 3, "desiredSize": 1, "maxSize": 2}
    lines = problems_for(
        tmp_path, **{"mlops-platform__nodeGroups": [BASE["mlops-platform:nodeGroups"][0], gpu]}
    )
    assert any("nodeGroups[1].minSize: got 3: must be <= maxSize (2)" in x for x in lines)
    assert any(
        "nodeGroups[1].desiredSize: got 1: must lie between minSize (3) and maxSize (2)" in x for x in lines
    )


def test_cross_field_zone_outside_region(tmp_path: Path) -> None:
    line = only(problems_for(tmp_path, **{"mlops-platform__zones": ["us-east-1a", "eu-west-1b"]}))
    assert "mlops-platform:zones[1]: got 'eu-west-1b': zones must lie in region us-east-1" in line


def test_cross_field_gpu_group_needs_gpu_instance(tmp_path: Path) -> None:
    gpu = {**BASE["mlops-platform:nodeGroups"][1], "instanceTypes": ["m6i.large"]}
    line = only(
        problems_for(tmp_path, **{"mlops-platform__nodeGroups": [BASE["mlops-platform:nodeGroups"][0], gpu]})
    )
    assert (
        "nodeGroups[1].instanceTypes[0]: got 'm6i.large': has no accelerator but the group's role is gpu"
        in line
    )
    assert "g5." in line  # names GPU types that would do


def test_unknown_instance_type_suggests(tmp_path: Path) -> None:
    gpu = {**BASE["mlops-platform:nodeGroups"][1], "instanceTypes": ["g5.xlarj"]}
    line = only(
        problems_for(tmp_path, **{"mlops-platform__nodeGroups": [BASE["mlops-platform:nodeGroups"][0], gpu]})
    )
    assert "instanceTypes[0]: got 'g5.xlarj'" in line and "g5.xlarge" in line


def test_all_problems_reported_at_once(tmp_path: Path) -> None:
    lines = problems_for(
        tmp_path,
        **{
            "mlops-platform__environment": "staging",
            "mlops-platform__clustr": {},
            "mlops-platform__tags": "x",
        },
    )
    assert len(lines) == 3


def test_public_endpoint_open_to_world_refused(tmp_path: Path) -> None:
    line = only(
        problems_for(
            tmp_path,
            **{
                "mlops-platform__cluster": {
                    **BASE["mlops-platform:cluster"],
                    "endpoint": {"publicCidrs": ["0.0.0.0/0"]},
                }
            },
        )
    )
    assert "publicCidrs" in line and "opens the API to the internet" in line


def test_invalid_yaml_names_line(tmp_path: Path) -> None:
    path = tmp_path / "Pulumi.broken.yaml"
    path.write_text("config:\n  mlops-platform:cloud: [aws\n")
    with pytest.raises(ConfigError) as info:
        load_stack(path)
    assert "is not valid YAML" in str(info.value) and "line " in str(info.value)


def test_cli_exits_2_with_one_line_per_problem_and_no_traceback(tmp_path: Path) -> None:
    gpu = {**BASE["mlops-platform:nodeGroups"][1], "minSize": 5, "maxSize": 2}
    config = {
        **BASE,
        "mlops-platform:environment": "qa",
        "mlops-platform:nodeGroups": [BASE["mlops-platform:nodeGroups"][0], gpu],
    }
    path = tmp_path / "Pulumi.bad.yaml"
    path.write_text(yaml.safe_dump({"config": config}))
    for command in (
        ["validate", str(path)],
        ["plan", str(path), "--json"],
        ["render", str(path), "--out", str(tmp_path)],
    ):
        result = subprocess.run(
            [sys.executable, "-m", "mlops_infra.tooling.cli", *command], capture_output=True, text=True
        )
        assert result.returncode == 2, command
        assert "Traceback" not in result.stderr and result.stdout == ""
        assert [line.split(": ")[1] for line in result.stderr.splitlines()] == ["mlops-platform:environment"]
    missing = subprocess.run(
        [sys.executable, "-m", "mlops_infra.tooling.cli", "plan", "nosuchstack"],
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 2 and "stack 'nosuchstack' not found" in missing.stderr


@pytest.mark.parametrize("workload", ["serving", "retraining"])
def test_gpu_workloads_need_a_gpu_group(tmp_path: Path, workload: str) -> None:
    cpu_only = [BASE["mlops-platform:nodeGroups"][0]]
    body = {"model": "fraud", "gpu": True} if workload == "serving" else {"gpu": True}
    line = only(
        problems_for(
            tmp_path,
            **{"mlops-platform__nodeGroups": cpu_only, "mlops-platform__workloads": {workload: body}},
        )
    )
    assert line.endswith(
        f"mlops-platform:workloads.{workload}.gpu: got true: needs a node group with role: gpu"
    )


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("schedule", "* * * * *", "runs every 1 min; at most every 60 min"),
        ("driftCheckSchedule", "*/2 * * * *", "runs every 2 min; at most every 5 min"),
        ("schedule", "61 3 * * *", "'61' is outside 0-59"),
    ],
)
def test_retraining_schedules_that_would_run_too_often_or_never(
    tmp_path: Path, key: str, value: str, message: str
) -> None:
    line = only(problems_for(tmp_path, **{"mlops-platform__workloads": {"retraining": {key: value}}}))
    assert f"mlops-platform:workloads.retraining.{key}: got {value!r}" in line
    assert message in line


def test_a_drift_threshold_no_drift_reaches_is_refused(tmp_path: Path) -> None:
    line = only(
        problems_for(tmp_path, **{"mlops-platform__workloads": {"retraining": {"driftThreshold": 10}}})
    )
    assert (
        "mlops-platform:workloads.retraining.driftThreshold: got 10: " in line
        and "less than or equal to 1" in line
    )
