"""Config for MLflow's managed database on GCP: prod defaults to Cloud SQL, other environments to in-cluster;
invalid combinations (managed Redis on gcp, a tier Cloud SQL refuses) exit 2 naming the key; the other cloud's
size key is named in a warning (ignored)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlops_infra.components import catalog
from mlops_infra.platform.config import ConfigError, StackConfig, load_stack, override_warnings

from plan_support import STACKS, load_stack_doc

Mutate = Callable[[dict[str, Any]], None]


def _write(tmp_path: Path, stack: str, mutate: Mutate) -> Path:
    doc = load_stack_doc(stack)
    mutate(doc["config"])
    path = (
        tmp_path / f"Pulumi.edited-{stack}.yaml"
    )  # a name that is no environment: any environment may follow
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _load(tmp_path: Path, stack: str, mutate: Mutate) -> StackConfig:
    return load_stack(_write(tmp_path, stack, mutate))


def _problems(tmp_path: Path, stack: str, mutate: Mutate) -> list[str]:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, stack, mutate)
    return [str(p) for p in info.value.problems]


def _mlflow(**changes: Any) -> Mutate:
    def mutate(cfg: dict[str, Any]) -> None:
        mlflow = cfg["mlops-platform:services"]["mlflow"]
        for key, value in changes.items():
            if value is None:
                mlflow.pop(key, None)
            else:
                mlflow[key] = value

    return mutate


@pytest.mark.parametrize(
    ("environment", "expected"), [("prod", "managed"), ("test", "in-cluster"), ("dev", "in-cluster")]
)
def test_environment_decides_the_gcp_default(tmp_path: Path, environment: str, expected: str) -> None:
    def mutate(cfg: dict[str, Any]) -> None:
        cfg["mlops-platform:environment"] = environment
        _mlflow(database=None)(cfg)

    config = _load(tmp_path, "prod-gcp", mutate)
    assert config.mlflow_database == expected
    assert config.redis_mode == "in-cluster", "no managed Redis on gcp: prod keeps it in the cluster"


def test_aws_and_local_defaults_are_unchanged() -> None:
    assert load_stack(STACKS / "Pulumi.prod.yaml").mlflow_database == "managed"
    assert load_stack(STACKS / "Pulumi.prod.yaml").redis_mode == "managed"
    for stack in ("dev", "local"):
        config = load_stack(STACKS / f"Pulumi.{stack}.yaml")
        assert (config.mlflow_database, config.redis_mode) == ("in-cluster", "in-cluster")


def test_managed_redis_on_gcp_names_the_key(tmp_path: Path) -> None:
    def mutate(cfg: dict[str, Any]) -> None:
        cfg["mlops-platform:services"]["redis"]["mode"] = "managed"

    [line] = _problems(tmp_path, "prod-gcp", mutate)
    assert ": mlops-platform:services.redis.mode: got 'managed': managed is implemented for aws only" in line


@pytest.mark.parametrize(
    ("tier", "words"),
    [
        ("db-custom-3-7680", "1 or an even number"),
        ("db-custom-2-7000", "multiple of 256 MB"),
        ("db-custom-1-3584", "at least 3.75 GB"),
        ("db-custom-2-13568", "0.9-6.5 GB per vCPU"),
        ("db-perf-optimized-N-2", "db-custom-<vCPUs>-<memory MB>"),
    ],
)
def test_a_tier_cloud_sql_refuses_names_the_key_and_the_rule(tmp_path: Path, tier: str, words: str) -> None:
    [line] = _problems(tmp_path, "prod-gcp", _mlflow(databaseTier=tier))
    assert f": mlops-platform:services.mlflow.databaseTier: got '{tier}': " in line and words in line


def test_the_other_clouds_size_key_is_named_as_ignored(tmp_path: Path) -> None:
    for stack, key, value, cloud in (
        ("prod-gcp", "databaseInstanceClass", "db.r6g.large", "aws"),
        ("prod", "databaseTier", "db-custom-2-7680", "gcp"),
    ):
        path = _write(tmp_path, stack, _mlflow(**{key: value}))
        [warning] = [str(w) for w in override_warnings(load_stack(path), str(path))]
        assert (
            f": mlops-platform:services.mlflow.{key}: got '{value}': only used on {cloud} stacks" in warning
        )


def test_cli_exits_2_without_a_traceback(tmp_path: Path) -> None:
    path = _write(tmp_path, "prod-gcp", _mlflow(databaseTier="db-custom-3-7680"))
    result = subprocess.run(
        [sys.executable, "-m", "mlops_infra.tooling.cli", "validate", str(path)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert [line.split(": ")[1] for line in result.stderr.splitlines()] == [
        "mlops-platform:services.mlflow.databaseTier"
    ]


@pytest.mark.parametrize(
    ("tier", "vcpu", "memory_gb"),
    [("db-custom-1-3840", 1, 3.75), ("db-custom-2-7680", 2, 7.5), ("db-custom-96-638976", 96, 624.0)],
)
def test_custom_tiers_parse_to_vcpus_and_memory(tier: str, vcpu: int, memory_gb: float) -> None:
    parsed = catalog.cloud_sql_tier(tier)
    assert (parsed.vcpu, parsed.memory_gb) == (vcpu, memory_gb)
