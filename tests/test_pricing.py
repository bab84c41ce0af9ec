"""The generated per-region price tables: shape, coverage of the catalog, dates, and what a quote says."""

from __future__ import annotations

import datetime
import json
import re
from importlib import resources

import pytest

from mlops_infra.components import catalog, pricing

TABLES = pricing.tables()
SHIPPED = {
    ("aws", "us-east-1"),
    ("aws", "us-west-2"),
    ("aws", "eu-west-1"),
    ("gcp", "us-central1"),
    ("gcp", "europe-west4"),
}


def test_the_regions_the_reference_stacks_and_most_users_need_are_shipped() -> None:
    assert {(t.cloud, t.region) for t in TABLES} >= SHIPPED
    assert "eu-west-1" in pricing.regions("aws") and "europe-west4" in pricing.regions("gcp")


@pytest.mark.parametrize("table", TABLES, ids=lambda t: t.file)
def test_table_shape_names_dataset_commit_and_date(table: pricing.PriceTable) -> None:
    raw = json.loads(
        resources.files("mlops_infra.components.catalog_data").joinpath("prices", table.file).read_text()
    )
    assert raw["generatedBy"] == "scripts/build_price_tables.py"
    assert {
        "schema",
        "cloud",
        "region",
        "currency",
        "unit",
        "asOf",
        "retrieved",
        "datasets",
        "instances",
        "absent",
    } <= set(raw)
    assert table.datasets
    for ds in table.datasets.values():
        assert re.fullmatch(r"[0-9a-f]{40}", ds.commit), ds
        assert ds.repository.startswith("https://github.com/") and ds.path and ds.name
        assert ds.date_basis in ("commit", "generated", "unknown") and (ds.date is None) == (
            ds.date_basis == "unknown"
        )
        assert datetime.date.fromisoformat(ds.retrieved) <= datetime.date.today()
    assert table.as_of <= table.retrieved <= datetime.date.today().isoformat()
    for name, row in table.instances.items():
        assert row.on_demand is not None and row.on_demand > 0, name
        if row.spot is not None:
            assert 0 < row.spot < row.on_demand, name
        assert row.on_demand_basis in ("read", "derived")
        assert row.sources and set(row.sources) <= set(table.datasets)
        assert (row.on_demand_basis == "derived") <= bool(row.note), f"{name}: a derived figure says how"


@pytest.mark.parametrize("table", TABLES, ids=lambda t: t.file)
def test_every_catalog_type_is_priced_or_explicitly_absent(table: pricing.PriceTable) -> None:
    """A built-in type missing from a table would be silently unpriced: it must be priced, or listed as not
    offered in that region with the dataset's reason."""
    names = {i.name for i in catalog.instances(table.cloud, builtin_only=True)}
    assert set(table.instances) | set(table.absent) == names
    assert not set(table.instances) & set(table.absent)
    assert all(reason.strip() for reason in table.absent.values())


@pytest.mark.parametrize("table", TABLES, ids=lambda t: t.file)
def test_no_table_is_older_than_the_catalog_claims(table: pricing.PriceTable) -> None:
    """The catalog's rows say when they were read; a table regenerated from an older read of the data (or
    not regenerated after the catalog was) would price with figures older than that claim."""
    claimed = max(i.as_of for i in catalog.instances(table.cloud, builtin_only=True))
    assert table.retrieved >= claimed, f"{table.file} retrieved {table.retrieved}, catalog claims {claimed}"


def test_reference_regions_price_every_type_the_reference_stacks_use() -> None:
    for cloud, region in pricing.REFERENCE_REGIONS.items():
        table = pricing.table(cloud, region)
        assert table is not None
        assert {
            "m6i.large",
            "g5.xlarge",
            "g6.xlarge",
            "inf2.xlarge",
            "e2-standard-4",
            "ct5lp-hightpu-4t",
        } & set(table.absent) == set()


def test_eu_west_1_prices_differ_from_us_east_1_by_the_dataset_figures() -> None:
    # SkyPilot catalog catalogs/v7/aws/vms.csv @001367d: g5.xlarge Price 1.123 in eu-west-1 (all zones);
    # us-east-1 on-demand 1.006 (SkyPilot and Karpenter agree); spot = median of the per-zone spot prices.
    east = pricing.quote("g5.xlarge", spot=False, region="us-east-1")
    west = pricing.quote("g5.xlarge", spot=False, region="eu-west-1")
    assert (east.hourly, west.hourly) == (1.006, 1.123)
    assert west.region == "eu-west-1" and not west.estimated
    assert "eu-west-1" in west.source and "@001367d22a00" in west.source
    assert pricing.hourly("g5.xlarge", spot=True, region="eu-west-1") == 0.5084
    assert pricing.hourly("g5.xlarge", spot=True, region="us-east-1") == 0.4028


def test_post_june_2025_p_family_prices_in_us_east_1() -> None:
    # AWS cut P4d/P5 on-demand prices in June 2025; the SkyPilot snapshot (98.32 / 32.77) predates the cut,
    # so Karpenter's newer us-east-1 table wins there.
    assert 50 < (pricing.hourly("p5.48xlarge", spot=False) or 0) < 60
    assert 20 < (pricing.hourly("p4d.24xlarge", spot=False) or 0) < 25


def test_a_derived_figure_is_an_estimate_and_says_how() -> None:
    quote = pricing.quote("p4d.24xlarge", spot=False, region="eu-west-1")
    assert quote.hourly is not None and 20 < quote.hourly < 30
    assert quote.estimated and "DERIVED" in quote.estimated[0] and "Karpenter" in quote.estimated[0]


def test_a_type_not_offered_in_the_region_is_unpriced_with_the_reason() -> None:
    quote = pricing.quote("g6.xlarge", spot=False, region="eu-west-1")
    assert quote.hourly is None and "not offered in eu-west-1" in quote.unpriced


def test_a_region_without_a_table_falls_back_to_the_reference_figures_marked_estimated() -> None:
    quote = pricing.quote("g5.xlarge", spot=False, region="ap-south-1")
    assert quote.hourly == 1.006 and quote.region == "us-east-1"
    assert quote.estimated == ("no aws price table for ap-south-1: us-east-1 figures",)
    unknown = pricing.quote("e2-standard-4", spot=False, region=None)
    assert unknown.region == "us-central1" and "stack region unknown" in unknown.estimated[0]


def test_a_flagged_dataset_figure_is_an_estimate() -> None:
    # europe-west4's A100 row is half of us-central1's in the dataset: the builder flags it for a re-check
    quote = pricing.quote("a2-highgpu-1g", spot=False, region="europe-west4")
    assert quote.hourly is not None and any(r.startswith("check: ") for r in quote.estimated)
    assert not pricing.quote("a2-highgpu-1g", spot=False, region="us-central1").estimated


def test_gcp_gpu_prices_include_the_gpus() -> None:
    # SkyPilot lists the GCP host and its GPUs as separate rows; a host-only figure would break these.
    one, four = (pricing.hourly(n, spot=False) or 0.0 for n in ("a2-highgpu-1g", "a2-highgpu-4g"))
    assert four == pytest.approx(4 * one, rel=1e-3)
    assert one > 2.5  # an A100 alone costs more than the 12-vCPU host
    l4_small, l4_24 = (pricing.hourly(n, spot=False) or 0.0 for n in ("g2-standard-4", "g2-standard-24"))
    assert l4_small > 0.5 > (pricing.hourly("n2-standard-8", spot=False) or 0.0)
    assert l4_24 > 2 * 0.5


def test_tpu_host_price_is_per_host() -> None:
    four, one = (pricing.hourly(n, spot=False) for n in ("ct6e-standard-4t", "ct6e-standard-1t"))
    assert four == pytest.approx(4 * (one or 0.0))
    # TPU v4 is offered only in us-central2: absent from the shipped GCP regions, never guessed
    assert "not offered" in pricing.quote("ct4p-hightpu-4t", spot=False, region="us-central1").unpriced


def test_spot_discount() -> None:
    discount = pricing.spot_discount("g5.xlarge")
    assert discount is not None and 0 < discount < 1
    assert pricing.spot_discount("no-such-type") is None


def test_an_unknown_type_is_unpriced_not_an_error() -> None:
    quote = pricing.quote("g99.mega", spot=False, region="us-east-1")
    assert quote.hourly is None and "not in the instance catalog" in quote.unpriced
