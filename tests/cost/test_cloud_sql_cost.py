"""Cloud SQL is priced the way Google bills a custom tier (vCPUs + memory + SSD storage), doubled for a REGIONAL
(HA) instance; the figures reproduce Infracost's us-central1 golden output for db-custom-2-7680."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from policy.plan_edits import edit_plan

from mlops_infra.tooling.cost.estimator import estimate_plan
from mlops_infra.tooling.plan import Plan

INSTANCE = "gcp:sql/databaseInstance:DatabaseInstance"


def _lines(plan: Plan) -> dict[str, dict[str, Any]]:
    items = [i for i in estimate_plan(plan).to_json()["items"] if i["type"] == INSTANCE]
    return {i["sku"]: i for i in items}


def _settings(**changes: Any) -> Callable[[dict[str, Any]], None]:
    return lambda inputs: inputs["settings"].update(changes)


def test_prod_gcp_prices_its_regional_instance(stack_plan: Callable[[str], Plan]) -> None:
    """Fails on the estimator that knew only RDS: the instance carried no cost at all."""
    lines = _lines(stack_plan("prod-gcp"))
    assert set(lines) == {
        "cloudsql-enterprise-vcpu",
        "cloudsql-enterprise-memory-gb",
        "cloudsql-ssd-gb-month",
    }
    # db-custom-2-7680, REGIONAL, 20 GB: Infracost's golden gives 120.60 + 76.65 and 3.40 per 10 GB.
    assert lines["cloudsql-enterprise-vcpu"]["quantity"]["expected"] == 4  # 2 vCPUs x primary + standby
    assert lines["cloudsql-enterprise-vcpu"]["monthly"]["expected"] == pytest.approx(120.60, abs=0.01)
    assert lines["cloudsql-enterprise-memory-gb"]["quantity"]["expected"] == 15
    assert lines["cloudsql-enterprise-memory-gb"]["monthly"]["expected"] == pytest.approx(76.65, abs=0.01)
    assert lines["cloudsql-ssd-gb-month"]["quantity"]["expected"] == 40
    assert lines["cloudsql-ssd-gb-month"]["monthly"]["expected"] == pytest.approx(6.80, abs=0.01)
    assert all("REGIONAL" in line["note"] for line in lines.values())


def test_a_zonal_instance_costs_half(stack_plan: Callable[[str], Plan]) -> None:
    regional = _lines(stack_plan("prod-gcp"))
    zonal = _lines(
        edit_plan(stack_plan("prod-gcp"), lambda r: r.type == INSTANCE, _settings(availabilityType="ZONAL"))
    )
    for sku, line in zonal.items():
        assert line["monthly"]["expected"] * 2 == pytest.approx(
            regional[sku]["monthly"]["expected"], abs=0.02
        )
        assert "note" not in line


def test_tier_and_disk_size_come_from_the_instance(stack_plan: Callable[[str], Plan]) -> None:
    bigger = edit_plan(
        stack_plan("prod-gcp"),
        lambda r: r.type == INSTANCE,
        _settings(tier="db-custom-4-15360", diskSize=100, availabilityType="ZONAL"),
    )
    lines = _lines(bigger)
    assert lines["cloudsql-enterprise-vcpu"]["quantity"]["expected"] == 4
    assert lines["cloudsql-enterprise-memory-gb"]["quantity"]["expected"] == 15
    assert lines["cloudsql-ssd-gb-month"]["monthly"]["expected"] == pytest.approx(17.0, abs=0.01)


def test_an_edition_without_a_catalog_price_is_not_priced_as_enterprise(
    stack_plan: Callable[[str], Plan],
) -> None:
    plus = edit_plan(
        stack_plan("prod-gcp"),
        lambda r: r.type == INSTANCE,
        _settings(edition="ENTERPRISE_PLUS", tier="db-perf-optimized-N-2"),
    )
    lines = _lines(plus)
    # counted as one unpriced line (0 in the totals), never priced with the Enterprise rates
    assert list(lines) == ["cloudsql:ENTERPRISE_PLUS:db-perf-optimized-N-2"]
    (line,) = lines.values()
    assert line["unpriced"] is True and line["monthly"] == {"min": 0.0, "expected": 0.0, "max": 0.0}
    assert "ENTERPRISE_PLUS" in line["reason"]
