"""`autoscaler.engine`: what a Karpenter stack must say, and what it says that Karpenter does not read."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_config import BASE, only, problems_for

from mlops_infra.platform.config import load_stack, override_warnings


def _write(tmp_path: Path, name: str = "dev", **changes: Any) -> Path:
    config = {**BASE, **{k.replace("__", ":"): v for k, v in changes.items()}}
    path = tmp_path / f"Pulumi.{name}.yaml"
    path.write_text(yaml.safe_dump({"config": config}))
    return path


def test_cluster_autoscaler_stays_the_default(tmp_path: Path) -> None:
    assert load_stack(_write(tmp_path)).autoscaler.engine == "cluster-autoscaler"


def test_unknown_engine_lists_the_allowed_ones(tmp_path: Path) -> None:
    line = only(problems_for(tmp_path, **{"mlops-platform__autoscaler": {"engine": "karpentr"}}))
    assert (
        "mlops-platform:autoscaler.engine: got 'karpentr': allowed: 'cluster-autoscaler' or 'karpenter'"
        in line
    )


def test_karpenter_is_aws_only(tmp_path: Path) -> None:
    lines = problems_for(
        tmp_path,
        **{
            "mlops-platform__cloud": "gcp",
            "gcp__region": "us-central1",
            "gcp__project": "p",
            "mlops-platform__zones": ["us-central1-a"],
            "mlops-platform__nodeGroups": [
                {
                    "name": "system",
                    "role": "system",
                    "instanceTypes": ["e2-standard-4"],
                    "minSize": 1,
                    "maxSize": 3,
                }
            ],
            "mlops-platform__autoscaler": {"engine": "karpenter"},
        },
    )
    assert any(
        "mlops-platform:autoscaler.engine: got 'karpenter': Karpenter is implemented for aws" in x
        for x in lines
    )


def test_karpenter_cannot_be_switched_off(tmp_path: Path) -> None:
    line = only(
        problems_for(tmp_path, **{"mlops-platform__autoscaler": {"engine": "karpenter", "enabled": False}})
    )
    assert (
        "mlops-platform:autoscaler.enabled: got false: with engine: karpenter the non-system groups" in line
    )


def test_prod_pins_the_ami_karpenter_boots(tmp_path: Path) -> None:
    prod = {
        "mlops-platform__environment": "prod",
        "mlops-platform__cluster": {**BASE["mlops-platform:cluster"], "endpoint": {"private": True}},
        "mlops-platform__nodeGroups": [
            {"name": "system", "role": "system", "instanceTypes": ["m6i.large"], "minSize": 2, "maxSize": 3}
        ],
    }
    line = only(problems_for(tmp_path, **prod, **{"mlops-platform__autoscaler": {"engine": "karpenter"}}))
    assert "mlops-platform:autoscaler.amiVersion: got null: prod pins the AMI Karpenter boots" in line
    config = load_stack(
        _write(
            tmp_path,
            "prod",
            **prod,
            **{"mlops-platform__autoscaler": {"engine": "karpenter", "amiVersion": "v20260724"}},
        )
    )
    assert config.autoscaler.ami_version == "v20260724"


def test_ami_version_is_an_eks_ami_release_tag(tmp_path: Path) -> None:
    line = only(
        problems_for(
            tmp_path, **{"mlops-platform__autoscaler": {"engine": "karpenter", "amiVersion": "latest"}}
        )
    )
    assert line.split(": got ")[0].endswith("mlops-platform:autoscaler.amiVersion")


def test_settings_the_engine_does_not_read_are_warnings(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        **{
            "mlops-platform__autoscaler": {"engine": "karpenter", "expander": "least-waste"},
            "mlops-platform__nodeGroups": [
                *BASE["mlops-platform:nodeGroups"][:1],
                {"name": "cpu", "role": "cpu", "instanceTypes": ["m6i.large"], "minSize": 2, "maxSize": 4},
            ],
        },
    )
    warnings = [str(w) for w in override_warnings(load_stack(path), str(path))]
    assert any(
        "mlops-platform:autoscaler.expander: got 'least-waste': only cluster-autoscaler reads it; ignored with "
        "engine: karpenter" in w
        for w in warnings
    )
    assert any(
        "mlops-platform:nodeGroups[1].minSize: got 2: Karpenter keeps no idle minimum" in w for w in warnings
    )
    ca = _write(tmp_path, "ca", **{"mlops-platform__autoscaler": {"amiVersion": "v20260724"}})
    (warning,) = [str(w) for w in override_warnings(load_stack(ca), str(ca))]
    assert "autoscaler.amiVersion" in warning and "only karpenter reads it" in warning


def test_reference_karpenter_stack_has_no_warnings() -> None:
    path = Path(__file__).parents[1] / "stacks" / "Pulumi.prod-karpenter.yaml"
    assert override_warnings(load_stack(path), str(path)) == []


def test_cli_reports_engine_problems_with_exit_2(tmp_path: Path) -> None:
    path = _write(tmp_path, **{"mlops-platform__autoscaler": {"engine": "karpenter", "enabled": False}})
    done = subprocess.run(
        [sys.executable, "-m", "mlops_infra.tooling.cli", "validate", str(path)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "autoscaler.enabled" in done.stderr + done.stdout


@pytest.mark.parametrize("engine", ["cluster-autoscaler", "karpenter"])
def test_both_engines_validate(tmp_path: Path, engine: str) -> None:
    path = _write(tmp_path, **{"mlops-platform__autoscaler": {"engine": engine}})
    assert load_stack(path).autoscaler.engine == engine
