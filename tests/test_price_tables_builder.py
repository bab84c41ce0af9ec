"""scripts/build_price_tables.py on a small synthetic copy of the datasets: per-region figures, medians of
zone spot prices, GCP host + GPU sums and TPU slices, the Karpenter correction, absences, outlier checks,
dataset citations, and `--check`."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from plan_support import ROOT

AWS_HEADER = "InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,GpuInfo,Price,SpotPrice,Region,AvailabilityZone"
AWS_ROWS = [
    "g5.xlarge,A10G,1.0,4.0,16.0,,1.006,0.40,us-east-1,use1-az1",
    "g5.xlarge,A10G,1.0,4.0,16.0,,1.006,0.50,us-east-1,use1-az2",
    "g5.xlarge,A10G,1.0,4.0,16.0,,1.006,,us-east-1,use1-az3",
    "g5.xlarge,A10G,1.0,4.0,16.0,,1.123,0.51,eu-west-1,euw1-az1",
    "p4d.24xlarge,A100,8.0,96.0,1152.0,,32.7726,6.79,us-east-1,use1-az1",
    "p4d.24xlarge,A100,8.0,96.0,1152.0,,35.39655,16.3,eu-west-1,euw1-az1",
    "m6i.large,,,2.0,8.0,,0.096,0.0358,us-east-1,use1-az1",
]
GCP_HEADER = "InstanceType,vCPUs,MemoryGiB,AcceleratorName,AcceleratorCount,GpuInfo,Region,AvailabilityZone,Price,SpotPrice"
GCP_ROWS = [
    "g2-standard-4,4.0,16.0,,,,us-central1,us-central1-a,0.14679,0.05874",
    "g2-standard-4,4.0,16.0,,,,europe-west4,europe-west4-a,0.15429,0.06174",
    ",,,L4,1,{'Gpus': []},us-central1,us-central1-a,0.56004,0.2231",
    ",,,L4,1,{'Gpus': []},europe-west4,europe-west4-a,1.9,0.2106",  # x2.9 the us-central1 figure
    ",,,L4,2,{'Gpus': []},us-central1,us-central1-a,1.12008,0.4462",
    ",,,tpu-v5litepod-4,1,tpu-v5litepod-4,us-central1,us-central1-a,4.8,0.85192",
]
KARPENTER = """package pricing

// generated at 2026-07-20T13:44:30Z for us-east-1

var InitialOnDemandPricesAWS = map[string]map[ec2types.InstanceType]float64{
\t// us-east-1
\t"us-east-1": {
\t\t// g5 family
\t\t"g5.xlarge": 1.006000,
\t\t// p4d family
\t\t"p4d.24xlarge": 21.957642,
\t},
}
"""
SHA = {"skypilot-aws": "a" * 40, "skypilot-gcp": "b" * 40, "karpenter": "c" * 40}


def _builder() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "build_price_tables", ROOT / "scripts" / "build_price_tables.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their annotations through sys.modules
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def datasets(tmp_path: Path) -> Path:
    for cloud, header, rows in (("aws", AWS_HEADER, AWS_ROWS), ("gcp", GCP_HEADER, GCP_ROWS)):
        path = tmp_path / "sky" / "catalogs" / "v7" / cloud / "vms.csv"
        path.parent.mkdir(parents=True)
        path.write_text("\n".join([header, *rows]) + "\n")
    go = tmp_path / "karpenter" / "pkg" / "providers" / "pricing" / "zz_generated.pricing_aws.go"
    go.parent.mkdir(parents=True)
    go.write_text(KARPENTER)
    return tmp_path


def _args(root: Path, out: Path, *extra: str) -> list[str]:
    args = ["--skypilot", str(root / "sky"), "--karpenter", str(root / "karpenter"), "--out", str(out)]
    for ident, sha in SHA.items():
        args += ["--commit", f"{ident}={sha}"]
    return [*args, "--retrieved", "2026-11-27", *extra]


def _table(out: Path, name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((out / f"{name}.json").read_text())
    return doc


def test_builds_per_region_tables_from_the_dataset_rows(datasets: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert _builder().main(_args(datasets, out)) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "aws-eu-west-1.json",
        "aws-us-east-1.json",
        "aws-us-west-2.json",
        "gcp-europe-west4.json",
        "gcp-us-central1.json",
    ]
    east, eu = _table(out, "aws-us-east-1"), _table(out, "aws-eu-west-1")
    # on-demand: the region's Price; spot: median of the zones that have one
    assert east["instances"]["g5.xlarge"]["onDemand"] == 1.006
    assert east["instances"]["g5.xlarge"]["spot"] == pytest.approx(0.45)
    assert (eu["instances"]["g5.xlarge"]["onDemand"], eu["instances"]["g5.xlarge"]["spot"]) == (1.123, 0.51)
    # Karpenter's newer us-east-1 figure wins there; other regions are scaled by the same ratio, as derived
    assert east["instances"]["p4d.24xlarge"]["onDemand"] == 21.957642
    p4d = eu["instances"]["p4d.24xlarge"]
    assert p4d["onDemand"] == pytest.approx(35.39655 * 21.957642 / 32.7726, abs=1e-6)
    assert p4d["onDemandBasis"] == "derived" and "DERIVED" in p4d["note"]
    # a type without rows in a region is absent there, with the reason, never guessed
    assert "m6i.large" in eu["absent"] and "m6i.large" in east["instances"]
    assert "trn1.32xlarge" in east["absent"]
    # dataset, commit and date in every file
    assert east["datasets"]["skypilot-aws"]["commit"] == SHA["skypilot-aws"]
    assert east["datasets"]["skypilot-aws"]["dateBasis"] == "unknown"
    assert east["datasets"]["karpenter"]["date"] == "2026-07-20"
    assert east["asOf"] == "2026-07-20" and east["retrieved"] == "2026-11-27"


def test_gcp_gpu_types_sum_host_and_gpus_and_tpus_use_the_slice_row(datasets: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert _builder().main(_args(datasets, out)) == 0
    central, europe = _table(out, "gcp-us-central1"), _table(out, "gcp-europe-west4")
    g2 = central["instances"]["g2-standard-4"]
    assert g2["onDemand"] == pytest.approx(0.14679 + 0.56004) and g2["spot"] == pytest.approx(
        0.05874 + 0.2231
    )
    assert central["instances"]["ct5lp-hightpu-4t"]["onDemand"] == 4.8
    # the 2 x L4 row alone does not make a price: the g2-standard-24 host row is missing
    assert "host row" in central["absent"]["g2-standard-24"]
    assert "ct5lp-hightpu-4t" in europe["absent"]
    # europe-west4's L4 figure is x2.9 the reference one: flagged for a re-check
    assert (
        "x" in europe["instances"]["g2-standard-4"]["check"]
        and "re-check" in europe["instances"]["g2-standard-4"]["check"]
    )
    assert "check" not in central["instances"]["g2-standard-4"]


def test_check_mode_and_input_errors(
    datasets: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    builder = _builder()
    out = tmp_path / "out"
    assert builder.main(_args(datasets, out)) == 0
    assert builder.main(_args(datasets, out, "--check")) == 0
    (out / "aws-eu-west-1.json").write_text("{}")
    assert builder.main(_args(datasets, out, "--check")) == 1
    assert "aws-eu-west-1.json" in capsys.readouterr().err
    plain = ["--skypilot", str(datasets / "sky"), "--out", str(out), "--regions", "aws:eu-west-1"]
    assert builder.main(plain) == 2
    assert "pass --commit skypilot-aws=" in capsys.readouterr().err
    assert builder.main(_args(datasets, out, "--regions", "azure:westeurope")) == 2
