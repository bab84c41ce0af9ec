"""Tests for the instance and price catalog: data consistency, lookups, TPU slice math."""

from __future__ import annotations

import datetime
import re

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
    assert item.source.strip() and item.spot_source.strip()
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


@pytest.mark.parametrize("item", ALL, ids=lambda i: i.name)
def test_spot_is_cheaper_than_on_demand(item: catalog.InstanceType) -> None:
    assert 0 < item.spot_hourly < item.on_demand_hourly
    assert 0 < item.spot_discount < 1


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


def test_gcp_gpu_prices_include_the_gpus() -> None:
    # SkyPilot lists the GCP host and its GPUs as separate rows; a host-only figure would break these.
    one, four = catalog.instance("a2-highgpu-1g"), catalog.instance("a2-highgpu-4g")
    assert four.on_demand_hourly == pytest.approx(4 * one.on_demand_hourly, rel=1e-3)
    assert one.on_demand_hourly > 2.5  # an A100 alone costs more than the 12-vCPU host
    l4_small, l4_24 = catalog.instance("g2-standard-4"), catalog.instance("g2-standard-24")
    assert l4_small.on_demand_hourly > 0.5 > catalog.instance("n2-standard-8").on_demand_hourly
    assert l4_24.on_demand_hourly > 2 * 0.5


def test_post_june_2025_p_family_prices() -> None:
    # AWS cut P4d/P5 on-demand prices in June 2025; stale pages still show ~33 and ~98 USD/h.
    assert 50 < catalog.instance("p5.48xlarge").on_demand_hourly < 60
    assert 20 < catalog.instance("p4d.24xlarge").on_demand_hourly < 25


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


def test_tpu_host_price_is_per_host() -> None:
    v6e = catalog.instance("ct6e-standard-4t")
    one_chip = catalog.instance("ct6e-standard-1t")
    assert v6e.on_demand_hourly == pytest.approx(4 * one_chip.on_demand_hourly)


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


def test_rows_are_frozen() -> None:
    item = catalog.instance("g5.xlarge")
    with pytest.raises(AttributeError):
        item.on_demand_hourly = 0.0  # type: ignore[misc]
