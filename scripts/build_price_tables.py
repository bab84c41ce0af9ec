#!/usr/bin/env python3
"""Generate the per-region instance price tables from public, dated price datasets.

Why: an estimate for a stack in eu-west-1 must use eu-west-1 prices, and a finance reviewer must be able to
trace every figure to a named dataset, a commit and a date. Tables are generated, never typed by hand; this
script is the only writer of `infra/mlops_infra/components/catalog_data/prices/<cloud>-<region>.json`.

Datasets (a developer fetches them; nothing is downloaded here, and nothing at plan time):

- SkyPilot catalog, https://github.com/skypilot-org/skypilot-catalog: `catalogs/v7/aws/vms.csv` and
  `catalogs/v7/gcp/vms.csv`, one row per machine type x availability zone with on-demand `Price` and
  `SpotPrice` (USD per hour). GCP rows price a GPU machine type's host and its GPUs separately (accelerator
  rows have an empty InstanceType) and TPUs per slice (`tpu-v5litepod-4`, ...).
- Karpenter's generated on-demand table, https://github.com/aws/karpenter-provider-aws:
  `pkg/providers/pricing/zz_generated.pricing_aws.go` (us-east-1 only, with its generation timestamp). It is
  newer than the SkyPilot snapshot, so it wins for us-east-1 on-demand; where the two disagree for a type,
  the other regions' SkyPilot on-demand figures are scaled by the same ratio and marked `derived`.

Method, per catalog type (components/catalog_data/*_instances.yaml, built-in rows only) and region:

- on-demand: the rows' `Price` (all zones of a region carry the same figure; the median is taken anyway);
- spot: the median of the per-zone `SpotPrice` (spot moves daily and differs by zone: indicative only);
- GCP GPU machine types: host row + accelerator row (AcceleratorName, AcceleratorCount = GPUs per node);
  GCP TPU machine types: the single-host slice row of the same chip count (v4 and v5p slice names count
  TensorCores, two per chip: ct5p-hightpu-4t = tpu-v5p-8; v5e (`v5litepod`) and v6e count chips);
- a type with no row in a region is listed under `absent` (not offered there per the dataset), never guessed;
- an on-demand figure that differs from the reference region's by more than x1.5 (or less than x0.75) gets a
  `check` note; the estimator then counts the item as estimated and prints the note.

Usage, from checkouts of the datasets' repositories (their commits and dates are read with git):

    scripts/build_price_tables.py --skypilot ~/src/skypilot-catalog --karpenter ~/src/karpenter-provider-aws

For copies that are not git checkouts give `--commit ID=SHA` and `--date ID=YYYY-MM-DD` (ID: skypilot-aws,
skypilot-gcp, karpenter), and `--retrieved YYYY-MM-DD` for the day the copy was read. `--skypilot-gcp DIR`
takes the GCP file from another checkout. `--check` rebuilds in memory and exits 1 when a committed table
differs. `--regions aws:eu-west-1,gcp:us-central1` limits or extends the regions.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import re
import statistics
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops_infra.components import catalog

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "infra" / "mlops_infra" / "components" / "catalog_data" / "prices"
SCHEMA = 1
DEFAULT_REGIONS = {"aws": ("us-east-1", "us-west-2", "eu-west-1"), "gcp": ("us-central1", "europe-west4")}
REFERENCE = {"aws": "us-east-1", "gcp": "us-central1"}
RATIO_BAND = (0.75, 1.5)

SKYPILOT_REPO = "https://github.com/skypilot-org/skypilot-catalog"
KARPENTER_REPO = "https://github.com/aws/karpenter-provider-aws"
SKYPILOT_PATHS = {"aws": "catalogs/v7/aws/vms.csv", "gcp": "catalogs/v7/gcp/vms.csv"}
KARPENTER_PATH = "pkg/providers/pricing/zz_generated.pricing_aws.go"

# GCP: how a catalog machine type maps onto the dataset's rows.
GCP_GPU_NAMES = {"nvidia-l4": "L4", "nvidia-a100": "A100", "nvidia-h100": "H100"}
GCP_TPU_SLICES = {  # catalog accelerator -> (slice name prefix, slice-name units per chip)
    "tpu-v4": ("tpu-v4", 2),
    "tpu-v5e": ("tpu-v5litepod", 1),
    "tpu-v5p": ("tpu-v5p", 2),
    "tpu-v6e": ("tpu-v6e", 1),
}

# Caveats found by reading the dataset, attached to the figures they concern (region, type).
KNOWN_CAVEATS = {
    ("us-central1", "a3-highgpu-8g"): (
        "the dataset's us-central1 H100 on-demand figure (4.20 USD per GPU-hour) is less than half its us-east4 "
        "figure (9.80) while its spot figure is higher; re-check at https://cloud.google.com/compute/gpus-pricing"
    ),
}


class BuildError(Exception):
    """A dataset that cannot be read or does not have the expected shape."""


@dataclass(frozen=True)
class Dataset:
    id: str
    name: str
    repository: str
    path: str
    commit: str
    date: str | None  # content date: commit date, or the file's own generation timestamp
    date_basis: str  # "commit", "generated" or "unknown"
    retrieved: str
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "name": self.name,
            "repository": self.repository,
            "path": self.path,
            "commit": self.commit,
            "date": self.date,
            "dateBasis": self.date_basis,
            "retrieved": self.retrieved,
        }
        if self.note:
            doc["note"] = self.note
        return doc


@dataclass
class Entry:
    on_demand: float | None
    spot: float | None
    on_demand_basis: str = "read"
    spot_basis: str = "read"
    sources: list[str] = field(default_factory=list)
    note: str = ""
    check: str = ""
    zones: int = 0

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"onDemand": self.on_demand, "spot": self.spot}
        doc["onDemandBasis"] = self.on_demand_basis
        doc["spotBasis"] = self.spot_basis if self.spot is not None else None
        doc["from"] = self.sources
        doc["zones"] = self.zones
        if self.note:
            doc["note"] = self.note
        if self.check:
            doc["check"] = self.check
        return doc


# ---------------------------------------------------------------------------------------------------- input


def _git(repo: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, check=False, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else None


def _iso(value: str, what: str) -> str:
    try:
        return datetime.date.fromisoformat(value).isoformat()
    except ValueError:
        raise BuildError(f"{what}: {value!r} is not a date YYYY-MM-DD") from None


def dataset_meta(
    ident: str, repo: Path, path: str, commits: Mapping[str, str], dates: Mapping[str, str]
) -> tuple[str, str | None, str]:
    """(commit, content date, date basis) from git, or from --commit/--date for a plain copy."""
    commit = commits.get(ident) or _git(repo, "log", "-1", "--format=%H", "--", path)
    if not commit or not re.fullmatch(r"[0-9a-f]{40}", commit):
        raise BuildError(
            f"{ident}: no git commit for {repo / path}; pass --commit {ident}=<40-hex SHA> for a plain copy"
        )
    if ident in dates:
        return commit, _iso(dates[ident], f"--date {ident}"), "commit"
    committed = _git(repo, "log", "-1", "--format=%cs", commit)
    return (commit, committed, "commit") if committed else (commit, None, "unknown")


def read_csv(path: Path) -> list[dict[str, str]]:
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as exc:
        raise BuildError(f"{path}: cannot be read: {exc.strerror}") from None
    need = {"InstanceType", "AcceleratorName", "AcceleratorCount", "Price", "SpotPrice", "Region"}
    if not rows or not need <= set(rows[0]):
        raise BuildError(f"{path}: expected a SkyPilot vms.csv with columns {', '.join(sorted(need))}")
    return rows


def read_karpenter(path: Path) -> tuple[dict[str, float], str]:
    """us-east-1 on-demand prices and the file's generation date."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BuildError(f"{path}: cannot be read: {exc.strerror}") from None
    stamp = re.search(r"generated at (\d{4}-\d{2}-\d{2})T[0-9:]+Z for us-east-1", text)
    block = re.search(r'"us-east-1": \{(.*?)\n\t\},', text, re.S)
    if stamp is None or block is None:
        raise BuildError(
            f"{path}: not Karpenter's zz_generated.pricing_aws.go (no us-east-1 block/timestamp)"
        )
    prices = {
        name: float(value) for name, value in re.findall(r'"([a-z0-9.\-]+)": ([0-9.]+)', block.group(1))
    }
    return prices, stamp.group(1)


# ---------------------------------------------------------------------------------------------------- build


def _median(values: Iterable[float]) -> float | None:
    found = list(values)
    return round(statistics.median(found), 6) if found else None


def _prices(rows: list[dict[str, str]]) -> tuple[float | None, float | None, int]:
    on_demand = _median(float(r["Price"]) for r in rows if r["Price"])
    spot = _median(float(r["SpotPrice"]) for r in rows if r["SpotPrice"])
    return on_demand, spot, len({r.get("AvailabilityZone", "") for r in rows})


def _index(rows: list[dict[str, str]]) -> dict[tuple[str, str, str, str], list[dict[str, str]]]:
    """(InstanceType, AcceleratorName, AcceleratorCount, Region) -> rows."""
    index: dict[tuple[str, str, str, str], list[dict[str, str]]] = defaultdict(list)
    for r in rows:
        if r["InstanceType"]:  # a machine type (AWS rows also name their GPUs; the type is the key)
            index[(r["InstanceType"], "", "", r["Region"])].append(r)
        else:  # a GCP accelerator or TPU slice row
            count = str(int(float(r["AcceleratorCount"] or 0)))
            index[("", r["AcceleratorName"], count, r["Region"])].append(r)
    return index


def aws_entries(
    rows: list[dict[str, str]], karpenter: Mapping[str, float], region: str
) -> tuple[dict[str, Entry], dict[str, str]]:
    by_key = _index(rows)
    reference = REFERENCE["aws"]
    entries: dict[str, Entry] = {}
    absent: dict[str, str] = {}
    for itype in catalog.instances("aws", builtin_only=True):
        found = by_key.get((itype.name, "", "", region), [])
        if not found:
            absent[itype.name] = f"no {region} row for {itype.name} in {SKYPILOT_PATHS['aws']}"
            continue
        on_demand, spot, zones = _prices(found)
        entry = Entry(on_demand, spot, sources=["skypilot-aws"], zones=zones)
        sky_ref, _, _ = _prices(by_key.get((itype.name, "", "", reference), []))
        newer = karpenter.get(itype.name)
        if region == reference and newer is not None:
            entry.sources = ["karpenter", "skypilot-aws"]
            if on_demand is not None and abs(newer - on_demand) > 1e-9:
                entry.note = f"on-demand from Karpenter ({newer}); the SkyPilot snapshot says {on_demand}"
            entry.on_demand = newer
        elif newer is not None and sky_ref and on_demand is not None and abs(newer - sky_ref) > 1e-9:
            ratio = newer / sky_ref
            entry.on_demand = round(on_demand * ratio, 6)
            entry.on_demand_basis = "derived"
            entry.sources = ["skypilot-aws", "karpenter"]
            entry.note = (
                f"on-demand DERIVED: SkyPilot {region} {on_demand} x (Karpenter {reference} {newer} / "
                f"SkyPilot {reference} {sky_ref}); the SkyPilot snapshot predates a price change for this type"
            )
        entries[itype.name] = entry
    return entries, absent


def gcp_entries(rows: list[dict[str, str]], region: str) -> tuple[dict[str, Entry], dict[str, str]]:
    by_key = _index(rows)
    path = SKYPILOT_PATHS["gcp"]
    entries: dict[str, Entry] = {}
    absent: dict[str, str] = {}
    for itype in catalog.instances("gcp", builtin_only=True):
        if itype.accelerator_kind == "tpu":
            prefix, units = GCP_TPU_SLICES[str(itype.accelerator)]
            slice_name = f"{prefix}-{itype.accelerator_count * units}"
            found = by_key.get(("", slice_name, "1", region), [])
            if not found:
                absent[itype.name] = f"no {region} row for slice {slice_name} in {path}"
                continue
            on_demand, spot, zones = _prices(found)
            entries[itype.name] = Entry(
                on_demand, spot, sources=["skypilot-gcp"], zones=zones, note=f"single-host slice {slice_name}"
            )
        elif itype.accelerator_kind == "gpu":
            gpu = GCP_GPU_NAMES[str(itype.accelerator)]
            host = by_key.get((itype.name, "", "", region), [])
            accel = by_key.get(("", gpu, str(itype.accelerator_count), region), [])
            if not host or not accel:
                missing = "host" if not host else f"{itype.accelerator_count} x {gpu}"
                absent[itype.name] = f"no {region} {missing} row for {itype.name} in {path}"
                continue
            h_od, h_spot, zones = _prices(host)
            a_od, a_spot, _ = _prices(accel)
            entries[itype.name] = Entry(
                round(h_od + a_od, 6) if h_od is not None and a_od is not None else None,
                round(h_spot + a_spot, 6) if h_spot is not None and a_spot is not None else None,
                sources=["skypilot-gcp"],
                zones=zones,
                note=(
                    f"host {h_od} + {itype.accelerator_count} x {gpu} {a_od} on-demand; "
                    f"host {h_spot} + {itype.accelerator_count} x {gpu} {a_spot} spot"
                ),
            )
        else:
            found = by_key.get((itype.name, "", "", region), [])
            if not found:
                absent[itype.name] = f"no {region} row for {itype.name} in {path}"
                continue
            on_demand, spot, zones = _prices(found)
            entries[itype.name] = Entry(on_demand, spot, sources=["skypilot-gcp"], zones=zones)
    return entries, absent


def flag_outliers(cloud: str, tables: Mapping[str, dict[str, Entry]]) -> None:
    """Mark on-demand figures far from the reference region's (a likely dataset error) with a `check`."""
    reference = tables.get(REFERENCE[cloud], {})
    low, high = RATIO_BAND
    for region, entries in tables.items():
        for name, entry in entries.items():
            caveat = KNOWN_CAVEATS.get((region, name))
            if caveat:
                entry.check = caveat
            ref = reference.get(name)
            if region == REFERENCE[cloud] or ref is None or not ref.on_demand or entry.on_demand is None:
                continue
            ratio = entry.on_demand / ref.on_demand
            if not low <= ratio <= high:
                entry.check = (
                    f"on-demand {entry.on_demand} is x{ratio:.2f} the {REFERENCE[cloud]} figure "
                    f"({ref.on_demand}) in the same dataset, outside x{low:g}-x{high:g}: likely a dataset "
                    "error, re-check at the provider's pricing page"
                )


def table_doc(
    cloud: str, region: str, entries: Mapping[str, Entry], absent: Mapping[str, str], datasets: list[Dataset]
) -> dict[str, Any]:
    used = sorted({s for e in entries.values() for s in e.sources})
    sets = [d for d in datasets if d.id in used] or datasets  # nothing priced: every dataset was consulted
    dated = [d.date or d.retrieved for d in sets]
    return {
        "schema": SCHEMA,
        "cloud": cloud,
        "region": region,
        "currency": "USD",
        "unit": "node-hour",
        "asOf": min(dated),
        "retrieved": min(d.retrieved for d in sets),
        "generatedBy": "scripts/build_price_tables.py",
        "datasets": {d.id: d.to_json() for d in sets},
        "method": (
            "on-demand: the region's Price; spot: median of the per-zone SpotPrice (indicative); "
            "GCP GPU types = host row + accelerator row; GCP TPU types = single-host slice row; "
            "basis 'derived' = scaled or otherwise not a figure of the dataset itself"
        ),
        "services": (
            "not in this table: managed-service prices (EKS, NAT, EBS/PD, RDS, Cloud SQL, ElastiCache, "
            "S3/GCS) are reference-region figures from catalog_data/*_services.yaml"
        ),
        "instances": {name: entries[name].to_json() for name in sorted(entries)},
        "absent": {name: absent[name] for name in sorted(absent)},
    }


def build(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    commits = dict(kv.split("=", 1) for kv in args.commit)
    dates = dict(kv.split("=", 1) for kv in args.date)
    retrieved = _iso(args.retrieved, "--retrieved")
    regions: dict[str, list[str]] = defaultdict(list)
    for spec in args.regions.split(",") if args.regions else []:
        cloud, _, region = spec.partition(":")
        if cloud not in REFERENCE or not region:
            raise BuildError(f"--regions: {spec!r} is not <aws|gcp>:<region>")
        regions[cloud].append(region)
    if not regions:
        regions = {c: list(r) for c, r in DEFAULT_REGIONS.items()}
    for cloud in regions:  # outliers are judged against the reference region, so it is always built
        if REFERENCE[cloud] not in regions[cloud]:
            regions[cloud].insert(0, REFERENCE[cloud])

    out: dict[str, dict[str, Any]] = {}
    if "aws" in regions:
        sky = Path(args.skypilot)
        commit, date, basis = dataset_meta("skypilot-aws", sky, SKYPILOT_PATHS["aws"], commits, dates)
        aws_sets = [
            Dataset(
                "skypilot-aws",
                "SkyPilot catalog",
                SKYPILOT_REPO,
                SKYPILOT_PATHS["aws"],
                commit,
                date,
                basis,
                retrieved,
                ""
                if date
                else "commit date not known offline; this snapshot predates AWS's June 2025 P4d/P5 cut",
            )
        ]
        karpenter: dict[str, float] = {}
        if args.karpenter:
            kdir = Path(args.karpenter)
            karpenter, generated = read_karpenter(kdir / KARPENTER_PATH)
            kcommit, _, _ = dataset_meta("karpenter", kdir, KARPENTER_PATH, commits, dates)
            aws_sets.append(
                Dataset(
                    "karpenter",
                    "Karpenter generated on-demand prices (us-east-1)",
                    KARPENTER_REPO,
                    KARPENTER_PATH,
                    kcommit,
                    generated,
                    "generated",
                    retrieved,
                )
            )
        rows = read_csv(sky / SKYPILOT_PATHS["aws"])
        built = {r: aws_entries(rows, karpenter, r) for r in regions["aws"]}
        flag_outliers("aws", {r: e for r, (e, _) in built.items()})
        for region, (entries, absent) in built.items():
            out[f"aws-{region}"] = table_doc("aws", region, entries, absent, aws_sets)
    if "gcp" in regions:
        sky = Path(args.skypilot_gcp or args.skypilot)
        commit, date, basis = dataset_meta("skypilot-gcp", sky, SKYPILOT_PATHS["gcp"], commits, dates)
        gcp_sets = [
            Dataset(
                "skypilot-gcp",
                "SkyPilot catalog",
                SKYPILOT_REPO,
                SKYPILOT_PATHS["gcp"],
                commit,
                date,
                basis,
                retrieved,
                "" if date else "commit date not known offline",
            )
        ]
        rows = read_csv(sky / SKYPILOT_PATHS["gcp"])
        built = {r: gcp_entries(rows, r) for r in regions["gcp"]}
        flag_outliers("gcp", {r: e for r, (e, _) in built.items()})
        for region, (entries, absent) in built.items():
            out[f"gcp-{region}"] = table_doc("gcp", region, entries, absent, gcp_sets)
    return out


def render(doc: Mapping[str, Any]) -> str:
    return json.dumps(doc, indent=2, sort_keys=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--skypilot", required=True, metavar="DIR", help="skypilot-catalog checkout")
    parser.add_argument(
        "--skypilot-gcp", metavar="DIR", help="checkout for the GCP file (default: --skypilot)"
    )
    parser.add_argument(
        "--karpenter", metavar="DIR", help="karpenter-provider-aws checkout (us-east-1 on-demand)"
    )
    parser.add_argument("--commit", action="append", default=[], metavar="ID=SHA")
    parser.add_argument("--date", action="append", default=[], metavar="ID=YYYY-MM-DD")
    parser.add_argument("--retrieved", default=datetime.date.today().isoformat(), metavar="YYYY-MM-DD")
    parser.add_argument("--regions", metavar="CLOUD:REGION,...")
    parser.add_argument("--out", default=str(OUT), metavar="DIR")
    parser.add_argument("--check", action="store_true", help="exit 1 if a committed table differs")
    args = parser.parse_args(argv)
    try:
        tables = build(args)
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    stale = []
    for name, doc in tables.items():
        path = out / f"{name}.json"
        text = render(doc)
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(str(path))
            continue
        out.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        flagged = [n for n, e in doc["instances"].items() if e.get("check")]
        print(
            f"{path}: {len(doc['instances'])} priced, {len(doc['absent'])} absent"
            + (f", check: {', '.join(flagged)}" if flagged else "")
        )
    if stale:
        print("differs from the datasets: " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
