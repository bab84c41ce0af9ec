"""Cost estimates of the reference stacks: totals add up, every line is priced and cited from the catalog,
node groups, managed services, TPU slices, schedules and usage files are counted the documented way."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from policy.plan_edits import edit_plan

from mlops_infra.components import catalog, pricing
from mlops_infra.tooling.cli import main
from mlops_infra.tooling.cost.estimator import HOURS_PER_MONTH, Usage, estimate_plan
from mlops_infra.tooling.plan import Plan

from plan_support import REFERENCE_STACKS, ROOT


def _items(doc: dict[str, Any], name_suffix: str, sku_prefix: str = "") -> list[dict[str, Any]]:
    return [
        i for i in doc["items"] if i["urn"].endswith("::" + name_suffix) and i["sku"].startswith(sku_prefix)
    ]


@pytest.mark.parametrize("stack", REFERENCE_STACKS)
def test_items_sum_to_totals_and_each_line_is_quantity_times_price(
    stack_plan: Callable[[str], Plan], stack: str
) -> None:
    doc = estimate_plan(stack_plan(stack)).to_json()
    for key in ("min", "expected", "max"):
        assert math.isclose(sum(i["monthly"][key] for i in doc["items"]), doc["monthly"][key], abs_tol=0.005)
        assert doc["monthly"]["min"] <= doc["monthly"]["expected"] <= doc["monthly"]["max"]
    for item in doc["items"]:
        for key in ("min", "expected", "max"):
            expected = item["quantity"][key] * item["hourly"] * HOURS_PER_MONTH
            assert math.isclose(item["monthly"][key], expected, abs_tol=0.01 + expected * 1e-5), item


@pytest.mark.parametrize("stack", ["dev", "prod", "prod-gcp"])
def test_every_line_cites_its_price_row(stack_plan: Callable[[str], Plan], stack: str) -> None:
    plan = stack_plan(stack)
    region = plan.config.region if plan.config else None
    doc = estimate_plan(plan).to_json()
    assert doc["items"] and doc["region"] == region
    for item in doc["items"]:
        assert not item["unpriced"]
        parts = item["sku"].split(":")
        if parts[0] in ("aws", "gcp") and len(parts) == 3:
            quote = pricing.quote(parts[1], spot=parts[2] == "spot", region=region)
            assert item["hourly"] == pytest.approx(quote.hourly)
            assert item["source"] == f"{quote.source} (as of {quote.as_of})"
            assert item["region"] == region and "catalogs/v7" in item["source"]
        else:
            svc = catalog.service_price(item["sku"])
            per_hour = svc.price if svc.unit == "hour" else svc.price / HOURS_PER_MONTH
            assert item["hourly"] == pytest.approx(per_hour, rel=1e-4)
            assert item["source"] == f"{svc.source} (as of {svc.as_of})" and item["unit"] == svc.unit
            assert item["unitPrice"] == pytest.approx(svc.price)


def test_prod_node_groups_and_managed_services(stack_plan: Callable[[str], Plan]) -> None:
    doc = estimate_plan(stack_plan("prod")).to_json()
    assert doc["currency"] == "USD" and doc["budget"] == {"monthlyUsd": 16000.0, "basis": "max"}
    # several instance types, on-demand: the first one listed (prioritized allocation)
    [cpu] = _items(doc, "mlops-prod-cpu", "aws:")
    assert cpu["sku"] == "aws:m6i.2xlarge:on-demand" and cpu["quantity"] == {
        "min": 3,
        "expected": 3,
        "max": 12,
    }
    [ebs] = _items(doc, "mlops-prod-cpu", "ebs-")
    assert ebs["quantity"]["max"] == 12 * 100  # root volume from the launch template, per node
    [cluster] = _items(doc, "mlops-prod", "eks-control-plane")
    assert cluster["monthly"]["expected"] == pytest.approx(73.0)
    assert len([i for i in doc["items"] if i["sku"] == "nat-gateway-hour"]) == 3
    [db] = [i for i in doc["items"] if i["sku"].startswith("rds:")]
    [storage] = [i for i in doc["items"] if i["sku"] == "rds-storage-gp3-gb-month"]
    assert db["quantity"]["expected"] == 2 and storage["quantity"]["expected"] == 40  # multi-AZ x2
    [cache] = [i for i in doc["items"] if i["sku"].startswith("elasticache:")]
    assert cache["quantity"]["expected"] == 2
    assert doc["monthly"]["max"] <= doc["budget"]["monthlyUsd"]


def test_dev_spot_group_uses_cheapest_spot_type(stack_plan: Callable[[str], Plan]) -> None:
    doc = estimate_plan(stack_plan("dev")).to_json()
    [cpu] = _items(doc, "mlops-dev-cpu", "aws:")
    spot = {n: pricing.hourly(n, spot=True, region="us-east-1") for n in ("m6i.xlarge", "m7i.xlarge")}
    cheapest = min(spot, key=lambda n: spot[n] or math.inf)
    assert cpu["sku"] == f"aws:{cheapest}:spot" and cpu["hourly"] == spot[cheapest]
    [gpu] = _items(doc, "mlops-dev-gpu-a10g", "aws:")
    # one node 8 h x 5 days a week (the stack's scaleDownSchedule), none otherwise
    assert gpu["quantity"] == {"min": 0, "expected": pytest.approx(40 / 168, abs=1e-4), "max": 2}


def test_tpu_multi_host_pools_count_whole_slices(stack_plan: Callable[[str], Plan]) -> None:
    plan = stack_plan("prod-gcp")
    hosts = catalog.tpu_hosts("ct5lp-hightpu-4t", "4x4")
    doc = estimate_plan(plan).to_json()
    slices = [i for i in doc["items"] if "tpu-v5e-4x4" in i["urn"] and i["sku"].startswith("gcp:")]
    assert slices and all(i["quantity"]["max"] == hosts and "whole slices" in i["note"] for i in slices)
    # a pool whose autoscaling bound is not a whole slice is still billed per slice
    odd = edit_plan(
        plan,
        lambda r: r.name == "tpu-v5e-4x4-s0" and r.type.endswith("NodePool"),
        lambda i: i["autoscaling"].update(minNodeCount=1, maxNodeCount=5),
    )
    [item] = [
        i
        for i in estimate_plan(odd).to_json()["items"]
        if i["urn"].endswith("::tpu-v5e-4x4-s0") and i["sku"].startswith("gcp:")
    ]
    assert item["quantity"]["min"] == hosts and item["quantity"]["max"] == 2 * hosts
    [cluster] = [i for i in doc["items"] if i["sku"] == "gke-cluster-management"]
    assert cluster["monthly"]["max"] == pytest.approx(73.0)


def test_scale_down_schedule_lowers_expected_only(mutated_plan: Callable[..., Plan]) -> None:
    def scheduled(cfg: dict[str, Any]) -> None:
        group = cfg["mlops-platform:nodeGroups"][1]  # cpu
        group.update(minSize=1, desiredSize=3, scaleDownSchedule={"hoursPerDayActive": 12, "daysPerWeek": 5})

    doc = estimate_plan(mutated_plan("dev", scheduled, name="dev-sched")).to_json()
    [cpu] = _items(doc, "mlops-dev-cpu", "aws:")
    assert cpu["quantity"]["min"] == 1 and cpu["quantity"]["max"] == 6
    assert cpu["quantity"]["expected"] == pytest.approx(1 + 2 * 60 / 168, abs=1e-4)
    assert "12 h/day x 5 days/week" in cpu["note"]


def test_usage_based_items_only_from_a_usage_file(stack_plan: Callable[[str], Plan]) -> None:
    plan = stack_plan("prod")
    without = estimate_plan(plan).to_json()
    assert not [i for i in without["items"] if i["sku"] in ("nat-gateway-gb", "s3-standard-gb-month")]
    usage = Usage(nat_gateway_gb=300, logs_gb=10, bucket_gb={"*": 500})
    doc = estimate_plan(plan, usage).to_json()
    nat_gb = [i for i in doc["items"] if i["sku"] == "nat-gateway-gb"]
    assert [i["quantity"]["expected"] for i in nat_gb] == [100, 100, 100]
    [s3] = [i for i in doc["items"] if i["sku"] == "s3-standard-gb-month"]
    assert s3["monthly"]["expected"] == pytest.approx(
        500 * catalog.service_price("s3-standard-gb-month").price
    )
    added = doc["monthly"]["expected"] - without["monthly"]["expected"]
    nat_price, logs_price = (
        catalog.service_price(s).price for s in ("nat-gateway-gb", "cloudwatch-logs-ingest-gb")
    )
    assert added == pytest.approx(300 * nat_price + 10 * logs_price + 500 * 0.023, abs=0.05)


def test_cost_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    usage = tmp_path / "usage.yaml"
    usage.write_text("natGatewayGb: 90\nbucketGb: {'*': 10}\n")
    assert main(["cost", "prod", "--json", "--usage", str(usage)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert {"currency", "budget", "monthly", "items"} <= set(doc)
    assert {"region", "summary", "priceTables", "warnings"} <= set(doc)
    assert {"urn", "type", "sku", "quantity", "hourly", "monthly", "source"} <= set(doc["items"][0])
    assert {"region", "estimated", "unpriced"} <= set(doc["items"][0])
    assert math.isclose(sum(i["monthly"]["max"] for i in doc["items"]), doc["monthly"]["max"], abs_tol=0.005)
    assert main(["cost", "prod"]) == 0
    human = capsys.readouterr().out
    assert "total" in human and "budget: 16,000.00 USD (max): within" in human
    assert "region us-east-1" in human and " items estimated, 0 unpriced" in human
    usage.write_text("natGatewayGB: 90\n")
    assert main(["cost", "prod", "--usage", str(usage)]) == 2
    assert "unknown keys natGatewayGB" in capsys.readouterr().err
