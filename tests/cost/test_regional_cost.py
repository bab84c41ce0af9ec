"""Costs a finance reviewer can trust: prices in the stack's region, a clear warning and marked items for a
region without a price table, team instance types counted (priced or unpriced) instead of refused, and an
`expected` that means something on the reference stacks."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlops_infra.components import catalog, pricing
from mlops_infra.tooling.cli import main
from mlops_infra.tooling.cost.estimator import estimate_plan
from mlops_infra.tooling.plan import Plan
from mlops_policies.runner import stack_policy_config

from plan_support import REFERENCE_STACKS, ROOT, load_stack_doc

TEAM_TYPE = "g7x.xlarge"
TEAM_FILE = f"""
instances:
  - {{name: {TEAM_TYPE}, cloud: aws, vcpu: 4, memory_gib: 16, accelerator_kind: gpu, accelerator: nvidia-a10g,
     accelerator_count: 1, accelerator_memory_gib: 22.35, max_pods: 58, as_of: "2026-11-20",
     source: "vendor sheet https://example.com/g7x (read 2026-11-20)"{{prices}}}}
"""


@pytest.fixture(autouse=True)
def _forget_team_types() -> Iterator[None]:
    yield
    catalog.forget_team_types()


def _item(doc: dict[str, Any], group: str, prefix: str = "aws:") -> dict[str, Any]:
    found: list[dict[str, Any]] = [
        i for i in doc["items"] if i["urn"].endswith(f"-{group}") and i["sku"].startswith(prefix)
    ]
    assert len(found) == 1, found
    return found[0]


def _in_region(region: str) -> Callable[[dict[str, Any]], None]:
    return lambda cfg: cfg.update({"aws:region": region})


def test_a_stack_in_eu_west_1_is_priced_with_eu_west_1_figures(mutated_plan: Callable[..., Plan]) -> None:
    home = estimate_plan(mutated_plan("dev", lambda cfg: None, name="dev-home")).to_json()
    eu = estimate_plan(mutated_plan("dev", _in_region("eu-west-1"), name="dev-eu")).to_json()
    assert (home["region"], eu["region"]) == ("us-east-1", "eu-west-1")
    # the dev GPU group runs g5.xlarge on spot: the eu-west-1 and us-east-1 rows of the dataset differ
    gpu_home, gpu_eu = _item(home, "gpu-a10g"), _item(eu, "gpu-a10g")
    assert gpu_home["sku"] == gpu_eu["sku"] == "aws:g5.xlarge:spot"
    assert (gpu_home["hourly"], gpu_eu["hourly"]) == (0.4028, 0.5084)
    assert gpu_eu["region"] == "eu-west-1" and gpu_eu["estimated"] is False
    assert "eu-west-1" in gpu_eu["source"] and "catalogs/v7/aws/vms.csv" in gpu_eu["source"]
    system = _item(eu, "system")
    assert system["hourly"] == pricing.hourly("m6i.large", spot=False, region="eu-west-1") == 0.107
    assert eu["monthly"]["min"] > home["monthly"]["min"]
    assert [t["table"] for t in eu["priceTables"]] == ["aws-eu-west-1.json"] and eu["warnings"] == []


def test_a_type_not_offered_in_the_region_is_counted_unpriced(mutated_plan: Callable[..., Plan]) -> None:
    doc = estimate_plan(mutated_plan("dev", _in_region("eu-west-1"), name="dev-eu")).to_json()
    l4 = _item(doc, "gpu-l4")  # g6.* has no eu-west-1 row in the dataset
    assert l4["unpriced"] is True and l4["estimated"] is False and "not offered in eu-west-1" in l4["reason"]
    assert l4["monthly"] == {"min": 0.0, "expected": 0.0, "max": 0.0} and l4["quantity"]["max"] == 2
    assert doc["summary"]["unpriced"] == 1
    assert doc["summary"]["estimated"] == sum(1 for i in doc["items"] if i["estimated"])
    # services have no per-region table: us-east-1 figures, counted as estimates
    [cluster] = [i for i in doc["items"] if i["sku"] == "eks-control-plane"]
    assert (
        cluster["estimated"]
        and cluster["region"] == "us-east-1"
        and "us-east-1 service price" in cluster["reason"]
    )


def test_a_region_without_a_table_warns_and_marks_every_instance_item(
    mutated_plan: Callable[..., Plan],
) -> None:
    estimate = estimate_plan(mutated_plan("dev", _in_region("ap-south-1"), name="dev-mumbai"))
    [warning] = estimate.warnings
    assert "no aws price table for region ap-south-1" in warning and "us-east-1 figures" in warning
    doc = estimate.to_json()
    instances = [i for i in doc["items"] if i["sku"].startswith("aws:")]
    assert instances and all(i["estimated"] and i["region"] == "us-east-1" for i in instances)
    assert all("no aws price table for ap-south-1" in i["reason"] for i in instances)
    assert doc["warnings"] == [warning] and doc["summary"]["unpriced"] == 0


def test_cost_cli_shows_region_counts_and_the_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    doc = load_stack_doc("dev")
    doc["config"]["aws:region"] = "ap-south-1"
    path = tmp_path / "Pulumi.dev-mumbai.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    assert main(["cost", str(path)]) == 0
    out, err = capsys.readouterr()
    assert "warning: dev-mumbai: no aws price table for region ap-south-1" in err
    assert "region ap-south-1" in out and "items estimated, 0 unpriced" in out
    assert main(["cost", str(path), "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["region"] == "ap-south-1" and "ap-south-1" in err


def _team_file(path: Path, prices: str = "") -> Path:
    path.write_text(TEAM_FILE.replace("{prices}", prices))
    return path


def _with_team_group(catalog_file: str | None) -> Callable[[dict[str, Any]], None]:
    def mutate(cfg: dict[str, Any]) -> None:
        cfg["mlops-platform:nodeGroups"].append(
            {"name": "gpu-team", "role": "gpu", "instanceTypes": [TEAM_TYPE], "minSize": 0, "maxSize": 2}
        )
        if catalog_file is not None:
            cfg["mlops-platform:instanceCatalog"] = catalog_file

    return mutate


def test_a_team_type_without_a_price_is_counted_unpriced_not_refused(
    tmp_path: Path, mutated_plan: Callable[..., Plan]
) -> None:
    _team_file(tmp_path / "team.yaml")  # next to the stack copy: instanceCatalog is relative to it
    plan = mutated_plan("dev", _with_team_group("team.yaml"), name="dev-team")
    assert plan.config is not None and plan.config.instance_catalog == "team.yaml"
    doc = estimate_plan(plan).to_json()
    team = _item(doc, "gpu-team")
    assert team["sku"] == f"aws:{TEAM_TYPE}:spot" and team["unpriced"] is True
    assert "gives no spot price for us-east-1" in team["reason"]
    assert doc["summary"]["unpriced"] == 1
    assert sum(i["monthly"]["max"] for i in doc["items"]) == pytest.approx(doc["monthly"]["max"], abs=0.01)
    # the engine's policy process gets the team's type names, so allowed-instance-types does not refuse them
    assert stack_policy_config(plan.config)["allowed-instance-types"]["teamTypes"] == [TEAM_TYPE]


def test_a_team_type_with_a_price_is_priced_and_marked_team_supplied(
    tmp_path: Path, mutated_plan: Callable[..., Plan]
) -> None:
    _team_file(
        tmp_path / "team.yaml", ",\n     prices: {us-east-1: {spot_hourly: 0.31, on_demand_hourly: 0.9}}"
    )
    doc = estimate_plan(mutated_plan("dev", _with_team_group("team.yaml"), name="dev-team")).to_json()
    team = _item(doc, "gpu-team")
    assert team["hourly"] == 0.31 and team["estimated"] is True and not team["unpriced"]
    assert "team-supplied price" in team["reason"] and "example.com/g7x" in team["source"]


def test_cost_catalog_flag_and_unknown_types(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    doc = load_stack_doc("dev")
    _with_team_group(None)(doc["config"])
    path = tmp_path / "Pulumi.dev-team.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    # a type neither the catalog nor a team file knows: exit 2, as before, with a pointer to team files
    assert main(["cost", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"unknown instance type '{TEAM_TYPE}'" in err and "team catalog file" in err
    team = _team_file(tmp_path / "elsewhere.yaml")
    assert main(["cost", str(path), "--catalog", str(team), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["summary"]["unpriced"] == 1
    bad = tmp_path / "bad.yaml"
    bad.write_text("instances: [{name: y1}]")
    assert main(["cost", str(path), "--catalog", str(bad)]) == 2
    assert str(bad) in capsys.readouterr().err


def test_a_bad_instance_catalog_key_is_a_config_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    doc = load_stack_doc("dev")
    doc["config"]["mlops-platform:instanceCatalog"] = "missing.yaml"
    path = tmp_path / "Pulumi.dev.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    assert main(["validate", str(path)]) == 2
    assert "mlops-platform:instanceCatalog" in capsys.readouterr().err


@pytest.mark.parametrize("stack", [s for s in REFERENCE_STACKS if s != "local"])
def test_expected_lies_strictly_between_min_and_max_on_reference_stacks(
    stack_plan: Callable[[str], Plan], stack: str
) -> None:
    """Accelerator groups scale from zero; their scaleDownSchedule (hours a day, days a week, activeNodes)
    puts `expected` between the floor and the ceiling instead of on the floor."""
    plan = stack_plan(stack)
    assert plan.config is not None
    doc = estimate_plan(plan).to_json()
    total = doc["monthly"]
    assert total["min"] < total["expected"] < total["max"]
    accelerated = [g for g in plan.config.node_groups if g.accelerated]
    assert accelerated and all(g.scale_down_schedule is not None for g in accelerated)
    shaped = [
        i for i in doc["items"] if i["sku"].startswith(("aws:", "gcp:")) and "expected:" in i.get("note", "")
    ]
    assert len({i["urn"].rsplit("::", 1)[-1].rsplit("-s", 1)[0] for i in shaped}) == len(accelerated)
    for item in shaped:
        q = item["quantity"]
        assert q["min"] < q["expected"] < q["max"], item


def test_active_nodes_outside_the_group_bounds_is_rejected(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    doc = load_stack_doc("dev")
    group = next(g for g in doc["config"]["mlops-platform:nodeGroups"] if g["name"] == "gpu-a10g")
    group["scaleDownSchedule"]["activeNodes"] = 5  # maxSize 2
    path = tmp_path / "Pulumi.dev.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "scaleDownSchedule.activeNodes" in err and "maxSize (2)" in err


def test_the_budget_rule_prices_in_the_stack_region(stack_plan: Callable[[str], Plan]) -> None:
    plan = stack_plan("prod-gcp")
    assert plan.config is not None
    budget = stack_policy_config(plan.config)["budget-within-limit"]
    assert budget["region"] == "us-central1"
    assert budget["scaleDownSchedules"]["tpu-v5e-4x4"]["activeNodes"] == 4
