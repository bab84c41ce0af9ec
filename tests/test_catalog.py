"""Tests for the instance catalog (specs) and service prices: data consistency, lookups, TPU slice math,
team catalog files. Instance prices per region: tests/test_pricing.py."""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlops_infra.components import catalog
from mlops_infra.components.catalog import UnknownInstanceType

ALL = catalog.instances()


def test_catalog_covers_both_clouds_and_all_accelerator_kinds() -> None:
    assert {i.cloud for i in ALL} == {"aws", "gcp"}
    assert {i.accelerator_kind for i in ALL} == {None, "gpu", "neuron", "tpu"}
    assert len(catalog.instances("aws", "gpu")) >= 15
    assert all(i.cloud == "gcp" for i in catalog.instances("gcp"))


@pytest.mark.parametrize("item", ALL, ids=lambda i: i.name)
def test_every_row_is_sourced_and_dated(item: catalog.InstanceType) -> None:
    assert item.source.strip() and item.origin == "built-in"
    assert datetime.date.fromisoformat(item.as_of) <= datetime.date.today()
    # ids must have been resolved to citations, not left as bare keys
    assert "/" in item.source or "http" in item.source


@pytest.mark.parametrize("item", ALL, ids=lambda i: i.name)
def test_accelerator_kind_matches_name(item: catalog.InstanceType) -> None:
    if item.cloud == "aws":
        expected = (
            "gpu"
            if re.match(r"^(g\d|p\d)", item.name)
            else "neuron"
            if re.match(r"^(inf|trn)\d", item.name)
            else None
        )
    else:
        expected = "tpu" if item.name.startswith("ct") else ("gpu" if item.gke_accelerator else None)
    assert item.accelerator_kind == expected
    assert (item.accelerator_count > 0) == (expected is not None)
    assert (item.neuron_cores > 0) == (expected == "neuron")


def test_gcp_nodes_use_gke_max_pods_and_aws_nodes_eni_limits() -> None:
    assert all(i.max_pods == 110 for i in catalog.instances("gcp"))
    assert catalog.instance("t3.medium").max_pods == 17
    assert catalog.instance("m6i.large").max_pods == 29


def test_known_accelerator_counts() -> None:
    g5 = catalog.instance("g5.12xlarge")
    assert (g5.accelerator, g5.accelerator_count, g5.vcpu, g5.memory_gib) == ("nvidia-a10g", 4, 48, 192)
    p5 = catalog.instance("p5.48xlarge")
    assert (p5.accelerator, p5.accelerator_count, p5.accelerator_memory_gib) == ("nvidia-h100", 8, 80)
    inf2 = catalog.instance("inf2.48xlarge")
    assert (inf2.accelerator_count, inf2.neuron_cores) == (12, 24)
    assert catalog.instance("trn1.32xlarge").neuron_cores == 32
    assert catalog.instance("m7g.large").arch == "arm64"


@pytest.mark.parametrize(
    ("machine", "accelerator", "count", "gke_label", "gpu_mem"),
    [
        ("g2-standard-4", "nvidia-l4", 1, "nvidia-l4", 24),
        ("g2-standard-8", "nvidia-l4", 1, "nvidia-l4", 24),
        ("g2-standard-24", "nvidia-l4", 2, "nvidia-l4", 24),
        ("a2-highgpu-1g", "nvidia-a100", 1, "nvidia-tesla-a100", 40),
        ("a2-highgpu-2g", "nvidia-a100", 2, "nvidia-tesla-a100", 40),
        ("a2-highgpu-4g", "nvidia-a100", 4, "nvidia-tesla-a100", 40),
        ("a3-highgpu-8g", "nvidia-h100", 8, "nvidia-h100-80gb", 80),
    ],
)
def test_gcp_gpu_machine_types(
    machine: str, accelerator: str, count: int, gke_label: str, gpu_mem: int
) -> None:
    item = catalog.instance(machine)
    assert (item.cloud, item.accelerator_kind, item.max_pods) == ("gcp", "gpu", 110)
    assert (item.accelerator, item.accelerator_count, item.gke_accelerator) == (accelerator, count, gke_label)
    assert item.accelerator_memory_gib == gpu_mem


@pytest.mark.parametrize(
    ("machine", "topology", "hosts"),
    [
        ("ct5lp-hightpu-4t", "2x2", 1),
        ("ct5lp-hightpu-4t", "2x4", 2),
        ("ct5lp-hightpu-4t", "4x4", 4),
        ("ct5lp-hightpu-4t", "16x16", 64),
        ("ct5lp-hightpu-8t", "2x4", 1),
        ("ct5lp-hightpu-1t", "1x1", 1),
        ("ct5p-hightpu-4t", "2x2x1", 1),
        ("ct5p-hightpu-4t", "2x2x4", 4),
        ("ct6e-standard-4t", "4x8", 8),
        ("ct4p-hightpu-4t", "2x2x1", 1),
        ("ct4p-hightpu-4t", "2x2x4", 4),
        ("ct4p-hightpu-4t", "2x4x4", 8),
        ("ct4p-hightpu-4t", "8x16x16", 512),
    ],
)
def test_tpu_hosts(machine: str, topology: str, hosts: int) -> None:
    assert catalog.tpu_hosts(machine, topology) == hosts


def test_tpu_hosts_rejects_unsupported_topology_and_non_tpu() -> None:
    with pytest.raises(ValueError, match="not supported by ct5lp-hightpu-8t"):
        catalog.tpu_hosts("ct5lp-hightpu-8t", "4x4")
    with pytest.raises(ValueError, match="not a TPU"):
        catalog.tpu_hosts("g5.xlarge", "2x2")
    with pytest.raises(ValueError, match="invalid TPU topology"):
        catalog.tpu_hosts("ct5lp-hightpu-4t", "4by4")


@pytest.mark.parametrize(("topology", "chips"), [("1x1", 1), ("2x2", 4), ("4x4", 16), ("2x2x2", 8)])
def test_topology_chips(topology: str, chips: int) -> None:
    assert catalog.topology_chips(topology) == chips


@pytest.mark.parametrize("bad", ["", "4", "2x0", "axb", "2x2x2x2", "-2x2"])
def test_topology_chips_rejects_garbage(bad: str) -> None:
    with pytest.raises(ValueError):
        catalog.topology_chips(bad)


def test_unknown_instance_suggests_close_names() -> None:
    with pytest.raises(UnknownInstanceType) as err:
        catalog.instance("g5.12xlarg")
    assert isinstance(err.value, KeyError)
    assert "did you mean g5.12xlarge" in str(err.value)
    assert catalog.find_instance("g5.12xlarg") is None
    assert catalog.find_instance("g5.xlarge") is catalog.instance("g5.xlarge")


def test_services_lookup_and_suggestions() -> None:
    assert catalog.service_price("eks-control-plane").price == 0.10
    assert catalog.service_price("nat-gateway-gb").unit == "gb"
    assert catalog.service_price("gke-cluster-management").cloud == "gcp"
    for sku in ("rds:db.r6g.large", "elasticache:cache.r7g.large", "rds-multi-az-factor", "kms-key-month"):
        assert catalog.service_price(sku).price > 0
    with pytest.raises(KeyError, match="did you mean eks-control-plane"):
        catalog.service_price("eks-controlplane")
    assert {s.cloud for s in catalog.services("aws")} == {"aws"}
    assert all(s.source and s.as_of for s in catalog.services())
    # the UNVERIFIED / DERIVED markers of a citation make the estimator count the line as estimated
    assert "UNVERIFIED" in catalog.service_price("s3-standard-gb-month").estimate_reason
    assert catalog.service_price("eks-control-plane").estimate_reason == ""


def test_rows_are_frozen() -> None:
    item = catalog.instance("g5.xlarge")
    with pytest.raises(AttributeError):
        item.vcpu = 0  # type: ignore[misc]


TEAM_FILE = """
sources:
  vendor: "https://aws.amazon.com/ec2/instance-types/g6e/ (read 2026-11-20)"
defaults: {cloud: aws, as_of: "2026-11-20"}
instances:
  - {name: g6e.2xlarge, vcpu: 8, memory_gib: 64, accelerator_kind: gpu, accelerator: nvidia-l40s,
     accelerator_count: 1, accelerator_memory_gib: 44.7, max_pods: 58, source: vendor,
     prices: {us-east-1: {on_demand_hourly: 2.24208}}}
  - {name: x9.large, vcpu: 2, memory_gib: 8, max_pods: 29}
"""


@pytest.fixture
def team_file(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "team-instances.yaml"
    path.write_text(TEAM_FILE)
    yield path
    catalog.forget_team_types()


def test_a_team_file_adds_instance_types_with_their_facts(team_file: Path) -> None:
    added = catalog.register_instance_file(team_file)
    assert [i.name for i in added] == ["g6e.2xlarge", "x9.large"]
    g6e = catalog.instance("g6e.2xlarge")
    assert (g6e.accelerator, g6e.accelerator_count, g6e.origin) == ("nvidia-l40s", 1, str(team_file))
    assert g6e.source.startswith("https://aws.amazon.com") and g6e.as_of == "2026-11-20"
    assert catalog.instance("x9.large").source == f"team catalog {team_file}"
    assert "g6e.2xlarge" in [i.name for i in catalog.instances("aws", "gpu")]
    assert "g6e.2xlarge" not in [i.name for i in catalog.instances("aws", "gpu", builtin_only=True)]
    prices = catalog.team_prices("g6e.2xlarge")
    assert prices is not None and prices["us-east-1"].on_demand_hourly == 2.24208
    assert prices["us-east-1"].spot_hourly is None
    assert catalog.team_prices("g5.xlarge") is None
    catalog.register_instance_file(team_file)  # the same file again: a no-op


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("instances: [{name: g5.xlarge, cloud: aws, vcpu: 4, memory_gib: 16, max_pods: 58}]", "built-in"),
        ("instances: [{name: y1, cloud: aws, vcpu: 4, memory_gib: 16}]", "max_pods"),
        (
            "instances: [{name: y1, cloud: aws, vcpu: 4, memory_gib: 16, max_pods: 5, gpus: 1}]",
            "unknown keys",
        ),
        (
            "instances: [{name: y1, cloud: aws, vcpu: 4, memory_gib: 16, max_pods: 5, prices: {us-east-1: {}}}]",
            "on_demand_hourly and/or spot_hourly",
        ),
        ("machines: []", "`instances` list"),
        ("[unclosed", "not valid YAML"),
    ],
)
def test_a_bad_team_file_names_file_and_row(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(catalog.CatalogDataError, match=re.escape(message)) as err:
        catalog.register_instance_file(path)
    assert str(path) in str(err.value)
    assert catalog.find_instance("y1") is None
    with pytest.raises(catalog.CatalogDataError, match="cannot be read"):
        catalog.register_instance_file(tmp_path / "missing.yaml")
